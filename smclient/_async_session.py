"""``AsyncSession``: a stateful session for asyncio. The transitions are ``SessionCore``'s
(shared with :class:`smclient.Session`); this shell adds an ``asyncio.Lock`` and the awaits.

Leaving the ``async with`` block - normally, by an exception or by cancellation - sends the
close, bounded by ``close_timeout``: a cancelled task still closes its session (the close is
shielded from the cancellation, then the cancellation continues).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, TypeVar

from typing_extensions import Self

from ._errors import InvalidInputError, SMClientError, ValidationError
from ._models import InvocationResult
from ._request import STREAM
from ._retry import RetryPolicy
from ._session_core import SessionCore, attach_close_error, session_policy
from ._session_info import SessionInfo, SessionProtocol, SessionState

if TYPE_CHECKING:
    from ._async_endpoint import AsyncEndpoint
    from ._async_streaming import AsyncResponseStream
    from ._codecs import Codec

__all__ = ["AsyncSession"]

logger = logging.getLogger("smclient")
T = TypeVar("T")


class AsyncSession:
    """A stateful session of an :class:`AsyncEndpoint`: ``async with ep.session(...) as s:``
    opens it (``SessionId="NEW_SESSION"``) on entry and closes it on exit; ``await
    s.invoke(...)`` and ``s.stream(...)`` send its id. Calls on one session are serialized.
    Arguments, states and errors as :class:`smclient.Session`.

    .. versionadded:: 0.2.0
    """

    def __init__(
        self,
        endpoint: AsyncEndpoint,
        *,
        open_body: Any,
        protocol: SessionProtocol,
        content_type: str | None,
        accept: str | None,
        target_model: str | None,
        retry: RetryPolicy | None,
        expiry_margin: float,
        clock: Callable[[], float] = time.time,
        close_timeout: float = 30.0,
    ) -> None:
        """Internal: use :meth:`AsyncEndpoint.session`."""
        if not isinstance(protocol, SessionProtocol):
            raise InvalidInputError("protocol", f"expected a SessionProtocol, got {protocol!r}")
        if not expiry_margin >= 0:
            raise InvalidInputError("expiry_margin", f"got {expiry_margin}", limit="seconds, >= 0")
        if not close_timeout > 0:
            raise InvalidInputError("close_timeout", f"got {close_timeout}", limit="seconds, > 0")
        self._endpoint = endpoint
        self._core = SessionCore(endpoint.name, expiry_margin, clock)
        self._protocol = protocol
        self._target_model = target_model
        self._retry = session_policy(retry or endpoint.retry)
        self._close_timeout = close_timeout
        self._lock = asyncio.Lock()
        self._open_result: InvocationResult | None = None
        # Built (and checked) now: a bad open body fails before anything is sent.
        self._open_request = endpoint.requester.sync.build(
            protocol.open_body(open_body),
            content_type=content_type or protocol.content_type,
            accept=accept,
            target_model=target_model,
            session_id="NEW_SESSION",
        )

    async def open(self) -> Self:
        """Send the open call (done by ``async with``)."""
        core = self._core
        if core.info is not None or core.state is SessionState.OPENING:
            raise InvalidInputError("session", "already opened: a session opens once")
        core.state = SessionState.OPENING
        try:
            result = await self._endpoint.requester.invoke(self._open_request, self._retry)
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
        self._open_result = result
        logger.debug("opened session %s on endpoint %s", core.id, self._endpoint.name)
        return self

    @property
    def info(self) -> SessionInfo:
        """The session's id and expiry."""
        assert self._core.info is not None
        return self._core.info

    @property
    def id(self) -> str:
        """The session id the container created."""
        return self.info.id

    @property
    def state(self) -> SessionState:
        """The lifecycle state (see :attr:`smclient.Session.state`)."""
        return self._core.visible_state()

    @property
    def open_result(self) -> InvocationResult | None:
        """The answer to the open call."""
        return self._open_result

    async def _in_session(self, call: Callable[[str], Awaitable[T]]) -> T:
        async with self._lock:
            self._core.check_usable()
            try:
                return await call(self.id)
            except ValidationError as exc:
                raise self._core.rejected(exc) from exc

    async def invoke(
        self,
        body: Any,
        *,
        codec: Codec | None = None,
        retry: RetryPolicy | None = None,
        **options: Any,
    ) -> InvocationResult:
        """Invoke within the session; arguments, result and errors as
        :meth:`smclient.Session.invoke`."""
        requester = self._endpoint.requester
        options.setdefault("target_model", self._target_model)
        request = requester.sync.build(body, codec=codec, **options)
        policy = self._retry if retry is None else session_policy(retry)
        return await self._in_session(
            lambda session_id: requester.invoke(request.with_session(session_id), policy)
        )

    async def stream(
        self,
        body: Any,
        *,
        codec: Codec | None = None,
        retry: RetryPolicy | None = None,
        **options: Any,
    ) -> AsyncResponseStream:
        """A streamed call within the session (``s = await session.stream(...)``, then
        ``async with s:``); arguments as :meth:`AsyncEndpoint.stream`."""
        requester = self._endpoint.requester
        request = requester.sync.build(body, operation=STREAM, codec=codec, **options)
        policy = self._retry if retry is None else session_policy(retry)
        return await self._in_session(
            lambda session_id: requester.stream(request.with_session(session_id), policy)
        )

    async def close(self) -> InvocationResult | None:
        """Send the close body (idempotent); as :meth:`smclient.Session.close`."""
        core = self._core
        async with self._lock:
            if not core.begin_close():
                return None
            requester = self._endpoint.requester
            request = requester.sync.build(
                self._protocol.close_body(self.id),
                content_type=self._protocol.content_type,
                target_model=self._target_model,
                session_id=self.id,
            )
            try:
                result = await requester.invoke(request, self._retry)
            except ValidationError as exc:
                core.close_rejected(exc)
                return None
            except BaseException:
                core.close_failed()
                raise
            core.closed(result.closed_session_id)
            logger.debug("closed session %s on endpoint %s", self.id, self._endpoint.name)
            return result

    async def _close_within_deadline(self) -> None:
        # Shielded: a cancelled block still closes the session on the server, bounded.
        closing = asyncio.ensure_future(asyncio.wait_for(self.close(), self._close_timeout))
        try:
            await asyncio.shield(closing)
        except asyncio.CancelledError:
            await asyncio.wait_for(asyncio.shield(closing), self._close_timeout)
            raise

    async def __aenter__(self) -> Self:
        return await self.open()

    async def __aexit__(self, exc_type: object, exc: BaseException | None, tb: object) -> None:
        if self._core.info is None:
            return
        try:
            await self._close_within_deadline()
        except Exception as close_error:
            if exc is None:
                raise
            logger.warning(
                "closing session %s on endpoint %s failed while the block raised %s",
                self.id,
                self._endpoint.name,
                type(exc).__name__,
                exc_info=close_error,
            )
            attach_close_error(exc, close_error, self.id)

    def _repr_html_(self) -> str:  # notebooks: a short, escaped summary
        from ._html import session

        return session(self)

    def __repr__(self) -> str:
        info = self._core.info
        return (
            f"AsyncSession(id={info.id if info else None!r}, endpoint={self._endpoint.name!r}, "
            f"state={self.state.value!r})"
        )


# Public classes say smclient.Name (re-exported there lazily), whichever name is touched first.
AsyncSession.__module__ = "smclient"
