"""Calling a model: starting its stream and turning its chunks into event-stream messages;
bounding a call by the invocation timeout."""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

from ..server import _eventstream as es
from ._handlers import HandlerError, HandlerReply, ModelHandler, StreamError, call_stream

__all__ = ["StartedStream", "TimedCalls"]

_log = logging.getLogger("smclient.local")


class StartedStream:
    """A model's stream, started far enough to know whether it fails before its first
    chunk (then the caller gets an HTTP error, not an event)."""

    def __init__(self) -> None:
        self._first: list[bytes] = []
        self._chunks: Iterator[bytes] = iter(())

    def start(
        self,
        handler: ModelHandler,
        body: bytes,
        content_type: str | None,
        accept: str | None,
        **optional: Any,
    ) -> HandlerReply:
        """Calls the handler's ``stream`` and takes its first chunk; a ``HandlerError``
        propagates, a ``StreamError`` becomes the stream's only event."""
        self._chunks = call_stream(handler, body, content_type, accept, **optional)
        try:
            self._first.append(next(self._chunks))
        except StopIteration:
            pass
        except StreamError as exc:
            self._chunks = _raising(exc)
        return HandlerReply(b"")

    def events(self) -> Iterator[bytes]:
        """Event-stream messages for the chunks; a failing model ends with an error event."""
        chunks = self._chunks
        try:
            for chunk in self._first:
                if chunk:
                    yield es.payload_part(chunk)
            for chunk in chunks:
                if chunk:
                    yield es.payload_part(chunk)
        except StreamError as exc:
            yield es.model_stream_error(exc.message, exc.error_code)
        except HandlerError as exc:
            yield es.model_stream_error(exc.message, "StreamBroken")
        except Exception as exc:
            _log.warning("local endpoint: model stream raised %s", type(exc).__name__)
            yield es.model_stream_error(
                f"The model stream raised {type(exc).__name__}.", "StreamBroken"
            )
        finally:
            close = getattr(chunks, "close", None)
            if close is not None:
                close()


_TIMEOUT_MESSAGE = (
    "Your invocation timed out while waiting for a response from container primary. "
    "Review the latency metrics for each container in Amazon CloudWatch, resolve the "
    "issue, and try again."
)


class TimedCalls:
    """Model calls bounded by a timeout: each runs on a worker thread; one that overruns
    is abandoned (the caller gets the service's timeout ``ModelError``, status 0) and
    joined at shutdown, as a container keeps running a request the runtime gave up on.

    Workers are daemon threads and are reused (a thread per call would cost about a third
    of the server's throughput): an idle one ends after ``idle_seconds`` (default 5) or at
    :meth:`join`; a call finding no idle worker starts one.
    """

    def __init__(self, thread_name: str, *, idle_seconds: float = 5.0) -> None:
        self._name = thread_name
        self._idle_seconds = idle_seconds
        self._lock = threading.Lock()
        self._threads: set[threading.Thread] = set()
        self._jobs: queue.SimpleQueue[Callable[[], None] | None] = queue.SimpleQueue()
        self._idle = 0  # workers waiting for a job that no job was put for yet
        self._closed = False

    def wrap(
        self, fn: Callable[[ModelHandler], HandlerReply], timeout: float | None
    ) -> Callable[[ModelHandler], HandlerReply]:
        """``fn`` bounded by ``timeout`` seconds (``None``: ``fn`` itself)."""
        if timeout is None:
            return fn

        def call(handler: ModelHandler) -> HandlerReply:
            box: list[tuple[bool, Any]] = []
            done = threading.Event()

            def job() -> None:
                try:
                    box.append((True, fn(handler)))
                except BaseException as exc:
                    box.append((False, exc))
                finally:
                    done.set()

            self._submit(job)
            if not done.wait(timeout):
                raise HandlerError(_TIMEOUT_MESSAGE, 0)
            ok, value = box[0]
            if ok:
                return value  # type: ignore[no-any-return]
            raise value

        return call

    def _submit(self, job: Callable[[], None]) -> None:
        with self._lock:
            if self._idle and not self._closed:
                self._idle -= 1
                self._jobs.put(job)
                return
            thread = threading.Thread(
                target=self._work,
                args=(job,),
                name=self._name,
                # A daemon: an abandoned call that never returns must not hold the
                # process at exit (join() still waits for it up to its deadline).
                daemon=True,
            )
            self._threads.add(thread)
        thread.start()

    def _work(self, first: Callable[[], None]) -> None:
        job: Callable[[], None] | None = first
        try:
            while job is not None:
                job()
                job = None  # hold no reference to the last call while idle
                with self._lock:
                    if self._closed:
                        return
                    self._idle += 1
                try:
                    job = self._jobs.get(timeout=self._idle_seconds)
                except queue.Empty:
                    with self._lock:  # a job may have been put for us meanwhile
                        try:
                            job = self._jobs.get_nowait()
                        except queue.Empty:
                            self._idle -= 1
                            return
        finally:
            with self._lock:
                self._threads.discard(threading.current_thread())

    def join(self, timeout: float) -> list[str]:
        """Ends idle workers and joins the rest (abandoned calls); returns names of
        threads still running at the deadline."""
        with self._lock:
            self._closed = True
            for _ in range(self._idle):
                self._jobs.put(None)
            self._idle = 0
            threads = list(self._threads)
        deadline = time.monotonic() + timeout
        for thread in threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        return [t.name for t in threads if t.is_alive()]


def _raising(exc: BaseException) -> Iterator[bytes]:
    raise exc
    yield b""  # pragma: no cover
