"""smclient: a typed, correct and fast client for Amazon SageMaker inference endpoints.

.. code-block:: python

    from smclient import Endpoint

    endpoint = Endpoint("my-endpoint", region="eu-west-1")
    result = endpoint.invoke({"inputs": [1, 2, 3]})
    print(result.json())
"""

from __future__ import annotations

__version__ = "0.1.0.dev0"

from ._clients import ClientConfig
from ._codecs import CSV, JSON, NPY, RAW, Codec, CSVCodec, JSONCodec, NPYCodec, RawCodec
from ._endpoint import Endpoint, ModelHandle
from ._errors import (
    ConfigurationError,
    ConnectError,
    ConnectionClosedError,
    InternalDependencyError,
    InternalFailureError,
    InternalStreamFailureError,
    InvalidInputError,
    ModelError,
    ModelNotReadyError,
    ModelStreamError,
    ReadTimeoutError,
    RetriesExhaustedError,
    ServiceError,
    ServiceUnavailableError,
    SMClientError,
    StreamInterruptedError,
    StreamTimeoutError,
    ThrottlingError,
    TransportError,
    ValidationError,
)
from ._models import InvocationResult
from ._retry import RetryEvent, RetryPolicy, RetryReason
from ._session import Session
from ._session_info import (
    SessionClosedError,
    SessionError,
    SessionExpiredError,
    SessionHeaderError,
    SessionInfo,
    SessionProtocol,
    SessionState,
)
from ._splitting import SSEEvent
from ._streaming import ResponseStream

__all__ = [
    "CSV",
    "JSON",
    "NPY",
    "RAW",
    "CSVCodec",
    "ClientConfig",
    "Codec",
    "ConfigurationError",
    "ConnectError",
    "ConnectionClosedError",
    "Endpoint",
    "InternalDependencyError",
    "InternalFailureError",
    "InternalStreamFailureError",
    "InvalidInputError",
    "InvocationResult",
    "JSONCodec",
    "ModelError",
    "ModelHandle",
    "ModelNotReadyError",
    "ModelStreamError",
    "NPYCodec",
    "RawCodec",
    "ReadTimeoutError",
    "ResponseStream",
    "RetriesExhaustedError",
    "RetryEvent",
    "RetryPolicy",
    "RetryReason",
    "SMClientError",
    "SSEEvent",
    "ServiceError",
    "ServiceUnavailableError",
    "Session",
    "SessionClosedError",
    "SessionError",
    "SessionExpiredError",
    "SessionHeaderError",
    "SessionInfo",
    "SessionProtocol",
    "SessionState",
    "StreamInterruptedError",
    "StreamTimeoutError",
    "ThrottlingError",
    "TransportError",
    "ValidationError",
]

# Tracebacks and reprs say smclient.Endpoint, not smclient._endpoint.Endpoint.
for _name in __all__:
    _obj = globals()[_name]
    if isinstance(_obj, type):
        _obj.__module__ = __name__
del _name, _obj
