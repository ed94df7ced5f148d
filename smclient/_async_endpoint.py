"""``AsyncEndpoint``: the asyncio facade. The same arguments, defaults, results and errors as
:class:`smclient.Endpoint`; only the I/O differs.

Shared with the sync API, not copied: request building and validation
(:class:`~smclient._send.Requester` / :mod:`smclient._request`), the transport choice and
the request bytes (:class:`~smclient._fasthttp.FastTransport`), the retry decisions
(:func:`smclient._retry.run_async` drives the same ``_Call``), error translation, the
session state machine (``SessionCore``), event-stream decoding (``FrameDecoder``) and the
line / JSON / SSE splitters. Runtime calls go over asyncio sockets; where botocore hooks
must see a call (moto, a ``Stubber``, event handlers) or a proxy is configured, the boto3
client runs in a worker thread (``asyncio.to_thread``) so the loop never blocks.
"""

from __future__ import annotations

import asyncio
import copy
import time
from collections.abc import AsyncIterable, AsyncIterator, Awaitable, Callable, Generator, Iterable
from typing import TYPE_CHECKING, Any, Literal

import attrs
from typing_extensions import Self

from . import _validation as check
from ._async_streaming import AsyncResponseStream
from ._asynchttp import AsyncPools, AsyncStreamResponse, send_async
from ._clients import ClientConfig
from ._codecs import Codec
from ._endpoint import Endpoint
from ._errors import ErrorContext, translate
from ._fasthttp import FastTransport
from ._models import InvocationResult
from ._request import ASYNC, INVOKE, STREAM, AsyncResponse, InvokeResponse, Request
from ._retry import Outcome, RetryPolicy, run_async
from ._send import Requester, result_of
from ._session_info import SessionProtocol
from ._streaming import ResponseStream

if TYPE_CHECKING:
    from ._async_session import AsyncSession
    from ._asyncinference import AsyncInvocation, Completion, Poller, WaitResult
    from ._batch._aio import AsyncBatchRun
    from ._batch._progress import BatchProgress
    from ._duplex import AsyncDuplexStream, ReconnectEvent, ReconnectPolicy

__all__ = ["AsyncEndpoint", "AsyncModelHandle", "AsyncRequester"]


class AsyncRequester:
    """The request layer's asyncio sender: the sync :class:`Requester` builds, this sends.

    .. versionadded:: 0.2.0
    """

    def __init__(self, requester: Requester) -> None:
        self.sync = requester
        self.pools = AsyncPools()

    async def _transport(self) -> Any:
        factory = self.sync.factory
        chosen = factory.ready_transport()
        if chosen is None:  # first call: building clients may block (credentials, files)
            chosen = await asyncio.to_thread(factory.transport)
        return chosen

    async def _send(self, request: Request) -> Any:
        chosen = await self._transport()
        if isinstance(chosen, FastTransport):
            return await send_async(chosen, self.pools, request)
        # botocore hooks must see this call (or a proxy is set): the boto3 client, in a thread.
        return await asyncio.to_thread(chosen.send, request)

    async def invoke(self, request: Request, retry: RetryPolicy | None = None) -> InvocationResult:
        async def attempt() -> InvokeResponse:
            response = await self._send(request)
            assert isinstance(response, InvokeResponse)
            return response

        response, outcome = await run_async(
            check.retry_policy(retry) or self.sync.retry,
            attempt,
            endpoint=self.sync.name,
            operation=INVOKE,
            target_model=request.target_model,
        )
        return result_of(response, outcome)

    async def stream(
        self, request: Request, retry: RetryPolicy | None = None
    ) -> AsyncResponseStream:
        attempts = 0

        async def attempt() -> AsyncResponseStream:
            nonlocal attempts
            attempts += 1
            started = time.monotonic()
            ctx = ErrorContext(self.sync.name, STREAM, None, attempts)
            response = await self._send(request)
            if isinstance(response, AsyncStreamResponse):
                opened = AsyncResponseStream(response, ctx, started=started)
            else:  # the boto3 client in a thread: its body is read in a thread too
                opened = AsyncResponseStream.from_sync(
                    ResponseStream(response, ctx, started=started)
                )
            await opened.prefetch()
            return opened

        opened, _outcome = await run_async(
            check.retry_policy(retry) or self.sync.retry,
            attempt,
            endpoint=self.sync.name,
            operation=STREAM,
        )
        return opened

    async def submit(
        self, request: Request, retry: RetryPolicy | None = None
    ) -> tuple[AsyncResponse, Outcome]:
        async def attempt() -> AsyncResponse:
            response = await self._send(request)
            assert isinstance(response, AsyncResponse)
            return response

        return await run_async(
            check.retry_policy(retry) or self.sync.retry,
            attempt,
            endpoint=self.sync.name,
            operation=ASYNC,
        )

    async def aclose(self) -> None:
        await self.pools.aclose()


