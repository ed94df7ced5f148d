"""Splitting a stream of byte chunks into lines, JSON values and server-sent events.

Chunk boundaries follow neither lines, JSON objects nor UTF-8 characters. Every splitter
here buffers, emits only complete items, decodes UTF-8 incrementally (a character split
across chunks is joined), and flushes the tail without a newline exactly once at the end.
They never loop: each input chunk is consumed once. Pure functions over iterables, so any
chunking of the same bytes gives the same output (property-tested).
"""

from __future__ import annotations

import codecs
import json
from collections.abc import Iterable, Iterator
from typing import Any

import attrs

__all__ = ["LineSplitter", "SSEEvent", "SSEParser", "iter_json_lines", "iter_lines", "iter_sse"]


class LineSplitter:
    """Incremental line splitting (no I/O): :meth:`feed` a chunk, get its complete lines;
    :meth:`end` returns the tail. The sync and asyncio streams share it."""

    def __init__(self, encoding: str = "utf-8") -> None:
        self._decoder = codecs.getincrementaldecoder(encoding)()
        self._pending = ""

    def feed(self, chunk: bytes) -> list[str]:
        text = self._decoder.decode(chunk)
        if "\n" not in text:
            self._pending += text
            return []
        parts = (self._pending + text).split("\n")
        self._pending = parts.pop()
        return [line[:-1] if line.endswith("\r") else line for line in parts]

    def end(self) -> list[str]:
        pending = self._pending + self._decoder.decode(b"", final=True)
        self._pending = ""
        if pending:
            return [pending[:-1] if pending.endswith("\r") else pending]
        return []


def iter_lines(chunks: Iterable[bytes], *, encoding: str = "utf-8") -> Iterator[str]:
    """Lines of the concatenated chunks, without their ``\\n`` / ``\\r\\n`` ends.

    A final line without a newline is emitted at the end; an empty stream yields nothing.
    Invalid UTF-8 raises ``UnicodeDecodeError``.
    """
    splitter = LineSplitter(encoding)
    for chunk in chunks:
        yield from splitter.feed(chunk)
    yield from splitter.end()


def iter_json_lines(chunks: Iterable[bytes]) -> Iterator[Any]:
    """JSON values, one per line (JSON Lines); blank lines are skipped. A line that is not
    JSON raises ``json.JSONDecodeError`` naming its position."""
    for line in iter_lines(chunks):
        if line.strip():
            yield json.loads(line)


@attrs.frozen
class SSEEvent:
    """One server-sent event: ``data`` (the ``data:`` lines joined by ``\\n``), ``event``
    (the ``event:`` field, default ``"message"``), ``id`` and ``retry`` when sent.

    .. versionadded:: 0.1.0
    """

    data: str
    event: str = "message"
    id: str | None = None
    retry: int | None = None

    def json(self) -> Any:
        """``data`` decoded as JSON."""
        return json.loads(self.data)


class SSEParser:
    """Incremental server-sent-events parsing over lines (no I/O): :meth:`line` returns the
    event a blank line dispatches, :meth:`end` the last one; ``finished`` turns true at the
    ``done`` sentinel. The sync and asyncio streams share it."""

    def __init__(self, done: str | None = "[DONE]") -> None:
        self._done = done
        self._data: list[str] = []
        self._fields: dict[str, Any] = {}
        self.finished = False

    def _dispatch(self) -> SSEEvent | None:
        event = SSEEvent("\n".join(self._data), **self._fields) if self._data else None
        self._data, self._fields = [], {}
        if event is not None and self._done is not None and event.data == self._done:
            self.finished = True
            return None
        return event

    def line(self, line: str) -> SSEEvent | None:
        if not line:
            return self._dispatch()
        if line.startswith(":"):
            return None
        name, _, value = line.partition(":")
        value = value[1:] if value.startswith(" ") else value
        if name == "data":
            self._data.append(value)
        elif name == "event":
            self._fields["event"] = value
        elif name == "id":
            self._fields["id"] = value
        elif name == "retry" and value.isdigit():
            self._fields["retry"] = int(value)
        return None

    def end(self) -> SSEEvent | None:
        return None if self.finished else self._dispatch()


def iter_sse(chunks: Iterable[bytes], *, done: str | None = "[DONE]") -> Iterator[SSEEvent]:
    """Server-sent events (the WHATWG event-stream format): fields ``data``, ``event``,
    ``id``, ``retry``; comment lines (``:``) ignored; an event is dispatched at a blank line,
    and a last event without one at the end. Iteration stops at an event whose data equals
    ``done`` (the OpenAI-style ``[DONE]`` sentinel; ``None`` turns that off)."""
    parser = SSEParser(done)
    for line in iter_lines(chunks):
        event = parser.line(line)
        if parser.finished:
            return
        if event is not None:
            yield event
    last = parser.end()
    if last is not None:
        yield last
