"""``invoke_many`` on one machine: a bounded window of worker threads over the public
per-call path (``Endpoint.invoke`` / ``ModelHandle.invoke``), so every item gets the same
checks, retries, errors and transport as a single call.

How the window works: the consumer's thread reads the input lazily and queues an item for
the workers only while fewer than ``window`` items are read but not yet handed back; at most
``concurrency`` workers (started on demand) take items from that queue, so at most
``concurrency`` calls are in flight. A generator of ten million records is never
materialised, and a slow consumer slows the calls down (backpressure) instead of piling up
results. With ``window`` above ``concurrency`` a worker that finishes takes the next queued
item at once, without waiting for the consumer's thread to read one.

Stopping (the input ends, a stop on error, ``close()``, leaving a ``with`` block, the
iterator being dropped, Ctrl-C while iterating): no new item is read or sent, retry waits
and rate-limit waits are cut short, the calls already on the wire finish (each is bounded
by the client's read timeout) and every worker thread is joined before control returns.
"""

from __future__ import annotations

import collections
import itertools
import logging
import queue
import threading
import time
from collections.abc import Callable, Generator, Iterable, Iterator, Sized
from typing import Any

import attrs
from typing_extensions import Self

from .._errors import InvalidInputError
from .._models import InvocationResult
from .._retry import RetryEvent, RetryPolicy
from ._progress import BatchProgress, reporter
from ._rate import RateLimiter, check_rate
from ._types import BatchItem, BatchResult, BatchSummary, as_item

__all__ = ["BatchRun", "Call", "check_window"]

logger = logging.getLogger("smclient")

Call = Callable[[BatchItem, RetryPolicy], InvocationResult]
_names = itertools.count(1)
_TICK = 0.1  # seconds


class _Cancelled(BaseException):
    """Raised inside a worker's retry or rate-limit wait when the batch stops. A
    ``BaseException`` so that no ``except Exception`` on the way turns it into a failure."""


def check_window(concurrency: int, window: int | None, pool: int | None) -> tuple[int, int]:
    """Validated ``(concurrency, window)``; ``pool`` is the client's connection pool size."""
    if isinstance(concurrency, bool) or not isinstance(concurrency, int) or concurrency < 1:
        raise InvalidInputError("concurrency", f"got {concurrency!r}", limit="an integer >= 1")
    if pool is not None and concurrency > pool:
        raise InvalidInputError(
            "concurrency",
            f"{concurrency} calls in flight need {concurrency} connections, but the client "
            f"keeps {pool}",
            limit="at most ClientConfig.max_pool_connections: pass "
            f"Endpoint(..., config=ClientConfig(max_pool_connections={concurrency}))",
        )
    if window is None:
        return concurrency, concurrency
    if isinstance(window, bool) or not isinstance(window, int) or window < concurrency:
        raise InvalidInputError(
            "window", f"got {window!r}", limit=f"an integer >= concurrency ({concurrency})"
        )
    return concurrency, window


def _next_done(done: queue.SimpleQueue[Any]) -> Any:
    """The next finished call. Waits in short slices: a Ctrl-C that the OS delivered to a
    worker thread is only seen by the main thread when it runs Python code again."""
    while True:
        try:
            return done.get(timeout=_TICK)
        except queue.Empty:
            continue


