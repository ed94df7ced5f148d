"""What this process knows about finished async inferences: one :class:`Completion` per
output location, shared by every handle and poller.

A result learned once (by any poller) is known to every handle of that inference in the
process, so ``done()`` / ``result()`` / ``exception()`` after a ``wait`` send no polling
request. The registry holds its completions *weakly*: an entry lives as long as a handle, a
completion or a poller that found it does (each handle keeps its own completion once it
learns it), and leaves with the last of them, so a long-running program that submits
millions of inferences does not grow. Handles stay small values: the completion is not part
of their JSON form (a handle loaded elsewhere finds its result again from S3 / SNS).

Thread-safe (pollers in several threads share it).
"""

from __future__ import annotations

import threading
import weakref
from typing import TYPE_CHECKING, Protocol

import attrs

if TYPE_CHECKING:
    from ._handle import AsyncInvocation, Completion

__all__ = ["REGISTRY", "Registry", "Watcher", "merge"]


class Watcher(Protocol):
    """A poller's state, told of every result recorded in the process (from any thread:
    it keeps only what concerns it, for its own thread to pick up)."""

    def offer(self, completion: Completion) -> None: ...


def merge(old: Completion | None, new: Completion) -> Completion:
    """What is known once both were found: an output wins over a failure object (a stale
    failure object may sit next to a retried success); a failure keeps the first source
    and takes the ``failureReason`` (and size) of whichever source carried one."""
    if old is None or old is new:
        return new
    if old.succeeded != new.succeeded:
        return old if old.succeeded else new
    reason = old.failure_reason or new.failure_reason
    size = old.size if old.size is not None else new.size
    if reason == old.failure_reason and size == old.size:
        return old
    return attrs.evolve(old, failure_reason=reason, size=size)


def _key(inv: AsyncInvocation) -> tuple[str, str]:
    # The output location is unique per inference (SageMaker names it with a UUID); the
    # S3 endpoint URL keeps a moto server's bucket apart from a real one of the same name.
    return (inv.aws_endpoint_url or "", inv.output_location)


class Registry:
    """Finished inferences by (S3 endpoint URL, output location), weakly held."""

    def __init__(self) -> None:
        self._found: weakref.WeakValueDictionary[tuple[str, str], Completion] = (
            weakref.WeakValueDictionary()
        )
        self._lock = threading.Lock()
        self._watchers: weakref.WeakSet[Watcher] = weakref.WeakSet()

    def watch(self, watcher: Watcher) -> None:
        """Tell ``watcher`` (held weakly) of every result recorded from now on, so that a
        poller learns what another poller (another thread) found without a request."""
        with self._lock:
            self._watchers.add(watcher)

    def get(self, inv: AsyncInvocation) -> Completion | None:
        """The completion known for ``inv`` (``None``: nothing known in this process)."""
        with self._lock:
            return self._found.get(_key(inv))

    def record(self, completion: Completion) -> Completion:
        """Merge ``completion`` with what is known (see :func:`merge`) and keep the result;
        returns it. The caller must hold a reference (the registry's is weak)."""
        key = _key(completion.invocation)
        with self._lock:
            merged = merge(self._found.get(key), completion)
            self._found[key] = merged
            watchers = list(self._watchers)
        for watcher in watchers:
            watcher.offer(merged)
        return merged

    def clear(self) -> None:
        """Forget everything (tests; handles keep what they learned)."""
        with self._lock:
            self._found.clear()

    def __len__(self) -> int:
        return len(self._found)


REGISTRY = Registry()
