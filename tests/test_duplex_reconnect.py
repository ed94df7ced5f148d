"""The opt-in reconnect helper of bidirectional streams, against the loopback HTTP/2 server:
broken streams are replaced within a budget with backoff (injected sleep, no waiting),
nothing sent is replayed, the application is told."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

pytest.importorskip("h2", reason="bidirectional streaming needs the 'duplex' extra (h2)")

from smclient import (
    AsyncDuplexStream,
    ClientConfig,
    DuplexMessage,
    Endpoint,
    ModelStreamError,
    ReconnectEvent,
    ReconnectPolicy,
    ServiceUnavailableError,
    StreamInterruptedError,
    StreamReconnectedError,
    StreamTimeoutError,
)
from smclient.local.bidi import BidiCall, BidiModelError, BidiRejection, BidiServer

NO_WAIT = ReconnectPolicy(backoff=0.0)


class Recorder:
    """Echo model that records every message it received, per stream."""

    def __init__(self) -> None:
        self.streams: list[list[bytes]] = []

    async def __call__(self, call: BidiCall) -> None:
        seen: list[bytes] = []
        self.streams.append(seen)
        async for message in call:
            seen.append(message.data)
            if message.data == b"fail":
                raise BidiModelError("model failed", "StreamBroken")
            await call.send(message.data.upper())


def _endpoint(server: BidiServer) -> Endpoint:
    return Endpoint("m", endpoint_url=server.url, config=ClientConfig(sign_requests=False))


def test_policy_backoff_formula_and_budget() -> None:
    policy = ReconnectPolicy(max_reconnects=3, backoff=0.5, max_backoff=1.5)
    assert [policy.delay(n, lambda: 1.0) for n in (1, 2, 3, 4)] == [0.5, 1.0, 1.5, 1.5]
    assert policy.delay(2, lambda: 0.25) == 0.25
    cut = StreamInterruptedError("cut")
    assert policy.allows(cut, 3)
    assert not policy.allows(cut, 4)
    assert policy.allows(StreamTimeoutError("stall"), 1)
    assert not policy.allows(ModelStreamError("model"), 1)
    veto = ReconnectPolicy(should_reconnect=lambda error, attempt: attempt < 2)
    assert veto.allows(cut, 1)
    assert not veto.allows(cut, 2)


def test_reading_continues_on_a_new_stream_after_a_cut_and_the_app_is_told() -> None:
    model = Recorder()
    events: list[ReconnectEvent] = []

    def on_reconnect(event: ReconnectEvent) -> None:
        events.append(event)
        event.stream.send(b"context again")  # the app restores its context itself

    with (
        BidiServer(model) as server,
        _endpoint(server).duplex(reconnect=NO_WAIT, on_reconnect=on_reconnect) as stream,
    ):
        stream.send(b"one")
        assert stream.receive() == DuplexMessage(b"ONE")
        server.cut_connections()
        assert stream.receive() == DuplexMessage(b"CONTEXT AGAIN")
        stream.send(b"two")
        assert stream.receive() == DuplexMessage(b"TWO")
        assert stream.reconnects == 1
    assert [e.attempt for e in events] == [1]
    assert isinstance(events[0].error, StreamInterruptedError)
    assert events[0].stream is stream
    assert model.streams == [[b"one"], [b"context again", b"two"]]


async def _send_until_it_fails(stream: AsyncDuplexStream) -> None:
    for _ in range(1000):  # until a send notices the cut (bounded poll)
        await stream.send(b"lost?")
        await asyncio.sleep(0.001)


def test_a_send_that_meets_the_break_raises_and_is_not_replayed() -> None:
    model = Recorder()
    with BidiServer(model) as server:
        endpoint = _endpoint(server)

        async def main() -> None:
            async with endpoint.duplex_async(reconnect=NO_WAIT) as stream:
                await stream.send(b"one")
                assert await stream.receive() == DuplexMessage(b"ONE")
                server.cut_connections()
                with pytest.raises(StreamReconnectedError) as info:
                    await _send_until_it_fails(stream)
                assert isinstance(info.value.error, StreamInterruptedError)
                assert info.value.attempt == 1
                await stream.send(b"resent by the app")
                assert await stream.receive() == DuplexMessage(b"RESENT BY THE APP")

        asyncio.run(main())
    assert model.streams[1] == [b"resent by the app"]  # the failed send was not replayed


def test_reopening_stops_at_the_budget_with_backoff_and_raises_the_last_error() -> None:
    model = Recorder()
    opened = [0]

    def reject_after_first(name: str, headers: Any) -> BidiRejection | None:
        opened[0] += 1
        return None if opened[0] == 1 else BidiRejection(503, "busy")

    delays: list[float] = []

    async def fake_sleep(seconds: float) -> None:
        delays.append(seconds)

    with BidiServer(model, reject=reject_after_first) as server:
        endpoint = _endpoint(server)
        policy = ReconnectPolicy(max_reconnects=3, backoff=1.0, max_backoff=3.0)

        async def main() -> None:
            stream = AsyncDuplexStream(
                endpoint._duplex_settings(
                    target_variant=None,
                    model_invocation_path=None,
                    model_query_string=None,
                    fips=False,
                    part_size=1024,
                    raw_parts=False,
                    read_timeout=None,
                    close_timeout=5.0,
                    wait_for_response=True,
                    max_message_bytes=1024,
                ),
                reconnect=policy,
                sleep=fake_sleep,
                rand=lambda: 1.0,
            )
            async with stream:
                await stream.send(b"x")
                assert await stream.receive() == DuplexMessage(b"X")
                server.cut_connections()
                with pytest.raises(ServiceUnavailableError) as info:
                    await stream.receive()
                assert isinstance(info.value.__cause__, StreamInterruptedError)
                assert stream.reconnects == 3

        asyncio.run(main())
    assert delays == [1.0, 2.0, 3.0]  # full jitter at its top (rand=1.0), capped
    assert opened[0] == 4


def test_a_model_error_is_not_reconnected() -> None:
    with (
        BidiServer(Recorder()) as server,
        _endpoint(server).duplex(reconnect=NO_WAIT) as stream,
    ):
        stream.send(b"fail")
        with pytest.raises(ModelStreamError):
            stream.receive()
        assert stream.reconnects == 0


async def lingering(call: BidiCall) -> None:
    """Answers, and keeps the stream open after the input ended."""
    async for message in call:
        await call.send(message.data.upper())
    await asyncio.Event().wait()


def test_a_stream_whose_input_was_closed_is_not_reopened() -> None:
    with BidiServer(lingering) as server, _endpoint(server).duplex(reconnect=NO_WAIT) as stream:
        stream.send(b"a")
        stream.close_input()
        assert stream.receive() == DuplexMessage(b"A")
        server.cut_connections()
        with pytest.raises(StreamInterruptedError):
            stream.receive()
        assert stream.reconnects == 0


def test_explicit_reconnect_before_the_30_minute_cap() -> None:
    model = Recorder()
    now = [0.0]
    with (
        BidiServer(model, clock=lambda: now[0]) as server,
        _endpoint(server).duplex() as stream,
    ):
        stream.send(b"a")
        assert stream.receive() == DuplexMessage(b"A")
        now[0] = 1790.0  # the app sees the cap coming (by its own clock) ...
        stream.reconnect()  # ... and moves at a boundary it chooses
        now[0] = 1810.0  # past the old connection's cap, the new one is young
        stream.send(b"b")
        assert stream.receive() == DuplexMessage(b"B")
        assert stream.reconnects == 1
    assert model.streams == [[b"a"], [b"b"]]
