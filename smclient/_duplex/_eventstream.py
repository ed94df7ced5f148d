"""AWS event-stream messages for the bidirectional stream: an encoder (botocore has none)
and a decoder over botocore's ``EventStreamBuffer`` (checks lengths and both CRCs).

One message is::

    prelude   total length (uint32 BE) | headers length (uint32 BE) | CRC32 of those 8 bytes
    headers   repeated: name length (uint8) | name | type (uint8) | value
    payload   bytes
    trailer   CRC32 of everything before it (uint32 BE)

Header value types used here: 6 byte array (uint16 length + bytes), 7 string (uint16
length + UTF-8), 8 timestamp (int64 milliseconds since the epoch).
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Iterator, Sequence
from typing import Any, Union

import attrs

__all__ = [
    "MAX_HEADERS",
    "MAX_PAYLOAD",
    "Decoder",
    "Event",
    "Timestamp",
    "decode_one",
    "encode_headers",
    "encode_message",
]

# The format's own limits (protocol.md §6/§8): 16 MiB payload, 128 KiB headers.
MAX_PAYLOAD = 16 * 1024 * 1024
MAX_HEADERS = 128 * 1024

_BYTES = 6
_STRING = 7
_TIMESTAMP = 8


@attrs.frozen
class Timestamp:
    """A timestamp header value: whole milliseconds since the epoch."""

    millis: int


HeaderValue = Union[str, bytes, Timestamp]  # noqa: UP007 (a runtime alias on 3.10)


def _crc(data: bytes, start: int = 0) -> int:
    return zlib.crc32(data, start) & 0xFFFFFFFF


def encode_headers(headers: Sequence[tuple[str, HeaderValue]]) -> bytes:
    """The wire form of ``headers`` (also what the event signature hashes for ``:date``)."""
    out = bytearray()
    for name, value in headers:
        raw_name = name.encode("utf-8")
        if not 0 < len(raw_name) < 256:
            raise ValueError(f"event-stream header name {name!r} must be 1-255 bytes")
        out += struct.pack(">B", len(raw_name)) + raw_name
        if isinstance(value, Timestamp):
            out += struct.pack(">Bq", _TIMESTAMP, value.millis)
            continue
        if isinstance(value, str):
            kind, raw = _STRING, value.encode("utf-8")
        else:
            kind, raw = _BYTES, bytes(value)
        if len(raw) > 0xFFFF:
            raise ValueError(f"event-stream header {name!r} value is longer than 65535 bytes")
        out += struct.pack(">BH", kind, len(raw)) + raw
    return bytes(out)


def encode_message(headers: Sequence[tuple[str, HeaderValue]], payload: bytes) -> bytes:
    """One event-stream message with ``headers`` (in order) and ``payload``."""
    raw_headers = encode_headers(headers)
    if len(raw_headers) > MAX_HEADERS:
        raise ValueError(f"event-stream headers are {len(raw_headers)} bytes (max {MAX_HEADERS})")
    if len(payload) > MAX_PAYLOAD:
        raise ValueError(f"event-stream payload is {len(payload)} bytes (max {MAX_PAYLOAD})")
    total = 12 + len(raw_headers) + len(payload) + 4
    prelude = struct.pack(">II", total, len(raw_headers))
    head = prelude + struct.pack(">I", _crc(prelude)) + raw_headers
    crc = _crc(payload, _crc(head))
    return b"".join((head, payload, struct.pack(">I", crc)))


@attrs.frozen
class Event:
    """A decoded message: ``headers`` (strings as ``str``, byte arrays as ``bytes``,
    timestamps as ``int`` milliseconds) and ``payload``."""

    headers: dict[str, Any]
    payload: bytes


class Decoder:
    """Incremental decoder: ``feed(data)`` returns the messages completed by ``data``.

    Bytes are gathered here until a whole message is in (by its prelude's total length),
    then that message alone goes to botocore's parser: botocore's own buffer copies
    everything it holds on each ``add_data``, which is quadratic for a large message
    arriving in many frames. Raises ``botocore.eventstream.ParserError`` (a subclass) on
    a corrupt message (CRC or length mismatch); the stream cannot continue after that.
    """

    def __init__(self) -> None:
        self._pending = bytearray()

    def feed(self, data: bytes) -> list[Event]:
        from botocore.eventstream import EventStreamBuffer, InvalidPayloadLength, ParserError

        self._pending += data
        events: list[Event] = []
        while len(self._pending) >= 12:
            total = int.from_bytes(self._pending[:4], "big")
            if total > MAX_PAYLOAD + MAX_HEADERS + 16:
                raise InvalidPayloadLength(total)
            if total < 16:
                raise ParserError(f"an event-stream message of {total} bytes is impossible")
            if len(self._pending) < total:
                break
            buffer = EventStreamBuffer()
            buffer.add_data(bytes(self._pending[:total]))
            del self._pending[:total]
            messages: Any = list(buffer)
            events += [Event(dict(m.headers), bytes(m.payload)) for m in messages]
            if len(messages) != 1:  # lengths inside the message disagree with its prelude
                raise ParserError("an event-stream message does not match its prelude")
        return events


def decode_one(data: bytes) -> Event:
    """Decode exactly one whole message (the inner message of a signed event)."""
    events = Decoder().feed(data)
    if len(events) != 1:
        raise ValueError(f"expected one event-stream message, found {len(events)}")
    return events[0]


def iter_events(data: bytes) -> Iterator[Event]:
    """Every message in ``data`` (which must hold whole messages)."""
    yield from Decoder().feed(data)
