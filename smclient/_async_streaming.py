"""``AsyncResponseStream``: a streamed answer read on the event loop. Decoding and splitting
are the sync stream's (``FrameDecoder``, ``LineSplitter``, ``SSEParser``): only the reads
differ."""

from __future__ import annotations

import asyncio
import codecs
import json
from collections.abc import AsyncIterator, Iterator
from typing import TYPE_CHECKING, Any

import attrs
from typing_extensions import Self

from ._errors import ErrorContext, SMClientError
from ._splitting import LineSplitter, SSEEvent, SSEParser
from ._streaming import FrameDecoder, ResponseStream, _broken_stream_errors

if TYPE_CHECKING:
    from ._asynchttp import AsyncStreamResponse

__all__ = ["AsyncResponseStream"]


class AsyncResponseStream:
    """A streamed answer for asyncio: ``async for chunk in s``, or :meth:`lines`,
    :meth:`json_lines`, :meth:`sse`, :meth:`text`. Use it in ``async with ep.stream(...)``:
    leaving the block (or cancelling the task) closes the connection. Metadata and errors
    as :class:`smclient.ResponseStream`.

    .. versionadded:: 0.2.0
    """

    def __init__(
        self,
        response: AsyncStreamResponse | None,
        ctx: ErrorContext,
        *,
        started: float,
        sync: ResponseStream | None = None,
    ) -> None:
        """Internal: streams come from :meth:`smclient.AsyncEndpoint.stream`."""
        self._response = response
        self._sync = sync
        source: Any = response if response is not None else sync
        # Errors of this stream carry the request id of its response.
        self._decoder = FrameDecoder(attrs.evolve(ctx, request_id=source.request_id), started)
        self.content_type: str | None = source.content_type
        self.invoked_production_variant: str | None = source.invoked_production_variant
        self.custom_attributes: str | None = source.custom_attributes
        self.request_id: str | None = source.request_id
        self.attempts = ctx.attempts
        self._first: bytes | None = None
        self._chunks = self._read()
        self._closed = False

    @classmethod
    def from_sync(cls, stream: ResponseStream) -> AsyncResponseStream:
        """Wrap a sync stream (the boto3 transport): its reads run in a worker thread."""
        return cls(None, stream._ctx, started=stream._started, sync=stream)

    @property
    def time_to_first_byte(self) -> float | None:
        """Seconds from the call to the first payload byte (monotonic clock); ``None``
        until one arrived."""
        source = self._sync if self._sync is not None else self._decoder
        return source.time_to_first_byte

    @property
    def bytes_received(self) -> int:
        """Payload bytes received so far (event-stream framing not counted)."""
        return (self._sync or self._decoder).bytes_received

    @property
    def chunks_received(self) -> int:
        """Non-empty payload chunks (``PayloadPart`` events) received so far."""
        return (self._sync or self._decoder).chunks_received

    async def _read(self) -> AsyncIterator[bytes]:
        if self._sync is not None:
            chunks: Iterator[bytes] = iter(self._sync)
            end = object()
            while (chunk := await asyncio.to_thread(next, chunks, end)) is not end:
                yield chunk  # type: ignore[misc]
            return
        assert self._response is not None
        decoder = self._decoder
        broken: tuple[type[BaseException], ...] = (
            *_broken_stream_errors(),
            asyncio.IncompleteReadError,
        )
        try:
            async for data in self._response.chunks:
                for payload in decoder.feed(data):
                    yield payload
        except SMClientError:
            raise
        except broken as exc:
            raise decoder.broken(exc) from exc
        finally:
            self._release()

    async def prefetch(self) -> None:
        """Read up to the first payload chunk (errors before any byte fail the attempt)."""
        try:
            self._first = await anext(self._chunks, None)
        except BaseException:
            await self.aclose()
            raise

    def __aiter__(self) -> AsyncIterator[bytes]:
        return self._iterate()

    async def _iterate(self) -> AsyncIterator[bytes]:
        if self._first is not None:
            first, self._first = self._first, None
            yield first
        async for chunk in self._chunks:
            yield chunk

    async def lines(self) -> AsyncIterator[str]:
        """Complete lines (UTF-8, without line ends); the tail without a newline comes last."""
        splitter = LineSplitter()
        async for chunk in self:
            for line in splitter.feed(chunk):
                yield line
        for line in splitter.end():
            yield line

    async def json_lines(self) -> AsyncIterator[Any]:
        """One JSON value per line (JSON Lines), blank lines skipped."""
        async for line in self.lines():
            if line.strip():
                yield json.loads(line)

    async def sse(self, *, done: str | None = "[DONE]") -> AsyncIterator[SSEEvent]:
        """Server-sent events (``data:`` lines), stopping at the ``done`` sentinel."""
        parser = SSEParser(done)
        async for line in self.lines():
            event = parser.line(line)
            if parser.finished:
                return
            if event is not None:
                yield event
        last = parser.end()
        if last is not None:
            yield last

    async def text(self, encoding: str = "utf-8") -> str:
        """The whole answer decoded."""
        decoder = codecs.getincrementaldecoder(encoding)()
        parts = [decoder.decode(chunk) async for chunk in self]
        parts.append(decoder.decode(b"", final=True))
        return "".join(parts)

    def _release(self) -> None:
        if not self._closed:
            self._closed = True
            if self._response is not None:
                self._response.close()
            if self._sync is not None:
                self._sync.close()

    async def aclose(self) -> None:
        """Stop reading and release the connection. Idempotent."""
        try:
            await self._chunks.aclose()  # type: ignore[attr-defined]
        finally:
            self._release()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    def _repr_html_(self) -> str:  # notebooks: a short, escaped summary
        from ._html import response_stream

        return response_stream(self)

    def __repr__(self) -> str:
        return (
            f"AsyncResponseStream(content_type={self.content_type!r}, "
            f"bytes_received={self.bytes_received}, chunks_received={self.chunks_received}, "
            f"request_id={self.request_id!r})"
        )


# Public classes say smclient.Name (re-exported there lazily), whichever name is touched first.
AsyncResponseStream.__module__ = "smclient"
