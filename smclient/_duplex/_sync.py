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
import contextlib
import os
import threading
from collections.abc import Callable, Coroutine, Iterator
from typing import Any, TypeVar

import attrs
from typing_extensions import Self

from .._errors import DuplexClosedError, SMClientError
from ._async import AsyncDuplexStream, ReconnectEvent, ReconnectPolicy
from ._messages import DuplexMessage
from ._stream import StreamSettings

__all__ = ["DuplexStream"]

T = TypeVar("T")


class _LoopThread:
    """One event loop per process in a daemon thread, running while a blocking stream is
    open: started by the first open, stopped (and its thread joined) when the last one
    closes, so a process with no open stream has no thread of ours."""

    _lock = threading.Lock()
    _instance: _LoopThread | None = None

    def __init__(self) -> None:
        self.pid = os.getpid()
        self.users = 0
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(
            target=self.loop.run_forever, name="smclient-duplex-loop", daemon=True
        )
        self.thread.start()

    @classmethod
    def acquire(cls) -> _LoopThread:
        with cls._lock:
            found = cls._instance
            if found is None or found.pid != os.getpid():  # forked: the thread is not ours
                found = cls._instance = cls()
            found.users += 1
            return found

    def release(self) -> None:
        with _LoopThread._lock:
            self.users -= 1
            last = self.users == 0 and _LoopThread._instance is self
            if last:
                _LoopThread._instance = None
        if last:
            self.stop()

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
        if threading.current_thread() is self.thread or self.loop.is_closed():
            return
        with contextlib.suppress(Exception):  # worker threads of on_reconnect callbacks
            asyncio.run_coroutine_threadsafe(
                self.loop.shutdown_default_executor(), self.loop
            ).result(5)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout=5)
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
        self._on_reconnect = on_reconnect
        hook = self._relay if on_reconnect is not None else None
        # Its asyncio primitives bind to the private loop when first used there.
        self._stream = AsyncDuplexStream(settings, reconnect=reconnect, on_reconnect=hook)
        self._runner: _LoopThread | None = None
        self._state = "new"  # new -> open -> closed

    async def _relay(self, event: ReconnectEvent) -> None:
        # The caller's callback is blocking code that may use this stream: run it in a
        # worker thread, never on the loop that carries the stream.
        assert self._on_reconnect is not None
        await asyncio.to_thread(self._on_reconnect, attrs.evolve(event, stream=self))

    def open(self) -> Self:
        """Connect and send the request (called by ``with``); see
        :meth:`AsyncDuplexStream.open`."""
        if self._state != "new":
            raise DuplexClosedError("this stream was already opened; open a new one")
        self._state = "open"
        self._runner = _LoopThread.acquire()
        try:
            self._runner.run(self._stream.open())
        except BaseException:
            self.abort()
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
        runner = self._runner
        if runner is None or self._state == "closed":
            return
        try:
            runner.run(self._stream.aclose())
        finally:
            self._finish()

    def abort(self) -> None:
        """Reset the stream and close the connection now."""
        runner = self._runner
        if runner is None or self._state == "closed":
            return

        async def _abort() -> None:
            self._stream.abort()

        try:
            runner.run(_abort())
        finally:
            self._finish()

    def _finish(self) -> None:
        self._state = "closed"
        runner, self._runner = self._runner, None
        if runner is not None:
            runner.release()

    def _call(self, coro: Coroutine[Any, Any, T]) -> T:
        runner = self._runner
        if runner is None:
            coro.close()
            if self._state == "new":
                raise DuplexClosedError("the stream is not open: use it in a with block")
            self._raise_failure()
            raise DuplexClosedError("the stream is closed: open a new stream to send more")
        try:
            return runner.run(coro)
        except (KeyboardInterrupt, SystemExit):
            self.abort()
            raise

    def _raise_failure(self) -> None:
        failure = self._stream.failure
        if failure is not None:
            raise failure

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
