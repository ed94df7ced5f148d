"""Errors of asynchronous inference (all :class:`smclient.SMClientError` subclasses).

::

    SMClientError
    ├── AsyncInferenceError      the invocation failed: failure object and failureReason
    ├── AsyncTimeoutError        the wait ended with invocations still pending
    └── S3AccessDeniedError      S3 answered 403 where the poller must read (a permission gap)

.. versionadded:: 0.1.0
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from .._errors import SMClientError

if TYPE_CHECKING:
    from ._handle import AsyncInvocation

__all__ = ["AsyncInferenceError", "AsyncTimeoutError", "S3AccessDeniedError"]


class AsyncInferenceError(SMClientError):
    """An asynchronous invocation failed.

    ``inference_id``, ``endpoint``, ``failure_location`` (``s3://`` URL),
    ``failure_reason`` (the error notification's ``failureReason``, also when the failure
    was found in S3 first and the notification came later; without a notification, the
    failure object's own ``failureReason`` field if it has one, else ``None``),
    ``failure_content`` (the failure
    object's bytes, ``None`` when it could not be read) and ``error_code`` (its
    ``errorCode`` when the object is JSON carrying one).

    .. versionadded:: 0.1.0
    """

    def __init__(
        self,
        message: str,
        *,
        inference_id: str,
        endpoint: str,
        failure_location: str | None,
        failure_reason: str | None = None,
        failure_content: bytes | None = None,
        error_code: str | None = None,
    ) -> None:
        super().__init__(message)
        self.inference_id = inference_id
        self.endpoint = endpoint
        self.failure_location = failure_location
        self.failure_reason = failure_reason
        self.failure_content = failure_content
        self.error_code = error_code


class AsyncTimeoutError(SMClientError, TimeoutError):
    """A wait ended before every invocation finished.

    ``pending`` holds the handles still pending (resume with ``smclient.wait(e.pending)``,
    or save ``[h.to_json() for h in e.pending]`` and load them later with
    :meth:`AsyncInvocation.from_json`); ``done`` counts those that finished in this wait.

    .. versionadded:: 0.1.0
    """

    def __init__(self, message: str, *, pending: Sequence[AsyncInvocation], done: int = 0) -> None:
        super().__init__(message)
        self.pending = tuple(pending)
        self.done = done


class S3AccessDeniedError(SMClientError):
    """S3 answered 403 (access denied) to a request the poller needs.

    ``operation`` (``"ListObjectsV2"``, ``"HeadObject"``, ``"GetObject"``), ``location``
    (the ``s3://`` URL) and ``permission`` (the IAM action that is probably missing).
    Without ``s3:ListBucket`` S3 answers 403 instead of 404 for a missing object, so a
    poller without it cannot tell "not written yet" from "forbidden".

    .. versionadded:: 0.1.0
    """

    def __init__(self, message: str, *, operation: str, location: str, permission: str) -> None:
        super().__init__(message)
        self.operation = operation
        self.location = location
        self.permission = permission


# Tracebacks and reprs say smclient.AsyncInferenceError, whichever name was touched first.
for _cls in (AsyncInferenceError, AsyncTimeoutError, S3AccessDeniedError):
    _cls.__module__ = "smclient"
del _cls


def timeout_message(pending: Sequence[AsyncInvocation], waited: float, done: int) -> str:
    ids = ", ".join(p.inference_id for p in pending[:5])
    more = f" and {len(pending) - 5} more" if len(pending) > 5 else ""
    return (
        f"{len(pending)} asynchronous invocation(s) still pending after {waited:.1f} s "
        f"({done} finished): {ids}{more}. Resume with smclient.wait(error.pending), or save "
        "[h.to_json() for h in error.pending] and use AsyncInvocation.from_json later."
    )
