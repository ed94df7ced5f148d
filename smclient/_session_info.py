"""Values and errors of stateful sessions: ``SessionInfo`` and its header parser, the
lifecycle ``SessionState``, the open/close body conventions (``SessionProtocol``) and the
session errors.

::

    SMClientError
    └── SessionError                    a session could not be used as asked
        ├── SessionClosedError          closed, detached, or rejected by the endpoint
        │   └── SessionExpiredError     past its expiry (checked before sending)
        └── SessionHeaderError          a malformed NewSessionId / ClosedSessionId (a ValueError)

Everything here is pure: no I/O, no clock (protocol.md §4 for the wire facts).

.. versionadded:: 0.1.0
"""

from __future__ import annotations

import enum
import json
import re
from collections.abc import Callable, Mapping
from datetime import datetime, timezone
from typing import Any, ClassVar

import attrs

from . import _validation as check
from ._errors import InvalidInputError, ServiceError, SMClientError

__all__ = [
    "SessionClosedError",
    "SessionError",
    "SessionExpiredError",
    "SessionHeaderError",
    "SessionInfo",
    "SessionProtocol",
    "SessionState",
]

# An id (<= 256 characters) and a 20-character timestamp fit well within this; longer
# values are rejected before any pattern matching.
MAX_HEADER_LENGTH = 512
_HEADER = re.compile(
    r"(?P<id>[A-Za-z0-9](?:-*[A-Za-z0-9])*)[ \t]*;[ \t]*"
    r"Expires=(?P<expires>[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}Z)",
    re.ASCII,
)
_HEADER_TIME = "%Y-%m-%dT%H:%M:%SZ"


class SessionState(enum.Enum):
    """Where a :class:`smclient.Session` is in its life.

    ``OPENING`` (the ``NEW_SESSION`` call is in flight), ``OPEN``, ``REJECTED`` (the
    endpoint answered a call with HTTP 400 ``ValidationError``: the session may be gone
    there or the request was invalid - no more calls are sent, but closing still sends the
    close body), ``CLOSING`` (the close call is in flight), ``CLOSED`` (closed by
    :meth:`~smclient.Session.close`, found gone on the server when closing, or the open
    failed), ``EXPIRED`` (past ``expires_at`` minus the skew margin) and ``DETACHED``
    (handed over with :meth:`~smclient.Session.detach`; another process or object owns it
    now). Only ``OPEN`` sessions send calls; ``OPEN`` and ``REJECTED`` ones send a close.

    .. versionadded:: 0.1.0
    """

    OPENING = "opening"
    OPEN = "open"
    REJECTED = "rejected"
    CLOSING = "closing"
    CLOSED = "closed"
    EXPIRED = "expired"
    DETACHED = "detached"


class SessionError(SMClientError):
    """A session could not be used as asked. ``session_id`` and ``endpoint`` say which.

    .. versionadded:: 0.1.0
    """

    def __init__(
        self, message: str, *, session_id: str | None = None, endpoint: str | None = None
    ) -> None:
        super().__init__(message)
        self.session_id = session_id
        self.endpoint = endpoint


class SessionClosedError(SessionError):
    """The session is not open: it was closed, detached or rejected earlier (nothing was
    sent), or the endpoint refused this call with HTTP 400 ``ValidationError``
    (``server_error`` is that :class:`smclient.ValidationError`, also ``__cause__``; the
    session is then ``REJECTED`` and closing it still sends the close body). ``state`` is
    the session's :class:`SessionState` after the error.

    .. versionadded:: 0.1.0
    """

    def __init__(
        self,
        message: str,
        *,
        session_id: str | None = None,
        endpoint: str | None = None,
        state: SessionState = SessionState.CLOSED,
        server_error: ServiceError | None = None,
    ) -> None:
        super().__init__(message, session_id=session_id, endpoint=endpoint)
        self.state = state
        self.server_error = server_error


class SessionExpiredError(SessionClosedError):
    """The session is past ``expires_at`` (minus the skew margin): raised before anything
    is sent, or when the endpoint rejects the id of a session that expired during the call.
    A :class:`SessionClosedError`, so one ``except`` catches both.

    .. versionadded:: 0.1.0
    """

    def __init__(
        self,
        message: str,
        *,
        session_id: str | None = None,
        endpoint: str | None = None,
        expires_at: datetime | None = None,
        server_error: ServiceError | None = None,
    ) -> None:
        super().__init__(
            message,
            session_id=session_id,
            endpoint=endpoint,
            state=SessionState.EXPIRED,
            server_error=server_error,
        )
        self.expires_at = expires_at


