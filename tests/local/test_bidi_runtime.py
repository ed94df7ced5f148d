"""Bidirectional streams served by the LocalRuntime on its own port: connections that open
with the HTTP/2 preface go to the bidirectional server, HTTP/1.1 ones to the runtime."""

from __future__ import annotations

from typing import Any

import pytest

pytest.importorskip("h2", reason="bidirectional streaming needs the 'duplex' extra")
pytest.importorskip("wsproto", reason="the container front needs the 'duplex' extra")

from smclient import DuplexMessage, ValidationError
from smclient.local import EndpointSpec, LocalRuntime
from smclient.local.bidi import BidiCall

from .bidi_fakes import FakeContainer


async def shout(call: BidiCall) -> None:
    async for message in call:
        await call.send(message.text.upper())


def predict(body: bytes, content_type: str | None, accept: str | None) -> bytes:
    return body[::-1]


def test_a_bidi_only_endpoint_on_the_runtimes_own_port() -> None:
    with LocalRuntime([EndpointSpec("talk", bidi_handler=shout)]) as runtime:
        endpoint = runtime.endpoint("talk")
        with endpoint.duplex() as stream:
            stream.send("hello")
            assert stream.receive() == DuplexMessage(b"HELLO", "UTF8")
        with pytest.raises(ValidationError, match="only bidirectional streams"):
            endpoint.invoke(b"x")
        assert runtime.bidi_server is not None


def test_one_endpoint_serves_both_real_time_and_bidirectional_calls() -> None:
    spec = EndpointSpec("both", handler=predict, bidi_handler=shout)
    with LocalRuntime([spec, EndpointSpec("plain", handler=predict)]) as runtime:
        assert runtime.endpoint("both").invoke(b"abc").body == b"cba"
        with runtime.endpoint("both").duplex() as stream:
            stream.send("x")
            assert stream.receive() == DuplexMessage(b"X", "UTF8")
        assert runtime.endpoint("plain").invoke(b"abc").body == b"cba"
        with (
            pytest.raises(ValidationError, match="plain of account"),
            runtime.endpoint("plain").duplex(),
        ):
            pass


def test_a_container_endpoint_fronted_over_the_websocket_contract() -> None:
    from .bidi_fakes import echo

    container = FakeContainer(echo)
    try:
        spec = EndpointSpec("box", container_url=container.url, container_bidi=True)
        with LocalRuntime([spec]) as runtime, runtime.endpoint("box").duplex() as stream:
            stream.send("hi")
            stream.send(b"\x00")
            assert stream.receive() == DuplexMessage(b"HI", "UTF8")
            assert stream.receive() == DuplexMessage(b"\x00\x00", "BINARY")
        assert container.targets == ["/invocations-bidirectional-stream"]
    finally:
        container.stop()


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (
            {"bidi_handler": shout, "container_bidi": True, "container_url": "http://x:1"},
            "not both",
        ),
        ({"handler": predict, "container_bidi": True}, "needs container_url"),
    ],
)
def test_spec_checks(options: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        EndpointSpec("e", **options)
