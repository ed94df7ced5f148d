"""The :class:`Poller`: one loop that finds the results of many async invocations.

Sources, combinable:

- **S3**: pending invocations are grouped by (bucket, folder) of their output and failure
  locations; each group costs one ``ListObjectsV2`` per 1,000 objects under the folder,
  however many invocations wait there. A group uses ``HeadObject`` per object instead when
  that is cheaper (fewer objects expected than the last listing's pages), or when listing
  is denied (403).
- **SNS through SQS**: long-polled batches of up to 10 messages (a full batch is followed
  at once by another, up to :data:`_BATCHES` per round); handled messages are deleted 10 per
  request. A success notification is confirmed with ``HeadObject`` (a notification can
  arrive before its object is visible): at once, then on a short schedule of its own with
  backoff, while the queue is long-polled only until the next look is due.

With both, SNS gives speed and an S3 round every ``reconcile_interval`` seconds makes sure
that a missing or late notification loses nothing.

The bookkeeping lives in :class:`~._state.PollState` (no I/O); this module sends the
requests and runs the waits.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Collection, Iterable, Iterator
from typing import TYPE_CHECKING, Any, Literal, NamedTuple

import attrs

from .._errors import InvalidInputError, ServiceError
from .._retry import RetryPolicy
from . import _notify as notify
from . import _s3 as s3
from ._errors import AsyncTimeoutError, timeout_message
from ._handle import AsyncInvocation, Completion
from ._progress import Progress, reporter
from ._state import PollState, S3Check

if TYPE_CHECKING:
    from .._endpoint import Endpoint

__all__ = ["ALL_COMPLETED", "FIRST_COMPLETED", "FIRST_EXCEPTION", "Poller", "WaitResult"]

_log = logging.getLogger("smclient")
_REQUEST_BUDGET = 60.0  # seconds one S3/SQS request may take with its retries, at most
_BATCHES = 10  # receives per round while the queue answers full batches (100 messages)

# The same strings as concurrent.futures' constants, so either can be passed.
FIRST_COMPLETED = "FIRST_COMPLETED"
FIRST_EXCEPTION = "FIRST_EXCEPTION"
ALL_COMPLETED = "ALL_COMPLETED"
ReturnWhen = Literal["FIRST_COMPLETED", "FIRST_EXCEPTION", "ALL_COMPLETED"]


class WaitResult(NamedTuple):
    """What :func:`smclient.wait` returns, like :func:`concurrent.futures.wait`:
    ``(done, not_done)``, two lists of handles in the order given. Each handle in ``done``
    knows its result: ``h.result()``, ``h.exception()`` and ``h.done()`` send no polling
    request. Resume with ``smclient.wait(not_done)``.

    .. versionadded:: 0.2.0
    """

    done: list[AsyncInvocation]
    not_done: list[AsyncInvocation]


def _monotonic_default(poller: Poller) -> Callable[[], float]:
    # An injected clock (tests) serves as both clocks; else wall time for the handles'
    # POSIX deadlines and monotonic time for everything the poller schedules.
    return time.time if poller.clock is time.monotonic else poller.clock


@attrs.define
class Poller:
    """Watches S3 (and optionally an SQS queue fed by the SNS topics) for results.

    ``endpoint``: whose S3/SQS clients to use (default: each invocation's own).
    ``queue_url`` / ``topics``: an SQS queue subscribed to the success/error topics
    (see :func:`smclient.notifications.subscribe`, whose ``Subscription`` can be passed
    as ``subscription``); enveloped messages from other topics are ignored (and, in a
    ``subscription``'s own queue, deleted once received 5 times, like notifications of
    invocations no poller tracks when S3 is watched too). ``s3``
    (default ``True``): also watch S3. ``interval`` (seconds, default 5): pause between
    S3 rounds when there is no queue. ``reconcile_interval`` (seconds, default 30): S3
    rounds when a queue is watched. ``wait_time_seconds`` (0..20, default 20): SQS long
    polling. ``head_interval`` (seconds, default 0.1): after a success notification whose
    object is not visible yet, the pause before looking again (``HeadObject``), doubling
    up to 5 s; the long poll is cut short for it.

    ``clock`` (monotonic seconds, default :func:`time.monotonic`) schedules rounds and
    measures timeouts; ``wall_clock`` (POSIX seconds, default :func:`time.time`, or
    ``clock`` when only that one is injected) reads the handles' deadlines. ``sleep``
    (default :func:`time.sleep`) pauses. The retries of each S3/SQS request use them too,
    take at most 60 s, and never run past the deadline of the wait in progress.

    Results found are known process-wide (every handle of the same inference answers
    ``done()`` / ``result()`` without polling). No threads: a wait runs in the calling
    thread and leaves nothing behind. Not thread-safe: use one poller per thread.

    .. versionadded:: 0.1.0
    .. versionchanged:: 0.2.0
       ``head_interval``, ``wall_clock``; ``clock`` is monotonic; :meth:`wait` returns
       ``(done, not_done)`` and takes ``return_when``.
    """

    _endpoint: Endpoint | None = attrs.field(default=None, alias="endpoint")
    queue_url: str | None = attrs.field(default=None, kw_only=True)
    topics: tuple[str, ...] = attrs.field(default=(), kw_only=True, converter=tuple)
    s3: bool = attrs.field(default=True, kw_only=True)
    interval: float = attrs.field(default=5.0, kw_only=True)
    reconcile_interval: float = attrs.field(default=30.0, kw_only=True)
    wait_time_seconds: int = attrs.field(default=20, kw_only=True)
    head_interval: float = attrs.field(default=0.1, kw_only=True)
    clock: Callable[[], float] = attrs.field(default=time.monotonic, kw_only=True, repr=False)
    wall_clock: Callable[[], float] = attrs.field(
        default=attrs.Factory(_monotonic_default, takes_self=True), kw_only=True, repr=False
    )
    sleep: Callable[[float], None] = attrs.field(default=time.sleep, kw_only=True, repr=False)
    subscription: Any = attrs.field(default=None, kw_only=True, repr=False)
    _state: PollState = attrs.field(init=False, repr=False)
    # Endpoints serving handles without their own: held while this poller lives (the
    # shared cache holds them weakly).
    _endpoints: dict[tuple[str, str | None, str | None], Endpoint] = attrs.field(
        factory=dict, init=False, repr=False
    )
    _next_s3: float = attrs.field(default=float("-inf"), init=False, repr=False)
    _until: float | None = attrs.field(default=None, init=False, repr=False)  # wait's deadline

    def __attrs_post_init__(self) -> None:
        if self.subscription is not None:
            self.queue_url = self.queue_url or self.subscription.queue_url
            self.topics = self.topics or tuple(self.subscription.topics)
        if not 0 <= self.wait_time_seconds <= 20:
            raise InvalidInputError("wait_time_seconds", "out of range", limit="0..20 seconds")
        if self.interval <= 0 or self.reconcile_interval <= 0:
            raise InvalidInputError("interval", "must be positive", limit="seconds, > 0")
        if not 0 < self.head_interval <= 5:
            raise InvalidInputError("head_interval", "out of range", limit="seconds, 0 < x <= 5")
        if not self.s3 and self.queue_url is None:
            raise InvalidInputError("s3", "False needs a queue_url", limit="at least one source")
        self._state = PollState(head_interval=self.head_interval)

    # -- public --------------------------------------------------------------------------

    def track(self, invocations: Iterable[AsyncInvocation]) -> None:
        """Start watching ``invocations`` (already finished or tracked ones are kept; ones
        the process already knows finished are done at once, without a request)."""
        self._state.track(invocations)

    @property
    def pending(self) -> list[AsyncInvocation]:
        """Tracked invocations not finished yet."""
        return list(self._state.pending.values())

    def completion(self, invocation: AsyncInvocation) -> Completion | None:
        """What was found for ``invocation`` so far (``None``: not finished or not tracked)."""
        return self._state.done.get(invocation.key)

    def check(self, invocation: AsyncInvocation) -> Completion | None:
        """Track ``invocation`` and look once (S3 and queue, no waiting)."""
        self.track([invocation])
        if invocation.key in self._state.pending:
            self.poll(s3_now=True, wait=0)
        return self._state.done.get(invocation.key)

    def poll(self, *, s3_now: bool = False, wait: float = 0.0) -> list[Completion]:
        """One round: receive from the queue (long-polling up to ``wait`` seconds, cut short
        when a notified output is due for another look), look at the notified outputs that
        are due, and run an S3 round when one is due (or ``s3_now``). Returns what finished
        in this round.

        With ``s3_now`` the S3 round comes first, and when it finds anything the queue is
        only looked at (no long poll): results already in S3 (a resumed handle) are
        returned at once instead of after ``wait_time_seconds``."""
        state = self._state
        found: list[Completion] = state.drain()  # found by other pollers meanwhile
        if s3_now:
            found += self._s3_round_if(due=True)
        if self.queue_url is not None and state.pending:
            seconds = 0 if found else state.receive_wait(wait, self.clock(), self.wait_time_seconds)
            found += self._receive(seconds)
        if state.notified:
            found += self._confirm_notified()
        if not s3_now:
            found += self._s3_round_if(due=self.clock() >= self._next_s3)
        if self.queue_url is not None and any(
            not c.succeeded and not c.failure_reason for c in found
        ):
            # Failures found in S3: a notification already queued lends them its reason.
            found += self._receive(0)
        found += state.drain()
        return [state.done.get(c.invocation.key, c) for c in found]

    def as_completed(
        self,
        invocations: Iterable[AsyncInvocation],
        *,
        timeout: float | None = None,
        progress: bool | Progress | None = None,
    ) -> Iterator[Completion]:
        """Yield a :class:`Completion` for each invocation as it finishes.

        ``timeout`` (seconds, default: until the last invocation's deadline) bounds the
        whole iteration: then :class:`AsyncTimeoutError` (a :class:`TimeoutError`) lists
        what is still pending. ``progress``: a callable ``(finished, total)``, or ``True``
        for a progress bar (``tqdm`` when installed, else text on a terminal's stderr;
        silent otherwise).
        """
        wanted = list(invocations)
        start = self.clock()
        count = 0
        for completion in self._completions(wanted, timeout, progress):
            count += 1
            yield completion
        pending = self._not_done(wanted)
        if pending:
            waited = self.clock() - start
            raise AsyncTimeoutError(
                timeout_message(pending, waited, count), pending=pending, done=count
            )

    def wait(
        self,
        invocations: Iterable[AsyncInvocation],
        *,
        timeout: float | None = None,
        return_when: ReturnWhen = "ALL_COMPLETED",
        progress: bool | Progress | None = None,
    ) -> WaitResult:
        """Wait like :func:`concurrent.futures.wait`; see :func:`smclient.wait`.

        .. versionchanged:: 0.2.0
           Returns ``(done, not_done)`` instead of raising at the timeout.
        """
        if return_when not in (FIRST_COMPLETED, FIRST_EXCEPTION, ALL_COMPLETED):
            raise InvalidInputError(
                "return_when",
                f"got {return_when!r}",
                limit="FIRST_COMPLETED, FIRST_EXCEPTION or ALL_COMPLETED",
            )
        wanted = list(invocations)
        for completion in self._completions(wanted, timeout, progress):
            if return_when == FIRST_COMPLETED:
                break
            if return_when == FIRST_EXCEPTION and not completion.succeeded:
                break
        done = self._state.done
        return WaitResult(
            [inv for inv in wanted if inv.key in done],
            [inv for inv in wanted if inv.key not in done],
        )

    def wait_one(self, invocation: AsyncInvocation, *, timeout: float | None = None) -> Completion:
        """Wait for one invocation; :class:`AsyncTimeoutError` when ``timeout`` seconds
        (default: until its deadline) pass first."""
        for completion in self.as_completed([invocation], timeout=timeout):
            return completion
        raise AssertionError("as_completed ended without a result or a timeout")  # pragma: no cover

    def forget(self, invocations: Iterable[AsyncInvocation]) -> None:
        """Stop tracking ``invocations`` and drop what this poller found for them (frees
        memory; handles keep what they learned)."""
        for inv in invocations:
            self._state.forget(inv)

    # -- waiting ---------------------------------------------------------------------------

    def _not_done(self, wanted: list[AsyncInvocation]) -> list[AsyncInvocation]:
        return [inv for inv in wanted if inv.key not in self._state.done]

    def _completions(
        self,
        wanted: list[AsyncInvocation],
        timeout: float | None,
        progress: bool | Progress | None,
    ) -> Iterator[Completion]:
        """Completions of ``wanted`` as they finish (each handle learns its own), ending at
        the deadline after one last look; whatever is left is still pending."""
        report = reporter(progress)
        try:
            yield from self._run(wanted, timeout, report)
        finally:  # also when the caller stops early (return_when, a break)
            close = getattr(report, "close", None)
            if close is not None:
                close()

    def _run(
        self, wanted: list[AsyncInvocation], timeout: float | None, report: Progress | None
    ) -> Iterator[Completion]:
        self.track(wanted)
        start = self.clock()
        if timeout is not None:
            deadline = start + timeout
        else:  # the handles' deadlines are POSIX seconds: measured from now on our clock
            latest = max((inv.deadline for inv in wanted), default=self.wall_clock())
            deadline = start + max(0.0, latest - self.wall_clock())
        left: dict[str, list[AsyncInvocation]] = {}
        for inv in wanted:
            left.setdefault(inv.key, []).append(inv)
        total, count = len(left), 0
        first, final = True, False
        while True:
            finished = [self._state.done[k] for k in left if k in self._state.done]
            for completion in finished:
                for inv in left.pop(completion.invocation.key):
                    inv._learn(completion)
            count += len(finished)
            if report is not None and (finished or first):
                report(count, total)  # before yielding: the caller may stop at the first
            yield from finished
            if not left or final:
                return
            now = self.clock()
            if now >= deadline:
                final = True  # one last look (S3 and the queue, no waiting) before giving up
                self._poll_until(deadline, s3_now=True, wait=0.0)
                continue
            found = self._poll_until(deadline, s3_now=first, wait=deadline - now)
            first = False
            if not found:
                self._idle(deadline)

    def _poll_until(self, deadline: float, *, s3_now: bool, wait: float) -> list[Completion]:
        """:meth:`poll`, with the retries of its requests ending by ``deadline``."""
        self._until = deadline
        try:
            return self.poll(s3_now=s3_now, wait=wait)
        finally:
            self._until = None  # as_completed is a generator: poll() may be called meanwhile

    def _idle(self, deadline: float) -> None:
        """Pause until something is due (within the deadline), unless the next round's
        long poll of the queue does the waiting."""
        now = self.clock()
        left = deadline - now
        queue = self.queue_url is not None and self._state.pending
        if queue and self._state.receive_wait(left, now, self.wait_time_seconds) > 0:
            return
        pause = min(self._pause(), left)
        if pause > 0:
            self.sleep(pause)

    def _pause(self) -> float:
        """Seconds until the next thing is due: an S3 round, a look at a notified output,
        or (queue without long polling) the next glance at the queue."""
        now = self.clock()
        pause = self.interval
        if self.s3:
            pause = min(pause, self._next_s3 - now) if self._next_s3 > now else pause
        due = self._state.next_due()
        if due is not None:
            pause = min(pause, due - now)
        return max(0.0, pause)

    # -- requests --------------------------------------------------------------------------

    def _retry(self) -> RetryPolicy:
        """The policy of one request: this poller's sleep and clock, at most
        ``_REQUEST_BUDGET`` seconds, and never past the deadline of the wait in progress."""
        budget = _REQUEST_BUDGET
        if self._until is not None:
            budget = max(0.0, min(budget, self._until - self.clock()))
        return RetryPolicy(timeout=budget, sleep=self.sleep, clock=self.clock)

    def _client(self, service: str, inv: AsyncInvocation) -> Any:
        endpoint = self._endpoint or inv.endpoint
        if endpoint is None:
            key = (inv.endpoint_name, inv.region, inv.aws_endpoint_url)
            endpoint = self._endpoints.get(key)
            if endpoint is None:
                endpoint = self._endpoints[key] = inv.bound_endpoint()
        return endpoint.client(service)

    def _s3_round_if(self, *, due: bool) -> list[Completion]:
        if not (self.s3 and self._state.pending and due):
            return []
        now = self.clock()
        found = self._s3_round()
        self._next_s3 = now + (self.reconcile_interval if self.queue_url else self.interval)
        return found

    def _s3_round(self) -> list[Completion]:
        answers = []
        for check in self._state.s3_plan():
            answers.append((check, self._look(check)))
        return self._state.s3_found(answers)

    def _look(self, check: S3Check) -> dict[str, int | None]:
        inv = check.probe
        client = self._client("s3", inv)
        found = None if check.use_head else self._list(client, check.group, check.keys, inv)
        if found is None:
            found = s3.existing(
                client, check.group[0], list(check.keys), endpoint=inv.endpoint_name,
                policy=self._retry(),
            )  # fmt: skip
        return found

    def _list(
        self, client: Any, group: tuple[str, str], keys: Collection[str], inv: AsyncInvocation
    ) -> dict[str, int | None] | None:
        bucket, folder = group
        # The longest prefix shared by the expected keys narrows the listing for free.
        prefix = os.path.commonprefix(list(keys)) if keys else folder  # noqa: RUF071
        try:
            found, pages = s3.find(
                client, bucket, prefix, keys, endpoint=inv.endpoint_name, policy=self._retry()
            )
        except ServiceError as exc:
            if not s3.denied(exc):
                raise
            _log.warning(
                "listing s3://%s/%s is denied (403): checking objects one by one", bucket, prefix
            )
            self._state.head_only.add(group)
            return None
        self._state.pages[group] = pages
        return found

    def _confirm_notified(self) -> list[Completion]:
        """Look at the notified outputs that are due (see :meth:`PollState.due_checks`)."""
        state = self._state
        found: list[Completion] = []
        for check in state.due_checks(self.clock()):
            inv = check.items[0][0]
            client = self._client("s3", inv)
            keys = [k for _, k in check.items]
            listed = self._list(client, check.group, keys, inv) if check.use_list else None
            for inv, object_key in check.items:
                if listed is not None:
                    exists, size = object_key in listed, listed.get(object_key)
                else:
                    exists, size = s3.head(
                        client, check.group[0], object_key, endpoint=inv.endpoint_name,
                        policy=self._retry(),
                    )  # fmt: skip
                done = state.head_answer(inv, size, self.clock(), exists=exists)
                if done is not None:
                    found.append(done)
        return found

    def _receive(self, wait: int) -> list[Completion]:
        """Read the queue (up to ``_BATCHES`` batches), confirm the notified outputs that
        are due, then delete the handled messages, 10 per request: a notified result is
        returned one request sooner than if the deletes came first."""
        assert self.queue_url is not None  # only called with a queue
        state = self._state
        probe = (
            next(iter(state.pending.values()), None) or next(iter(state.done.values())).invocation
        )
        sqs = self._client("sqs", probe)
        owned = self.subscription is not None
        found: list[Completion] = []
        handled: list[dict[str, Any]] = []
        for batch in range(_BATCHES):
            messages = notify.receive(sqs, self.queue_url, wait=wait if batch == 0 else 0,
                                      count_receives=owned, policy=self._retry(),
                                      endpoint=probe.endpoint_name)  # fmt: skip
            done, delete = state.on_messages(
                messages, self.clock(), topics=self.topics, owned_queue=owned, s3=self.s3
            )
            found += done
            handled += delete
            if len(messages) < notify.BATCH or not state.pending:
                break
        if state.notified:
            found += self._confirm_notified()
        for start in range(0, len(handled), notify.BATCH):
            notify.delete(sqs, self.queue_url, handled[start : start + notify.BATCH],
                          policy=self._retry(), endpoint=probe.endpoint_name)  # fmt: skip
        return found