class SessionHeaderError(SessionError, ValueError):
    """A session header was missing or malformed: ``NewSessionId`` not of the form
    ``<id>; Expires=YYYY-MM-DDTHH:MM:SSZ``, or a ``ClosedSessionId`` that does not name
    the session being closed. ``header`` is the value received (``None`` when absent;
    at most 80 characters kept), ``problem`` says what is wrong.

    .. versionadded:: 0.1.0
    """

    def __init__(
        self,
        problem: str,
        *,
        header: str | None,
        session_id: str | None = None,
        endpoint: str | None = None,
    ) -> None:
        shown = "no header" if header is None else repr(header[:80])
        super().__init__(f"{problem}: {shown}", session_id=session_id, endpoint=endpoint)
        self.problem = problem
        self.header = None if header is None else header[:80]


# Tracebacks and reprs say smclient.SessionError, whichever name was touched first.
for _cls in (SessionError, SessionClosedError, SessionExpiredError, SessionHeaderError):
    _cls.__module__ = "smclient"
del _cls


def _utc(value: datetime | None) -> datetime | None:
    if value is None:
        return None
    if not isinstance(value, datetime):
        raise InvalidInputError("expires_at", f"expected a datetime, got {type(value).__name__}")
    if value.tzinfo is None or value.utcoffset() is None:
        raise InvalidInputError(
            "expires_at", "a naive datetime is ambiguous", limit="timezone-aware, e.g. UTC"
        )
    return value.astimezone(timezone.utc)


def _session_id(_instance: object, _attribute: object, value: str) -> None:
    if not isinstance(value, str):
        raise InvalidInputError("session_id", f"expected a string, got {type(value).__name__}")
    if value == "NEW_SESSION":
        raise InvalidInputError("session_id", "NEW_SESSION is not a session's id")
    check.session_id(value)


def _format(when: datetime) -> str:
    # Not strftime: its %Y does not zero-pad years below 1000 on every platform.
    return (
        f"{when.year:04d}-{when.month:02d}-{when.day:02d}T"
        f"{when.hour:02d}:{when.minute:02d}:{when.second:02d}Z"
    )


@attrs.frozen
class SessionInfo:
    """A session's ``id`` and when it expires (``expires_at``, a timezone-aware UTC
    ``datetime``; ``None`` when unknown). JSON-able, to resume the session in another
    process or notebook kernel: ``SessionInfo.from_json(info.to_json()) == info``.

    .. versionadded:: 0.1.0
    """

    id: str = attrs.field(validator=_session_id)
    expires_at: datetime | None = attrs.field(default=None, converter=_utc)

    @classmethod
    def parse(cls, header: str) -> SessionInfo:
        """Parse a ``NewSessionId`` value, ``<id>; Expires=YYYY-MM-DDTHH:MM:SSZ``.

        Strict: the id as the service allows it (letters, digits and inner hyphens, at most
        256), then ``;``, then ``Expires=`` and a UTC timestamp to the second. Anything
        else raises :class:`SessionHeaderError` (never another exception).
        """
        if not isinstance(header, str):
            raise SessionHeaderError(f"expected a string, got {type(header).__name__}", header=None)
        if len(header) > MAX_HEADER_LENGTH:
            raise SessionHeaderError(
                f"longer than {MAX_HEADER_LENGTH} characters ({len(header)})", header=header
            )
        match = _HEADER.fullmatch(header.strip(" \t"))
        if match is None:
            raise SessionHeaderError(
                "not of the form '<id>; Expires=YYYY-MM-DDTHH:MM:SSZ'", header=header
            )
        session_id = match["id"]
        if len(session_id) > check.MAX_SESSION_ID:
            raise SessionHeaderError(
                f"the id is longer than {check.MAX_SESSION_ID} characters", header=header
            )
        try:
            expires = datetime.strptime(match["expires"], _HEADER_TIME)
        except ValueError:
            raise SessionHeaderError("the Expires date does not exist", header=header) from None
        return cls(session_id, expires.replace(tzinfo=timezone.utc))

    @property
    def header(self) -> str:
        """The ``<id>; Expires=YYYY-MM-DDTHH:MM:SSZ`` form (just the id when the expiry is
        unknown; sub-second precision is dropped)."""
        if self.expires_at is None:
            return self.id
        return f"{self.id}; Expires={_format(self.expires_at)}"

    def to_json(self) -> str:
        """``{"id": ..., "expires_at": "<ISO 8601, Z>" or null}``."""
        expires = None
        if self.expires_at is not None:
            expires = self.expires_at.isoformat().replace("+00:00", "Z")
        return json.dumps({"id": self.id, "expires_at": expires})

    @classmethod
    def from_json(cls, text: str | bytes) -> SessionInfo:
        """The inverse of :meth:`to_json`; :class:`smclient.InvalidInputError` if ``text``
        is not such a document."""
        try:
            doc = json.loads(text)
        except (TypeError, ValueError):
            raise InvalidInputError("session_info", "not a JSON document") from None
        if not isinstance(doc, dict) or set(doc) != {"id", "expires_at"}:
            raise InvalidInputError(
                "session_info", "expected an object with exactly 'id' and 'expires_at'"
            )
        expires = doc["expires_at"]
        if expires is not None:
            if not isinstance(expires, str) or not expires.endswith("Z"):
                raise InvalidInputError("expires_at", "expected an ISO 8601 time ending in Z")
            try:
                # Python 3.10's fromisoformat does not read a trailing Z.
                expires = datetime.fromisoformat(expires[:-1] + "+00:00")
            except ValueError:
                raise InvalidInputError("expires_at", "not an ISO 8601 time") from None
        return cls(doc["id"], expires)


