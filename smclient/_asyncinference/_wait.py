"""``wait`` and ``as_completed`` for many invocations through one :class:`Poller`, modelled on
:func:`concurrent.futures.wait` and :func:`concurrent.futures.as_completed`."""

from __future__ import annotations

from collections.abc import Iterable, Iterator

from ._handle import AsyncInvocation, Completion
from ._poller import Poller, ReturnWhen, WaitResult
from ._progress import Progress

__all__ = ["as_completed", "wait"]


def _poller(poller: Poller | None) -> Poller:
    # No shared endpoint: each invocation's own endpoint serves its requests.
    return poller if poller is not None else Poller()


def wait(
    invocations: Iterable[AsyncInvocation],
    *,
    timeout: float | None = None,
    return_when: ReturnWhen = "ALL_COMPLETED",
    poller: Poller | None = None,
    progress: bool | Progress | None = None,
) -> WaitResult:
    """Wait for the invocations like :func:`concurrent.futures.wait`: returns
    ``(done, not_done)`` (:class:`WaitResult`, two lists of the handles in the given order).

    ``return_when``: ``"ALL_COMPLETED"`` (default), ``"FIRST_COMPLETED"`` (as soon as one
    has finished, at once when one already had) or ``"FIRST_EXCEPTION"`` (as soon as one
    failed, else when all finished); :mod:`concurrent.futures`' constants are the same
    strings. ``timeout`` (seconds, default: until the last invocation's deadline, from its
    RequestTTLSeconds + InvocationTimeoutSeconds): then the wait returns with the rest in
    ``not_done`` (it does not raise; pass ``not_done`` to ``wait`` again to resume).
    Runs in the calling thread: nothing is left running after it returns.

    The handles in ``done`` (and every other handle of the same inferences in this
    process) know their results: ``h.done()``, ``h.exception()`` and
    ``h.result(download=False)`` send no request, ``h.result()`` only the ``GetObject`` of
    the output. Failures do not raise here: ``h.exception()`` or ``h.result()``.

    ``poller`` (default: a new S3-watching :class:`Poller`) chooses the sources.
    ``progress``: a callable ``(finished, total)``, or ``True`` for a progress bar (``tqdm``
    when installed, else text on a terminal's stderr; silent when not a terminal).

    .. versionadded:: 0.1.0
    .. versionchanged:: 0.2.0
       Returns ``(done, not_done)``; ``return_when``; no :class:`AsyncTimeoutError`.
    """
    return _poller(poller).wait(
        invocations, timeout=timeout, return_when=return_when, progress=progress
    )


def as_completed(
    invocations: Iterable[AsyncInvocation],
    *,
    timeout: float | None = None,
    poller: Poller | None = None,
    progress: bool | Progress | None = None,
) -> Iterator[Completion]:
    """Yield a :class:`Completion` for each invocation as it finishes, like
    :func:`concurrent.futures.as_completed` (``completion.result()``,
    ``completion.exception()``, ``completion.invocation``; the handle learns it too).

    ``timeout`` (seconds, default: until the last invocation's deadline) bounds the whole
    iteration: then :class:`AsyncTimeoutError` (a :class:`TimeoutError`) is raised, with
    the handles still pending in ``error.pending``. Other arguments as :func:`wait`.

    .. versionadded:: 0.1.0
    """
    return _poller(poller).as_completed(invocations, timeout=timeout, progress=progress)
