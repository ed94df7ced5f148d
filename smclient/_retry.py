"""Retry policy values and the one retry loop (on tenacity). The only place that decides retries.

What is safe to retry, and why (protocol.md §1, §2):

- ``ModelNotReadyException`` (429), reason ``MODEL_NOT_READY``: retried by default until
  ``timeout``; the model did not run (a multi-model endpoint is still loading it).
- ``ServiceUnavailable`` (503), throttling, connect errors and connect timeouts, reason
  ``TRANSIENT``: retried by default, at most ``max_transient_attempts``; the model did not
  run, or the request was never sent.
- ``InternalStreamFailure`` before the first byte of a response stream reached the caller,
  reason ``STREAM_FAILURE``: retried by default (nothing was delivered yet), counted with
  ``max_transient_attempts``; stateful sessions never retry it (the model may have started
  and changed the session's state).
- ``InternalFailure`` (500) and ``InternalDependencyException`` (530), reason ``INTERNAL``:
  opt-in only, because the model may have run.
- ``ModelError`` whose container answered 507, reason ``MODEL_OUT_OF_MEMORY``: opt-in only
  (multi-model GPU endpoints: SageMaker unloads unused models, so a later try may fit).
- read timeouts and connections dropped after sending, reason ``READ_TIMEOUT``: opt-in only,
  because the model may have run.
- ``ValidationError``, any other ``ModelError`` and unknown codes: never; the same request
  fails the same way, or the model already ran.
"""

from __future__ import annotations

import enum
import logging
import math
import random as _random
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Iterable
from typing import Any, TypeVar

import attrs
from typing_extensions import Self

from ._errors import (
    ConnectError,
    ConnectionClosedError,
    ErrorContext,
    InternalDependencyError,
    InternalFailureError,
    InternalStreamFailureError,
    ModelError,
    ModelNotReadyError,
    ReadTimeoutError,
    RetriesExhaustedError,
    ServiceError,
    ServiceUnavailableError,
    SMClientError,
    ThrottlingError,
    TransportError,
    gave_up,
    translate,
)

__all__ = ["RetryEvent", "RetryPolicy", "RetryReason", "classify", "run", "run_async"]

logger = logging.getLogger("smclient")
T = TypeVar("T")

# Flipped by smclient.testing.no_retry_waits(): retries happen, waits do not.
_no_waits = False


def _uniform() -> float:
    # A module-level function (not random.random, a bound method) so policies pickle by reference.
    return _random.random()


class RetryReason(enum.Enum):
    """Why a failed attempt could be retried.

    .. versionadded:: 0.1.0
    """

    MODEL_NOT_READY = "model_not_ready"
    TRANSIENT = "transient"
    INTERNAL = "internal"
    MODEL_OUT_OF_MEMORY = "model_out_of_memory"
    READ_TIMEOUT = "read_timeout"
    STREAM_FAILURE = "stream_failure"


def classify(error: SMClientError) -> RetryReason | None:
    """The retry reason for a translated error, or ``None`` if it is never retried."""
    if isinstance(error, ModelNotReadyError):
        return RetryReason.MODEL_NOT_READY
    if isinstance(error, ServiceUnavailableError | ThrottlingError | ConnectError):
        return RetryReason.TRANSIENT
    if isinstance(error, InternalStreamFailureError):
        return RetryReason.STREAM_FAILURE
    if isinstance(error, InternalFailureError | InternalDependencyError):
        return RetryReason.INTERNAL
    if isinstance(error, ModelError) and error.original_status_code == 507:
        return RetryReason.MODEL_OUT_OF_MEMORY
    if isinstance(error, ReadTimeoutError | ConnectionClosedError):
        return RetryReason.READ_TIMEOUT
    return None


@attrs.frozen
class RetryEvent:
    """Passed to :attr:`RetryPolicy.on_retry` before each wait.

    ``attempt`` is the number of the attempt that just failed (1-based),
    ``elapsed`` seconds since the first attempt started, ``delay`` the seconds
    about to be waited.

    .. versionadded:: 0.1.0
    """

    endpoint: str | None
    operation: str | None
    target_model: str | None
    attempt: int
    reason: RetryReason
    error_code: str | None
    elapsed: float
    delay: float
    error: SMClientError = attrs.field(repr=False)


