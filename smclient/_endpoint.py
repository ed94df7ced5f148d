"""The ``Endpoint`` facade and the multi-model ``ModelHandle``."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, Literal, overload

import attrs
from typing_extensions import Self

from . import _validation as check
from ._clients import ClientConfig, ClientFactory, check_config, check_url
from ._codecs import Codec
from ._errors import ErrorContext, translate
from ._models import InvocationResult
from ._request import STREAM
from ._retry import RetryPolicy
from ._send import Requester
from ._session import Session
from ._session_info import SessionProtocol
from ._streaming import ResponseStream

if TYPE_CHECKING:
    from collections.abc import Iterable

    # boto3-stubs (a dev dependency) give each service's client its type; never imported at
    # run time. Without them installed, these names are Any for a type checker.
    from mypy_boto3_s3 import S3Client
    from mypy_boto3_sagemaker import SageMakerClient
    from mypy_boto3_sagemaker_runtime import SageMakerRuntimeClient
    from mypy_boto3_sns import SNSClient
    from mypy_boto3_sqs import SQSClient

    from ._asyncinference import AsyncInvocation
    from ._batch import BatchRun
    from ._batch._progress import BatchProgress
    from ._duplex import (
        AsyncDuplexStream,
        DuplexStream,
        ReconnectEvent,
        ReconnectPolicy,
        StreamSettings,
    )

__all__ = ["Endpoint", "ModelHandle"]

_DEFAULT_RETRY = RetryPolicy()


class Endpoint:
    """A SageMaker inference endpoint.

    ``Endpoint("my-endpoint", region="eu-west-1")``. Nothing is sent and no boto3
    client is built until the first call. ``boto3_session`` supplies credentials
    (default: boto3's default chain); ``endpoint_url`` points the runtime client
    elsewhere (a local endpoint, a VPC endpoint); ``aws_endpoint_url`` points the S3,
    SQS, SNS and SageMaker clients of async inference and endpoint creation elsewhere
    (a moto server, an S3-compatible store); ``config`` sets timeouts and pool
    size (:class:`ClientConfig`); ``retry`` is the default :class:`RetryPolicy`;
    ``codec`` the default codec for bodies that are not bytes, str or files.

    Thread-safe. Pickles (clients are rebuilt in the receiving process; a
    ``boto3_session`` is rebuilt from its profile name, never from its credentials).

    .. versionadded:: 0.1.0
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
        self._name = check.endpoint_name(name)
        check.client_options(region=region, boto3_session=boto3_session)
        self._factory = ClientFactory(
            region=region,
            endpoint_url=check_url("endpoint_url", endpoint_url),
            config=check_config(config),
            boto3_session=boto3_session,
            aws_endpoint_url=check_url("aws_endpoint_url", aws_endpoint_url),
        )
        self._retry = check.retry_policy(retry) or _DEFAULT_RETRY
        self._codec = check.codec(codec)
        self._requester = Requester(self._name, self._factory, self._retry, self._codec)

    @property
    def name(self) -> str:
        """The endpoint's name."""
        return self._name

    @property
    def region(self) -> str | None:
        """The region given to the constructor (``None``: boto3's default resolution)."""
        return self._factory.region

    @property
    def endpoint_url(self) -> str | None:
        """The runtime client's endpoint URL, when one was given."""
        return self._factory.endpoint_url

    @property
    def aws_endpoint_url(self) -> str | None:
        """The endpoint URL of the S3/SQS/SNS/SageMaker clients, when one was given."""
        return self._factory.aws_endpoint_url

    @property
    def retry(self) -> RetryPolicy:
        """The default retry policy of this endpoint's calls."""
        return self._retry

    @property
    def config(self) -> ClientConfig:
        """The client settings."""
        return self._factory.config

    @overload
    def client(self, service: Literal["sagemaker-runtime"] = ...) -> SageMakerRuntimeClient: ...
    @overload
    def client(self, service: Literal["s3"]) -> S3Client: ...
    @overload
    def client(self, service: Literal["sqs"]) -> SQSClient: ...
    @overload
    def client(self, service: Literal["sns"]) -> SNSClient: ...
    @overload
    def client(self, service: Literal["sagemaker"]) -> SageMakerClient: ...
    @overload
    def client(self, service: str) -> Any: ...

    def client(self, service: str = "sagemaker-runtime") -> Any:
        """The boto3 client this endpoint uses for ``service`` (built on first use).

        Typed per service with boto3-stubs (``mypy-boto3-*``) when a type checker has them:
        ``"sagemaker-runtime"`` (the default), ``"s3"``, ``"sqs"``, ``"sns"`` and
        ``"sagemaker"``; any other service name returns ``Any``.
        """
        return self._factory.client(service)

    def model(self, target_model: str) -> ModelHandle:
        """A handle that invokes ``target_model`` on this multi-model endpoint.

        ``target_model`` is the model's path relative to the endpoint's
        ``ModelDataUrl`` prefix, for example ``"model-a.tar.gz"``.
        """
        return ModelHandle(self, check.target_model(target_model))

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
    ) -> Session:
        """Open a stateful session: ``with endpoint.session(open_body=context) as s:``.

        Sends ``SessionId="NEW_SESSION"`` with the open body of ``protocol`` (and
        ``open_body``, the context the container caches), then ``s.invoke(...)`` and
        ``s.stream(...)`` send the session id; leaving the block sends the close body.
        See :class:`Session` for the arguments and ``Session.attach`` to resume elsewhere.
        """
        return Session.open(
            self,
            open_body=open_body,
            protocol=protocol,
            content_type=content_type,
            accept=accept,
            target_model=target_model,
            retry=retry,
            expiry_margin=expiry_margin,
            clock=clock,
        )

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
        """Invoke the endpoint (``InvokeEndpoint``) and return its answer.

        ``body``: ``bytes``, ``str`` (sent as UTF-8), a binary file object, or data
        encoded with ``codec`` (default JSON, then ``content_type`` defaults to
        ``application/json``); at most 6,291,456 bytes. Every argument is checked
        before anything is sent (:class:`InvalidInputError`). Failures are retried
        as ``retry`` (default: the endpoint's policy) decides; errors are
        :class:`SMClientError` subclasses.
        """
        request = self._requester.build(
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
        return self._requester.invoke(request, retry)

    def invoke_many(
        self,
        items: Iterable[Any],
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
        sleep: Callable[[float], None] = time.sleep,
    ) -> BatchRun:
        """Invoke the endpoint once per item, ``concurrency`` calls at a time, and iterate
        over the outcomes: ``for r in endpoint.invoke_many(records): ...``.

        ``items``: any iterable, read lazily from the iterating thread: at most ``window``
        items (default ``concurrency``) are read ahead of the consumer, so a generator of
        millions of records is never held in memory. A larger ``window`` (say twice
        ``concurrency``) lets a worker start its next item without waiting for the iterating
        thread, and keeps calls flowing behind a slow item in input order. Each item is a
        body (as for :meth:`invoke`) or a :class:`BatchItem` carrying its own options (target model,
        inference id, custom attributes, content type...). ``content_type``, ``accept``,
        ``custom_attributes`` and ``codec`` are defaults for every item.

        Each outcome is a :class:`BatchResult`: ``.result`` (the usual
        :class:`InvocationResult`) or ``.error`` (the typed error ``invoke`` would have
        raised); a failing item never stops the others unless ``stop_on_error=True``, which
        raises the first error (in input order when ``ordered``) after the calls in flight
        end. ``ordered=True`` (default) hands results back in input order; ``False`` in
        completion order (faster when latencies vary: no head-of-line wait).

        Each item is retried as ``retry`` (default: the endpoint's policy) decides.
        ``concurrency`` (default 16) must not exceed ``ClientConfig.max_pool_connections``
        (default 50). ``rate_limit``: at most this many requests per second (retries
        included), evenly spaced; ``clock`` (monotonic seconds) and ``sleep`` (seconds) time
        it and are injectable for tests. ``progress=True`` shows a bar (tqdm when installed,
        else a text bar on a terminal) and a summary line at the end; a callable gets
        ``(finished, total)``, ``total`` being ``None`` for inputs without a length.

        The returned :class:`BatchRun` is lazy (nothing is sent before the first ``next``),
        has a :attr:`~BatchRun.summary`, and stops cleanly on ``close()``, at the end of a
        ``with`` block, when dropped, or on Ctrl-C: items not yet sent are never sent and
        no worker thread outlives it.

        .. versionadded:: 0.2.0
        """
        from ._batch import invoke_many

        return invoke_many(
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

    def submit(
        self,
        body: Any = None,
        *,
        input_location: str | None = None,
        input_prefix: str | None = None,
        content_type: str | None = None,
        accept: str | None = None,
        custom_attributes: str | None = None,
        inference_id: str | None = None,
        request_ttl: int | None = None,
        invocation_timeout: int | None = None,
        s3_output_path_extension: str | None = None,
        filename: str | None = None,
        codec: Codec | None = None,
        retry: RetryPolicy | None = None,
    ) -> AsyncInvocation:
        """Submit an asynchronous inference (``InvokeEndpointAsync``) and return its handle.

        The input is ``input_location`` (already in S3) or ``body`` (bytes, str, a path, a
        binary file object or data for ``codec``) uploaded under ``input_prefix``
        (``s3://bucket/prefix``) with boto3's managed transfer. Every limit is checked
        before anything is sent. Wait with ``handle.result(timeout=...)``,
        :func:`smclient.wait` or :func:`smclient.as_completed`.
        """
        from ._asyncinference import submit

        return submit(
            self,
            body,
            input_location=input_location,
            input_prefix=input_prefix,
            content_type=content_type,
            accept=accept,
            custom_attributes=custom_attributes,
            inference_id=inference_id,
            request_ttl=request_ttl,
            invocation_timeout=invocation_timeout,
            s3_output_path_extension=s3_output_path_extension,
            filename=filename,
            codec=codec or self._codec,
            retry=retry,
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
        session_id: str | None = None,
        codec: Codec | None = None,
        retry: RetryPolicy | None = None,
    ) -> ResponseStream:
        """Invoke with a streamed answer (``InvokeEndpointWithResponseStream``).

        Arguments as for :meth:`invoke` (no ``target_model``: the service does not stream
        from multi-model endpoints; ``session_id`` continues an open stateful session, which
        a stream cannot open). Returns a :class:`ResponseStream`; use it in a ``with`` block.
        The call is retried as ``retry`` decides, and an ``InternalStreamFailure`` is
        retried only while no byte has reached the caller.
        """
        request = self._requester.build(
            body,
            operation=STREAM,
            codec=codec,
            content_type=content_type,
            accept=accept,
            session_id=check.stream_session_id(session_id),
            target_variant=target_variant,
            target_container_hostname=target_container_hostname,
            inference_component=inference_component,
            inference_id=inference_id,
            custom_attributes=custom_attributes,
        )
        return self._requester.stream(request, retry)

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
        on_reconnect: Callable[[ReconnectEvent], None] | None = None,
    ) -> DuplexStream:
        """A bidirectional stream (``InvokeEndpointWithBidirectionalStream``, HTTP/2):
        ``with endpoint.duplex() as stream:`` then ``stream.send(...)``, ``for message in
        stream`` and ``stream.close_input()``. Needs ``pip install 'smclient[duplex]'``.

        ``target_variant``, ``model_invocation_path`` (the container's WebSocket path,
        relative, <= 100 characters) and ``model_query_string`` (``k=v&k=v``, <= 2048) are
        checked before anything is sent. The stream goes to
        ``https://runtime.sagemaker.{region}.amazonaws.com:8443`` (``fips=True``: the
        FIPS host), or to ``endpoint_url`` when the endpoint has one (``http://`` means
        cleartext HTTP/2, for local endpoints). Sends larger than ``part_size`` bytes
        (default 1 MiB) go as ``PARTIAL`` parts; received parts are joined into whole
        messages (at most ``max_message_bytes``, default 64 MiB) unless ``raw_parts``.
        ``read_timeout`` (seconds, default the config's) bounds each wait for the answer's
        headers and for the next message; ``close_timeout`` (seconds, default 5) bounds
        the graceful close. ``wait_for_response=False`` returns from ``open`` without
        waiting for the answer's headers (errors then surface on the next send or read).
        Nothing is retried unless ``reconnect`` (a :class:`ReconnectPolicy`) is given:
        then a broken stream is replaced by a new one and ``on_reconnect(event)`` is
        called (in a worker thread), data already sent is never replayed. See
        :class:`smclient.DuplexStream` for errors and closing.

        .. versionadded:: 0.2.0
        """
        from ._duplex import DuplexStream

        return DuplexStream(
            reconnect=reconnect,
            on_reconnect=on_reconnect,
            settings=self._duplex_settings(
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
            ),
        )

    def duplex_async(
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
        """The asyncio form of :meth:`duplex` (same arguments): ``async with
        endpoint.duplex_async() as stream:``, ``await stream.send(...)``, ``async for
        message in stream``. Use it inside a running event loop; ``on_reconnect`` may be
        a coroutine function.

        .. versionadded:: 0.2.0
        """
        from ._duplex import AsyncDuplexStream

        return AsyncDuplexStream(
            reconnect=reconnect,
            on_reconnect=on_reconnect,
            settings=self._duplex_settings(
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
            ),
        )

    def _duplex_settings(self, **options: Any) -> StreamSettings:
        from ._duplex import settings_for

        factory = self._factory
        return settings_for(
            endpoint_name=self._name,
            region=factory.region,
            endpoint_url=factory.endpoint_url,
            # The factory's session is the one boto3 clients get: same credentials chain.
            boto3_session=getattr(factory, "_session", None),
            config=factory.config,
            **options,
        )

    @property
    def requester(self) -> Requester:
        """The request layer this endpoint's features send through (sessions, streams,
        ``submit``): it builds checked requests without I/O and sends them on the transport
        chosen per call (see docs/transport.md). Advanced use; the methods above cover the
        service.

        .. versionadded:: 0.2.0
        """
        return self._requester

    @property
    def transport(self) -> str:
        """The transport the next runtime call would use: ``"fast"`` or ``"boto3"`` (builds
        the runtime client if needed; see :class:`ClientConfig` ``transport``).

        .. versionadded:: 0.2.0
        """
        try:
            return self._factory.transport().name
        except Exception as exc:  # no region, no credentials...: the typed error
            if type(exc).__module__.startswith("botocore"):
                raise translate(exc, ErrorContext(self._name)) from exc
            raise

    def close(self) -> None:
        """Close the connection pools. The endpoint stays usable (new clients are built)."""
        self._factory.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        url = self._factory.endpoint_url
        extra = f", endpoint_url={url!r}" if url else ""
        return f"Endpoint({self._name!r}, region={self._factory.region!r}{extra})"


@attrs.frozen
class ModelHandle:
    """One model of a multi-model endpoint: ``endpoint.model("model-a.tar.gz")``.

    Its :meth:`invoke` takes the same arguments as :meth:`Endpoint.invoke` and sends
    ``TargetModel``. The endpoint's retry policy rides out ``ModelNotReadyException``
    while the model loads (cold start), for up to 360 s by default.

    .. versionadded:: 0.1.0
    """

    endpoint: Endpoint
    target_model: str

    def invoke(
        self,
        body: Any,
        *,
        content_type: str | None = None,
        accept: str | None = None,
        target_variant: str | None = None,
        target_container_hostname: str | None = None,
        inference_component: str | None = None,
        inference_id: str | None = None,
        custom_attributes: str | None = None,
        enable_explanations: str | None = None,
        codec: Codec | None = None,
        retry: RetryPolicy | None = None,
    ) -> InvocationResult:
        """Invoke this model; the arguments are those of :meth:`Endpoint.invoke`."""
        return self.endpoint.invoke(
            body,
            target_model=self.target_model,
            content_type=content_type,
            accept=accept,
            target_variant=target_variant,
            target_container_hostname=target_container_hostname,
            inference_component=inference_component,
            inference_id=inference_id,
            custom_attributes=custom_attributes,
            enable_explanations=enable_explanations,
            codec=codec,
            retry=retry,
        )

    def invoke_many(
        self,
        items: Iterable[Any],
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
        sleep: Callable[[float], None] = time.sleep,
    ) -> BatchRun:
        """Invoke this model once per item; the arguments are those of
        :meth:`Endpoint.invoke_many` (a :class:`BatchItem` naming another target model
        fails with :class:`InvalidInputError`).

        .. versionadded:: 0.2.0
        """
        from ._batch import invoke_many

        return invoke_many(
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
