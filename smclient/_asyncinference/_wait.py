"""``wait`` and ``as_completed`` for many invocations through one :class:`Poller`."""

from __future__ import annotations

from collections.abc import Iterable, Iterator

from ._handle import AsyncInvocation, Completion
from ._poller import Poller
from ._progress import Progress

__all__ = ["as_completed", "wait"]


def _poller(invocations: list[AsyncInvocation], poller: Poller | None) -> Poller:
    if poller is not None:
        return poller
    # No shared endpoint: each invocation's own endpoint serves its requests.
    return Poller()


def wait(
    invocations: Iterable[AsyncInvocation],
    *,
    timeout: float | None = None,
    poller: Poller | None = None,
    progress: bool | Progress | None = None,
) -> list[Completion]:
    """Wait until every invocation has finished; their :class:`Completion` in the given order.

    ``timeout`` (seconds, default: until the last invocation's deadline, from its
    RequestTTLSeconds + InvocationTimeoutSeconds). Then :class:`AsyncTimeoutError` lists
    the invocations still pending (``error.pending``): pass them to ``wait`` again to
    resume. ``poller`` (default: a new S3-watching :class:`Poller`) chooses the sources.
    Failed invocations do not raise here: call ``completion.result()``. ``progress``: a
    callable ``(finished, total)``, or ``True`` for a progress bar (``tqdm`` when installed,
    else text on a terminal's stderr; silent when not a terminal).

    .. versionadded:: 0.1.0
    """
    items = list(invocations)
    return _poller(items, poller).wait(items, timeout=timeout, progress=progress)


def as_completed(
    invocations: Iterable[AsyncInvocation],
    *,
    timeout: float | None = None,
    poller: Poller | None = None,
    progress: bool | Progress | None = None,
) -> Iterator[Completion]:
    """Yield a :class:`Completion` for each invocation as it finishes (see :func:`wait`).

    .. versionadded:: 0.1.0
    """
    items = list(invocations)
    return _poller(items, poller).as_completed(items, timeout=timeout, progress=progress)
