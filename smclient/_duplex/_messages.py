"""Messages of a bidirectional stream: the ``PayloadPart`` event both ways, splitting of
large sends into parts, and reassembly of ``PARTIAL`` parts into whole messages."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Literal

import attrs

from .._errors import InvalidInputError
from ._eventstream import Event, encode_message

__all__ = [
    "DEFAULT_PART_SIZE",
    "MAX_PART_SIZE",
    "DuplexMessage",
    "Reassembler",
    "encode_part",
    "parse_part",
    "split",
]

DataType = Literal["UTF8", "BINARY"]

#: Parts sent are at most this many payload bytes by default (1 MiB); bigger sends are
#: split into ``PARTIAL`` parts and a ``COMPLETE`` last part. The service's own part limit
#: is not documented (protocol.md §8); the event-stream format caps a payload at 16 MiB.
DEFAULT_PART_SIZE = 1024 * 1024
#: The largest part size accepted (the format's 16 MiB minus room for the event headers
#: and the signed outer message).
MAX_PART_SIZE = 16 * 1024 * 1024 - 4096


@attrs.frozen(repr=False)
class DuplexMessage:
    """One message of a bidirectional stream.

    ``data`` is the payload; ``data_type`` is ``"UTF8"`` (text) or ``"BINARY"``;
    ``complete`` is ``False`` only for a ``PARTIAL`` part when raw parts were asked for
    (``duplex(..., raw_parts=True)``); whole messages are reassembled otherwise.

    .. versionadded:: 0.2.0
    """

    data: bytes
    data_type: DataType = "BINARY"
    complete: bool = True

    @property
    def is_text(self) -> bool:
        """Whether the model sent text (``DataType: UTF8``)."""
        return self.data_type == "UTF8"

    @property
    def text(self) -> str:
        """The payload decoded as UTF-8 (undecodable bytes become U+FFFD)."""
        return self.data.decode("utf-8", errors="replace")

    def __repr__(self) -> str:  # never the payload itself
        state = "" if self.complete else ", PARTIAL"
        return f"DuplexMessage({self.data_type}, {len(self.data)} bytes{state})"


def encode_part(data: bytes, data_type: DataType, complete: bool) -> bytes:
    """A ``PayloadPart`` event (the inner, unsigned message). ``DataType`` and
    ``CompletionState`` are always written, so no reader depends on defaults."""
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


def parse_part(event: Event) -> DuplexMessage:
    """A ``PayloadPart`` event as a message part (absent headers take the model's
    defaults: ``BINARY``, ``COMPLETE``)."""
    data_type = event.headers.get("DataType", "BINARY")
    state = event.headers.get("CompletionState", "COMPLETE")
    return DuplexMessage(
        event.payload,
        "UTF8" if data_type == "UTF8" else "BINARY",
        state != "PARTIAL",
    )


def _utf8_cut(data: bytes, start: int, limit: int) -> int:
    """The largest cut in ``(start, start + limit]`` that does not split a UTF-8 sequence."""
    cut = start + limit
    while cut > start and (data[cut] & 0xC0) == 0x80:  # a continuation byte
        cut -= 1
    return cut if cut > start else start + limit


def split(data: bytes, data_type: DataType, part_size: int) -> Iterator[tuple[bytes, bool]]:
    """``(chunk, complete)`` pairs: ``PARTIAL`` chunks of at most ``part_size`` bytes, then
    the ``COMPLETE`` last one. Text is cut between characters, never inside one."""
    if not 1 <= part_size <= MAX_PART_SIZE:
        raise InvalidInputError("part_size", f"got {part_size}", limit=f"1-{MAX_PART_SIZE:,} bytes")
    start = 0
    while len(data) - start > part_size:
        cut = _utf8_cut(data, start, part_size) if data_type == "UTF8" else start + part_size
        yield data[start:cut], False
        start = cut
    yield data[start:], True


class Reassembler:
    """Joins ``PARTIAL`` parts into whole messages.

    ``feed(part)`` returns the whole message a ``COMPLETE`` part ends, else ``None``.
    A message's data type is its first part's. ``max_message_bytes`` bounds the memory a
    model can make the client hold for one message (``InvalidInputError``-free: the
    caller turns the ``OverflowError`` into a stream failure).
    """

    def __init__(self, max_message_bytes: int) -> None:
        self._max = max_message_bytes
        self._parts: list[bytes] = []
        self._size = 0
        self._type: DataType | None = None

    @property
    def pending(self) -> int:
        """Bytes held for a message not yet complete."""
        return self._size

    def feed(self, part: DuplexMessage) -> DuplexMessage | None:
        if part.complete and not self._parts:
            return part
        self._size += len(part.data)
        if self._size > self._max:
            raise OverflowError(
                f"a message in PARTIAL parts exceeded max_message_bytes={self._max:,}"
            )
        if self._type is None:
            self._type = part.data_type
        self._parts.append(part.data)
        if not part.complete:
            return None
        whole = DuplexMessage(b"".join(self._parts), self._type)
        self._parts, self._size, self._type = [], 0, None
        return whole