def _reasons(value: Iterable[RetryReason]) -> frozenset[RetryReason]:
    from ._errors import InvalidInputError

    if isinstance(value, RetryReason):
        value = (value,)
    if isinstance(value, str | bytes) or not hasattr(value, "__iter__"):
        raise InvalidInputError(
            "retry_on", f"expected RetryReason values, got {type(value).__name__}"
        )
    reasons = frozenset(value)
    for reason in reasons:
        if not isinstance(reason, RetryReason):
            raise InvalidInputError(
                "retry_on",
                f"{reason!r} is not a RetryReason",
                limit="RetryReason members, e.g. RetryReason.INTERNAL",
            )
    return reasons


def _number(name: str, value: object, *, limit: str, minimum: float) -> None:
    from ._errors import InvalidInputError

    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InvalidInputError(name, f"expected a number, got {type(value).__name__}")
    if not math.isfinite(value) or value < minimum:
        raise InvalidInputError(name, f"got {value}", limit=limit)


def _count(name: str, value: object) -> None:
    from ._errors import InvalidInputError

    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidInputError(
            name, f"expected a whole number, got {type(value).__name__} {value!r}", limit=">= 1"
        )
    if value < 1:
        raise InvalidInputError(name, f"got {value}", limit=">= 1")


_DEFAULT_REASONS = frozenset(
    {RetryReason.MODEL_NOT_READY, RetryReason.TRANSIENT, RetryReason.STREAM_FAILURE}
)


@attrs.frozen
class RetryPolicy:
    """When and how long smclient retries a failed call. A value: use ``attrs.evolve``,
    :meth:`including` or :meth:`excluding` to derive another.

    After attempt *n* (1-based) fails with error *e*, at *t* seconds after the first
    attempt started:

    1. *e* is classified (see :func:`classify`); if its reason is not in
       ``retry_on`` the error is raised as it is.
    2. The delay is, in seconds (full jitter; ``U`` is ``random()``)::

           d = U(0, 1) * min(backoff_max, backoff_initial * backoff_multiplier ** (n - 1))

    3. The policy gives up, raising *e* itself - as an instance that is also a
       :class:`RetriesExhaustedError`, with ``elapsed`` and ``history`` - if
       ``t + d >= timeout`` (no attempt starts at or after ``timeout`` seconds),
       if ``n >= max_attempts``, if the attempts that failed for a reason other than
       ``MODEL_NOT_READY`` reach ``max_transient_attempts``, or if the attempts that
       failed with ``MODEL_OUT_OF_MEMORY`` reach ``max_out_of_memory_attempts``.
    4. Otherwise ``on_retry`` is called, a ``logging`` record is emitted on the
       ``smclient`` logger (INFO; endpoint, target model, attempt, elapsed, error code
       - never bodies or credentials), ``sleep(d)`` is called and attempt *n + 1* starts.

    The defaults follow the SageMaker guidance for multi-model endpoints:
    ``ModelNotReadyException`` retried for up to 360 s (each attempt is already held
    up to 60 s by the service, hence the small 5 s backoff ceiling), 503 /
    throttling / connect errors up to 4 attempts. ``sleep``, ``clock`` (monotonic
    seconds) and ``random`` (returns a float in [0, 1)) are injectable for tests.

    .. versionadded:: 0.1.0
    """

    retry_on: frozenset[RetryReason] = attrs.field(default=_DEFAULT_REASONS, converter=_reasons)
    timeout: float = 360.0
    max_attempts: int | None = None
    max_transient_attempts: int = 4
    max_out_of_memory_attempts: int = 3
    backoff_initial: float = 0.5
    backoff_max: float = 5.0
    backoff_multiplier: float = 2.0
    on_retry: Callable[[RetryEvent], None] | None = attrs.field(default=None, eq=False)
    sleep: Callable[[float], None] = attrs.field(default=time.sleep, eq=False, repr=False)
    clock: Callable[[], float] = attrs.field(default=time.monotonic, eq=False, repr=False)
    random: Callable[[], float] = attrs.field(default=_uniform, eq=False, repr=False)

    def __attrs_post_init__(self) -> None:
        from ._errors import InvalidInputError

        # Every value is checked here, not mid-call: a NaN timeout would never stop, a
        # negative multiplier would fail inside sleep() after the first attempt.
        _number("timeout", self.timeout, limit="finite seconds, >= 0", minimum=0)
        _count("max_transient_attempts", self.max_transient_attempts)
        _count("max_out_of_memory_attempts", self.max_out_of_memory_attempts)
        if self.max_attempts is not None:
            _count("max_attempts", self.max_attempts)
        _number("backoff_initial", self.backoff_initial, limit="finite seconds, >= 0", minimum=0)
        _number("backoff_max", self.backoff_max, limit="finite seconds, >= 0", minimum=0)
        _number("backoff_multiplier", self.backoff_multiplier, limit="finite, >= 1", minimum=1)
        if not self.backoff_initial <= self.backoff_max:
            raise InvalidInputError(
                "backoff_initial",
                f"{self.backoff_initial} is more than backoff_max ({self.backoff_max})",
                limit="seconds, between 0 and backoff_max",
            )
        for name in ("sleep", "clock", "random"):
            if not callable(getattr(self, name)):
                raise InvalidInputError(name, "expected a callable")
        if self.on_retry is not None and not callable(self.on_retry):
            raise InvalidInputError("on_retry", "expected a callable or None")

    @classmethod
    def never(cls) -> Self:
        """A policy that sends exactly one request."""
        return cls(retry_on=frozenset(), max_attempts=1)

    def including(self, *reasons: RetryReason) -> Self:
        """The same policy, also retrying ``reasons`` (for example ``RetryReason.INTERNAL``)."""
        return attrs.evolve(self, retry_on=self.retry_on | set(reasons))

    def excluding(self, *reasons: RetryReason) -> Self:
        """The same policy, no longer retrying ``reasons``."""
        return attrs.evolve(self, retry_on=self.retry_on - set(reasons))

    def backoff(self, attempt: int) -> float:
        """The jittered delay in seconds after failed attempt number ``attempt``."""
        exponent = min(attempt - 1, 64)  # keeps the power finite for absurd attempt counts
        try:
            growth = float(self.backoff_multiplier) ** exponent
        except OverflowError:  # a huge multiplier: the ceiling is reached at once
            growth = math.inf
        if self.backoff_initial == 0:
            return 0.0
        ceiling = min(self.backoff_max, self.backoff_initial * growth)
        return 0.0 if _no_waits else ceiling * self.random()