class AsyncEndpoint:
    """A SageMaker inference endpoint for asyncio code: ``await ep.invoke(...)``.

    The constructor takes the arguments of :class:`smclient.Endpoint`, with the same
    defaults (``config`` timeouts and pool size, ``retry`` policy, ``codec``); results and
    errors are the same types. Runtime calls (``invoke``, model handles, ``stream``,
    sessions) use asyncio sockets on the running loop - no threads - unless moto, a
    ``Stubber``, a botocore event handler or a proxy needs the boto3 client, which then runs
    in a worker thread (see docs/asyncio.md). Connection pools are per event loop: one
    ``AsyncEndpoint`` works from several loops (threads). Release them with
    ``await ep.aclose()`` or ``async with AsyncEndpoint(...) as ep:``.

    .. versionadded:: 0.2.0
    """

    def __init__(
        self,
        name: str,
        *,
        region: str | None = None,
        boto3_session: Any | None = None,
        endpoint_url: str | None = None,
        aws_endpoint_url: str | None = None,
        config: ClientConfig | None = None,
        retry: RetryPolicy | None = None,
        codec: Codec | None = None,
    ) -> None:
        # The sync facade holds the shared parts: checks, client factory, request builder.
        self._endpoint = Endpoint(
            name,
            region=region,
            boto3_session=boto3_session,
            endpoint_url=endpoint_url,
            aws_endpoint_url=aws_endpoint_url,
            config=config,
            retry=retry,
            codec=codec,
        )
        self._requester = AsyncRequester(self._endpoint.requester)

    @property
    def name(self) -> str:
        """The endpoint's name."""
        return self._endpoint.name

    @property
    def region(self) -> str | None:
        """The region given to the constructor (``None``: boto3's default resolution)."""
        return self._endpoint.region

    @property
    def endpoint_url(self) -> str | None:
        """The runtime endpoint URL, when one was given."""
        return self._endpoint.endpoint_url

    @property
    def config(self) -> ClientConfig:
        """The client settings."""
        return self._endpoint.config

    @property
    def retry(self) -> RetryPolicy:
        """The default retry policy of this endpoint's calls."""
        return self._endpoint.retry

    @property
    def sync(self) -> Endpoint:
        """The synchronous :class:`Endpoint` with the same settings and clients (for the
        calls that have no asyncio form, or to hand to sync code)."""
        return self._endpoint

    @property
    def requester(self) -> AsyncRequester:
        """The request layer this endpoint's features send through (see
        :attr:`Endpoint.requester`)."""
        return self._requester

    async def transport(self) -> str:
        """The transport the next runtime call would use: ``"fast"`` (asyncio sockets) or
        ``"boto3"`` (the boto3 client in a worker thread)."""
        try:
            return str((await self._requester._transport()).name)
        except Exception as exc:  # no region, no credentials...: the typed error
            if type(exc).__module__.startswith("botocore"):
                raise translate(exc, ErrorContext(self.name)) from exc
            raise

    def client(self, service: str = "sagemaker-runtime") -> Any:
        """The boto3 client this endpoint uses for ``service`` (built on first use)."""
        return self._endpoint.client(service)

    def model(self, target_model: str) -> AsyncModelHandle:
        """A handle that invokes ``target_model`` on this multi-model endpoint; its
        ``await handle.invoke(...)`` rides out cold starts like :class:`ModelHandle`
        (waiting with ``asyncio.sleep``)."""
        return AsyncModelHandle(self, check.target_model(target_model))

    async def invoke(
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
        """Invoke the endpoint (``InvokeEndpoint``); arguments, result and errors as
        :meth:`Endpoint.invoke`. Cancelling the task closes the request's connection."""
        request = self._requester.sync.build(
            body,
            codec=codec,
            content_type=content_type,
            accept=accept,
            target_model=target_model,
            target_variant=target_variant,
            target_container_hostname=target_container_hostname,
            inference_component=inference_component,
            inference_id=inference_id,
            custom_attributes=custom_attributes,
            enable_explanations=enable_explanations,
        )
        return await self._requester.invoke(request, retry)

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
        session_id: str | None = None,
        codec: Codec | None = None,
        retry: RetryPolicy | None = None,
    ) -> _StreamOpener:
        """A streamed invocation: ``async with ep.stream(body) as s: async for line in
        s.lines(): ...``; arguments as :meth:`Endpoint.stream`. The arguments are checked
        here, before anything is sent; the request is sent on entering the block (or by
        ``await ep.stream(...)``, then close the stream yourself)."""
        request = self._requester.sync.build(
            body,
            operation=STREAM,
            codec=codec,
            content_type=content_type,
            accept=accept,
            session_id=session_id,
            target_variant=target_variant,
            target_container_hostname=target_container_hostname,
            inference_component=inference_component,
            inference_id=inference_id,
            custom_attributes=custom_attributes,
        )
        return _StreamOpener(lambda: self._requester.stream(request, retry))

    def session(
        self,
        *,
        open_body: Any = None,
        protocol: SessionProtocol = SessionProtocol.REQUEST_TYPE,
        content_type: str | None = None,
        accept: str | None = None,
        target_model: str | None = None,
        retry: RetryPolicy | None = None,
        expiry_margin: float = 5.0,
        clock: Callable[[], float] = time.time,
        close_timeout: float = 30.0,
    ) -> AsyncSession:
        """A stateful session: ``async with ep.session(open_body=...) as s:``; arguments as
        :meth:`Endpoint.session`, plus ``close_timeout`` (seconds, default 30): how long the
        close may take when the block is left, also by cancellation."""
        from ._async_session import AsyncSession

        return AsyncSession(
            self,
            open_body=open_body,
            protocol=protocol,
            content_type=content_type,
            accept=accept,
            target_model=target_model,
            retry=retry,
            expiry_margin=expiry_margin,
            clock=clock,
            close_timeout=close_timeout,
        )

    def invoke_many(
        self,
        items: Iterable[Any] | AsyncIterable[Any],
        *,
        concurrency: int = 16,
        window: int | None = None,
        ordered: bool = True,
        stop_on_error: bool = False,
        rate_limit: float | None = None,
        progress: bool | BatchProgress = False,
        content_type: str | None = None,
        accept: str | None = None,
        custom_attributes: str | None = None,
        codec: Codec | None = None,
        retry: RetryPolicy | None = None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] | None = None,
    ) -> AsyncBatchRun:
        """Invoke the endpoint once per item, ``concurrency`` calls at a time, as tasks on
        the running loop: ``async for outcome in ep.invoke_many(records): ...``.

        The arguments and outcomes are those of :meth:`Endpoint.invoke_many`; ``items`` may
        also be an async iterable, and ``sleep`` (the rate limit's wait) is a coroutine
        function (default ``asyncio.sleep``). Cancelling the iterating task, ``aclose()`` or
        leaving ``async with`` cancels and awaits every call in flight.

        .. versionadded:: 0.2.0
        """
        from ._batch import ainvoke_many

        return ainvoke_many(
            self,
            items,
            concurrency=concurrency,
            window=window,
            ordered=ordered,
            stop_on_error=stop_on_error,
            rate_limit=rate_limit,
            progress=progress,
            content_type=content_type,
            accept=accept,
            custom_attributes=custom_attributes,
            codec=codec,
            retry=retry,
            clock=clock,
            sleep=sleep,
        )

    def duplex(
        self,
        *,
        target_variant: str | None = None,
        model_invocation_path: str | None = None,
        model_query_string: str | None = None,
        fips: bool = False,
        part_size: int = 1024 * 1024,
        raw_parts: bool = False,
        read_timeout: float | None = None,
        close_timeout: float = 5.0,
        wait_for_response: bool = True,
        max_message_bytes: int = 64 * 1024 * 1024,
        reconnect: ReconnectPolicy | None = None,
        on_reconnect: Callable[[ReconnectEvent], Awaitable[None] | None] | None = None,
    ) -> AsyncDuplexStream:
        """A bidirectional stream (``InvokeEndpointWithBidirectionalStream``, HTTP/2):
        ``async with ep.duplex() as stream:``, ``await stream.send(...)``, ``async for
        message in stream`` (or ``stream = await ep.duplex()`` and ``await
        stream.aclose()``). The arguments are those of :meth:`Endpoint.duplex`;
        ``on_reconnect`` may be a coroutine function. Needs ``smclient[duplex]``.

        .. versionadded:: 0.2.0
        """
        return self._endpoint.duplex_async(
            target_variant=target_variant,
            model_invocation_path=model_invocation_path,
            model_query_string=model_query_string,
            fips=fips,
            part_size=part_size,
            raw_parts=raw_parts,
            read_timeout=read_timeout,
            close_timeout=close_timeout,
            wait_for_response=wait_for_response,
            max_message_bytes=max_message_bytes,
            reconnect=reconnect,
            on_reconnect=on_reconnect,
        )

    async def submit(self, body: Any = None, **options: Any) -> AsyncInvocation:
        """Submit an asynchronous inference; arguments and result as :meth:`Endpoint.submit`.
        The S3 upload runs in a worker thread (boto3's managed transfer has no asyncio form);
        the ``InvokeEndpointAsync`` call itself is sent on this loop, like every runtime call.
        """
        loop = asyncio.get_running_loop()
        bridged = copy.copy(self._endpoint)
        bridged._requester = _LoopBridge(self._endpoint.requester, self._requester, loop)
        handle = await asyncio.to_thread(bridged.submit, body, **options)
        # The handle keeps the plain endpoint (the bridge is bound to this loop).
        return attrs.evolve(handle, endpoint=self._endpoint)

    async def aclose(self) -> None:
        """Close the running loop's connections and the boto3 clients' pools. The endpoint
        stays usable. An endpoint used from several loops is closed from each of them."""
        await self._requester.aclose()
        self._endpoint.close()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    def __reduce__(self) -> Any:
        # Pools and loops stay behind; the settings travel as the sync endpoint's do.
        return (_rebuild, (self._endpoint,))

    def __repr__(self) -> str:
        url = self.endpoint_url
        extra = f", endpoint_url={url!r}" if url else ""
        return f"AsyncEndpoint({self.name!r}, region={self.region!r}{extra})"


