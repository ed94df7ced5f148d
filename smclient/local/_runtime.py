"""``LocalRuntime`` (several endpoints on one loopback server) and ``LocalEndpoint`` (one).

Startup binds a free port on 127.0.0.1 and waits until the server answers; shutdown
stops the server, closes every connection, joins every thread, unloads models, stops
the async workers and the embedded moto server, and removes the temporary directory
where model archives were unpacked.
"""

from __future__ import annotations

import contextlib
import tempfile
import threading
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from typing_extensions import Self

from ._endpoint import HostedEndpoint
from ._spec import EndpointSpec
from .multimodel._cache import ModelStats
from .server._http import LoopbackServer, connect_host
from .server._wire import (
    AsyncResult,
    InvocationRequest,
    InvocationResult,
    ServiceError,
    StreamResult,
)
from .sessions._store import LocalSessionInfo

if TYPE_CHECKING:
    from smclient import Endpoint

__all__ = ["LocalEndpoint", "LocalRuntime"]


EMBEDDED_REGION = "us-east-1"
EMBEDDED_ACCOUNT = "123456789012"  # moto's account


def _topics(specs: Iterable[EndpointSpec]) -> list[str]:
    found = [t for s in specs if s.async_config is not None for t in s.async_config.topics]
    return list(dict.fromkeys(found))


def _check_embedded_topics(specs: Iterable[EndpointSpec]) -> None:
    """``ValueError`` for an SNS topic the embedded moto server cannot hold (its ARN names
    another region or account): said before anything starts."""
    for topic in _topics(specs):
        parts = topic.split(":")
        if len(parts) != 6 or parts[3] != EMBEDDED_REGION or parts[4] != EMBEDDED_ACCOUNT:
            raise ValueError(
                f"SNS topic {topic} cannot exist in the embedded moto server, which holds "
                f"topics arn:aws:sns:{EMBEDDED_REGION}:{EMBEDDED_ACCOUNT}:<name>: use such an "
                "ARN, or point the runtime at your own S3/SNS (aws=AWSConnection(...), "
                "aws_endpoint_url in the CLI config)"
            )


def _create_topics(aws: Any, specs: Iterable[EndpointSpec]) -> None:
    # The embedded server starts empty: the topics async endpoints notify must exist before
    # the endpoints publish their TestNotification (CreateTopic returns the topic's ARN).
    topics = _topics(specs)
    if topics:
        sns = aws.client("sns")
        for topic in topics:
            sns.create_topic(Name=topic.rsplit(":", 1)[1])


def _needs_aws(spec: EndpointSpec) -> bool:
    # Async endpoints store inputs/outputs in S3; an s3:// model root reads models from it.
    root = spec.model_root
    return spec.async_config is not None or (isinstance(root, str) and root.startswith("s3://"))