@attrs.frozen
class _OpenMarker:
    """A JSON open body ``{key: value}``; a mapping payload is merged into it, bytes or
    str payloads are the container's own format and are sent as they are."""

    key: str
    value: str

    def __call__(self, payload: Any) -> bytes | str:
        from ._codecs import json_bytes

        if payload is None:
            return json.dumps({self.key: self.value}).encode()
        if isinstance(payload, bytes | bytearray | str):
            return payload if isinstance(payload, str) else bytes(payload)
        if isinstance(payload, Mapping):
            if payload.get(self.key, self.value) != self.value:
                raise InvalidInputError(
                    "open_body", f"the {self.key!r} key is the open marker {self.value!r}"
                )
            return json_bytes({self.key: self.value, **payload}, field="open_body")
        raise InvalidInputError(
            "open_body",
            f"cannot be a {type(payload).__name__}",
            limit="a mapping (merged into the open body), bytes or str (sent as is)",
        )


@attrs.frozen
class _CloseMarker:
    """A JSON close body ``{key: value}``, with the session id under ``id_key`` if set."""

    key: str
    value: str
    id_key: str | None = None

    def __call__(self, session_id: str) -> bytes:
        doc = {self.key: self.value}
        if self.id_key is not None:
            doc[self.id_key] = session_id
        return json.dumps(doc).encode()


@attrs.frozen
class SessionProtocol:
    """How a container wants to be asked to open and close a session (container-defined,
    protocol.md §4).

    ``open``: the open body, or a callable that receives the ``open_body`` payload given
    to :meth:`smclient.Session.open` (``None`` if none) and returns the body; when
    ``open`` is a fixed body, a given payload is sent instead of it. ``close``: the close
    body, or a callable that receives the session id. Bodies are bytes, str or data for
    the endpoint's codec. ``content_type`` of the open and close calls (default JSON).

    Presets: :attr:`REQUEST_TYPE` (``{"requestType": "NEW_SESSION"}`` /
    ``{"requestType": "CLOSE"}``; model-hosting-container-standards and most samples, the
    default), :attr:`DJL` (closes with ``{"requestType": "CLOSE_SESSION"}``) and
    :attr:`TORCHSERVE` (the LLaVA TorchServe sample: ``{"type": "start_session"}`` /
    ``{"type": "close_session", "session_id": <id>}``). With a preset, a mapping payload
    is merged into the open body (the context to cache: a document, an image...), and
    bytes or str are sent as they are.

    .. versionadded:: 0.1.0
    """

    name: str
    open: bytes | str | Callable[[Any], Any] = attrs.field(repr=False)
    close: bytes | str | Callable[[str], Any] = attrs.field(repr=False)
    content_type: str | None = "application/json"

    REQUEST_TYPE: ClassVar[SessionProtocol]
    DJL: ClassVar[SessionProtocol]
    TORCHSERVE: ClassVar[SessionProtocol]

    def open_body(self, payload: Any = None) -> Any:
        """The body of the ``NEW_SESSION`` call for ``payload``."""
        if callable(self.open):
            return self.open(payload)
        return self.open if payload is None else payload

    def close_body(self, session_id: str) -> Any:
        """The body of the call that closes ``session_id``."""
        return self.close(session_id) if callable(self.close) else self.close


SessionProtocol.REQUEST_TYPE = SessionProtocol(
    "request_type", _OpenMarker("requestType", "NEW_SESSION"), _CloseMarker("requestType", "CLOSE")
)
SessionProtocol.DJL = SessionProtocol(
    "djl", _OpenMarker("requestType", "NEW_SESSION"), _CloseMarker("requestType", "CLOSE_SESSION")
)
SessionProtocol.TORCHSERVE = SessionProtocol(
    "torchserve",
    _OpenMarker("type", "start_session"),
    _CloseMarker("type", "close_session", id_key="session_id"),
)
