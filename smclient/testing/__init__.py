"""Helpers for tests of code that uses smclient: a scripted loopback runtime, typed
helpers for moto's queued results, a switch that turns retry waits off, and pytest
fixtures (registered automatically as the ``smclient`` pytest plugin).

.. versionadded:: 0.1.0
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from ._moto import MotoAsyncResult, MotoResult, queue_moto_async_results, queue_moto_results
from ._scripted import RecordedRequest, Reply, ScriptedRuntime

__all__ = [
    "MotoAsyncResult",
    "MotoResult",
    "RecordedRequest",
    "Reply",
    "ScriptedRuntime",
    "no_retry_waits",
    "queue_moto_async_results",
    "queue_moto_results",
]


@contextlib.contextmanager
def no_retry_waits() -> Iterator[None]:
    """Within the block, retry policies still retry but never wait between attempts.

    .. versionadded:: 0.1.0
    """
    from .. import _retry

    previous, _retry._no_waits = _retry._no_waits, True
    try:
        yield
    finally:
        _retry._no_waits = previous