@attrs.frozen
class Outcome:
    """How a call went: the number of requests sent and the seconds it took."""

    attempts: int
    elapsed: float


class _Call:
    """The bookkeeping of one call under a policy: what failed, and what to do next."""

    def __init__(
        self, policy: RetryPolicy, endpoint: str | None, operation: str, target_model: str | None
    ) -> None:
        self.policy = policy
        self.endpoint = endpoint
        self.operation = operation
        self.target_model = target_model
        self.start = policy.clock()
        self.history: list[str] = []
        self.counts: Counter[RetryReason] = Counter()

    def translated(self, fn: Callable[[], T]) -> T:
        """Run one attempt; botocore errors leave it translated to the smclient tree."""
        try:
            return fn()
        except Exception as exc:
            if isinstance(exc, SMClientError) or type(exc).__module__.startswith("botocore"):
                attempt = len(self.history) + 1
                ctx = ErrorContext(self.endpoint, self.operation, self.target_model, attempt)
                error = translate(exc, ctx)
                if error is exc:
                    # Errors made inside the attempt (a stream's error event) carry its
                    # number; a nested call's give-up keeps its own count.
                    if isinstance(exc, ServiceError | TransportError) and not isinstance(
                        exc, RetriesExhaustedError
                    ):
                        exc.attempts = attempt
                    raise
                raise error from exc
            raise

    def delay_after(self, error: SMClientError) -> float | None:
        """Record a failed attempt; the seconds to wait before the next one, or ``None``
        to stop (raise ``error`` itself when its reason is not retried, see :meth:`give_up`)."""
        policy = self.policy
        self.history.append(getattr(error, "error_code", None) or type(error).__name__)
        reason = classify(error)
        if reason is None or reason not in policy.retry_on:
            return None
        self.counts[reason] += 1
        n = len(self.history)
        delay = policy.backoff(n)
        elapsed = policy.clock() - self.start
        if (
            elapsed + delay >= policy.timeout
            or (policy.max_attempts is not None and n >= policy.max_attempts)
            or n - self.counts[RetryReason.MODEL_NOT_READY] >= policy.max_transient_attempts
            or self.counts[RetryReason.MODEL_OUT_OF_MEMORY] >= policy.max_out_of_memory_attempts
        ):
            raise self.give_up(error)
        self.notify(error, reason, delay)
        return delay

    def give_up(self, error: SMClientError) -> SMClientError:
        """The error to raise when the policy stops: ``error`` itself (its class, so
        ``except ModelNotReadyError`` works), also a :class:`RetriesExhaustedError`
        carrying ``attempts``, ``elapsed`` and ``history``."""
        return gave_up(
            error,
            attempts=len(self.history),
            elapsed=self.policy.clock() - self.start,
            history=tuple(self.history),
        )

    def notify(self, error: SMClientError, reason: RetryReason, delay: float) -> None:
        event = RetryEvent(
            endpoint=self.endpoint,
            operation=self.operation,
            target_model=self.target_model,
            attempt=len(self.history),
            reason=reason,
            error_code=self.history[-1],
            elapsed=self.policy.clock() - self.start,
            delay=delay,
            error=error,
        )
        logger.info(
            "retrying %s on endpoint %s (target model %s) after attempt %d failed with %s; "
            "%.3f s elapsed, waiting %.3f s",
            self.operation,
            self.endpoint,
            self.target_model,
            event.attempt,
            event.error_code,
            event.elapsed,
            event.delay,
            extra={"smclient_retry": event},
        )
        if self.policy.on_retry is not None:
            self.policy.on_retry(event)

    def outcome(self) -> Outcome:
        return Outcome(attempts=len(self.history) + 1, elapsed=self.policy.clock() - self.start)


