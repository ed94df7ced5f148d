"""The public names of ``smclient.local``, pinned."""

from __future__ import annotations

import smclient.local


def test_exported_names() -> None:
    assert smclient.local.__all__ == [
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


def test_exported_objects_say_smclient_local() -> None:
    for name in smclient.local.__all__:
        obj = getattr(smclient.local, name)
        assert obj.__module__ == "smclient.local", name
        assert obj.__name__ == name
