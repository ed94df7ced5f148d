"""smclient: a typed, correct and fast client for Amazon SageMaker inference endpoints.

.. code-block:: python

    from smclient import Endpoint

    endpoint = Endpoint("my-endpoint", region="eu-west-1")
    result = endpoint.invoke({"inputs": [1, 2, 3]})
    print(result.json())
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0.dev0"

from ._clients import ClientConfig
from ._codecs import CSV, JSON, NPY, RAW, Codec, CSVCodec, JSONCodec, NPYCodec, RawCodec
from ._endpoint import Endpoint, ModelHandle
from ._errors import (
    ConfigurationError,
    ConnectError,
    ConnectionClosedError,
    DuplexClosedError,
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
    StreamReconnectedError,
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

if TYPE_CHECKING:
    from ._async_endpoint import AsyncEndpoint, AsyncModelHandle, as_completed_async, wait_async
    from ._async_session import AsyncSession
    from ._async_streaming import AsyncResponseStream
    from ._asyncinference import (
        AsyncInferenceError,
        AsyncInvocation,
        AsyncTimeoutError,
        Completion,
        Poller,
        S3AccessDeniedError,
        S3Object,
        WaitResult,
        as_completed,
        wait,
    )
    from ._batch import BatchItem, BatchResult, BatchRun, BatchSummary, Scorer
    from ._deploy import (
        EndpointCreationError,
        create_async_endpoint,
        create_multi_model_endpoint,
        delete_endpoint,
    )
    from ._duplex import (
        AsyncDuplexStream,
        DuplexMessage,
        DuplexStream,
        ReconnectEvent,
        ReconnectPolicy,
    )

__all__ = [
    "CSV",
    "JSON",
    "NPY",
    "RAW",
    "AsyncDuplexStream",
    "AsyncEndpoint",
    "AsyncInferenceError",
    "AsyncInvocation",
    "AsyncModelHandle",
    "AsyncResponseStream",
    "AsyncSession",
    "AsyncTimeoutError",
    "BatchItem",
    "BatchResult",
    "BatchRun",
    "BatchSummary",
    "CSVCodec",
    "ClientConfig",
    "Codec",
    "Completion",
    "ConfigurationError",
    "ConnectError",
    "ConnectionClosedError",
    "DuplexClosedError",
    "DuplexMessage",
    "DuplexStream",
    "Endpoint",
    "EndpointCreationError",
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
    "Poller",
    "RawCodec",
    "ReadTimeoutError",
    "ReconnectEvent",
    "ReconnectPolicy",
    "ResponseStream",
    "RetriesExhaustedError",
    "RetryEvent",
    "RetryPolicy",
    "RetryReason",
    "S3AccessDeniedError",
    "S3Object",
    "SMClientError",
    "SSEEvent",
    "Scorer",
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
    "StreamReconnectedError",
    "StreamTimeoutError",
    "ThrottlingError",
    "TransportError",
    "ValidationError",
    "WaitResult",
    "as_completed",
    "as_completed_async",
    "create_async_endpoint",
    "create_multi_model_endpoint",
    "delete_endpoint",
    "wait",
    "wait_async",
]

# Async inference, endpoint creation and bidirectional streaming load on first use: they
# cost ~30 ms of import time (asyncio, ssl).
_LAZY = {
    "AsyncDuplexStream": "_duplex",
    "AsyncEndpoint": "_async_endpoint",
    "AsyncModelHandle": "_async_endpoint",
    "AsyncResponseStream": "_async_streaming",
    "AsyncSession": "_async_session",
    "as_completed_async": "_async_endpoint",
    "wait_async": "_async_endpoint",
    "AsyncInferenceError": "_asyncinference",
    "AsyncInvocation": "_asyncinference",
    "AsyncTimeoutError": "_asyncinference",
    "BatchItem": "_batch",
    "BatchResult": "_batch",
    "BatchRun": "_batch",
    "BatchSummary": "_batch",
    "Completion": "_asyncinference",
    "DuplexMessage": "_duplex",
    "DuplexStream": "_duplex",
    "EndpointCreationError": "_deploy",
    "Poller": "_asyncinference",
    "ReconnectEvent": "_duplex",
    "ReconnectPolicy": "_duplex",
    "S3AccessDeniedError": "_asyncinference",
    "S3Object": "_asyncinference",
    "Scorer": "_batch",
    "WaitResult": "_asyncinference",
    "as_completed": "_asyncinference",
    "create_async_endpoint": "_deploy",
    "create_multi_model_endpoint": "_deploy",
    "delete_endpoint": "_deploy",
    "wait": "_asyncinference",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'smclient' has no attribute {name!r}")
    # Classes say smclient.Name already: their defining packages set __module__.
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))


# Tracebacks and reprs say smclient.Endpoint, not smclient._endpoint.Endpoint.
for _name in __all__:
    _obj = globals().get(_name)
    if isinstance(_obj, type):
        _obj.__module__ = __name__
del _name, _obj
