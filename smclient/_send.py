"""Sending: a :class:`Requester` turns checked :class:`~smclient._request.Request` values into
results, on the transport chosen for each call, under the one retry loop.

``Endpoint``, ``ModelHandle``, ``Session``, streams and ``submit`` all send through an
endpoint's requester; none calls another's private methods.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from . import _validation as check
from ._codecs import Codec
from ._errors import ErrorContext
from ._models import InvocationResult
from ._request import ASYNC, INVOKE, STREAM, AsyncResponse, InvokeResponse, Request, build_invoke
from ._retry import Outcome, RetryPolicy, run

if TYPE_CHECKING:
    from ._clients import ClientFactory
    from ._streaming import ResponseStream

__all__ = ["Requester", "result_of"]


def result_of(response: InvokeResponse, outcome: Outcome) -> InvocationResult:
    """The public result of a sent ``InvokeEndpoint`` (shared by the sync and async APIs)."""
    return InvocationResult(
        body=response.body,
        content_type=response.content_type,
        invoked_production_variant=response.invoked_production_variant,
        custom_attributes=response.custom_attributes,
        request_id=response.request_id,
        attempts=outcome.attempts,
        elapsed=outcome.elapsed,
        new_session_id=response.new_session_id,
        closed_session_id=response.closed_session_id,
    )


class Requester:
    """The request layer of one endpoint: builds requests (no I/O) and sends them.

    ``name`` is the endpoint, ``factory`` its clients and transports, ``retry`` and ``codec``
    the endpoint's defaults.

    .. versionadded:: 0.2.0
    """

    def __init__(
        self, name: str, factory: ClientFactory, retry: RetryPolicy, codec: Codec | None
    ) -> None:
        self.name = name
        self.factory = factory
        self.retry = retry
        self.codec = codec

    def build(self, body: Any, *, operation: str = INVOKE, **options: Any) -> Request:
        """A checked request (see :func:`smclient._request.build_invoke`); ``codec`` defaults
        to the endpoint's."""
        codec = check.codec(options.pop("codec", None)) or self.codec
        return build_invoke(self.name, body, operation=operation, codec=codec, **options)

    def invoke(self, request: Request, retry: RetryPolicy | None = None) -> InvocationResult:
        """Send an ``InvokeEndpoint`` request under ``retry`` (default the endpoint's)."""
        factory = self.factory

        def attempt() -> InvokeResponse:
            response = factory.transport().send(request)
            assert isinstance(response, InvokeResponse)
            return response

        response, outcome = run(
            check.retry_policy(retry) or self.retry,
            attempt,
            endpoint=self.name,
            operation=INVOKE,
            target_model=request.target_model,
        )
        return result_of(response, outcome)

    def stream(self, request: Request, retry: RetryPolicy | None = None) -> ResponseStream:
        """Send a streamed request; the stream is open up to its first payload chunk, so that
        an error before any byte reaches the caller fails (and may retry) the attempt."""
        from ._streaming import ResponseStream

        factory = self.factory
        attempts = 0

        def attempt() -> ResponseStream:
            nonlocal attempts
            attempts += 1
            started = time.monotonic()
            response = factory.transport().send(request)
            ctx = ErrorContext(self.name, STREAM, None, attempts)
            opened = ResponseStream(response, ctx, started=started)  # type: ignore[arg-type]
            opened.prefetch()
            return opened

        opened, _outcome = run(
            check.retry_policy(retry) or self.retry, attempt, endpoint=self.name, operation=STREAM
        )
        return opened

    def submit(
        self, request: Request, retry: RetryPolicy | None = None
    ) -> tuple[AsyncResponse, Outcome]:
        """Send an ``InvokeEndpointAsync`` request."""
        factory = self.factory

        def attempt() -> AsyncResponse:
            response = factory.transport().send(request)
            assert isinstance(response, AsyncResponse)
            return response

        return run(
            check.retry_policy(retry) or self.retry, attempt, endpoint=self.name, operation=ASYNC
        )
