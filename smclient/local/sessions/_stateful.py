"""``StatefulHandler``: a Python model that runs its own sessions, as a stateful container.

On SageMaker the container, not the runtime, makes a session (protocol.md §4): it gets the
``NEW_SESSION`` request with its body, creates the id and the TTL, caches the context and
answers ``X-Amzn-SageMaker-Session-Id: <id>; Expires=...``; on the closing request it drops
the context and answers ``X-Amzn-SageMaker-Closed-Session-Id: <id>``. A local handler takes
that part by declaring ``session_id`` in ``predict`` and answering with a
:class:`~smclient.local.HandlerReply` carrying ``new_session_id`` / ``closed_session_id``;
:class:`StatefulHandler` does all of it around a plain ``predict`` function.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Callable
from typing import Any

from ..hosting._handlers import HandlerError, HandlerReply
from ..server._wire import response_media_type
from ._store import DEFAULT_SESSION_TTL, format_expires, is_close_request

__all__ = ["StatefulHandler"]


def _empty_context(body: bytes) -> object:
    return {}


class StatefulHandler:
    """A handler that opens, uses and closes sessions itself, the way a stateful container
    does, around ``predict(body, content_type, accept, session)``.

    - A ``NEW_SESSION`` request calls ``open(body)`` (default: a new empty ``dict``) for the
      session's context, makes an id (a UUID) that expires ``ttl`` seconds later (default
      1200, by ``clock``: seconds since the epoch, default ``time.time``) and answers
      ``{"SessionId": id, "Expires": "YYYY-MM-DDTHH:MM:SSZ"}`` with ``new_session_id`` set.
    - A request with the id whose body ``is_close(body)`` (default: the common conventions
      ``{"requestType": "CLOSE"}``, ``"CLOSE_SESSION"``, ``{"type": "close_session"}``) calls
      ``close(context)`` and answers ``{"ClosedSessionId": id}`` with ``closed_session_id``.
    - Any other request with the id calls ``predict(body, content_type, accept, context)``;
      without a session ``predict(..., None)``. ``predict`` returns ``bytes``, ``str`` or a
      :class:`~smclient.local.HandlerReply`.
    - An unknown, closed or expired id answers :class:`~smclient.local.HandlerError` 400
      "session not found", as containers do (the caller sees ``ModelError``). Expired
      contexts are closed when found; :meth:`close` closes the rest.

    One object holds the sessions of one instance: pass the class (or a ``loader``) rather
    than one object to an endpoint with several instances, so that each has its own, e.g.
    ``EndpointSpec("chat", handler=functools.partial(StatefulHandler, predict))`` is *not*
    what you want; use a subclass or ``loader=lambda path: StatefulHandler(predict)``.

    .. versionadded:: 0.2.0
    """

    def __init__(
        self,
        predict: Callable[[bytes, str | None, str | None, Any], Any],
        *,
        open: Callable[[bytes], object] = _empty_context,
        close: Callable[[object], None] | None = None,
        ttl: float = DEFAULT_SESSION_TTL,
        clock: Callable[[], float] = time.time,
        is_close: Callable[[bytes], bool] = is_close_request,
    ) -> None:
        if not ttl > 0:
            raise ValueError(f"ttl must be > 0 seconds, got {ttl!r}")
        self._predict = predict
        self._open = open
        self._close = close
        self._ttl = ttl
        self._clock = clock
        self._is_close = is_close
        self._lock = threading.Lock()
        self._sessions: dict[str, tuple[object, float]] = {}

    def predict(
        self,
        body: bytes,
        content_type: str | None,
        accept: str | None,
        session_id: str | None = None,
    ) -> HandlerReply:
        """Answers one request; ``session_id`` is the request's ``SessionId``."""
        self._sweep()
        if session_id == "NEW_SESSION":
            return self._open_session(body)
        if session_id is None:
            return self._reply(self._predict(body, content_type, accept, None), accept)
        with self._lock:
            found = self._sessions.get(session_id)
        if found is None:
            raise HandlerError(f"session not found: {session_id}", 400)
        context = found[0]
        if self._is_close(body):
            with self._lock:
                if self._sessions.pop(session_id, None) is None:  # closed concurrently
                    raise HandlerError(f"session not found: {session_id}", 400)
            if self._close is not None:
                self._close(context)
            answer = json.dumps({"ClosedSessionId": session_id}).encode()
            return HandlerReply(answer, "application/json", closed_session_id=session_id)
        return self._reply(self._predict(body, content_type, accept, context), accept)

    @property
    def open_sessions(self) -> int:
        """How many sessions are open (expired ones are closed first)."""
        self._sweep()
        with self._lock:
            return len(self._sessions)

    def close(self) -> None:
        """Closes every open session (the endpoint calls it at shutdown when it loaded this
        handler itself)."""
        with self._lock:
            contexts = [context for context, _ in self._sessions.values()]
            self._sessions.clear()
        for context in contexts:
            if self._close is not None:
                self._close(context)

    def _open_session(self, body: bytes) -> HandlerReply:
        context = self._open(body)
        session_id = uuid.uuid4().hex
        expires = self._clock() + self._ttl
        with self._lock:
            self._sessions[session_id] = (context, expires)
        stamp = format_expires(expires)
        answer = json.dumps({"SessionId": session_id, "Expires": stamp}).encode()
        return HandlerReply(
            answer, "application/json", new_session_id=f"{session_id}; Expires={stamp}"
        )

    def _sweep(self) -> None:
        now = self._clock()
        with self._lock:
            expired = [sid for sid, (_, at) in self._sessions.items() if at <= now]
            contexts = [self._sessions.pop(sid)[0] for sid in expired]
        for context in contexts:
            if self._close is not None:
                self._close(context)

    @staticmethod
    def _reply(result: object, accept: str | None) -> HandlerReply:
        if isinstance(result, HandlerReply):
            return result
        if isinstance(result, str):
            result = result.encode()
        if not isinstance(result, (bytes, bytearray, memoryview)):
            raise TypeError(f"predict must return bytes, str or HandlerReply, got {type(result)}")
        return HandlerReply(bytes(result), response_media_type(accept))
