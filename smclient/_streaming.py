"""Response streaming (``InvokeEndpointWithResponseStream``) that never hangs.

The answer arrives as AWS event-stream messages. smclient reads the messages itself (with
botocore's ``EventStreamBuffer``) instead of botocore's parsed iterator, because botocore's
``EventStreamError`` drops the ``ErrorCode`` of ``ModelStreamError`` and lets raw urllib3
errors escape when a started stream breaks. Every failure becomes a typed error saying how
much was received.
"""

from __future__ import annotations

import codecs
import logging
import time
from collections.abc import Generator, Iterator
from typing import TYPE_CHECKING, Any

import attrs
from typing_extensions import Self

from ._errors import (
    ErrorContext,
    SMClientError,
    translate_stream_break,
    translate_stream_event,
)
from ._splitting import SSEEvent, iter_json_lines, iter_lines, iter_sse

if TYPE_CHECKING:
    from ._request import StreamResponse

__all__ = ["ResponseStream"]

logger = logging.getLogger("smclient")


def _broken_stream_errors() -> tuple[type[BaseException], ...]:
    import http.client

    import botocore.eventstream
    import botocore.exceptions
    import urllib3.exceptions

    return (
        urllib3.exceptions.HTTPError,  # ProtocolError (cut), ReadTimeoutError (stall)
        botocore.exceptions.BotoCoreError,
        botocore.eventstream.ParserError,  # a corrupt frame (CRC, lengths)
        http.client.HTTPException,  # the fast transport: IncompleteRead (cut)
        OSError,  # includes TimeoutError (a stall)
    )


class FrameDecoder:
    """Event-stream bytes to payload chunks (no I/O; shared by the sync and asyncio
    streams): :meth:`feed` returns the payloads of the complete messages, raising the typed
    error of an ``exception`` / ``error`` message; :meth:`broken` maps a failure of the
    connection. Counts what arrived."""

    def __init__(self, ctx: ErrorContext, started: float) -> None:
        from botocore.eventstream import EventStreamBuffer

        self._buffer = EventStreamBuffer()
        self.ctx = ctx
        self.started = started
        self.time_to_first_byte: float | None = None
        self.bytes_received = 0
        self.chunks_received = 0

    def feed(self, data: bytes) -> Iterator[bytes]:
        """The payloads of the complete messages, in order; an error message raises at its
        place (after the payloads before it were yielded)."""
        self._buffer.add_data(data)
        for message in self._buffer:
            headers: Any = message.headers
            kind = headers.get(":message-type")
            if kind == "event" and headers.get(":event-type") == "PayloadPart":
                if not message.payload:
                    continue
                if self.time_to_first_byte is None:
                    self.time_to_first_byte = time.monotonic() - self.started
                self.bytes_received += len(message.payload)
                self.chunks_received += 1
                yield message.payload
            elif kind in ("exception", "error"):
                raise translate_stream_event(
                    headers, message.payload, self.ctx, bytes_received=self.bytes_received
                )
            else:  # a newer event type: not ours to fail on
                logger.debug("ignoring stream event %r", headers.get(":event-type"))

    def broken(self, exc: BaseException) -> SMClientError:
        return translate_stream_break(
            exc,
            self.ctx,
            bytes_received=self.bytes_received,
            chunks_received=self.chunks_received,
        )


class ResponseStream:
    """A streamed answer: iterate it for payload byte chunks, or use :meth:`lines`,
    :meth:`json_lines`, :meth:`sse` or :meth:`text`. Use it as a context manager: leaving
    the block early releases the connection.

    Iteration consumes the stream once (a second loop continues where the first stopped).
    Metadata: ``content_type``, ``invoked_production_variant``, ``custom_attributes``,
    ``request_id``, ``attempts``, ``time_to_first_byte`` (seconds from the call to the first
    payload byte, ``None`` before it), ``bytes_received`` and ``chunks_received``.

    .. versionadded:: 0.1.0
    """

    def __init__(self, response: StreamResponse, ctx: ErrorContext, *, started: float) -> None:
        """Internal: streams come from :meth:`smclient.Endpoint.stream`."""
        self._raw = response
        self._ctx = ctx
        self._started = started
        self.content_type: str | None = response.content_type
        self.invoked_production_variant: str | None = response.invoked_production_variant
        self.custom_attributes: str | None = response.custom_attributes
        self.request_id: str | None = response.request_id
        # Errors of this stream carry the request id of its response.
        self._ctx = attrs.evolve(ctx, request_id=self.request_id)
        self.attempts = ctx.attempts
        self._decoder = FrameDecoder(self._ctx, started)
        self._first: bytes | None = None
        self._chunks = self._read()
        self._closed = False

    @property
    def time_to_first_byte(self) -> float | None:
        """Seconds from the call to the first payload byte (monotonic clock); ``None``
        until one arrived."""
        return self._decoder.time_to_first_byte

    @property
    def bytes_received(self) -> int:
        """Payload bytes received so far (event-stream framing not counted)."""
        return self._decoder.bytes_received

    @property
    def chunks_received(self) -> int:
        """Non-empty payload chunks (``PayloadPart`` events) received so far."""
        return self._decoder.chunks_received

    def _read(self) -> Generator[bytes, None, None]:
        broken = _broken_stream_errors()
        decoder = self._decoder
        try:
            for data in self._raw.chunks:
                yield from decoder.feed(data)
        except SMClientError:
            raise
        except broken as exc:
            raise decoder.broken(exc) from exc
        finally:
            self._release()

    def prefetch(self) -> None:
        """Read up to the first payload chunk (or the end), so that an error event before
        any byte reaches the caller fails the attempt (and can be retried)."""
        try:
            self._first = next(self._chunks, None)
        except BaseException:
            self.close()
            raise

    def __iter__(self) -> Iterator[bytes]:
        return self._iterate()

    def _iterate(self) -> Iterator[bytes]:
        if self._first is not None:
            first, self._first = self._first, None
            yield first
        yield from self._chunks

    def lines(self) -> Iterator[str]:
        """Complete lines (UTF-8, without line ends); the tail without a newline comes last."""
        return iter_lines(self)

    def json_lines(self) -> Iterator[Any]:
        """One JSON value per line (JSON Lines), blank lines skipped."""
        return iter_json_lines(self)

    def sse(self, *, done: str | None = "[DONE]") -> Iterator[SSEEvent]:
        """Server-sent events (``data:`` lines), stopping at the ``done`` sentinel."""
        return iter_sse(self, done=done)

    def text(self, encoding: str = "utf-8") -> str:
        """The whole answer decoded (multi-byte characters split across chunks joined)."""
        decoder = codecs.getincrementaldecoder(encoding)()
        parts = [decoder.decode(chunk) for chunk in self]
        parts.append(decoder.decode(b"", final=True))
        return "".join(parts)

    def _release(self) -> None:
        if not self._closed:
            self._closed = True
            self._raw.close()

    def close(self) -> None:
        """Stop reading and release the connection. Idempotent."""
        self._chunks.close()  # runs _read's finally when it had started
        self._release()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _repr_html_(self) -> str:  # notebooks: a short, escaped summary
        from ._html import response_stream

        return response_stream(self)

    def __repr__(self) -> str:
        return (
            f"ResponseStream(content_type={self.content_type!r}, "
            f"bytes_received={self.bytes_received}, chunks_received={self.chunks_received}, "
            f"request_id={self.request_id!r})"
        )
