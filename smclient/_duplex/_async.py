"""The public asyncio stream, and the opt-in reconnect helper for long sessions.

SageMaker ends a bidirectional connection after 30 minutes, and connections drop. With a
:class:`ReconnectPolicy`, a stream that broke is replaced by a new one (after a backoff,
within a budget) — but nothing sent before is ever replayed: the model may already have
consumed it. The application learns of each reconnect through ``on_reconnect`` (to send
its context again, say) and a ``send`` that met the break raises
:class:`StreamReconnectedError` so the caller decides whether to send that message again.
"""

from __future__ import annotations

import asyncio
import inspect
import random
from collections.abc import Awaitable, Callable, Generator
from typing import Any

import attrs
from typing_extensions import Self

from .._errors import (
    ConnectError,
    InternalStreamFailureError,
    InvalidInputError,
    ServiceUnavailableError,
    SMClientError,
    StreamInterruptedError,
    StreamReconnectedError,
)
from ._messages import DuplexMessage
from ._stream import H2Stream, StreamSettings

__all__ = ["AsyncDuplexStream", "ReconnectEvent", "ReconnectPolicy"]


@attrs.frozen
class ReconnectPolicy:
    """When a broken bidirectional stream is replaced by a new one (opt-in:
    ``endpoint.duplex(reconnect=ReconnectPolicy())``).

    A failure whose type is in ``reconnect_on`` (default: a cut or reset connection —
    including SageMaker's 30-minute cap — or a read timeout
    (:class:`StreamInterruptedError` and its :class:`StreamTimeoutError`), an
    ``InternalStreamFailure`` event, and, while reopening, :class:`ConnectError` and
    :class:`ServiceUnavailableError`) is answered by opening a new stream, at most
    ``max_reconnects`` times per stream object (default 5). Before the n-th reconnect the
    helper waits ``random() * min(max_backoff, backoff * 2 ** (n - 1))`` seconds (full
    jitter; defaults 0.5 s and 10 s). ``should_reconnect(error, n)``, when given, has the
    last word. A :class:`ModelStreamError` (the model failed) is not in the default list.
    A stream whose input was closed is never reopened.

    .. versionadded:: 0.2.0
    """

    max_reconnects: int = 5
    backoff: float = 0.5
    max_backoff: float = 10.0
    reconnect_on: tuple[type[SMClientError], ...] = (
        StreamInterruptedError,
        InternalStreamFailureError,
        ConnectError,
        ServiceUnavailableError,
    )
    should_reconnect: Callable[[SMClientError, int], bool] | None = None

    def __attrs_post_init__(self) -> None:
        if self.max_reconnects < 0:
            raise InvalidInputError("max_reconnects", f"got {self.max_reconnects}", limit=">= 0")
        if self.backoff < 0 or self.max_backoff < 0:
            raise InvalidInputError("backoff", "must not be negative", limit="seconds, >= 0")

    def allows(self, error: SMClientError, attempt: int) -> bool:
        """Whether reconnect number ``attempt`` (1-based) may follow ``error``."""
        if attempt > self.max_reconnects or not isinstance(error, self.reconnect_on):
            return False
        return self.should_reconnect is None or self.should_reconnect(error, attempt)

    def delay(self, attempt: int, rand: Callable[[], float] = random.random) -> float:
        """Seconds to wait before reconnect number ``attempt``."""
        return float(rand() * min(self.max_backoff, self.backoff * 2.0 ** (attempt - 1)))


@attrs.frozen
class ReconnectEvent:
    """What ``on_reconnect`` receives: ``attempt`` (1-based count of reconnects of this
    stream object), ``error`` (what broke the previous stream) and ``stream`` (the
    :class:`DuplexStream` or :class:`AsyncDuplexStream` the callback belongs to, already
    on its new connection: send context here).

    .. versionadded:: 0.2.0
    """

    attempt: int
    error: SMClientError
    stream: Any  # the DuplexStream or AsyncDuplexStream the callback was given to


OnReconnect = Callable[[ReconnectEvent], "Awaitable[None] | None"]


