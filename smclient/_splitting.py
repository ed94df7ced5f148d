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

__all__ = ["SSEEvent", "iter_json_lines", "iter_lines", "iter_sse"]


def iter_lines(chunks: Iterable[bytes], *, encoding: str = "utf-8") -> Iterator[str]:
    """Lines of the concatenated chunks, without their ``\\n`` / ``\\r\\n`` ends.

    A final line without a newline is emitted at the end; an empty stream yields nothing.
    Invalid UTF-8 raises ``UnicodeDecodeError``.
    """
    decoder = codecs.getincrementaldecoder(encoding)()
    pending = ""
    for chunk in chunks:
        text = decoder.decode(chunk)
        if "\n" not in text:
            pending += text
            continue
        parts = (pending + text).split("\n")
        pending = parts.pop()
        for line in parts:
            yield line[:-1] if line.endswith("\r") else line
    pending += decoder.decode(b"", final=True)
    if pending:
        yield pending[:-1] if pending.endswith("\r") else pending


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


def iter_sse(chunks: Iterable[bytes], *, done: str | None = "[DONE]") -> Iterator[SSEEvent]:
    """Server-sent events (the WHATWG event-stream format): fields ``data``, ``event``,
    ``id``, ``retry``; comment lines (``:``) ignored; an event is dispatched at a blank line,
    and a last event without one at the end. Iteration stops at an event whose data equals
    ``done`` (the OpenAI-style ``[DONE]`` sentinel; ``None`` turns that off)."""
    data: list[str] = []
    fields: dict[str, Any] = {}
    for line in iter_lines(chunks):
        if not line:
            if data:
                event = SSEEvent("\n".join(data), **fields)
                if done is not None and event.data == done:
                    return
                yield event
            data, fields = [], {}
            continue
        if line.startswith(":"):
            continue
        name, _, value = line.partition(":")
        value = value[1:] if value.startswith(" ") else value
        if name == "data":
            data.append(value)
        elif name == "event":
            fields["event"] = value
        elif name == "id":
            fields["id"] = value
        elif name == "retry" and value.isdigit():
            fields["retry"] = int(value)
    if data:
        event = SSEEvent("\n".join(data), **fields)
        if done is None or event.data != done:
            yield event
