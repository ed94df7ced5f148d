"""The blocking bidirectional stream: an :class:`AsyncDuplexStream` driven on a private
event loop in a daemon thread, so scripts and notebooks need no event loop of their own
(and a notebook's running loop is never touched).

Every call waits on a future whose coroutine has its own deadline (connect, read and close
timeouts), so nothing here blocks forever. A ``KeyboardInterrupt`` while waiting aborts the
stream (reset, connection closed) rather than leaving it half-used.
"""

from __future__ import annotations

import asyncio
import atexit
import os
import threading
from collections.abc import Callable, Coroutine, Iterator
from typing import Any, TypeVar

import attrs
from typing_extensions import Self

from .._errors import SMClientError
from ._async import AsyncDuplexStream, ReconnectEvent, ReconnectPolicy
from ._messages import DuplexMessage
from ._stream import StreamSettings

__all__ = ["DuplexStream"]

T = TypeVar("T")


class _LoopThread:
    """One event loop per process, in a daemon thread, started on first use."""

    _lock = threading.Lock()
    _instance: _LoopThread | None = None

    def __init__(self) -> None:
        self.pid = os.getpid()
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(
            target=self.loop.run_forever, name="smclient-duplex-loop", daemon=True
        )
        self.thread.start()

    @classmethod
    def get(cls) -> _LoopThread:
        with cls._lock:
            found = cls._instance
            if found is None or found.pid != os.getpid():  # forked: the thread is not ours
                found = cls._instance = cls()
            return found

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        if threading.current_thread() is self.thread:
            coro.close()
            raise SMClientError("a DuplexStream cannot be used from its own event loop thread")
        future = asyncio.run_coroutine_threadsafe(coro, self.loop)
        try:
            return future.result()
        except BaseException:
            future.cancel()
            raise

    def stop(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout=2)
        if not self.thread.is_alive():
            self.loop.close()


@atexit.register
def _stop_loop() -> None:
    found = _LoopThread._instance
    if found is not None and found.pid == os.getpid() and found.thread.is_alive():
        found.stop()


class DuplexStream:
    """A bidirectional stream to a model (blocking): ``with endpoint.duplex(...) as
    stream``, then ``stream.send(data)`` (``bytes`` go as ``BINARY``, ``str`` as ``UTF8``),
    ``stream.close_input()`` when done sending, and ``for message in stream`` for the
    model's :class:`DuplexMessage` values. Works without an event loop of the caller's
    (scripts, notebooks, threads); ``send`` may be called from one thread while another
    iterates.

    The arguments, errors, closing rules and reconnects are those of
    :class:`AsyncDuplexStream` (``on_reconnect`` is called in a worker thread with this
    stream in its :class:`ReconnectEvent`).

    .. versionadded:: 0.2.0
    """

    def __init__(
        self,
        settings: StreamSettings,
        *,
        reconnect: ReconnectPolicy | None = None,
        on_reconnect: Callable[[ReconnectEvent], None] | None = None,
    ) -> None:
        self._settings = settings
        self._runner = _LoopThread.get()
        self._on_reconnect = on_reconnect
        self._stream: AsyncDuplexStream = self._runner.run(self._make(reconnect))

    async def _make(self, policy: ReconnectPolicy | None) -> AsyncDuplexStream:
        # Built on the private loop so its asyncio primitives belong to it.
        hook = self._relay if self._on_reconnect is not None else None
        return AsyncDuplexStream(self._settings, reconnect=policy, on_reconnect=hook)

    async def _relay(self, event: ReconnectEvent) -> None:
        # The caller's callback is blocking code that may use this stream: run it in a
        # worker thread, never on the loop that carries the stream.
        assert self._on_reconnect is not None
        await asyncio.to_thread(self._on_reconnect, attrs.evolve(event, stream=self))

    def open(self) -> Self:
        """Connect and send the request (called by ``with``); see
        :meth:`AsyncDuplexStream.open`."""
        try:
            self._runner.run(self._stream.open())
        except BaseException:
            self._runner.loop.call_soon_threadsafe(self._stream.abort)
            raise
        return self

    def __enter__(self) -> Self:
        return self.open()

    def __exit__(self, exc_type: type[BaseException] | None, *rest: object) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()

    def send(self, data: bytes | bytearray | memoryview | str) -> None:
        """Send one message; see :meth:`AsyncDuplexStream.send`."""
        self._call(self._stream.send(data))

    def close_input(self) -> None:
        """End the input; see :meth:`AsyncDuplexStream.close_input`."""
        self._call(self._stream.close_input())

    def receive(self) -> DuplexMessage | None:
        """The model's next message, ``None`` at the end; see
        :meth:`AsyncDuplexStream.receive`."""
        return self._call(self._stream.receive())

    def __iter__(self) -> Iterator[DuplexMessage]:
        while True:
            message = self.receive()
            if message is None:
                return
            yield message

    def reconnect(self) -> None:
        """Move to a new stream now; see :meth:`AsyncDuplexStream.reconnect`."""
        self._call(self._stream.reconnect())

    @property
    def reconnects(self) -> int:
        """How many times this stream moved to a new connection."""
        return self._stream.reconnects

    def close(self) -> None:
        """Close gracefully (bounded by ``close_timeout``); see
        :meth:`AsyncDuplexStream.aclose`."""
        self._runner.run(self._stream.aclose())

    def abort(self) -> None:
        """Reset the stream and close the connection now."""

        async def _abort() -> None:
            self._stream.abort()

        self._runner.run(_abort())

    def _call(self, coro: Coroutine[Any, Any, T]) -> T:
        try:
            return self._runner.run(coro)
        except (KeyboardInterrupt, SystemExit):
            self.abort()
            raise

    @property
    def failure(self) -> SMClientError | None:
        """The error that ended the stream, if it failed."""
        return self._stream.failure

    @property
    def invoked_production_variant(self) -> str | None:
        """The variant that serves the stream (from the response headers)."""
        return self._stream.invoked_production_variant

    @property
    def request_id(self) -> str | None:
        """The service's request id, when it sent one."""
        return self._stream.request_id

    @property
    def messages_sent(self) -> int:
        """Messages sent so far (a message split into parts counts once)."""
        return self._stream.messages_sent

    @property
    def messages_received(self) -> int:
        """Messages received so far (whole messages, or parts with ``raw_parts``)."""
        return self._stream.messages_received

    @property
    def bytes_received(self) -> int:
        """Payload bytes received so far."""
        return self._stream.bytes_received

    def __repr__(self) -> str:
        return repr(self._stream).replace("AsyncDuplexStream", "DuplexStream")
