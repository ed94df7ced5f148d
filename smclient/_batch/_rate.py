"""A client-side rate limit shared by the threads of one batch: requests start at most
``rate`` per second, evenly spaced."""

from __future__ import annotations

import threading
from collections.abc import Callable

from .._errors import InvalidInputError

__all__ = ["RateLimiter", "check_rate"]


def check_rate(rate: float | None) -> float | None:
    if rate is None:
        return None
    if isinstance(rate, bool) or not isinstance(rate, int | float) or not rate > 0:
        raise InvalidInputError(
            "rate_limit", f"got {rate!r}", limit="requests per second, a number > 0, or None"
        )
    return float(rate)


class RateLimiter:
    """Hands out start times ``1 / rate`` seconds apart (no bursts): a caller reserves the
    next free slot under a lock, then waits outside it until the slot comes.

    ``clock`` returns monotonic seconds; the wait function is passed to :meth:`acquire`
    so that a batch can make it cancellable.
    """

    def __init__(self, rate: float, clock: Callable[[], float]) -> None:
        self._interval = 1.0 / rate
        self._clock = clock
        self._next: float | None = None
        self._lock = threading.Lock()

    def reserve(self) -> float:
        """Reserve the next start time; the seconds to wait until it (0 when it is now)."""
        with self._lock:
            now = self._clock()
            slot = now if self._next is None or self._next <= now else self._next
            self._next = slot + self._interval
        return slot - now

    def acquire(self, wait: Callable[[float], None]) -> None:
        """Reserve the next start time and wait for it with ``wait(seconds)``."""
        delay = self.reserve()
        if delay > 0:
            wait(delay)