def _rebuild(endpoint: Endpoint) -> AsyncEndpoint:
    rebuilt = AsyncEndpoint.__new__(AsyncEndpoint)
    rebuilt._endpoint = endpoint
    rebuilt._requester = AsyncRequester(endpoint.requester)
    return rebuilt


class _LoopBridge(Requester):
    """The sync submit's requester, run in a worker thread: its ``InvokeEndpointAsync`` is
    sent by the asyncio requester on the endpoint's loop (the thread waits for it)."""

    def __init__(
        self, base: Requester, on_loop: AsyncRequester, loop: asyncio.AbstractEventLoop
    ) -> None:
        super().__init__(base.name, base.factory, base.retry, base.codec)
        self._on_loop = on_loop
        self._loop = loop

    def submit(
        self, request: Request, retry: RetryPolicy | None = None
    ) -> tuple[AsyncResponse, Outcome]:
        sent = asyncio.run_coroutine_threadsafe(self._on_loop.submit(request, retry), self._loop)
        return sent.result()


class _StreamOpener:
    """``async with ep.stream(...) as s`` or ``s = await ep.stream(...)``."""

    def __init__(self, opening: Callable[[], Awaitable[AsyncResponseStream]]) -> None:
        self._opening = opening  # called once: nothing is sent until awaited or entered
        self._stream: AsyncResponseStream | None = None

    def __await__(self) -> Generator[Any, None, AsyncResponseStream]:
        return self._opening().__await__()

    async def __aenter__(self) -> AsyncResponseStream:
        self._stream = await self._opening()
        return self._stream

    async def __aexit__(self, *exc_info: object) -> None:
        if self._stream is not None:
            await self._stream.aclose()


