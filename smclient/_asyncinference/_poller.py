"""The :class:`Poller`: one loop that finds the results of many async invocations.

Sources, combinable:

- **S3**: pending invocations are grouped by (bucket, folder) of their output and failure
  locations; each group costs one ``ListObjectsV2`` per 1,000 objects under the folder,
  however many invocations wait there. A group uses ``HeadObject`` per object instead when
  that is cheaper (fewer objects expected than the last listing's pages), or when listing
  is denied (403).
- **SNS through SQS**: long-polled batches of up to 10 messages; handled messages are
  deleted. A success notification is confirmed with one ``HeadObject`` (a notification can
  arrive before its object is visible); until then the invocation stays pending.

With both, SNS gives speed and an S3 round every ``reconcile_interval`` seconds makes sure
that a missing or late notification loses nothing.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Collection, Iterable, Iterator
from typing import TYPE_CHECKING, Any

import attrs

from .._errors import InvalidInputError, ServiceError
from .._retry import RetryPolicy
from . import _notify as notify
from . import _s3 as s3
from ._checks import split_s3_url
from ._errors import AsyncTimeoutError, timeout_message
from ._handle import AsyncInvocation, Completion
from ._notify import Notice
from ._progress import Progress, reporter

if TYPE_CHECKING:
    from .._endpoint import Endpoint

__all__ = ["Poller"]

_log = logging.getLogger("smclient")
_REQUEST_BUDGET = 60.0  # seconds one S3/SQS request may take with its retries, at most
_Group = tuple[str, str]  # (bucket, folder prefix)


def _folder(key: str) -> str:
    return key.rsplit("/", 1)[0] + "/" if "/" in key else ""


def _places(inv: AsyncInvocation) -> list[tuple[_Group, str, bool]]:
    """Where the invocation's output (``True``) and failure (``False``) objects appear."""
    found = []
    for location, ok in ((inv.output_location, True), (inv.failure_location, False)):
        if location:
            bucket, object_key = split_s3_url(location)
            found.append(((bucket, _folder(object_key)), object_key, ok))
    return found


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
    polling. ``clock`` (POSIX seconds, default ``time.time``) and ``sleep`` are injectable;
    the retries of each S3/SQS request use them too, take at most 60 s, and never run past
    the deadline of the wait in progress.

    Not thread-safe: use one poller per thread.

    .. versionadded:: 0.1.0
    """

    _endpoint: Endpoint | None = attrs.field(default=None, alias="endpoint")
    queue_url: str | None = attrs.field(default=None, kw_only=True)
    topics: tuple[str, ...] = attrs.field(default=(), kw_only=True, converter=tuple)
    s3: bool = attrs.field(default=True, kw_only=True)
    interval: float = attrs.field(default=5.0, kw_only=True)
    reconcile_interval: float = attrs.field(default=30.0, kw_only=True)
    wait_time_seconds: int = attrs.field(default=20, kw_only=True)
    clock: Callable[[], float] = attrs.field(default=time.time, kw_only=True, repr=False)
    sleep: Callable[[float], None] = attrs.field(default=time.sleep, kw_only=True, repr=False)
    subscription: Any = attrs.field(default=None, kw_only=True, repr=False)
    _pending: dict[str, AsyncInvocation] = attrs.field(factory=dict, init=False, repr=False)
    _done: dict[str, Completion] = attrs.field(factory=dict, init=False, repr=False)
    _notified: dict[str, Notice] = attrs.field(factory=dict, init=False, repr=False)
    _head_only: set[_Group] = attrs.field(factory=set, init=False, repr=False)
    _pages: dict[_Group, int] = attrs.field(factory=dict, init=False, repr=False)
    # Indexes kept up to date on track/finish, so a round does not re-parse N locations:
    # expected object keys per (bucket, folder), and pending keys per inference id.
    _groups: dict[_Group, dict[str, tuple[str, bool]]] = attrs.field(
        factory=dict, init=False, repr=False
    )
    _by_id: dict[str, set[str]] = attrs.field(factory=dict, init=False, repr=False)
    _done_ids: set[str] = attrs.field(factory=set, init=False, repr=False)
    _next_s3: float = attrs.field(default=0.0, init=False, repr=False)
    _until: float | None = attrs.field(default=None, init=False, repr=False)  # wait's deadline

    def __attrs_post_init__(self) -> None:
        if self.subscription is not None:
            self.queue_url = self.queue_url or self.subscription.queue_url
            self.topics = self.topics or tuple(self.subscription.topics)
        if not 0 <= self.wait_time_seconds <= 20:
            raise InvalidInputError("wait_time_seconds", "out of range", limit="0..20 seconds")
        if self.interval <= 0 or self.reconcile_interval <= 0:
            raise InvalidInputError("interval", "must be positive", limit="seconds, > 0")
        if not self.s3 and self.queue_url is None:
            raise InvalidInputError("s3", "False needs a queue_url", limit="at least one source")

    # -- public --------------------------------------------------------------------------

    def track(self, invocations: Iterable[AsyncInvocation]) -> None:
        """Start watching ``invocations`` (already finished or tracked ones are kept)."""
        for inv in invocations:
            if inv.key in self._done or inv.key in self._pending:
                continue
            self._pending[inv.key] = inv
            self._by_id.setdefault(inv.inference_id, set()).add(inv.key)
            for group, object_key, ok in _places(inv):
                self._groups.setdefault(group, {})[object_key] = (inv.key, ok)

    @property
    def pending(self) -> list[AsyncInvocation]:
        """Tracked invocations not finished yet."""
        return list(self._pending.values())

    def completion(self, invocation: AsyncInvocation) -> Completion | None:
        """What was found for ``invocation`` so far (``None``: not finished or not tracked)."""
        return self._done.get(invocation.key)

    def check(self, invocation: AsyncInvocation) -> Completion | None:
        """Track ``invocation`` and look once (S3 and queue, no waiting)."""
        self.track([invocation])
        if invocation.key in self._pending:
            self.poll(s3_now=True, wait=0)
        return self._done.get(invocation.key)

    def poll(self, *, s3_now: bool = False, wait: float = 0.0) -> list[Completion]:
        """One round: receive from the queue (long-polling up to ``wait`` seconds), confirm
        notified outputs, and run an S3 round when one is due (or ``s3_now``).
        Returns what finished in this round.

        With ``s3_now`` the S3 round comes first, and when it finds anything the queue is
        only looked at (no long poll): results already in S3 (a resumed handle) are
        returned at once instead of after ``wait_time_seconds``."""
        found: list[Completion] = []
        if s3_now:
            found += self._s3_round_if(due=True)
        if self.queue_url is not None and self._pending:
            found += self._receive(0 if found else int(max(0, min(wait, self.wait_time_seconds))))
        if self._notified:
            found += self._confirm_notified()
        if not s3_now:
            found += self._s3_round_if(due=self.clock() >= self._next_s3)
        return found

    def as_completed(
        self,
        invocations: Iterable[AsyncInvocation],
        *,
        timeout: float | None = None,
        progress: bool | Progress | None = None,
    ) -> Iterator[Completion]:
        """Yield a :class:`Completion` for each invocation as it finishes.

        ``timeout`` (seconds, default: until the last invocation's deadline) bounds the
        whole iteration: then :class:`AsyncTimeoutError` lists what is still pending.
        ``progress``: a callable ``(finished, total)``, or ``True`` for a progress bar
        (``tqdm`` when installed, else text on a terminal's stderr; silent otherwise).
        """
        wanted = {inv.key: inv for inv in invocations}
        report = reporter(progress)
        self.track(wanted.values())
        start = self.clock()
        end = start + timeout if timeout is not None else None
        left = dict(wanted)
        done = 0
        first, final = True, False
        while True:
            finished = [k for k in left if k in self._done]
            for key in finished:
                del left[key]
                done += 1
                yield self._done[key]
            if report is not None and (finished or first):
                report(done, len(wanted))
            if not left:
                return
            now = self.clock()
            deadline = end if end is not None else max(i.deadline for i in left.values())
            if now >= deadline:
                if final:
                    pending = list(left.values())
                    message = timeout_message(pending, now - start, done)
                    raise AsyncTimeoutError(message, pending=pending, done=done)
                final = True  # one last look (S3 and the queue, no waiting) before giving up
                self._poll_until(deadline, s3_now=True, wait=0.0)
                continue
            wait = deadline - now
            found = self._poll_until(deadline, s3_now=first, wait=wait)
            first = False
            long_polled = self.queue_url is not None and int(min(wait, self.wait_time_seconds)) > 0
            if not found and not long_polled:
                # Nothing blocked in this round: pause, within the deadline.
                self.sleep(max(0.0, min(self._pause(), deadline - self.clock())))

    def wait(
        self,
        invocations: Iterable[AsyncInvocation],
        *,
        timeout: float | None = None,
        progress: bool | Progress | None = None,
    ) -> list[Completion]:
        """Wait for every invocation; completions in the order given.

        Raises :class:`AsyncTimeoutError` (with ``pending``) when ``timeout`` seconds
        (default: until the last deadline) pass first. ``progress`` as :meth:`as_completed`.
        """
        wanted = list(invocations)
        for _ in self.as_completed(wanted, timeout=timeout, progress=progress):
            pass
        return [self._done[inv.key] for inv in wanted]

    def wait_one(self, invocation: AsyncInvocation, *, timeout: float | None = None) -> Completion:
        """Wait for one invocation (see :meth:`wait`)."""
        return self.wait([invocation], timeout=timeout)[0]

    def forget(self, invocations: Iterable[AsyncInvocation]) -> None:
        """Stop tracking ``invocations`` and drop what was found for them (frees memory)."""
        for inv in invocations:
            self._untrack(inv.key)
            if self._done.pop(inv.key, None) is not None:
                self._done_ids.discard(inv.inference_id)

    # -- internals -----------------------------------------------------------------------

    def _poll_until(self, deadline: float, *, s3_now: bool, wait: float) -> list[Completion]:
        """:meth:`poll`, with the retries of its requests ending by ``deadline``."""
        self._until = deadline
        try:
            return self.poll(s3_now=s3_now, wait=wait)
        finally:
            self._until = None  # as_completed is a generator: poll() may be called meanwhile

    def _retry(self) -> RetryPolicy:
        """The policy of one request: this poller's sleep and clock, at most
        ``_REQUEST_BUDGET`` seconds, and never past the deadline of the wait in progress."""
        budget = _REQUEST_BUDGET
        if self._until is not None:
            budget = max(0.0, min(budget, self._until - self.clock()))
        return RetryPolicy(timeout=budget, sleep=self.sleep, clock=self.clock)

    def _s3_round_if(self, *, due: bool) -> list[Completion]:
        if not (self.s3 and self._pending and due):
            return []
        now = self.clock()
        found = self._s3_round()
        self._next_s3 = now + (self.reconcile_interval if self.queue_url else self.interval)
        return found

    def _pause(self) -> float:
        if self.queue_url is not None:
            return min(self.interval, max(0.0, self._next_s3 - self.clock())) or self.interval
        return max(0.0, self._next_s3 - self.clock()) or self.interval

    def _client(self, service: str, inv: AsyncInvocation) -> Any:
        endpoint = self._endpoint or inv.bound_endpoint()
        return endpoint.client(service)

    def _untrack(self, key: str) -> None:
        inv = self._pending.pop(key, None)
        self._notified.pop(key, None)
        if inv is None:
            return
        same_id = self._by_id.get(inv.inference_id)
        if same_id is not None:
            same_id.discard(key)
            if not same_id:
                del self._by_id[inv.inference_id]
        for group, object_key, _ok in _places(inv):
            keys = self._groups.get(group)
            if keys is not None:
                keys.pop(object_key, None)
                if not keys:
                    del self._groups[group]

    def _finish(self, completion: Completion) -> Completion:
        key = completion.invocation.key
        self._untrack(key)
        self._done[key] = completion
        self._done_ids.add(completion.invocation.inference_id)
        return completion

    def _s3_round(self) -> list[Completion]:
        hits: dict[str, tuple[bool, int | None]] = {}
        for group, keys in list(self._groups.items()):
            inv = self._pending[next(iter(keys.values()))[0]]
            client = self._client("s3", inv)
            use_head = group in self._head_only or len(keys) < self._pages.get(group, 1)
            found = None if use_head else self._list(client, group, keys, inv.endpoint_name)
            if found is None:
                found = s3.existing(
                    client, group[0], keys, endpoint=inv.endpoint_name, policy=self._retry()
                )
            for object_key, size in found.items():
                inv_key, ok = keys[object_key]
                if ok or inv_key not in hits:  # an output wins over a failure object
                    hits[inv_key] = (ok, size)
        return [
            self._finish(Completion(invocation=self._pending[k], succeeded=ok, source="s3", size=n))
            for k, (ok, n) in hits.items()
        ]

    def _list(
        self, client: Any, group: _Group, keys: Collection[str], endpoint: str
    ) -> dict[str, int | None] | None:
        bucket, folder = group
        # The longest prefix shared by the expected keys narrows the listing for free.
        prefix = os.path.commonprefix(list(keys)) if keys else folder  # noqa: RUF071
        try:
            found, pages = s3.find(
                client, bucket, prefix, keys, endpoint=endpoint, policy=self._retry()
            )
        except ServiceError as exc:
            if not s3.denied(exc):
                raise
            _log.warning(
                "listing s3://%s/%s is denied (403): checking objects one by one", bucket, prefix
            )
            self._head_only.add(group)
            return None
        self._pages[group] = pages
        return found

    def _receive(self, wait: int) -> list[Completion]:
        assert self.queue_url is not None  # only called with a queue
        probe = next(iter(self._pending.values()))
        sqs = self._client("sqs", probe)
        owned = self.subscription is not None
        messages = notify.receive(sqs, self.queue_url, wait=wait, count_receives=owned,
                                  policy=self._retry(), endpoint=probe.endpoint_name)  # fmt: skip
        found: list[Completion] = []
        handled: list[dict[str, Any]] = []
        for message in messages:
            kind, notice = notify.parse(message.get("Body", ""), self.topics)
            if kind is notify.Kind.NOTICE and notice is not None:
                known, completion = self._on_notice(notice)
                if completion is not None:
                    found.append(completion)
                if not known and not self._abandoned(message, notice=True):
                    continue  # another poller's invocation: leave it for its owner
            elif kind is not notify.Kind.TEST and not self._abandoned(message, notice=False):
                continue  # foreign topic or not a SageMaker notification: not ours to delete
            handled.append(message)
        if handled:
            notify.delete(sqs, self.queue_url, handled, policy=self._retry(),
                          endpoint=probe.endpoint_name)  # fmt: skip
        return found

    def _abandoned(self, message: dict[str, Any], *, notice: bool) -> bool:
        """Whether a message no poller handled is deleted anyway, so it stops taking room in
        every batch: only in the queue of a :class:`~smclient.notifications.Subscription`
        (made for this program; any other queue may have other readers), once it was
        received ``GIVE_UP_AFTER`` times. A notification of an invocation nobody tracks
        only when S3 is watched too: should a poller track it later, an S3 round finds it."""
        if self.subscription is None or (notice and not self.s3):
            return False
        count = notify.receive_count(message)
        if count < notify.GIVE_UP_AFTER:
            return False
        _log.info("deleting SQS message %s from %s: received %d times, no poller handled it",
                  message.get("MessageId"), self.queue_url, count)  # fmt: skip
        return True

    def _on_notice(self, notice: Notice) -> tuple[bool, Completion | None]:
        """``(known, completion)``: whether the notice is about an invocation this poller
        tracks (or tracked), and what it completes now."""
        if notice.output_location and notice.output_location in self._done:
            return True, None  # a duplicate
        matches = [
            self._pending[key]
            for key in self._by_id.get(notice.inference_id, ())
            if notice.output_location in (None, key)
        ]
        if len(matches) != 1:
            return notice.inference_id in self._done_ids, None
        inv = matches[0]
        if notice.status == "Failed":
            completion = Completion(
                invocation=inv,
                succeeded=False,
                source="notification",
                failure_reason=notice.failure_reason,
            )
            return True, self._finish(completion)
        self._notified[inv.key] = notice
        return True, None

    def _confirm_notified(self) -> list[Completion]:
        found = []
        for key in list(self._notified):
            inv = self._pending.get(key)
            if inv is None:
                self._notified.pop(key, None)
                continue
            bucket, object_key = split_s3_url(inv.output_location)
            client = self._client("s3", inv)
            size = s3.exists(
                client, bucket, object_key, endpoint=inv.endpoint_name, policy=self._retry()
            )
            if size is not None:
                done = Completion(invocation=inv, succeeded=True, source="notification", size=size)
                found.append(self._finish(done))
        return found