class AsyncDuplexStream:
    """A bidirectional stream to a model (asyncio): ``async with endpoint.duplex_async(...)
    as stream``, then ``await stream.send(data)`` (``bytes`` go as ``BINARY``, ``str`` as
    ``UTF8``), ``await stream.close_input()`` when done sending, and ``async for message in
    stream`` for the model's :class:`DuplexMessage` values.

    Errors: an error answer before the stream (:class:`ValidationError`,
    :class:`ModelError` with the container's status, :class:`InternalFailureError`,
    :class:`ServiceUnavailableError`) is raised when the block is entered; a failure during
    the stream (:class:`ModelStreamError` with ``stream_error_code``,
    :class:`InternalStreamFailureError`, :class:`StreamInterruptedError`,
    :class:`StreamTimeoutError` when no message came within the read timeout) is raised by
    the next ``send`` *and* the next read, after the messages that arrived before it. A
    ``send`` after ``close_input`` raises :class:`DuplexClosedError`. With a
    :class:`ReconnectPolicy`, see :class:`StreamReconnectedError` instead.

    Leaving the block normally closes the input (if still open) and waits up to
    ``close_timeout`` seconds for the model to end its answer; leaving it by an exception
    or a cancellation resets the HTTP/2 stream at once. Messages still unread are dropped.

    Attributes: ``invoked_production_variant``, ``request_id``, ``messages_sent``,
    ``messages_received``, ``bytes_received`` (of the current connection), ``reconnects``,
    ``failure``.

    .. versionadded:: 0.2.0
    """

    def __init__(
        self,
        settings: StreamSettings,
        *,
        reconnect: ReconnectPolicy | None = None,
        on_reconnect: OnReconnect | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        rand: Callable[[], float] = random.random,
    ) -> None:
        self._settings = settings
        self._policy = reconnect
        self._on_reconnect = on_reconnect
        self._sleep = sleep
        self._rand = rand
        self._current = H2Stream(settings)
        self._lock: asyncio.Lock | None = None
        self.reconnects = 0

    async def __aenter__(self) -> Self:
        await self.open()
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None, *rest: object) -> None:
        if exc_type is None:
            await self.aclose()
        else:
            self.abort()

    def __await__(self) -> Generator[Any, None, Self]:
        """``stream = await ep.duplex()``: the stream, open (close it with ``aclose``)."""
        return self.open().__await__()

    async def open(self) -> Self:
        """Connect, send the signed request and (by default) wait for the answer's
        headers, raising the service's error answer if there is one. Called by
        ``async with``. The first open is never retried: its error is the caller's."""
        await self._current.open()
        return self

    async def send(self, data: bytes | bytearray | memoryview | str) -> None:
        """Send one message: ``bytes`` as ``BINARY``, ``str`` as ``UTF8``. Messages larger
        than ``part_size`` go as ``PARTIAL`` parts and a ``COMPLETE`` last part. Waits for
        HTTP/2 flow control (at most the read timeout)."""
        stream = self._current
        try:
            await stream.send(data)
        except SMClientError as exc:
            if not await self._replace(stream, exc):
                raise
            raise StreamReconnectedError(
                f"the stream broke and was reopened (reconnect {self.reconnects}); this "
                "message was not sent again: send it again if the model should get it",
                error=exc,
                attempt=self.reconnects,
            ) from exc

    async def close_input(self) -> None:
        """End the input: a signed empty event, then the end of the HTTP/2 request
        stream. Read the model's remaining answers after it. Idempotent."""
        await self._current.close_input()

    def __aiter__(self) -> Self:
        return self

    async def __anext__(self) -> DuplexMessage:
        message = await self.receive()
        if message is None:
            raise StopAsyncIteration
        return message

    async def receive(self) -> DuplexMessage | None:
        """The model's next message, ``None`` when the model ended its answer. Raises the
        stream's failure after the messages that came before it, and
        :class:`StreamTimeoutError` (failing the stream) when nothing came within the
        read timeout. With a reconnect policy, reading continues on the new stream."""
        while True:
            stream = self._current
            try:
                return await stream.receive()
            except SMClientError as exc:
                if not await self._replace(stream, exc):
                    raise

    async def reconnect(self) -> None:
        """Move to a new stream now, at a point the application chooses (for example
        before the 30-minute cap, after the model's last answer was read): opens the new
        stream, closes the old one gracefully (unread answers on it are dropped), then
        calls ``on_reconnect``. Counts as a reconnect but needs no policy."""
        old = self._current
        new = H2Stream(self._settings)
        await new.open()
        self._current = new
        self.reconnects += 1
        await old.aclose()
        await self._notify(
            ReconnectEvent(self.reconnects, old.failure or SMClientError("reconnect()"), self)
        )

    async def _replace(self, broken: H2Stream, error: SMClientError) -> bool:
        """Open a new stream in place of ``broken`` if the policy allows; ``True`` once
        a new stream is current (possibly opened by a concurrent caller)."""
        if self._policy is None or broken.input_closed:
            return False
        if self._lock is None:
            self._lock = asyncio.Lock()
        async with self._lock:
            if self._current is not broken:
                return True  # a concurrent send or read already reconnected
            last = error
            while self._policy.allows(last, self.reconnects + 1):
                self.reconnects += 1
                await self._sleep(self._policy.delay(self.reconnects, self._rand))
                candidate = H2Stream(self._settings)
                try:
                    await candidate.open()
                except SMClientError as exc:
                    last = exc
                    continue
                broken.abort()
                self._current = candidate
                await self._notify(ReconnectEvent(self.reconnects, error, self))
                return True
            if last is not error:
                raise last from error
            return False

    async def _notify(self, event: ReconnectEvent) -> None:
        if self._on_reconnect is not None:
            result = self._on_reconnect(event)
            if inspect.isawaitable(result):
                await result

    async def aclose(self) -> None:
        """Close gracefully: close the input if still open, wait up to ``close_timeout``
        seconds for the model to end, then close the connection."""
        await self._current.aclose()

    def abort(self) -> None:
        """Reset the HTTP/2 stream and close the connection now (no waiting)."""
        self._current.abort()

    @property
    def failure(self) -> SMClientError | None:
        """The error that ended the current stream, if it failed."""
        return self._current.failure

    @property
    def input_closed(self) -> bool:
        """Whether ``close_input`` was called."""
        return self._current.input_closed

    @property
    def invoked_production_variant(self) -> str | None:
        """The variant that serves the stream (from the response headers)."""
        return self._current.invoked_production_variant

    @property
    def request_id(self) -> str | None:
        """The service's request id, when it sent one."""
        return self._current.request_id

    @property
    def opened_at(self) -> float | None:
        """``clock()`` when the current stream's answer arrived (seconds)."""
        return self._current.opened_at

    @property
    def messages_sent(self) -> int:
        """Messages sent on the current stream (a message split into parts counts once)."""
        return self._current.messages_sent

    @property
    def messages_received(self) -> int:
        """Messages received on the current stream."""
        return self._current.messages_received

    @property
    def bytes_received(self) -> int:
        """Payload bytes received on the current stream."""
        return self._current.bytes_received

    def __repr__(self) -> str:
        return repr(self._current).replace("H2Stream", type(self).__name__)