@attrs.frozen
class AsyncModelHandle:
    """One model of a multi-model endpoint, for asyncio: ``ep.model("model-a.tar.gz")``.
    ``await handle.invoke(...)`` takes the arguments of :meth:`AsyncEndpoint.invoke` and
    sends ``TargetModel``; cold starts (``ModelNotReadyException``) are retried by the
    endpoint's policy, waiting with ``asyncio.sleep``.

    .. versionadded:: 0.2.0
    """

    endpoint: AsyncEndpoint
    target_model: str

    async def invoke(self, body: Any, **options: Any) -> InvocationResult:
        """Invoke this model; the arguments are those of :meth:`AsyncEndpoint.invoke`."""
        return await self.endpoint.invoke(body, target_model=self.target_model, **options)

    def invoke_many(
        self,
        items: Iterable[Any] | AsyncIterable[Any],
        *,
        concurrency: int = 16,
        window: int | None = None,
        ordered: bool = True,
        stop_on_error: bool = False,
        rate_limit: float | None = None,
        progress: bool | BatchProgress = False,
        content_type: str | None = None,
        accept: str | None = None,
        custom_attributes: str | None = None,
        codec: Codec | None = None,
        retry: RetryPolicy | None = None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] | None = None,
    ) -> AsyncBatchRun:
        """Invoke this model once per item; the arguments are those of
        :meth:`AsyncEndpoint.invoke_many` (a :class:`BatchItem` naming another target model
        fails with :class:`InvalidInputError`).

        .. versionadded:: 0.2.0
        """
        from ._batch import ainvoke_many

        return ainvoke_many(
            self,
            items,
            concurrency=concurrency,
            window=window,
            ordered=ordered,
            stop_on_error=stop_on_error,
            rate_limit=rate_limit,
            progress=progress,
            content_type=content_type,
            accept=accept,
            custom_attributes=custom_attributes,
            codec=codec,
            retry=retry,
            clock=clock,
            sleep=sleep,
        )