class BatchRun(Iterator[BatchResult]):
    """The results of :meth:`Endpoint.invoke_many <smclient.Endpoint.invoke_many>`: an
    iterator of :class:`BatchResult`, one per input item, in input order (or in completion
    order with ``ordered=False``).

    Nothing is read or sent until the first ``next()``. :attr:`summary` tells how the run
    is going and, at the end, how it went. Stop early with :meth:`close`, by leaving a
    ``with`` block or by dropping the iterator (``break`` out of a ``for`` loop over it):
    items not yet sent are never sent, and every worker thread has ended when that
    returns. Iterate it from one thread.

    .. versionadded:: 0.2.0
    """

    def __init__(self, call: Call, items: Iterable[Any], **settings: Any) -> None:
        # The generator holds the engine, never this wrapper: dropping the wrapper drops
        # the generator at once (no reference cycle), which closes it and ends its threads.
        self._engine = _Engine(call, items, **settings)
        self._gen = self._engine.run()

    def __iter__(self) -> Self:
        return self

    def __next__(self) -> BatchResult:
        return next(self._gen)

    def close(self) -> None:
        """Stop: nothing more is read or sent; waits for the calls already on the wire
        and ends every worker thread. Idempotent."""
        self._gen.close()
        self._engine.finish()  # when it never started, there was nothing else to clean up

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    @property
    def summary(self) -> BatchSummary:
        """A :class:`BatchSummary` of the items finished so far (final once the run ended)."""
        return self._engine.summary()

    def __repr__(self) -> str:
        return f"<BatchRun {self.summary}>"


