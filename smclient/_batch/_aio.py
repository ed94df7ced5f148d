"""The asyncio side of ``invoke_many``: the same window, order, failures, rate limit and
summary as :class:`~smclient._batch._runner.BatchRun`, with tasks instead of threads, for an
asyncio facade's per-call coroutine (``AsyncEndpoint.invoke`` once it exists).

Stopping (the input ends, a stop on error, ``aclose()``, leaving ``async with``, the
consuming task being cancelled): nothing more is read or sent, the calls in flight are
cancelled (their retry and rate-limit waits with them) and awaited before control returns.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import time
from collections.abc import (
    AsyncGenerator,
    AsyncIterable,
    AsyncIterator,
    Awaitable,
    Callable,
    Iterable,
    Sized,
)
from typing import Any

import attrs
from typing_extensions import Self

from .._models import InvocationResult
from .._retry import RetryEvent, RetryPolicy
from ._progress import BatchProgress, reporter
from ._rate import RateLimiter, check_rate
from ._types import BatchItem, BatchResult, BatchSummary, as_item

__all__ = ["AsyncBatchRun", "AsyncCall"]

logger = logging.getLogger("smclient")

AsyncCall = Callable[[BatchItem, RetryPolicy], Awaitable[InvocationResult]]


class AsyncBatchRun(AsyncIterator[BatchResult]):
    """The results of an asyncio ``invoke_many``: ``async for outcome in run``. Items may be
    an iterable or an async iterable, read lazily. See ``Endpoint.invoke_many`` for the
    arguments; ``sleep`` is an async sleep here (default ``asyncio.sleep``).

    .. versionadded:: 0.2.0
    """

    def __init__(
        self,
        call: AsyncCall,
        items: Iterable[Any] | AsyncIterable[Any],
        *,
        retry: RetryPolicy,
        concurrency: int,
        window: int,
        ordered: bool,
        stop_on_error: bool,
        rate_limit: float | None,
        progress: bool | BatchProgress | None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
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
        self._succeeded = 0
        self._failures: collections.Counter[str] = collections.Counter()
        self._retries = 0
        self._cancelled = 0
        self._started: float | None = None
        self._ended: float | None = None
        self._user_on_retry = retry.on_retry
        self._policy = attrs.evolve(retry, on_retry=self._on_retry)
        self._gen = self._run()

    def __aiter__(self) -> Self:
        return self

    async def __anext__(self) -> BatchResult:
        return await self._gen.__anext__()

    async def aclose(self) -> None:
        """Stop: nothing more is read or sent; the calls in flight are cancelled and awaited."""
        await self._gen.aclose()
        self._finish()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    @property
    def summary(self) -> BatchSummary:
        """A :class:`BatchSummary` of the items finished so far (final once the run ended)."""
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

    def __repr__(self) -> str:
        return f"<AsyncBatchRun {self.summary}>"

    def _on_retry(self, event: RetryEvent) -> None:
        self._retries += 1
        if self._user_on_retry is not None:
            self._user_on_retry(event)

    async def _one(self, item: BatchItem) -> InvocationResult:
        if self._limiter is not None:
            delay = self._limiter.reserve()
            if delay > 0:
                await self._sleep(delay)
        return await self._call(item, self._policy)

    async def _run(self) -> AsyncGenerator[BatchResult, None]:
        items = self._items
        if isinstance(items, AsyncIterable):
            source: Any = items.__aiter__()
            is_async = True
        else:
            source, is_async = iter(items), False
        self._started = self._clock()
        tasks: dict[asyncio.Task[InvocationResult], tuple[int, BatchItem]] = {}
        read = 0
        next_out = 0
        ready: dict[int, BatchResult] = {}
        stop_at: int | None = None
        exhausted = False
        try:
            while True:
                while (
                    not exhausted
                    and stop_at is None
                    and len(tasks) < self._concurrency
                    and len(tasks) + len(ready) < self._window
                ):
                    try:
                        value = await source.__anext__() if is_async else next(source)
                    except (StopIteration, StopAsyncIteration):
                        exhausted = True
                        break
                    item = as_item(value)
                    tasks[asyncio.ensure_future(self._one(item))] = (read, item)
                    read += 1
                if self._ordered and next_out in ready:
                    out = ready.pop(next_out)
                    next_out += 1
                    if out.error is not None and self._stop_on_error:
                        raise out.error
                    yield out
                    continue
                if not tasks:
                    return
                finished, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
                for task in sorted(finished, key=lambda t: tasks[t][0]):
                    index, item = tasks.pop(task)
                    error = task.exception()
                    if error is not None and not isinstance(error, Exception):
                        raise error  # KeyboardInterrupt, SystemExit: not an item's failure
                    out = BatchResult(index, item, None if error else task.result(), error)
                    self._count(out)
                    if error is not None and self._stop_on_error:
                        if not self._ordered:
                            raise error
                        stop_at = index if stop_at is None else min(stop_at, index)
                    if self._ordered:
                        if stop_at is None or index <= stop_at:
                            ready[index] = out
                    else:
                        yield out
        finally:
            for task in tasks:
                task.cancel()
            if tasks:
                results = await asyncio.gather(*tasks, return_exceptions=True)
                for result in results:
                    if isinstance(result, asyncio.CancelledError):
                        self._cancelled += 1
                    elif isinstance(result, BaseException):
                        self._failures[type(result).__name__] += 1
                    else:
                        self._succeeded += 1
            self._finish()

    def _count(self, out: BatchResult) -> None:
        if out.error is None:
            self._succeeded += 1
        else:
            self._failures[type(out.error).__name__] += 1
        if self._progress.active:
            self._progress.update(self.summary, self._total)

    def _finish(self) -> None:
        if self._ended is not None:
            return
        self._ended = self._clock()
        if self._started is None:
            self._started = self._ended
        summary = self.summary
        self._progress.close(summary)
        logger.info("invoke_many: %s", summary)
