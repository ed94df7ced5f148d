"""Type-checked in CI (``mypy --strict tests/typing_check.py``), never run: pins the types
users see from the public API."""

from __future__ import annotations

from typing import Any

from typing_extensions import assert_type

import smclient
from smclient import (
    ClientConfig,
    Endpoint,
    InvocationResult,
    ModelError,
    ModelHandle,
    RetriesExhaustedError,
    RetryPolicy,
    RetryReason,
)


def check(ep: Endpoint) -> None:
    result = ep.invoke({"a": 1}, target_model="m", retry=RetryPolicy.never())
    assert_type(result, InvocationResult)
    assert_type(result.body, bytes)
    assert_type(result.json(), Any)
    assert_type(result.attempts, int)
    assert_type(ep.model("m"), ModelHandle)
    assert_type(ep.model("m").invoke(b"x"), InvocationResult)
    assert_type(RetryPolicy().including(RetryReason.INTERNAL), RetryPolicy)
    assert_type(ep.config, ClientConfig)
    try:
        ep.invoke(b"x")
    except ModelError as err:
        assert_type(err.original_status_code, int | None)
    except RetriesExhaustedError as err:
        assert_type(err.last_error, smclient.SMClientError)
        assert_type(err.elapsed, float)


def check_duplex(ep: Endpoint) -> None:
    from smclient import (
        AsyncDuplexStream,
        DuplexMessage,
        DuplexStream,
        ReconnectEvent,
        ReconnectPolicy,
    )

    def restore(event: ReconnectEvent) -> None:
        assert_type(event.attempt, int)

    with ep.duplex(reconnect=ReconnectPolicy(), on_reconnect=restore) as stream:
        assert_type(stream, DuplexStream)
        stream.send(b"audio")
        stream.send("text")
        assert_type(stream.receive(), DuplexMessage | None)
        for message in stream:
            assert_type(message, DuplexMessage)
            assert_type(message.data, bytes)
            assert_type(message.is_text, bool)
        stream.close_input()

    async def talk() -> None:
        async with ep.duplex_async(part_size=4096) as astream:
            assert_type(astream, AsyncDuplexStream)
            await astream.send(b"x")
            async for item in astream:
                assert_type(item, DuplexMessage)
