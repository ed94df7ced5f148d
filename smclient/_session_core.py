"""The state machine of a stateful session, without I/O.

``SessionCore`` holds a session's id, expiry and ``SessionState`` and decides every
transition: what may be sent, what an answer or a failure means. ``Session`` (sync) wraps
it with a lock and the endpoint's calls; an async variant wraps the same core around
awaited calls, so the rules live here once.

What is retried inside a session, and why: a request that reached the model may have
changed its cached context (appended a turn, used up a budget), so only failures before
the model ran are retried - ``MODEL_NOT_READY`` and ``TRANSIENT`` (503, throttling,
connect errors), as the policy allows. ``INTERNAL`` (500/530), ``READ_TIMEOUT`` and
``MODEL_OUT_OF_MEMORY`` are never retried in a session, even when the endpoint's policy
opts in (:func:`session_policy`).
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable

import attrs

from . import _validation as check
from ._errors import (
    ConfigurationError,
    InvalidInputError,
    RetriesExhaustedError,
    SMClientError,
    ValidationError,
)
from ._retry import RetryPolicy, RetryReason, classify
from ._session_info import (
    SessionClosedError,
    SessionExpiredError,
    SessionHeaderError,
    SessionInfo,
    SessionState,
)

__all__ = ["DEFAULT_EXPIRY_MARGIN", "SessionCore", "attach_close_error", "session_policy"]

logger = logging.getLogger("smclient")

DEFAULT_EXPIRY_MARGIN = 5.0  # seconds: client/container clock skew and the call's own time
_BEFORE_MODEL = frozenset({RetryReason.MODEL_NOT_READY, RetryReason.TRANSIENT})
# States in which the container may hold the session's context: a close is owed.
_LIVE = (SessionState.OPEN, SessionState.REJECTED)


def session_policy(policy: RetryPolicy) -> RetryPolicy:
    """``policy`` restricted to failures before the model ran (see the module docstring)."""
    check.retry_policy(policy)
    return attrs.evolve(policy, retry_on=policy.retry_on & _BEFORE_MODEL)


def may_have_run(error: SMClientError) -> bool:
    """Whether the request that failed with ``error`` may have reached the model."""
    if isinstance(error, RetriesExhaustedError):
        error = error.last_error
    if isinstance(error, InvalidInputError | ConfigurationError):  # refused before sending
        return False
    return classify(error) not in _BEFORE_MODEL


def attach_close_error(exc: BaseException, close_error: BaseException, session_id: str) -> None:
    """Attach a close failure to the exception that ended a ``with`` block: a note
    (Python 3.11+) and the ``session_close_error`` attribute."""
    note = f"smclient: closing session {session_id} also failed: {close_error!r}"
    if hasattr(exc, "add_note"):
        exc.add_note(note)
    with contextlib.suppress(Exception):  # exceptions with __slots__ refuse attributes
        exc.session_close_error = close_error  # type: ignore[attr-defined]


@attrs.define(eq=False)
class SessionCore:
    """One session's state and transitions. Not thread-safe by itself: the caller holds
    its lock around each method that changes ``state``."""

    endpoint: str
    expiry_margin: float
    clock: Callable[[], float]
    info: SessionInfo | None = None
    state: SessionState = SessionState.CLOSED  # until an open succeeds or an attach
    close_attempted: bool = False
    before_close: SessionState = SessionState.OPEN  # restored when a close call fails

    @property
    def id(self) -> str:
        assert self.info is not None  # set before a session is handed out
        return self.info.id

    def expired(self) -> bool:
        """Past ``expires_at`` minus the margin, by ``clock``."""
        expires = None if self.info is None else self.info.expires_at
        return expires is not None and self.clock() >= expires.timestamp() - self.expiry_margin

    def visible_state(self) -> SessionState:
        if self.state in _LIVE and self.expired():
            return SessionState.EXPIRED
        return self.state

    # -- open ----------------------------------------------------------------------------

    def opened(self, header: str | None) -> SessionInfo:
        """The open call answered with ``header`` (its ``NewSessionId``)."""
        if header is None:
            raise SessionHeaderError(
                "the endpoint answered without a NewSessionId (does the container support "
                "stateful sessions?)",
                header=None,
                endpoint=self.endpoint,
            )
        try:
            info = SessionInfo.parse(header)
        except SessionHeaderError as exc:
            exc.endpoint = self.endpoint
            raise
        self.info, self.state = info, SessionState.OPEN
        return info

    def open_failed(self, error: SMClientError) -> None:
        self.state = SessionState.CLOSED
        if may_have_run(error):
            logger.warning(
                "opening a session on endpoint %s failed with %s after the request may have "
                "reached the model; a session it created stays open until it expires",
                self.endpoint,
                type(error).__name__,
            )

    def attached(self, info: SessionInfo) -> None:
        self.info, self.state = info, SessionState.OPEN

    # -- calls ---------------------------------------------------------------------------

    def check_usable(self) -> None:
        """Raise :class:`SessionClosedError` / :class:`SessionExpiredError` unless a call
        may be sent now."""
        if self.state in _LIVE and self.expired():
            self.state = SessionState.EXPIRED
        if self.state is SessionState.EXPIRED:
            assert self.info is not None
            raise SessionExpiredError(
                f"session {self.id} on endpoint {self.endpoint} expired "
                f"({self.info.header}, margin {self.expiry_margin} s); nothing was sent",
                session_id=self.id,
                endpoint=self.endpoint,
                expires_at=self.info.expires_at,
            )
        if self.state is not SessionState.OPEN:
            why = (
                "was rejected by the endpoint (close it: the close body is still sent)"
                if self.state is SessionState.REJECTED
                else f"is {self.state.value}"
            )
            raise SessionClosedError(
                f"session {self.id} on endpoint {self.endpoint} {why}; nothing was sent",
                session_id=self.id,
                endpoint=self.endpoint,
                state=self.state,
            )

    def rejected(self, error: ValidationError) -> SessionClosedError:
        """The endpoint refused a call carrying the id (HTTP 400 ``ValidationError``, known
        by its code). The code does not say whether the session is gone there (closed
        elsewhere, expired, unknown) or the request was invalid (a bad body, a wrong
        ``TargetModel``), and the message text is not read. So: ``EXPIRED`` if the clock is
        now past the expiry (the call may have outlasted it; the container drops it
        itself), else ``REJECTED`` - no more calls, but a close is still owed."""
        assert self.info is not None
        where = f"session {self.id} of endpoint {self.endpoint}"
        why = f"{error.error_code}, request id {error.request_id}"
        if self.expired():
            self.state = SessionState.EXPIRED
            return SessionExpiredError(
                f"the endpoint rejected {where} ({why}): it expired",
                session_id=self.id,
                endpoint=self.endpoint,
                expires_at=self.info.expires_at,
                server_error=error,
            )
        self.state = SessionState.REJECTED
        return SessionClosedError(
            f"the endpoint rejected a call of {where} ({why}): the session was closed "
            "elsewhere, expired by the container's clock or is unknown there, or the request "
            "was invalid; no more calls are sent, closing it still sends the close body",
            session_id=self.id,
            endpoint=self.endpoint,
            state=SessionState.REJECTED,
            server_error=error,
        )

    # -- close ---------------------------------------------------------------------------

    def begin_close(self) -> bool:
        """Whether a close call must be sent: for an ``OPEN`` or ``REJECTED`` session not
        past its expiry (``False``: already closed, detached or expired - the container
        drops an expired session itself)."""
        if self.state in _LIVE and self.expired():
            self.state = SessionState.EXPIRED
        if self.state not in _LIVE:
            return False
        self.before_close = self.state
        self.state, self.close_attempted = SessionState.CLOSING, True
        return True

    def close_failed(self) -> None:
        """The close call failed: the session may still be open, ``close()`` may retry."""
        self.state = self.before_close

    def close_rejected(self, error: ValidationError) -> None:
        """The endpoint no longer knows the id: as good as closed (``EXPIRED`` if the clock
        is past the expiry)."""
        self.state = SessionState.EXPIRED if self.expired() else SessionState.CLOSED
        logger.warning(
            "closing session %s on endpoint %s: the endpoint no longer knows it "
            "(%s, request id %s); counted as closed",
            self.id,
            self.endpoint,
            error.error_code,
            error.request_id,
        )

    def closed(self, closed_session_id: str | None) -> None:
        """The close call answered with ``closed_session_id`` (its ``ClosedSessionId``)."""
        if closed_session_id != self.id:
            self.state = self.before_close
            raise SessionHeaderError(
                f"the close call of session {self.id} was answered with another or no "
                "ClosedSessionId (is the protocol's close body the container's?)",
                header=closed_session_id,
                session_id=self.id,
                endpoint=self.endpoint,
            )
        self.state = SessionState.CLOSED

    def detach(self) -> SessionInfo:
        if self.state in _LIVE:
            self.state = SessionState.DETACHED
        assert self.info is not None
        return self.info

    def leaked(self) -> bool:
        """Whether dropping the session now leaves a context open on the container that
        nobody was told about (open or rejected, never closed, never detached, not
        expired)."""
        return self.state in _LIVE and not self.close_attempted and not self.expired()
