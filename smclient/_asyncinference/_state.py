"""The poller's state, without I/O (sans-I/O core of :class:`~smclient.Poller`).

It knows what is pending where, which success notifications still wait for their object
to become visible (and when to look again), and what finished. A shell does the requests:
it asks what to request (:meth:`PollState.s3_plan`, :meth:`PollState.due_checks`,
:meth:`PollState.receive_wait`), sends them (sync: :class:`~smclient.Poller`; an asyncio
shell can drive the same core with its own requests and sleeps) and feeds the answers back
(:meth:`PollState.s3_found`, :meth:`PollState.on_messages` — which also says which SQS
messages to delete —, :meth:`PollState.head_answer`). Times are the shell's monotonic
seconds.

Notified-but-not-visible objects are looked at with ``HeadObject`` on their own schedule:
at once, then after ``head_interval`` seconds, doubling up to :data:`HEAD_MAX` — while the
queue is long-polled only until the next look is due. With no such object pending, the
schedule costs nothing.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Collection, Iterable
from typing import Any

import attrs

from . import _notify as notify
from ._checks import split_s3_url
from ._handle import AsyncInvocation, Completion
from ._notify import Notice
from ._registry import REGISTRY, Registry

__all__ = ["HEAD_MAX", "LIST_DUE", "DueCheck", "Group", "PollState", "S3Check"]

_log = logging.getLogger("smclient")
HEAD_MAX = 5.0  # seconds: the longest pause between two looks at a notified object
# Notified outputs due in one folder above which the folder is listed instead of HEAD per
# object (a burst after a restart); below, HEADs answer sooner than a listing of a big folder.
LIST_DUE = 20
Group = tuple[str, str]  # (bucket, folder prefix)


def folder(key: str) -> str:
    return key.rsplit("/", 1)[0] + "/" if "/" in key else ""


def places(inv: AsyncInvocation) -> list[tuple[Group, str, bool]]:
    """Where the invocation's output (``True``) and failure (``False``) objects appear."""
    found = []
    for location, ok in ((inv.output_location, True), (inv.failure_location, False)):
        if location:
            bucket, object_key = split_s3_url(location)
            found.append(((bucket, folder(object_key)), object_key, ok))
    return found


@attrs.define
class S3Check:
    """One folder to look at in an S3 round: list it, or HEAD each key (``use_head``).
    ``keys`` maps object keys to ``(invocation key, is output)``; ``probe`` is a pending
    invocation there (whose endpoint serves the requests)."""

    group: Group
    keys: dict[str, tuple[str, bool]]
    use_head: bool
    probe: AsyncInvocation


@attrs.define
class DueCheck:
    """Notified outputs due for a look in one folder: ``items`` are ``(invocation, object
    key)``; ``use_list``: list the folder (many due) instead of one ``HeadObject`` each."""

    group: Group
    items: list[tuple[AsyncInvocation, str]]
    use_list: bool


@attrs.define
class _Notified:
    due: float  # when to HEAD next (monotonic seconds)
    delay: float  # the pause after the next miss


