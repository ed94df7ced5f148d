"""``Session``: a SageMaker stateful session (protocol.md §4) as a context manager.

The transitions live in :class:`~smclient._session_core.SessionCore`; this class adds
the lock and the endpoint's calls. Retries inside a session: see ``_session_core``.

No keep-alive / renew: SageMaker and the container conventions have no call that extends
a session's TTL (the container sets ``Expires`` once, at open), and the only request that
reaches a session is an inference, which changes the model's state. Renewing a session
means opening a new one.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
import warnings
from collections.abc import Callable, Iterator
from datetime import datetime
from typing import TYPE_CHECKING, Any, TypeVar

from typing_extensions import Self

from ._codecs import encode_open_body
from ._errors import InvalidInputError, SMClientError, ValidationError
from ._models import InvocationResult
from ._request import STREAM
from ._retry import RetryPolicy
from ._session_core import (
    DEFAULT_EXPIRY_MARGIN,
    SessionCore,
    attach_close_error,
    session_policy,
)
from ._session_info import SessionError, SessionInfo, SessionProtocol, SessionState

if TYPE_CHECKING:
    from ._codecs import Codec
    from ._endpoint import Endpoint
    from ._streaming import ResponseStream

__all__ = ["Session"]

logger = logging.getLogger("smclient")
T = TypeVar("T")


class Session:
    """A stateful session of an endpoint: requests with its id reach the instance that
    holds its context (protocol.md §4).

    Make one with :meth:`open` (sends ``SessionId="NEW_SESSION"``) or :meth:`attach`
    (resumes a known id, sends nothing), not with the constructor. As a context manager,
    the block's end - normal or by an exception - closes it::

        with Session.open(endpoint, open_body={"document": text}) as s:
            s.invoke({"question": "What is it about?"})

    Thread-safe: calls on one session are serialized (one request at a time, so turns
    reach the model one after the other); a thread waits for another's call to finish,
    at most ``lock_timeout`` seconds (the longest a call can take under the session's
    retry policy and the endpoint's timeouts), then raises :class:`SessionError`.
    :meth:`close` waits for a call in flight, then closes.

    A session garbage-collected while open or rejected (never closed, never detached) emits a
    ``ResourceWarning`` naming its id: the container keeps its context until it expires.

    .. versionadded:: 0.1.0
    """

    def __init__(
        self,
        endpoint: Endpoint,
        *,
        protocol: SessionProtocol,
        target_model: str | None,
        retry: RetryPolicy | None,
        expiry_margin: float,
        clock: Callable[[], float],
    ) -> None:
        """Internal: use :meth:`open` or :meth:`attach`."""
        if not isinstance(protocol, SessionProtocol):
            raise InvalidInputError("protocol", f"expected a SessionProtocol, got {protocol!r}")
        if not expiry_margin >= 0:
            raise InvalidInputError("expiry_margin", f"got {expiry_margin}", limit="seconds, >= 0")
        self._core = SessionCore(endpoint.name, expiry_margin, clock)
        self._endpoint = endpoint
        self._protocol = protocol
        self._target_model = target_model
        self._retry = session_policy(retry or endpoint.retry)
        self._open_result: InvocationResult | None = None
        self._lock = threading.Lock()
        config = endpoint.config
        # A call holds the lock at most about this long: attempts start before the
        # policy's timeout and each waits up to the connect and read timeouts.
        self.lock_timeout = self._retry.timeout + 2 * config.read_timeout + config.connect_timeout

    @classmethod
    def open(
        cls,
        endpoint: Endpoint,
        *,
        open_body: Any = None,
        protocol: SessionProtocol = SessionProtocol.REQUEST_TYPE,
        content_type: str | None = None,
        accept: str | None = None,
        target_model: str | None = None,
        retry: RetryPolicy | None = None,
        expiry_margin: float = DEFAULT_EXPIRY_MARGIN,
        clock: Callable[[], float] = time.time,
    ) -> Self:
        """Open a session: one ``InvokeEndpoint`` with ``SessionId="NEW_SESSION"``.

        ``open_body``: the context the model should cache (a document, an image...);
        with a preset ``protocol`` a mapping is merged into the open body and bytes or
        str are sent as they are (see :class:`SessionProtocol`). ``protocol``: the
        container's open/close convention (default :attr:`SessionProtocol.REQUEST_TYPE`).
        ``content_type`` (default the protocol's) and ``accept`` of the open call.
        ``target_model`` is sent on every call of the session. ``retry`` (default the
        endpoint's policy) is restricted to failures before the model ran.
        ``expiry_margin`` seconds (default 5) before ``expires_at`` the session counts
        as expired; ``clock`` gives seconds since the epoch (default ``time.time``).

        The open call cannot be streamed: ``InvokeEndpointWithResponseStream`` accepts
        an existing session id but cannot create a session (the service refuses).

        Raises the endpoint's errors (:class:`smclient.SMClientError`), and
        :class:`SessionHeaderError` when the answer has no valid ``NewSessionId`` (the
        container does not support sessions, or sent a malformed header).
        """
        session = cls(
            endpoint,
            protocol=protocol,
            target_model=target_model,
            retry=retry,
            expiry_margin=expiry_margin,
            clock=clock,
        )
        body, body_type = encode_open_body(protocol.open_body(open_body))  # names open_body
        core = session._core
        core.state = SessionState.OPENING
        try:
            requester = endpoint.requester
            request = requester.build(
                body,
                content_type=content_type or protocol.content_type or body_type,
                accept=accept,
                target_model=target_model,
                session_id="NEW_SESSION",
            )
            result = requester.invoke(request, session._retry)
        except SMClientError as exc:
            core.open_failed(exc)
            raise
        except BaseException:
            core.state = SessionState.CLOSED
            raise
        try:
            core.opened(result.new_session_id)
        except BaseException:
            core.state = SessionState.CLOSED
            raise
        session._open_result = result
        logger.debug("opened session %s on endpoint %s", core.id, endpoint.name)
        return session

    @classmethod
    def attach(
        cls,
        endpoint: Endpoint,
        session_id: str | SessionInfo,
        expires_at: datetime | None = None,
        *,
        protocol: SessionProtocol = SessionProtocol.REQUEST_TYPE,
        target_model: str | None = None,
        retry: RetryPolicy | None = None,
        expiry_margin: float = DEFAULT_EXPIRY_MARGIN,
        clock: Callable[[], float] = time.time,
    ) -> Self:
        """Resume a session opened elsewhere (another process, kernel or object); sends
        nothing. ``session_id`` is an id or a :class:`SessionInfo` (for example from
        :meth:`SessionInfo.from_json`); ``expires_at`` a timezone-aware ``datetime``
        (``None``: unknown, never expires client-side). Other arguments as :meth:`open`.
        The attached session owns the server-side session: close or detach it.
        """
        if isinstance(session_id, SessionInfo):
            if expires_at is not None:
                raise InvalidInputError("expires_at", "already given by the SessionInfo")
            info = session_id
        else:
            info = SessionInfo(session_id, expires_at)
        session = cls(
            endpoint,
            protocol=protocol,
            target_model=target_model,
            retry=retry,
            expiry_margin=expiry_margin,
            clock=clock,
        )
        session._core.attached(info)
        return session

    # -- what it is ----------------------------------------------------------------------

    @property
    def info(self) -> SessionInfo:
        """The session's id and expiry (JSON-able: :meth:`SessionInfo.to_json`)."""
        assert self._core.info is not None  # set before a Session leaves open() / attach()
        return self._core.info

    @property
    def id(self) -> str:
        """The session id the container created."""
        return self.info.id

    @property
    def expires_at(self) -> datetime | None:
        """When the container drops the session (UTC), ``None`` if unknown."""
        return self.info.expires_at

    @property
    def expires_in(self) -> float | None:
        """Seconds until ``expires_at`` by ``clock`` (negative once past; the margin is
        not subtracted), ``None`` if unknown."""
        expires = self.info.expires_at
        return None if expires is None else expires.timestamp() - self._core.clock()

    @property
    def state(self) -> SessionState:
        """The lifecycle state; an open session past its expiry minus the margin reads
        ``EXPIRED``."""
        return self._core.visible_state()

    @property
    def endpoint(self) -> Endpoint:
        """The :class:`Endpoint` this session talks to."""
        return self._endpoint

    @property
    def protocol(self) -> SessionProtocol:
        """How the session id travels: the :class:`SessionProtocol` given at open/attach."""
        return self._protocol

    @property
    def retry(self) -> RetryPolicy:
        """The session's retry policy (failures before the model ran only)."""
        return self._retry

    @property
    def open_result(self) -> InvocationResult | None:
        """The answer to the open call (``None`` for an attached session)."""
        return self._open_result

    # -- calls ---------------------------------------------------------------------------

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        if not self._lock.acquire(timeout=self.lock_timeout):
            raise SessionError(
                f"session {self.id} is busy: another thread's call held it for more than "
                f"{self.lock_timeout:.0f} s",
                session_id=self.id,
                endpoint=self._endpoint.name,
            )
        try:
            yield
        finally:
            self._lock.release()

    def _in_session(self, call: Callable[[str], T]) -> T:
        """Run ``call(session_id)`` holding the lock, if the session is usable; map a 400
        ``ValidationError`` to the session errors (the session becomes ``REJECTED``: no
        more calls, but the close body is still sent - see ``SessionCore.rejected``)."""
        with self._locked():
            self._core.check_usable()
            try:
                return call(self.id)
            except ValidationError as exc:
                raise self._core.rejected(exc) from exc

    def invoke(
        self,
        body: Any,
        *,
        content_type: str | None = None,
        accept: str | None = None,
        target_model: str | None = None,
        target_variant: str | None = None,
        target_container_hostname: str | None = None,
        inference_component: str | None = None,
        inference_id: str | None = None,
        custom_attributes: str | None = None,
        enable_explanations: str | None = None,
        codec: Codec | None = None,
        retry: RetryPolicy | None = None,
    ) -> InvocationResult:
        """Invoke the endpoint within the session (``SessionId=<id>``); the arguments and
        result are those of :meth:`smclient.Endpoint.invoke`. ``target_model`` defaults
        to the session's; ``retry`` (default the session's) is restricted to failures
        before the model ran.

        Raises :class:`SessionClosedError` / :class:`SessionExpiredError` before sending
        when the session is not open or past its expiry, and the same errors (with
        ``server_error``) when the endpoint answers HTTP 400 ``ValidationError``: the
        session is then ``REJECTED`` (or ``EXPIRED``) and sends no more calls, but
        :meth:`close` (and leaving the ``with`` block) still sends the close body.
        """
        requester = self._endpoint.requester
        request = requester.build(
            body,
            codec=codec,
            content_type=content_type,
            accept=accept,
            target_model=target_model or self._target_model,
            target_variant=target_variant,
            target_container_hostname=target_container_hostname,
            inference_component=inference_component,
            inference_id=inference_id,
            custom_attributes=custom_attributes,
            enable_explanations=enable_explanations,
        )
        policy = self._retry if retry is None else session_policy(retry)
        return self._in_session(
            lambda session_id: requester.invoke(request.with_session(session_id), policy)
        )

    def stream(
        self,
        body: Any,
        *,
        content_type: str | None = None,
        accept: str | None = None,
        custom_attributes: str | None = None,
        target_variant: str | None = None,
        target_container_hostname: str | None = None,
        inference_component: str | None = None,
        inference_id: str | None = None,
        codec: Codec | None = None,
        retry: RetryPolicy | None = None,
    ) -> ResponseStream:
        """Invoke within the session with a streamed answer; the arguments and result are
        those of :meth:`smclient.Endpoint.stream` (``SessionId=<id>`` is added). Errors
        as :meth:`invoke`. The session's lock covers starting the stream, not reading it:
        read or close the stream before the next call if turns must not overlap.

        Only an open session can stream: the open call itself cannot be streamed
        (``InvokeEndpointWithResponseStream`` cannot create a session).
        """
        requester = self._endpoint.requester
        request = requester.build(
            body,
            operation=STREAM,
            codec=codec,
            content_type=content_type,
            accept=accept,
            custom_attributes=custom_attributes,
            target_variant=target_variant,
            target_container_hostname=target_container_hostname,
            inference_component=inference_component,
            inference_id=inference_id,
        )
        policy = self._retry if retry is None else session_policy(retry)
        return self._in_session(
            lambda session_id: requester.stream(request.with_session(session_id), policy)
        )

    def close(self) -> InvocationResult | None:
        """Close the session: send the protocol's close body with ``SessionId=<id>`` and
        check that ``ClosedSessionId`` names this session. Idempotent. A ``REJECTED``
        session is closed too: the 400 that rejected a call may have been about the
        request, not the session.

        Returns the close call's answer, or ``None`` when nothing was sent (already
        closed, detached or expired - the container drops an expired session itself).
        A ``ValidationError`` (the endpoint no longer knows the id) counts as closed and
        is logged. Other failures are raised and leave the session as it was (``OPEN``
        or ``REJECTED``) so that ``close()`` can be called again; a missing or different
        ``ClosedSessionId`` raises :class:`SessionHeaderError`.
        """
        core = self._core
        with self._locked():
            if not core.begin_close():
                return None
            try:
                requester = self._endpoint.requester
                request = requester.build(
                    self._protocol.close_body(self.id),
                    content_type=self._protocol.content_type,
                    target_model=self._target_model,
                    session_id=self.id,
                )
                result = requester.invoke(request, self._retry)
            except ValidationError as exc:
                core.close_rejected(exc)
                return None
            except BaseException:
                core.close_failed()
                raise
            core.closed(result.closed_session_id)
            logger.debug("closed session %s on endpoint %s", self.id, self._endpoint.name)
            return result

    def detach(self) -> SessionInfo:
        """Hand the session over without closing it (to another process, kernel or
        object that will :meth:`attach` and close it); returns its :class:`SessionInfo`.
        This object sends nothing more and emits no ``ResourceWarning``."""
        with self._locked():
            return self._core.detach()

    # -- context manager, finalizer ------------------------------------------------------

    def __enter__(self) -> Self:
        return self

    def __exit__(self, exc_type: object, exc: BaseException | None, tb: object) -> None:
        try:
            self.close()
        except Exception as close_error:
            if exc is None:
                raise
            # Never hide the block's exception: log the close failure and attach it.
            logger.warning(
                "closing session %s on endpoint %s failed while the block raised %s",
                self.id,
                self._endpoint.name,
                type(exc).__name__,
                exc_info=close_error,
            )
            attach_close_error(exc, close_error, self.id)

    def __del__(self) -> None:
        core = getattr(self, "_core", None)
        if core is not None and core.leaked():
            warnings.warn(
                f"session {core.id} on endpoint {core.endpoint} was garbage-collected while "
                f"{core.state.value}: close it ('with', or .close()) or .detach() it",
                ResourceWarning,
                stacklevel=2,
                source=self,
            )

    def __reduce__(self) -> Any:
        raise TypeError(
            "a Session does not pickle: pass s.detach() (a SessionInfo, or its to_json()) "
            "and Session.attach() it on the other side"
        )

    def _repr_html_(self) -> str:  # notebooks: a short, escaped summary
        from ._html import session

        return session(self)

    def __repr__(self) -> str:
        info = self._core.info
        return (
            f"Session(id={info.id if info else None!r}, endpoint={self._endpoint.name!r}, "
            f"state={self.state.value!r}, expires_at={info.expires_at if info else None!r})"
        )
