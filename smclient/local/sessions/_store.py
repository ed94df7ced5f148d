"""Instances and stateful sessions of a local endpoint.

Requests without a session are spread over the instances round robin. ``SessionId=
NEW_SESSION`` opens a session on one instance; its id is answered as
``<id>; Expires=YYYY-MM-DDTHH:MM:SSZ`` (TTL 1200 s by default) and later requests with
that id go to the same instance. Unknown, closed and expired ids get a 400
``ValidationError`` that says which of the three it is.
"""

from __future__ import annotations

import collections
import itertools
import json
import threading
import time
import uuid
from collections.abc import Callable

import attrs

from ..server._wire import ServiceError

__all__ = [
    "DEFAULT_SESSION_TTL",
    "LocalSessionInfo",
    "RoundRobin",
    "SessionStore",
    "format_expires",
    "is_close_request",
]

DEFAULT_SESSION_TTL = 1200.0  # seconds, as model-hosting-container-standards and DJL
_TOMBSTONES = 10_000  # closed/expired ids remembered for a clear error message


def format_expires(epoch_seconds: float) -> str:
    """``YYYY-MM-DDTHH:MM:SSZ`` in UTC."""
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(epoch_seconds))


def is_close_request(body: bytes) -> bool:
    """Whether a body asks to close its session, in one of the common container
    conventions: ``{"requestType": "CLOSE"}`` (or ``"CLOSE_SESSION"``, DJL),
    ``{"type": "close_session"}`` (TorchServe LLaVA sample) or the bare word
    ``CLOSE_SESSION``."""
    if len(body) > 4096:
        return False
    text = body.strip()
    if text in (b"CLOSE_SESSION", b'"CLOSE_SESSION"'):
        return True
    try:
        doc = json.loads(text)
    except ValueError:
        return False
    if not isinstance(doc, dict):
        return False
    request_type = str(doc.get("requestType", doc.get("request_type", ""))).upper()
    kind = str(doc.get("type", "")).lower()
    return request_type in ("CLOSE", "CLOSE_SESSION") or kind == "close_session"


@attrs.frozen
class LocalSessionInfo:
    """An open session: its id, the index of the instance holding it and when it
    expires (seconds since the epoch).

    .. versionadded:: 0.1.0
    """

    session_id: str
    instance: int
    expires_at: float

    @property
    def header(self) -> str:
        """The ``X-Amzn-SageMaker-New-Session-Id`` value: ``<id>; Expires=...``."""
        return f"{self.session_id}; Expires={format_expires(self.expires_at)}"


@attrs.define(eq=False)
class _Session:
    info: LocalSessionInfo
    context: object


class SessionStore:
    """Open sessions of one endpoint. ``clock`` gives seconds since the epoch (default
    ``time.time``); ``on_expire`` receives the context of each session found expired."""

    def __init__(
        self,
        *,
        ttl: float = DEFAULT_SESSION_TTL,
        clock: Callable[[], float] = time.time,
        on_expire: Callable[[int, object], None] | None = None,
    ) -> None:
        self._ttl = ttl
        self._clock = clock
        self._on_expire = on_expire
        self._lock = threading.Lock()
        self._sessions: dict[str, _Session] = {}
        self._gone: collections.OrderedDict[str, str] = collections.OrderedDict()

    def open(self, instance: int, context: object) -> LocalSessionInfo:
        self._sweep()
        info = LocalSessionInfo(str(uuid.uuid4()), instance, self._clock() + self._ttl)
        with self._lock:
            self._sessions[info.session_id] = _Session(info, context)
        return info

    def get(self, session_id: str) -> tuple[LocalSessionInfo, object]:
        """The session's info and context; :class:`ServiceError` 400 if it is unknown,
        closed or expired."""
        self._sweep()
        with self._lock:
            session = self._sessions.get(session_id)
            if session is None:
                reason = self._gone.get(session_id, "does not exist")
                raise ServiceError.validation(f"Invalid session ID: session {session_id} {reason}.")
            return session.info, session.context

    def close(self, session_id: str) -> tuple[LocalSessionInfo, object]:
        """Forgets the session and returns its info and context (400 as :meth:`get`)."""
        info, context = self.get(session_id)
        with self._lock:
            if self._sessions.pop(session_id, None) is None:  # closed concurrently
                raise ServiceError.validation(
                    f"Invalid session ID: session {session_id} was closed."
                )
            self._remember(session_id, "was closed")
        return info, context

    def sessions(self) -> list[LocalSessionInfo]:
        """The open sessions (expired ones are swept first)."""
        self._sweep()
        with self._lock:
            return [s.info for s in self._sessions.values()]

    def drain(self) -> list[tuple[int, object]]:
        """Forgets every session; returns ``(instance, context)`` pairs to release."""
        with self._lock:
            out = [(s.info.instance, s.context) for s in self._sessions.values()]
            self._sessions.clear()
            return out

    def _remember(self, session_id: str, reason: str) -> None:
        self._gone[session_id] = reason
        while len(self._gone) > _TOMBSTONES:
            self._gone.popitem(last=False)

    def _sweep(self) -> None:
        now = self._clock()
        with self._lock:
            expired = [s for s in self._sessions.values() if s.info.expires_at <= now]
            for session in expired:
                del self._sessions[session.info.session_id]
                self._remember(session.info.session_id, "has expired")
        for session in expired:
            if self._on_expire is not None:
                self._on_expire(session.info.instance, session.context)


class RoundRobin:
    """Thread-safe round robin over ``count`` instances."""

    def __init__(self, count: int) -> None:
        self._count = count
        self._next = itertools.count()
        self._lock = threading.Lock()

    def next(self) -> int:
        with self._lock:
            return next(self._next) % self._count