@attrs.define(eq=False)  # identity: a registry watcher (kept in a WeakSet)
class PollState:
    """Pending, notified and finished invocations of one poller (not thread-safe)."""

    head_interval: float = 0.1
    registry: Registry = attrs.field(default=REGISTRY, repr=False)
    pending: dict[str, AsyncInvocation] = attrs.field(factory=dict, repr=False)
    done: dict[str, Completion] = attrs.field(factory=dict, repr=False)
    notified: dict[str, _Notified] = attrs.field(factory=dict, repr=False)
    # Indexes kept up to date on track/finish, so a round does not re-parse N locations:
    # expected object keys per (bucket, folder), pending and done keys per inference id.
    groups: dict[Group, dict[str, tuple[str, bool]]] = attrs.field(factory=dict, repr=False)
    by_id: dict[str, set[str]] = attrs.field(factory=dict, repr=False)
    done_by_id: dict[str, set[str]] = attrs.field(factory=dict, repr=False)
    pages: dict[Group, int] = attrs.field(factory=dict, repr=False)
    head_only: set[Group] = attrs.field(factory=set, repr=False)
    # Results recorded in the process (by this or any other poller), see drain().
    inbox: deque[Completion] = attrs.field(factory=deque, repr=False)

    def __attrs_post_init__(self) -> None:
        self.registry.watch(self)

    def offer(self, completion: Completion) -> None:
        """Called by the registry, from any thread, for each result recorded in the process:
        kept (in a thread-safe deque) when it concerns an invocation this state tracks."""
        key = completion.invocation.key
        if key in self.pending or key in self.done:  # reads only: safe from another thread
            self.inbox.append(completion)

    def drain(self) -> list[Completion]:
        """Finish the pending invocations that another poller (or thread) found meanwhile:
        no request needed. Results this poller recorded itself are skipped."""
        found = []
        while self.inbox:
            completion = self.inbox.popleft()
            key = completion.invocation.key
            if key in self.pending:
                tracked = self.pending[key]
                self.untrack(key)
                self._keep(completion)
                tracked._learn(completion)
                found.append(completion)
            elif key in self.done and self.done[key] is not completion:
                self._keep(completion)  # a merge (a later failureReason) made elsewhere
        return found

    # -- tracking ----------------------------------------------------------------------

    def track(self, invocations: Iterable[AsyncInvocation]) -> None:
        """Start watching; an invocation already known in the process is done at once."""
        for inv in invocations:
            key = inv.key
            if key in self.done or key in self.pending:
                continue
            known = self.registry.get(inv)
            if known is not None:
                self._keep(known)
                continue
            self.pending[key] = inv
            self.by_id.setdefault(inv.inference_id, set()).add(key)
            for group, object_key, ok in places(inv):
                self.groups.setdefault(group, {})[object_key] = (key, ok)

    def forget(self, inv: AsyncInvocation) -> None:
        self.untrack(inv.key)
        found = self.done.pop(inv.key, None)
        if found is not None:
            _drop(self.done_by_id, found.invocation.inference_id, inv.key)

    def untrack(self, key: str) -> None:
        inv = self.pending.pop(key, None)
        self.notified.pop(key, None)
        if inv is None:
            return
        _drop(self.by_id, inv.inference_id, key)
        for group, object_key, _ok in places(inv):
            keys = self.groups.get(group)
            if keys is not None:
                keys.pop(object_key, None)
                if not keys:
                    del self.groups[group]

    def finish(self, completion: Completion) -> Completion:
        """Record a finished invocation (merged with what the process knows)."""
        key = completion.invocation.key
        tracked = self.pending.get(key)
        self.untrack(key)
        merged = self.registry.record(completion)
        self._keep(merged)
        if tracked is not None:
            tracked._learn(merged)
        return merged

    def _keep(self, completion: Completion) -> None:
        key = completion.invocation.key
        self.done[key] = completion
        self._index_done(completion)
        completion.invocation._learn(completion)

    def _index_done(self, completion: Completion) -> None:
        inv = completion.invocation
        self.done_by_id.setdefault(inv.inference_id, set()).add(inv.key)

    # -- S3 ----------------------------------------------------------------------------

    def s3_plan(self) -> list[S3Check]:
        """The folders of one S3 round. A folder is listed (one request per 1,000 objects)
        unless fewer keys wait there than its last listing took pages, or listing it was
        denied: then each key gets a ``HeadObject``."""
        plan = []
        for group, keys in self.groups.items():
            probe = self.pending[next(iter(keys.values()))[0]]
            use_head = group in self.head_only or len(keys) < self.pages.get(group, 1)
            plan.append(S3Check(group, keys, use_head, probe))
        return plan

    def s3_found(self, found: Iterable[tuple[S3Check, dict[str, int | None]]]) -> list[Completion]:
        """Finish the invocations whose objects a round found (``{object key: size}`` per
        checked folder); an output wins over a failure object found in the same round."""
        hits: dict[str, tuple[bool, int | None]] = {}
        for check, objects in found:
            for object_key, size in objects.items():
                entry = check.keys.get(object_key)
                if entry is None:
                    continue
                inv_key, ok = entry
                if ok or inv_key not in hits:
                    hits[inv_key] = (ok, size)
        return [
            self.finish(Completion(invocation=self.pending[k], succeeded=ok, source="s3", size=n))
            for k, (ok, n) in hits.items()
            if k in self.pending
        ]

    # -- notifications -----------------------------------------------------------------

    def on_notice(self, notice: Notice, now: float) -> tuple[bool, Completion | None]:
        """``(known, completion)``: whether the notice is about an invocation this poller
        tracks (or tracked), and what it completes now. A failure notice about an
        invocation already found failed in S3 lends it its ``failureReason``; a success
        notice schedules a ``HeadObject`` of the output at once (:meth:`due`)."""
        matches = [
            key
            for key in self.by_id.get(notice.inference_id, ())
            if notice.output_location in (None, key)
        ]
        if len(matches) != 1:
            finished = [
                key
                for key in self.done_by_id.get(notice.inference_id, ())
                if notice.output_location in (None, key)
            ]
            if notice.status == "Failed" and notice.failure_reason and len(finished) == 1:
                old = self.done[finished[0]]
                if not old.succeeded and not old.failure_reason:
                    self._keep(
                        self.registry.record(
                            attrs.evolve(old, failure_reason=notice.failure_reason)
                        )
                    )
            return bool(finished), None
        key = matches[0]
        inv = self.pending[key]
        if notice.status == "Failed":
            completion = Completion(
                invocation=inv,
                succeeded=False,
                source="notification",
                failure_reason=notice.failure_reason,
            )
            return True, self.finish(completion)
        if key not in self.notified:
            self.notified[key] = _Notified(due=now, delay=self.head_interval)
        return True, None

    def due(self, now: float) -> list[AsyncInvocation]:
        """Notified invocations whose output is due for a ``HeadObject``."""
        return [self.pending[k] for k, n in self.notified.items() if n.due <= now]

    def due_checks(self, now: float) -> list[DueCheck]:
        """The looks due now, by folder (see :class:`DueCheck`, :data:`LIST_DUE`)."""
        by_group: dict[Group, list[tuple[AsyncInvocation, str]]] = {}
        for inv in self.due(now):
            bucket, object_key = split_s3_url(inv.output_location)
            by_group.setdefault((bucket, folder(object_key)), []).append((inv, object_key))
        checks = []
        for group, items in by_group.items():
            many = len(items) > LIST_DUE and len(items) >= self.pages.get(group, 1)
            checks.append(DueCheck(group, items, many and group not in self.head_only))
        return checks

    def on_messages(
        self,
        messages: Iterable[dict[str, Any]],
        now: float,
        *,
        topics: Collection[str],
        owned_queue: bool,
        s3: bool,
    ) -> tuple[list[Completion], list[dict[str, Any]]]:
        """Handle received SQS messages: ``(what they completed, the messages to delete)``.

        Deleted: notifications about invocations this poller tracks or tracked, and
        SageMaker's ``TestNotification``. Left for their owner: notifications of other
        invocations, messages from foreign topics and anything that is not a SageMaker
        notification — except in an ``owned_queue`` (a
        :class:`~smclient.notifications.Subscription`'s, read by this program only), where
        such a message is deleted once it was received ``GIVE_UP_AFTER`` times, so it stops
        taking room in every batch; a notification of an invocation nobody tracks only when
        ``s3`` is watched too (should a poller track it later, an S3 round finds it)."""
        found: list[Completion] = []
        handled: list[dict[str, Any]] = []
        for message in messages:
            kind, notice = notify.parse(message.get("Body", ""), topics)
            if kind is notify.Kind.NOTICE and notice is not None:
                known, completion = self.on_notice(notice, now)
                if completion is not None:
                    found.append(completion)
                if not known and not _abandoned(message, owned_queue and s3):
                    continue  # another poller's invocation: leave it for its owner
            elif kind is not notify.Kind.TEST and not _abandoned(message, owned_queue):
                continue  # foreign topic or not a SageMaker notification: not ours to delete
            handled.append(message)
        return found, handled

    def next_due(self) -> float | None:
        """When the next ``HeadObject`` of a notified output is due (``None``: none)."""
        return min((n.due for n in self.notified.values()), default=None)

    def head_answer(
        self, inv: AsyncInvocation, size: int | None, now: float, *, exists: bool
    ) -> Completion | None:
        """The answer to a look at a notified output: finished, or the next look scheduled
        (backoff: ``head_interval``, doubling, at most :data:`HEAD_MAX` seconds)."""
        if exists:
            done = Completion(invocation=inv, succeeded=True, source="notification", size=size)
            return self.finish(done)
        entry = self.notified.get(inv.key)
        if entry is not None:
            entry.due = now + entry.delay
            entry.delay = min(entry.delay * 2, HEAD_MAX)
        return None

    def receive_wait(self, wait: float, now: float, longest: int) -> int:
        """The ``WaitTimeSeconds`` of the next receive: ``wait`` at most ``longest``, and
        no longer than until the next notified output is due (whole seconds, rounded down)."""
        seconds = min(wait, float(longest))
        due = self.next_due()
        if due is not None:
            seconds = min(seconds, due - now)
        return int(max(0.0, seconds))


def _abandoned(message: dict[str, Any], allowed: bool) -> bool:
    """Whether a message no poller handled is deleted anyway (see ``on_messages``)."""
    if not allowed:
        return False
    count = notify.receive_count(message)
    if count < notify.GIVE_UP_AFTER:
        return False
    _log.info("deleting SQS message %s: received %d times, no poller handled it",
              message.get("MessageId"), count)  # fmt: skip
    return True


def _drop(index: dict[str, set[str]], inference_id: str, key: str) -> None:
    keys = index.get(inference_id)
    if keys is not None:
        keys.discard(key)
        if not keys:
            del index[inference_id]
