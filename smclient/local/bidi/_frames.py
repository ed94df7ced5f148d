"""The runtime side's own framing of bidirectional-stream events (the local runtime meets
the client only at the wire): ``PayloadPart`` and exception events out, request events
in (botocore's decoder checks lengths and CRCs), and joining ``PARTIAL`` parts."""

from __future__ import annotations

import json
from typing import Any, Literal

from smclient import DuplexMessage

from ..server._eventstream import encode_message

__all__ = [
    "FrameBuffer",
    "Joiner",
    "decode_events",
    "exception_event",
    "payload_part",
    "to_message",
]


def payload_part(data: bytes, data_type: str, complete: bool) -> bytes:
    """A ``PayloadPart`` event as the service sends it."""
    return encode_message(
        [
            (":message-type", "event"),
            (":event-type", "PayloadPart"),
            (":content-type", "application/octet-stream"),
            ("DataType", data_type),
            ("CompletionState", "COMPLETE" if complete else "PARTIAL"),
        ],
        data,
    )


def exception_event(kind: str, fields: dict[str, str]) -> bytes:
    """A modelled exception event (``ModelStreamError``, ``InternalStreamFailure``)."""
    return encode_message(
        [
            (":message-type", "exception"),
            (":exception-type", kind),
            (":content-type", "application/json"),
        ],
        json.dumps(fields).encode(),
    )


def decode_events(data: bytes) -> list[tuple[dict[str, Any], bytes]]:
    """Every whole message in ``data`` as ``(headers, payload)``."""
    from botocore.eventstream import EventStreamBuffer

    buffer = EventStreamBuffer()
    buffer.add_data(data)
    messages: list[Any] = list(buffer)
    return [(dict(m.headers), bytes(m.payload)) for m in messages]


class FrameBuffer:
    """Gathers a stream's bytes and hands whole messages to botocore's parser one at a
    time (its own buffer copies all it holds on every add: quadratic for big messages)."""

    def __init__(self) -> None:
        self._pending = bytearray()

    def feed(self, data: bytes) -> list[tuple[dict[str, Any], bytes]]:
        from botocore.eventstream import ParserError

        self._pending += data
        out: list[tuple[dict[str, Any], bytes]] = []
        while len(self._pending) >= 12:
            total = int.from_bytes(self._pending[:4], "big")
            if not 16 <= total <= 24 * 1024 * 1024 + 128 * 1024:
                raise ParserError(f"impossible event-stream message length {total}")
            if len(self._pending) < total:
                break
            found = decode_events(bytes(self._pending[:total]))
            del self._pending[:total]
            if len(found) != 1:
                raise ParserError("an event-stream message does not match its prelude")
            out += found
        return out


def to_message(headers: dict[str, Any], payload: bytes) -> DuplexMessage:
    """A request ``PayloadPart`` as a message part (absent headers: ``BINARY``,
    ``COMPLETE``, the model's defaults)."""
    data_type: Literal["UTF8", "BINARY"] = "UTF8" if headers.get("DataType") == "UTF8" else "BINARY"
    return DuplexMessage(payload, data_type, headers.get("CompletionState") != "PARTIAL")


class Joiner:
    """Joins ``PARTIAL`` parts into whole messages, holding at most ``limit`` bytes."""

    def __init__(self, limit: int) -> None:
        self._limit = limit
        self._parts: list[bytes] = []
        self._size = 0
        self._type: Any = None

    def feed(self, part: DuplexMessage) -> DuplexMessage | None:
        if part.complete and not self._parts:
            return part
        self._size += len(part.data)
        if self._size > self._limit:
            raise OverflowError(f"a message in PARTIAL parts exceeded {self._limit:,} bytes")
        if self._type is None:
            self._type = part.data_type
        self._parts.append(part.data)
        if not part.complete:
            return None
        whole = DuplexMessage(b"".join(self._parts), self._type)
        self._parts, self._size, self._type = [], 0, None
        return whole
