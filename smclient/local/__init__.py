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

from ._cli import run_cli
from ._runtime import LocalEndpoint, LocalRuntime
from ._spec import EndpointSpec
from .async_inference._aws import AWSConnection, EmbeddedAWS
from .async_inference._types import AsyncSettings, AsyncStats
from .containers._check import CheckResult, check_container, run_check
from .containers._client import (
    ContainerClient,
    ContainerError,
    ContainerModel,
    ContainerModelPage,
    ContainerProtocolError,
    ContainerResponse,
    ContainerTimeoutError,
    ContainerUnreachableError,
)
from .hosting._handlers import (
    HandlerError,
    HandlerReply,
    ModelHandler,
    SessionHandler,
    StreamError,
    StreamingHandler,
)
from .multimodel._cache import ModelStats, MultiModelSettings
from .server._wire import ServiceFault, StreamFaults
from .sessions._stateful import StatefulHandler
from .sessions._store import LocalSessionInfo

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
    "StatefulHandler",
    "StreamError",
    "StreamFaults",
    "StreamingHandler",
    "check_container",
    "run_check",
    "run_cli",
]

for _name in __all__:
    _obj = globals()[_name]
    if getattr(_obj, "__module__", "").startswith("smclient.local."):
        _obj.__module__ = __name__
del _name, _obj