class _Engine:
    """The state of one run, shared by the consumer's generator and the workers."""

    def __init__(
        self,
        call: Call,
        items: Iterable[Any],
        *,
        retry: RetryPolicy,
        concurrency: int,
        window: int,
        ordered: bool,
        stop_on_error: bool,
        rate_limit: float | None,
        progress: bool | BatchProgress | None,
        clock: Callable[[], float],
        sleep: Callable[[float], None],
    ) -> None:
        self._call = call
        self._items = items
        self._total = len(items) if isinstance(items, Sized) else None
        self._concurrency = concurrency
        self._window = window
        self._ordered = ordered
        self._stop_on_error = stop_on_error
        self._clock = clock
        self._sleep = sleep
        rate = check_rate(rate_limit)
        self._limiter = RateLimiter(rate, clock) if rate is not None else None
        self._progress = reporter(progress)
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._succeeded = 0
        self._failures: collections.Counter[str] = collections.Counter()
        self._retries = 0
        self._cancelled = 0
        self._started: float | None = None
        self._ended: float | None = None
        self._threads: list[threading.Thread] = []
        self._user_on_retry = retry.on_retry
        self._user_sleep = retry.sleep
        self._policy = attrs.evolve(retry, on_retry=self._on_retry, sleep=self._retry_sleep)

    def summary(self) -> BatchSummary:
        with self._lock:
            end = self._ended if self._ended is not None else self._clock()
            return BatchSummary(
                succeeded=self._succeeded,
                failed=sum(self._failures.values()),
                failures=dict(self._failures),
                retries=self._retries,
                elapsed=0.0 if self._started is None else max(0.0, end - self._started),
                cancelled=self._cancelled,
                finished=self._ended is not None,
            )

    # -- waits and hooks, called from the worker threads ----------------------------------

    def _wait(self, seconds: float, sleep: Callable[[float], None]) -> None:
        if self._stop.is_set():
            raise _Cancelled
        if sleep is time.sleep:
            if self._stop.wait(seconds):  # a real wait ends as soon as the batch stops
                raise _Cancelled
        else:
            sleep(seconds)
            if self._stop.is_set():
                raise _Cancelled

    def _retry_sleep(self, seconds: float) -> None:
        self._wait(seconds, self._user_sleep)
        if self._limiter is not None:  # a retry is a request too
            self._limiter.acquire(lambda s: self._wait(s, self._sleep))

    def _on_retry(self, event: RetryEvent) -> None:
        with self._lock:
            self._retries += 1
        if self._user_on_retry is not None:
            self._user_on_retry(event)

    def _work(self, jobs: queue.SimpleQueue[Any], done: queue.SimpleQueue[Any]) -> None:
        while True:
            job = jobs.get()
            if job is None:
                return
            index, item = job
            try:
                if self._stop.is_set():
                    raise _Cancelled
                if self._limiter is not None:
                    self._limiter.acquire(lambda s: self._wait(s, self._sleep))
                done.put((index, item, self._call(item, self._policy), None))
            except _Cancelled:
                done.put((index, item, None, _Cancelled()))
            except Exception as exc:  # one bad record never takes the batch down
                done.put((index, item, None, exc))
            except BaseException as exc:  # SystemExit...: handed to the consumer, who raises it
                done.put((index, item, None, exc))
                return

    # -- the consumer's side ---------------------------------------------------------------

    def run(self) -> Generator[BatchResult, None, None]:
        jobs: queue.SimpleQueue[Any] = queue.SimpleQueue()
        done: queue.SimpleQueue[Any] = queue.SimpleQueue()
        source = iter(self._items)
        self._started = self._clock()
        in_flight = 0
        read = 0
        next_out = 0  # ordered: the index to hand back next
        ready: dict[int, BatchResult] = {}
        stop_at: int | None = None  # the first failing index, once stopping on error
        exhausted = False
        try:
            while True:
                # Items beyond ``concurrency`` wait in the queue for the next free worker,
                # which then takes one without waiting for this thread (window > concurrency).
                while not exhausted and stop_at is None and in_flight + len(ready) < self._window:
                    try:
                        value = next(source)
                    except StopIteration:
                        exhausted = True
                        break
                    jobs.put((read, as_item(value)))
                    read += 1
                    in_flight += 1
                    if len(self._threads) < min(in_flight, self._concurrency):
                        self._start_worker(jobs, done)
                if self._ordered and next_out in ready:
                    out = ready.pop(next_out)
                    next_out += 1
                    if out.error is not None and self._stop_on_error:
                        raise out.error
                    yield out
                    continue
                if in_flight == 0:
                    return
                index, item, value, error = _next_done(done)
                in_flight -= 1
                if isinstance(error, _Cancelled):
                    with self._lock:
                        self._cancelled += 1
                    continue
                if error is not None and not isinstance(error, Exception):
                    raise error
                out = BatchResult(index, item, value, error)
                self._count(out)
                if error is not None and self._stop_on_error:
                    if not self._ordered:
                        raise error
                    # Nothing new is read or sent; the earlier items still in flight finish
                    # and are handed back in order, then the first error in order is raised.
                    stop_at = index if stop_at is None else min(stop_at, index)
                if self._ordered:
                    if stop_at is None or index <= stop_at:
                        ready[index] = out
                else:
                    yield out
        finally:
            self._shutdown(jobs, done)

    def _start_worker(self, jobs: queue.SimpleQueue[Any], done: queue.SimpleQueue[Any]) -> None:
        thread = threading.Thread(
            target=self._work,
            args=(jobs, done),
            name=f"smclient-batch-{next(_names)}",
            daemon=True,  # a call stuck past a second Ctrl-C must not hold the interpreter
        )
        thread.start()
        self._threads.append(thread)

    def _count(self, out: BatchResult) -> None:
        with self._lock:
            if out.error is None:
                self._succeeded += 1
            else:
                self._failures[type(out.error).__name__] += 1
        if self._progress.active:
            self._progress.update(self.summary(), self._total)

    def _shutdown(self, jobs: queue.SimpleQueue[Any], done: queue.SimpleQueue[Any]) -> None:
        self._stop.set()
        for _ in self._threads:
            jobs.put(None)
        for thread in self._threads:
            thread.join()
        self._threads.clear()
        # What was in flight when the consumer stopped listening: finished or cut short.
        while True:
            try:
                _index, _item, _value, error = done.get_nowait()
            except queue.Empty:
                break
            with self._lock:
                if isinstance(error, _Cancelled):
                    self._cancelled += 1
                elif error is None:
                    self._succeeded += 1
                else:
                    self._failures[type(error).__name__] += 1
        self.finish()

    def finish(self) -> None:
        with self._lock:
            if self._ended is not None:
                return
            self._ended = self._clock()
            if self._started is None:
                self._started = self._ended
        summary = self.summary()
        self._progress.close(summary)
        logger.info("invoke_many: %s", summary)