def run(
    policy: RetryPolicy,
    fn: Callable[[], T],
    *,
    endpoint: str | None,
    operation: str,
    target_model: str | None = None,
) -> tuple[T, Outcome]:
    """Call ``fn`` under ``policy``; errors from ``fn`` are translated to the smclient tree.

    Returns ``fn``'s result and the :class:`Outcome`. Raises the translated error
    when it is not retried; when the policy gives up, the last translated error as a
    :class:`RetriesExhaustedError` too (see :func:`smclient._errors.gave_up`).
    The first attempt runs directly (most calls succeed: tenacity's per-call machinery
    costs about 50 us, measured in docs/benchmarks.md); tenacity drives the retries.
    """
    if not isinstance(policy, RetryPolicy):
        from ._errors import InvalidInputError

        raise InvalidInputError(
            "retry", f"expected a RetryPolicy, got {type(policy).__name__}", limit="RetryPolicy()"
        )
    call = _Call(policy, endpoint, operation, target_model)
    try:
        return call.translated(fn), call.outcome()
    except SMClientError as first:
        delay = call.delay_after(first)
        if delay is None:
            raise
    import tenacity  # imported on the first retry only: it costs ~40 ms at import time

    policy.sleep(delay)
    delays = [delay]  # the wait before the next attempt, decided after each failure

    def should_retry(state: Any) -> bool:  # a tenacity.RetryCallState
        exc = state.outcome.exception() if state.outcome else None
        if not isinstance(exc, SMClientError):
            return False
        decided = call.delay_after(exc)  # raises RetriesExhaustedError when the policy stops
        if decided is None:
            return False
        delays.append(decided)
        return True

    retrying = tenacity.Retrying(
        retry=should_retry,
        wait=lambda _state: delays[-1],
        stop=tenacity.stop_never,  # delay_after() is where the policy stops
        sleep=policy.sleep,
        reraise=True,
    )
    return retrying(call.translated, fn), call.outcome()


async def run_async(
    policy: RetryPolicy,
    fn: Callable[[], Awaitable[T]],
    *,
    endpoint: str | None,
    operation: str,
    target_model: str | None = None,
) -> tuple[T, Outcome]:
    """:func:`run` for coroutines: the same decisions (``_Call``), waits with
    ``asyncio.sleep`` unless the policy was given its own ``sleep`` (a test's fake clock),
    never blocking the event loop. Cancellation propagates at once.

    .. versionadded:: 0.2.0
    """
    import asyncio

    call = _Call(policy, endpoint, operation, target_model)
    while True:
        try:
            try:
                return await fn(), call.outcome()
            except Exception as exc:
                if isinstance(exc, SMClientError) or type(exc).__module__.startswith("botocore"):
                    # the same translation as the sync loop
                    call.translated(_raiser(exc))
                raise
        except SMClientError as error:
            delay = call.delay_after(error)
            if delay is None:
                raise
        if policy.sleep is time.sleep:
            await asyncio.sleep(delay)
        else:
            policy.sleep(delay)


def _raiser(exc: BaseException) -> Callable[[], Any]:
    def again() -> Any:
        raise exc

    return again
