"""The ``Endpoint`` facade and the multi-model ``ModelHandle``."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

import attrs
from typing_extensions import Self

from . import _validation as check
from ._clients import ClientConfig, ClientFactory
from ._codecs import Codec, encode_body
from ._errors import ErrorContext
from ._models import InvocationResult
from ._retry import RetryPolicy, run
from ._session import Session
from ._session_info import SessionProtocol
from ._streaming import ResponseStream

if TYPE_CHECKING:
    from ._asyncinference import AsyncInvocation
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
        self._factory = ClientFactory(
            region=region,
            endpoint_url=endpoint_url,
            config=config or ClientConfig(),
            boto3_session=boto3_session,
            aws_endpoint_url=aws_endpoint_url,
        )
        self._retry = retry or _DEFAULT_RETRY
        self._codec = codec

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

    def client(self, service: str = "sagemaker-runtime") -> Any:
        """The boto3 client this endpoint uses for ``service`` (built on first use)."""
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
        return self._invoke(
            body,
            content_type=content_type,
            accept=accept,
            target_model=target_model,
            target_variant=target_variant,
            target_container_hostname=target_container_hostname,
            inference_component=inference_component,
            inference_id=inference_id,
            custom_attributes=custom_attributes,
            enable_explanations=enable_explanations,
            codec=codec,
            retry=retry,
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
        params = self._params(
            body,
            codec=codec,
            content_type=content_type,
            accept=accept,
            target_model=None,
            session_id=session_id,
            target_variant=target_variant,
            target_container_hostname=target_container_hostname,
            inference_component=inference_component,
            inference_id=inference_id,
            custom_attributes=custom_attributes,
        )
        factory = self._factory
        ctx = ErrorContext(self._name, "InvokeEndpointWithResponseStream", None, 1)

        def attempt() -> ResponseStream:
            started = time.monotonic()
            client = factory.client("sagemaker-runtime")
            response = client.invoke_endpoint_with_response_stream(**params)
            opened = ResponseStream(response, ctx, started=started)
            opened.prefetch()
            return opened

        opened, outcome = run(
            retry or self._retry,
            attempt,
            endpoint=self._name,
            operation="InvokeEndpointWithResponseStream",
        )
        opened.attempts = outcome.attempts
        opened._ctx = attrs.evolve(ctx, attempts=outcome.attempts)
        return opened

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

    def _params(
        self,
        body: Any,
        *,
        codec: Codec | None,
        content_type: str | None,
        accept: str | None,
        target_model: str | None,
        session_id: str | None,
        **headers: str | None,
    ) -> dict[str, Any]:
        """The request parameters, every value checked before anything is sent."""
        data, content_type = encode_body(
            body, codec=codec or self._codec, content_type=content_type
        )
        params: dict[str, Any] = {"EndpointName": self._name, "Body": data}
        values: dict[str, str | None] = {
            "ContentType": check.header("content_type", content_type),
            "Accept": check.header("accept", accept),
            "TargetModel": None if target_model is None else check.target_model(target_model),
            "TargetVariant": check.name("target_variant", headers.get("target_variant")),
            "TargetContainerHostname": check.name(
                "target_container_hostname", headers.get("target_container_hostname")
            ),
            "InferenceComponentName": check.component_name(headers.get("inference_component")),
            "InferenceId": check.inference_id(headers.get("inference_id")),
            "CustomAttributes": check.custom_attributes(headers.get("custom_attributes")),
            "EnableExplanations": check.header(
                "enable_explanations",
                headers.get("enable_explanations"),
                maximum=check.MAX_EXPLANATIONS,
            ),
            "SessionId": None if session_id is None else check.session_id(session_id),
        }
        params.update({k: v for k, v in values.items() if v is not None})
        return params

    def _invoke(
        self,
        body: Any,
        *,
        content_type: str | None,
        accept: str | None,
        target_model: str | None,
        codec: Codec | None,
        retry: RetryPolicy | None,
        session_id: str | None = None,
        **headers: str | None,
    ) -> InvocationResult:
        params = self._params(
            body,
            codec=codec,
            content_type=content_type,
            accept=accept,
            target_model=target_model,
            session_id=session_id,
            **headers,
        )
        factory = self._factory

        def attempt() -> tuple[dict[str, Any], bytes]:
            response: dict[str, Any] = factory.client("sagemaker-runtime").invoke_endpoint(**params)
            # Read inside the attempt: a timeout while reading is an attempt's failure.
            return response, response["Body"].read()

        (response, payload), outcome = run(
            retry or self._retry,
            attempt,
            endpoint=self._name,
            operation="InvokeEndpoint",
            target_model=target_model,
        )
        return InvocationResult(
            body=payload,
            content_type=response.get("ContentType"),
            invoked_production_variant=response.get("InvokedProductionVariant"),
            custom_attributes=response.get("CustomAttributes"),
            request_id=(response.get("ResponseMetadata") or {}).get("RequestId"),
            attempts=outcome.attempts,
            elapsed=outcome.elapsed,
            new_session_id=response.get("NewSessionId"),
            closed_session_id=response.get("ClosedSessionId"),
        )

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
