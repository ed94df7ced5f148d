"""Asynchronous inference: submit, handles, the poller, wait/as_completed (private package;
the public names are re-exported by :mod:`smclient`)."""

from __future__ import annotations

from ._errors import AsyncInferenceError, AsyncTimeoutError, S3AccessDeniedError
from ._handle import AsyncInvocation, Completion, S3Object
from ._poller import Poller, WaitResult
from ._submit import submit
from ._wait import as_completed, wait

__all__ = [
    "AsyncInferenceError",
    "AsyncInvocation",
    "AsyncTimeoutError",
    "Completion",
    "Poller",
    "S3AccessDeniedError",
    "S3Object",
    "WaitResult",
    "as_completed",
    "submit",
    "wait",
]

# Public classes say smclient.Name (re-exported there lazily), whichever name is touched first.
for _name in __all__:
    _obj = globals()[_name]
    if isinstance(_obj, type):
        _obj.__module__ = "smclient"
del _name, _obj