_WAIT_SLICE = 2.0  # seconds a worker thread polls before the loop checks for cancellation


async def wait_async(
    invocations: Iterable[AsyncInvocation],
    *,
    timeout: float | None = None,
    return_when: Literal["FIRST_COMPLETED", "FIRST_EXCEPTION", "ALL_COMPLETED"] = "ALL_COMPLETED",
    poller: Poller | None = None,
) -> WaitResult:
    """:func:`smclient.wait` for asyncio: the same poller logic and result (``(done,
    not_done)``), awaited without blocking the loop. The poller's S3 and SNS/SQS calls run in
    a worker thread, in slices of at most 2 s resumed with ``not_done``, so a cancelled
    ``wait_async`` leaves nothing polling for longer than that.

    ``timeout`` (seconds, default: until the last invocation's deadline) and
    ``return_when`` as :func:`smclient.wait`.

    .. versionadded:: 0.2.0
    """
    from ._asyncinference import WaitResult, wait

    items = list(invocations)
    now = time.time()
    if timeout is None:
        timeout = max((h.deadline for h in items), default=now) - now
    deadline = time.monotonic() + max(timeout, 0.0)
    done: list[AsyncInvocation] = []
    pending = items
    while True:
        left = deadline - time.monotonic()
        piece = await asyncio.to_thread(
            wait,
            pending,
            timeout=max(min(left, _WAIT_SLICE), 0.0),
            return_when=return_when,
            poller=poller,
        )
        done += piece.done
        pending = piece.not_done
        finished = not pending or (return_when == "FIRST_COMPLETED" and bool(done))
        if not finished and return_when == "FIRST_EXCEPTION" and piece.done:
            # A failure's details are an S3 read: asked in the worker thread too.
            finished = await asyncio.to_thread(_any_failed, piece.done)
        if finished or left <= _WAIT_SLICE:
            order = {id(h): i for i, h in enumerate(items)}
            done.sort(key=lambda h: order[id(h)])
            return WaitResult(done, pending)


def _any_failed(handles: list[AsyncInvocation]) -> bool:
    return any(h.exception() is not None for h in handles)


async def as_completed_async(
    invocations: Iterable[AsyncInvocation],
    *,
    timeout: float | None = None,
    poller: Poller | None = None,
) -> AsyncIterator[Completion]:
    """:func:`smclient.as_completed` for asyncio: ``async for c in as_completed_async(h)``;
    the same poller, in a worker thread. Leaving the loop early (or cancelling it) leaves that
    thread polling until the next completion or ``timeout``: prefer :func:`wait_async`
    (which stops within 2 s) where that matters.

    .. versionadded:: 0.2.0
    """
    from ._asyncinference import as_completed

    items = list(invocations)
    iterator = await asyncio.to_thread(as_completed, items, timeout=timeout, poller=poller)
    done = object()
    while True:
        completion = await asyncio.to_thread(next, iterator, done)
        if completion is done:
            return
        yield completion  # type: ignore[misc]


# Public classes say smclient.Name (re-exported there lazily), whichever name is touched first.
for _cls in (AsyncEndpoint, AsyncModelHandle):
    _cls.__module__ = "smclient"
del _cls
