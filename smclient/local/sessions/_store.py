"""Instances and stateful sessions of a local endpoint.

Requests without a session are spread over the instances round robin. ``SessionId=
NEW_SESSION`` opens a session on one instance; its id is answered as
``<id>; Expires=YYYY-MM-DDTHH:MM:SSZ`` (TTL 1200 s by default) and later requests with
that id go to the same instance. The id is made here (:meth:`SessionStore.open`) for
handlers that leave sessions to the runtime, or by the model itself - a container, or a
handler that runs its own sessions - and adopted from its answer
(:meth:`SessionStore.adopt`, :func:`parse_session_header`). Unknown, closed and expired ids
get a 400 ``ValidationError`` that says which of the three it is.
"""

from __future__ import annotations

import calendar
import collections
import itertools
import json
import re
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
    "parse_session_header",
]

DEFAULT_SESSION_TTL = 1200.0  # seconds, as model-hosting-container-standards and DJL
_TOMBSTONES = 10_000  # closed/expired ids remembered for a clear error message


def format_expires(epoch_seconds: float) -> str:
    """``YYYY-MM-DDTHH:MM:SSZ`` in UTC."""
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(epoch_seconds))


_SESSION_ID = re.compile(r"[a-zA-Z0-9](-*[a-zA-Z0-9])*")
_EXPIRES = re.compile(
    r"(\d{4})-(\d{2})-(\d{2})[T ](\d{2}):(\d{2}):(\d{2})(?:\.\d+)?(?:Z|[+-]00:?00)?",
    re.IGNORECASE,
)


def parse_session_header(value: str) -> tuple[str, float | None]:
    """``(id, expires)`` from a model's ``X-Amzn-SageMaker-Session-Id`` answer,
    ``"<id>; Expires=2025-01-01T00:00:00Z"`` (``expires`` in seconds since the epoch; ``None``
    for a bare id). Fractional seconds and a ``+00:00`` offset are accepted. ``ValueError``
    saying what is wrong for anything else: an id outside the service's pattern (or over 256
    characters), an unknown attribute, a timestamp that is not UTC ISO-8601."""
    session_id, _, rest = (part.strip() for part in value.partition(";"))
    if len(session_id) > 256 or not _SESSION_ID.fullmatch(session_id):
        raise ValueError(f"session id {session_id[:80]!r} does not match {_SESSION_ID.pattern}")
    if not rest:
        return session_id, None
    key, sep, stamp = (part.strip() for part in rest.partition("="))
    if key.lower() != "expires" or not sep:
        raise ValueError(f"expected '; Expires=<UTC timestamp>' after the id, got {rest[:80]!r}")
    match = _EXPIRES.fullmatch(stamp)
    if match is None:
        raise ValueError(f"Expires {stamp[:40]!r} is not YYYY-MM-DDTHH:MM:SSZ")
    try:
        parts = tuple(int(g) for g in match.groups())
        expires = calendar.timegm(time.struct_time((*parts, 0, 0, 0)))
        time.strptime(stamp[:19].replace(" ", "T"), "%Y-%m-%dT%H:%M:%S")  # a real date
    except (ValueError, OverflowError):
        raise ValueError(f"Expires {stamp[:40]!r} is not a valid date") from None
    return session_id, float(expires)


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

    def adopt(
        self, session_id: str, instance: int, expires_at: float | None, context: object = None
    ) -> LocalSessionInfo:
        """Registers a session the model opened itself (its id, on ``instance``), expiring
        at ``expires_at`` (seconds since the epoch; ``None``: this store's TTL from now).
        An id the model hands out again replaces the earlier session."""
        self._sweep()
        if expires_at is None:
            expires_at = self._clock() + self._ttl
        info = LocalSessionInfo(session_id, instance, expires_at)
        with self._lock:
            self._sessions[session_id] = _Session(info, context)
            self._gone.pop(session_id, None)
        return info

    def forget(self, session_id: str) -> LocalSessionInfo | None:
        """Forgets a session the model closed; its info, or ``None`` if it was not open."""
        with self._lock:
            session = self._sessions.pop(session_id, None)
            if session is not None:
                self._remember(session_id, "was closed")
        return None if session is None else session.info

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
