"""The local runtime fronting a container over the bidirectional container contract: a fake
container (a wsproto WebSocket server on loopback, port 0, in the test's server thread)
behind BidiServer + ContainerBidiHandler, driven by smclient's duplex client."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Iterator
from typing import Any

import pytest

pytest.importorskip("h2", reason="bidirectional streaming needs the 'duplex' extra")
pytest.importorskip("wsproto", reason="the container front needs the 'duplex' extra")

from wsproto.events import (
    CloseConnection,
    TextMessage,
)

from smclient import ClientConfig, DuplexMessage, Endpoint, ModelError, ModelStreamError
from smclient.local.bidi import BidiServer, ContainerBidiHandler

from .bidi_fakes import Behaviour, FakeContainer, FakeSocket, echo


@pytest.fixture
def make() -> Iterator[Callable[..., tuple[FakeContainer, BidiServer, Endpoint]]]:
    started: list[Any] = []

    def build(
        behaviour: Behaviour = echo, **options: Any
    ) -> tuple[FakeContainer, BidiServer, Endpoint]:
        handler_options = options.pop("handler", {})
        container = FakeContainer(behaviour, **options)
        server = BidiServer(ContainerBidiHandler(container.url, **handler_options)).start()
        started.extend([server, container])
        endpoint = Endpoint("c", endpoint_url=server.url, config=ClientConfig(sign_requests=False))
        return container, server, endpoint

    yield build
    for thing in started:
        thing.stop()


def test_text_and_binary_frames_both_ways_and_a_normal_end(make: Any) -> None:
    container, _, endpoint = make()
    with endpoint.duplex() as stream:
        stream.send("hello")
        stream.send(b"\x01\x02")
        assert stream.receive() == DuplexMessage(b"HELLO", "UTF8")
        assert stream.receive() == DuplexMessage(b"\x01\x02\x01\x02", "BINARY")
        stream.close_input()  # -> close 1000 to the container, which closes: the end
        assert stream.receive() is None
    assert container.targets == ["/invocations-bidirectional-stream"]
    assert container.closes == [1000]


def test_invocation_path_and_query_string_reach_the_container(make: Any) -> None:
    container, _, endpoint = make()
    with endpoint.duplex(
        model_invocation_path="v1/talk", model_query_string="lang=en&x=%20"
    ) as stream:
        stream.send("a")
        assert stream.receive() == DuplexMessage(b"A", "UTF8")
    assert container.targets == ["/v1/talk?lang=en&x=%20"]


def test_fragments_become_partial_parts(make: Any) -> None:
    async def fragmented(sock: FakeSocket, event: Any) -> None:
        sock.send(TextMessage(data="hel", message_finished=False))
        sock.send(TextMessage(data="lo", message_finished=True))

    _, _, endpoint = make(fragmented)
    with endpoint.duplex(raw_parts=True) as stream:
        stream.send("go")
        assert stream.receive() == DuplexMessage(b"hel", "UTF8", complete=False)
        assert stream.receive() == DuplexMessage(b"lo", "UTF8", complete=True)
    with endpoint.duplex() as stream:
        stream.send("go")
        assert stream.receive() == DuplexMessage(b"hello", "UTF8")


def test_a_refused_upgrade_is_a_424_model_error(make: Any) -> None:
    _, _, endpoint = make(refuse=403)
    with pytest.raises(ModelError) as info, endpoint.duplex():
        pass
    assert info.value.http_status == 424
    assert info.value.original_status_code == 403
    assert "Failed to establish WebSocket connection" in info.value.message


def test_an_unreachable_container_is_a_424_model_error(make: Any) -> None:
    container, _server, _ = make()
    port = container.port
    container.stop()
    lonely = BidiServer(ContainerBidiHandler(f"http://127.0.0.1:{port}", connect_timeout=2)).start()
    try:
        endpoint = Endpoint("c", endpoint_url=lonely.url, config=ClientConfig(sign_requests=False))
        with pytest.raises(ModelError, match="Failed to establish"), endpoint.duplex():
            pass
    finally:
        lonely.stop()


def test_the_containers_error_report_becomes_model_stream_error(make: Any) -> None:
    async def report(sock: FakeSocket, event: Any) -> None:
        sock.send(TextMessage(data="partial answer"))
        sock.send(
            TextMessage(
                data=json.dumps(
                    {"ModelStreamError": {"ErrorCode": "OutOfMemory", "Message": "too long"}}
                )
            )
        )

    _, _, endpoint = make(report)
    with endpoint.duplex() as stream:
        stream.send("x")
        assert stream.receive() == DuplexMessage(b"partial answer", "UTF8")
        with pytest.raises(ModelStreamError) as info:
            stream.receive()
    assert (info.value.stream_error_code, info.value.message) == ("OutOfMemory", "too long")


def test_an_abnormal_close_becomes_model_stream_error(make: Any) -> None:
    async def crash(sock: FakeSocket, event: Any) -> None:
        sock.send(CloseConnection(code=1011, reason="model crashed"))

    _, _, endpoint = make(crash)
    with endpoint.duplex() as stream:
        stream.send("x")
        with pytest.raises(ModelStreamError, match="code 1011: model crashed") as info:
            stream.receive()
    assert info.value.stream_error_code == "StreamBroken"


def test_missed_pongs_close_the_websocket_and_fail_the_stream(make: Any) -> None:
    async def silent(sock: FakeSocket, event: Any) -> None:
        pass

    async def tick(seconds: float) -> None:  # the ping interval, without waiting
        await asyncio.sleep(0)

    _container, _, endpoint = make(
        silent, pong=False, handler={"sleep": tick, "max_missed_pongs": 5}
    )
    # The container never answers a ping: the front gives up, on open or on the first read
    # (the ticks are instant, so the error may come with the answer's headers).
    with pytest.raises(ModelStreamError, match="missed 5 pongs"), endpoint.duplex() as stream:
        stream.receive()