class LocalRuntime:
    """Serves the SageMaker runtime API for ``endpoints`` on loopback.

    ``with LocalRuntime([EndpointSpec("a", handler=fn), ...]) as rt:`` then
    ``rt.url`` for boto3's ``endpoint_url`` or ``rt.endpoint("a")`` for a ready
    :class:`smclient.Endpoint`. ``aws``: the S3/SNS connection of async endpoints
    (an ``AWSConnection``); by default an embedded moto server is started when an
    endpoint has ``async_config`` or an ``s3://`` ``model_root``, and the SNS topics the
    async endpoints name are created in it (their ARNs must name region ``us-east-1`` and
    moto's account ``123456789012``, else ``ValueError``). ``host``/``port``:
    default 127.0.0.1 and a free port. Timeouts in seconds.

    .. versionadded:: 0.1.0
    """

    def __init__(
        self,
        endpoints: Iterable[EndpointSpec] = (),
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        aws: Any = None,
        startup_timeout: float = 10.0,
        shutdown_timeout: float = 10.0,
    ) -> None:
        self._specs = list(endpoints)
        names = [s.name for s in self._specs]
        if len(set(names)) != len(names):
            raise ValueError("endpoint names must be unique")
        if aws is None:
            _check_embedded_topics(self._specs)
        self._host, self._port = host, port
        self._aws = aws
        self._startup_timeout = startup_timeout
        self._shutdown_timeout = shutdown_timeout
        self._lock = threading.Lock()
        self._hosted: dict[str, HostedEndpoint] = {}
        self._server: LoopbackServer | None = None
        self._embedded: Any = None
        self._tmp: tempfile.TemporaryDirectory[str] | None = None
        self._state = "new"
        self._bidi: Any = None

    # -- lifecycle -----------------------------------------------------------------------

    def start(self) -> Self:
        """Starts the endpoints and the server; on failure undoes what was started."""
        if self._state != "new":
            raise RuntimeError(f"a LocalRuntime starts once (it is {self._state})")
        self._state = "running"
        try:
            self._tmp = tempfile.TemporaryDirectory(prefix="smclient-local-")
            aws = self._aws
            if aws is None and any(_needs_aws(s) for s in self._specs):
                from .async_inference._worker import EmbeddedAWS

                self._embedded = EmbeddedAWS(region=EMBEDDED_REGION)
                self._embedded.__enter__()
                aws = self._embedded
                _create_topics(self._embedded, self._specs)
            for spec in self._specs:
                if spec.is_bidi_only:
                    continue
                workdir = Path(self._tmp.name) / spec.name
                workdir.mkdir()
                hosted = HostedEndpoint(spec, workdir, aws)
                self._hosted[spec.name] = hosted
                hosted.start()
            handoff = None
            if any(spec.serves_bidi for spec in self._specs):
                self._bidi = self._start_bidi()
                handoff = self._bidi.adopt
            self._server = LoopbackServer(
                self, host=self._host, port=self._port, h2_handoff=handoff
            )
            self._server.start(self._startup_timeout)
        except BaseException:
            self.close()
            raise
        return self

    def close(self) -> list[str]:
        """Stops everything (idempotent); returns names of threads still running at the
        deadline (empty when shutdown was clean)."""
        if self._state == "closed":
            return []
        self._state = "closed"
        leftovers: list[str] = []
        if self._server is not None:
            self._server.stop(self._shutdown_timeout)
        # Endpoints first: that wakes requests waiting for a model load, so the
        # connection threads end now rather than at the end of their invocation window.
        for hosted in self._hosted.values():
            with contextlib.suppress(Exception):
                leftovers += hosted.close(self._shutdown_timeout)
        if self._server is not None:
            leftovers += self._server.close(self._shutdown_timeout)
        if self._bidi is not None:
            self._bidi.stop()
            self._bidi = None
        if self._embedded is not None:
            self._embedded.__exit__(None, None, None)
            self._embedded = None
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None
        return leftovers

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        where = (
            f" {self._server.url}" if self._server is not None and self._state == "running" else ""
        )
        return f"<{type(self).__name__}{where} endpoints={self.endpoint_names} {self._state}>"

    # -- access --------------------------------------------------------------------------

    @property
    def url(self) -> str:
        """``http://127.0.0.1:<port>``, the ``endpoint_url`` for boto3 / smclient."""
        if self._server is None:
            raise RuntimeError("the LocalRuntime is not running")
        return self._server.url

    @property
    def endpoint_names(self) -> list[str]:
        """The names of the hosted endpoints, in the order their specs were given."""
        return [s.name for s in self._specs]

    @property
    def aws(self) -> Any:
        """The S3/SNS connection of async endpoints (the embedded moto server by default)."""
        return self._embedded if self._embedded is not None else self._aws

    @property
    def workdir(self) -> Path:
        """The temporary directory (removed on close)."""
        if self._tmp is None:
            raise RuntimeError("the LocalRuntime is not running")
        return Path(self._tmp.name)

    def endpoint(self, name: str | None = None, **kwargs: Any) -> Endpoint:
        """A :class:`smclient.Endpoint` for the endpoint ``name`` (default: the only one),
        unsigned, region ``us-east-1``; ``kwargs`` go to ``Endpoint`` (e.g. ``retry``)."""
        from smclient import ClientConfig, Endpoint

        name = self._default_name(name)
        kwargs.setdefault("config", ClientConfig(sign_requests=False))
        return Endpoint(name, region="us-east-1", endpoint_url=self.url, **kwargs)

    def boto3_client(self) -> Any:
        """A plain boto3 ``sagemaker-runtime`` client for this server (dummy credentials,
        botocore retries pinned to one attempt)."""
        import boto3
        from botocore.config import Config

        return boto3.client(
            "sagemaker-runtime",
            endpoint_url=self.url,
            region_name="us-east-1",
            aws_access_key_id="local",
            aws_secret_access_key="local",
            config=Config(retries={"total_max_attempts": 1, "mode": "standard"}),
        )

    def _default_name(self, name: str | None) -> str:
        if name is not None:
            return name
        if len(self._specs) != 1:
            raise ValueError("this runtime hosts several endpoints: name one")
        return self._specs[0].name

    def hosted(self, name: str | None = None) -> HostedEndpoint:
        """The running endpoint ``name`` (counters, caches, sessions)."""
        return self._hosted[self._default_name(name)]

    def stats(self) -> dict[str, Any]:
        """The JSON-ready status served at ``GET /_smclient/status``."""
        return self.status()

    def model_stats(self, name: str | None = None, instance: int = 0) -> dict[str, ModelStats]:
        """Per-``TargetModel`` counters of one instance of a multi-model endpoint."""
        return self.hosted(name).model_caches()[instance].stats()

    def wait_model_loaded(
        self,
        target_model: str,
        name: str | None = None,
        *,
        instance: int = 0,
        timeout: float = 10.0,
    ) -> bool:
        """Waits up to ``timeout`` seconds until ``target_model`` is loaded on ``instance``
        of a multi-model endpoint (for tests that let a background load finish)."""
        return self.hosted(name).model_caches()[instance].wait_loaded(target_model, timeout)

    def sessions(self, name: str | None = None) -> list[LocalSessionInfo]:
        """The open sessions of an endpoint."""
        return self.hosted(name).open_sessions()

    def unload_model(self, target_model: str, name: str | None = None) -> int:
        """Unloads an idle model from every instance; returns how many unloaded it."""
        return sum(c.unload(target_model) for c in self.hosted(name).model_caches())

    # -- the server's Application --------------------------------------------------------

    def _start_bidi(self) -> Any:
        """The HTTP/2 server of the endpoints that serve bidirectional streams; the
        HTTP/1.1 port hands it the connections that open with the HTTP/2 preface."""
        from .bidi import BidiServer, ContainerBidiHandler

        handlers: dict[str, Any] = {}
        for spec in self._specs:
            if spec.bidi_handler is not None:
                handlers[spec.name] = spec.bidi_handler
            elif spec.container_bidi:
                handlers[spec.name] = ContainerBidiHandler(self._hosted[spec.name].container_url())
        import importlib.util

        # Its own port serves TLS (a generated certificate) for clients that insist on TLS
        # (the official client's CRT transport); the runtime's port hands over cleartext h2c.
        tls = importlib.util.find_spec("cryptography") is not None
        return BidiServer(handlers, host=connect_host(self._host), tls=tls).start()

    @property
    def bidi_tls_url(self) -> str | None:
        """``https://127.0.0.1:<port>``: the bidirectional endpoints over TLS with a
        generated self-signed certificate (:attr:`bidi_cafile`), for clients that insist
        on TLS; ``None`` without bidirectional endpoints or without ``cryptography``."""
        bidi = self._bidi
        return bidi.url if bidi is not None and bidi.tls else None

    @property
    def bidi_cafile(self) -> str | None:
        """The PEM file of the certificate behind :attr:`bidi_tls_url` (trust it in the
        client: ``AWS_CA_BUNDLE`` for smclient)."""
        bidi = self._bidi
        return bidi.cafile if bidi is not None else None

    @property
    def bidi_server(self) -> Any:
        """The :class:`smclient.local.bidi.BidiServer` behind the bidirectional endpoints
        (``None`` when no endpoint serves them): counters, ``cut_connections()``..."""
        return self._bidi

    def _get(self, name: str) -> HostedEndpoint:
        hosted = self._hosted.get(name)
        if hosted is None:
            spec = next((s for s in self._specs if s.name == name), None)
            if spec is not None and spec.is_bidi_only:
                raise ServiceError.validation(
                    f"Endpoint {name} serves only bidirectional streams "
                    "(InvokeEndpointWithBidirectionalStream)."
                )
            raise ServiceError.endpoint_not_found(name)
        return hosted

    def invoke(self, request: InvocationRequest) -> InvocationResult:
        """Answer one parsed ``InvokeEndpoint`` request (the loopback server calls this);
        a :class:`ServiceFault` for an unknown endpoint or one that cannot answer it."""
        return self._get(request.endpoint_name).invoke(request)

    def invoke_stream(self, request: InvocationRequest) -> StreamResult:
        """Answer one ``InvokeEndpointWithResponseStream`` request as event-stream messages
        (the loopback server calls this)."""
        return self._get(request.endpoint_name).invoke_stream(request)

    def invoke_async(self, endpoint_name: str, headers: Mapping[str, str]) -> AsyncResult:
        """Accept one ``InvokeEndpointAsync`` request (its ``InputLocation`` is read later,
        by the endpoint's async worker): the inference id and output locations of the 202
        answer; a :class:`ServiceFault` when the endpoint has no async configuration."""
        return self._get(endpoint_name).invoke_async(headers)

    def status(self) -> dict[str, Any]:
        """A JSON-ready snapshot: ``{"endpoints": {name: status}}`` with each endpoint's
        variant, sessions and per-instance counters (models and memory when multi-model)."""
        return {"endpoints": {n: h.status() for n, h in self._hosted.items()}}


class LocalEndpoint(LocalRuntime):
    """One local endpoint: ``with LocalEndpoint(handler) as ep: ep.endpoint().invoke(...)``.

    The first argument is a handler or callable; other sources and settings are
    :class:`EndpointSpec` keywords (``model_dir=``, ``model_root=``, ``container_url=``,
    ``instance_count=``, ``multi_model=``...). ``name`` defaults to ``"local-endpoint"``.

    .. versionadded:: 0.1.0
    """

    def __init__(
        self,
        handler: object | None = None,
        *,
        name: str = "local-endpoint",
        host: str = "127.0.0.1",
        port: int = 0,
        aws: Any = None,
        startup_timeout: float = 10.0,
        shutdown_timeout: float = 10.0,
        **spec: Any,
    ) -> None:
        super().__init__(
            [EndpointSpec(name, handler=handler, **spec)],
            host=host,
            port=port,
            aws=aws,
            startup_timeout=startup_timeout,
            shutdown_timeout=shutdown_timeout,
        )

    @property
    def name(self) -> str:
        """The endpoint's name (default ``"local-endpoint"``)."""
        return self.endpoint_names[0]
