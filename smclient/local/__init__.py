"""A local SageMaker runtime on loopback: Python model handlers or a bring-your-own
container behind the real wire protocol, so plain boto3 and smclient (with only
``endpoint_url`` set) work against it with no AWS account.

.. code-block:: python

    from smclient.local import LocalEndpoint

    def predict(body: bytes, content_type: str | None, accept: str | None) -> bytes:
        return body.upper()

    with LocalEndpoint(predict) as local:
        print(local.endpoint().invoke(b"hello").body)

See ``docs/local-endpoint.md``.

.. versionadded:: 0.1.0
"""

from __future__ import annotations

from ._async import AsyncSettings, AsyncStats, AWSConnection, EmbeddedAWS
from ._check import CheckResult, check_container, run_check
from ._container import (
    ContainerClient,
    ContainerError,
    ContainerModel,
    ContainerModelPage,
    ContainerProtocolError,
    ContainerResponse,
    ContainerTimeoutError,
    ContainerUnreachableError,
)
from ._handlers import (
    HandlerError,
    HandlerReply,
    ModelHandler,
    SessionHandler,
    StreamError,
    StreamingHandler,
)
from ._multimodel import ModelStats, MultiModelSettings
from ._runtime import LocalEndpoint, LocalRuntime
from ._sessions import LocalSessionInfo
from ._spec import EndpointSpec
from ._wire import ServiceFault, StreamFaults

__all__ = [
    "AWSConnection",
    "AsyncSettings",
    "AsyncStats",
    "CheckResult",
    "ContainerClient",
    "ContainerError",
    "ContainerModel",
    "ContainerModelPage",
    "ContainerProtocolError",
    "ContainerResponse",
    "ContainerTimeoutError",
    "ContainerUnreachableError",
    "EmbeddedAWS",
    "EndpointSpec",
    "HandlerError",
    "HandlerReply",
    "LocalEndpoint",
    "LocalRuntime",
    "LocalSessionInfo",
    "ModelHandler",
    "ModelStats",
    "MultiModelSettings",
    "ServiceFault",
    "SessionHandler",
    "StreamError",
    "StreamFaults",
    "StreamingHandler",
    "check_container",
    "run_check",
]

for _name in __all__:
    _obj = globals()[_name]
    if getattr(_obj, "__module__", "").startswith("smclient.local._"):
        _obj.__module__ = __name__
del _name, _obj
