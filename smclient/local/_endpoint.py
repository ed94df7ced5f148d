"""One hosted endpoint: its spec, instances, sessions, models and async worker."""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import attrs

from ._spec import EndpointSpec
from .async_inference._request import async_request
from .hosting._calls import StartedStream, TimedCalls
from .hosting._handlers import (
    HandlerError,
    HandlerReply,
    ModelHandler,
    as_handler,
    call_predict,
    load_model_dir,
    runs_own_sessions,
    unpack_archive,
)
from .multimodel._artifacts import ModelArtifacts
from .multimodel._cache import ModelCache, ModelLoader
from .multimodel._folder import DirectoryModelLoader
from .server._wire import (
    AsyncResult,
    InvocationRequest,
    InvocationResult,
    ServiceError,
    StreamResult,
    response_media_type,
)
from .sessions._store import (
    LocalSessionInfo,
    RoundRobin,
    SessionStore,
    is_close_request,
    parse_session_header,
)

__all__ = ["HostedEndpoint"]

_log = logging.getLogger("smclient.local")
_RELAYED = object()  # the context of a session the model made (the model holds its state)


@attrs.define
class _InstanceCounters:
    invocations: int = 0
    errors: int = 0


class HostedEndpoint:
    """Runs one :class:`EndpointSpec`; ``aws`` is the S3/SNS connection for async."""

    def __init__(self, spec: EndpointSpec, workdir: Path, aws: Any = None) -> None:
        self.spec = spec
        self._workdir = workdir
        self._aws = aws
        self._rr = RoundRobin(spec.instance_count)
        self._lock = threading.Lock()
        self._counters = [_InstanceCounters() for _ in range(spec.instance_count)]
        # One model per instance (as on SageMaker); a handler object the user passed is
        # shared by all. Built at start ("eager") or on an instance's first call ("lazy").
        self._handlers: list[ModelHandler | None] = [None] * spec.instance_count
        self._handler_locks = [threading.Lock() for _ in range(spec.instance_count)]
        self._build: Callable[[], ModelHandler] | None = None
        self._owned = True  # whether the endpoint made its handlers (then closes them)
        self._caches: list[ModelCache] = []
        self._client: Any = None
        self._container_url: str | None = None
        self._docker: Any = None
        self._worker: Any = None
        self._timed = TimedCalls(f"smclient-local-invoke-{spec.name}")
        self.sessions = SessionStore(
            ttl=spec.session_ttl, clock=spec.clock, on_expire=self._release_session
        )

    # -- lifecycle -----------------------------------------------------------------------

    def start(self) -> None:
        spec = self.spec
        load = spec.loader or load_model_dir
        if spec.handler is not None:
            handler = spec.handler
            if isinstance(handler, type):  # a class: one object per instance
                self._build = lambda: as_handler(handler)
            else:
                shared = as_handler(handler)
                self._build = lambda: shared
                self._owned = False
        elif spec.model_dir is not None and not spec.has_container:
            path = self._model_dir(Path(spec.model_dir))
            self._build = lambda: as_handler(load(path))
        elif spec.has_container:
            self._start_container()
        for _ in range(spec.instance_count if spec.is_multi_model else 0):
            self._caches.append(
                ModelCache(self._model_loader(load), spec.multi_model, endpoint_name=spec.name)
            )
        if self._build is not None and spec.instance_loading == "eager":
            for instance in range(spec.instance_count):
                self._handler_for(instance)
        if spec.async_config is not None:
            from .async_inference._worker import AsyncWorker

            self._worker = AsyncWorker(
                spec.name, spec.async_config, self._invoke_for_async, aws=self._aws
            )
            self._worker.start()

    def _model_dir(self, path: Path) -> Path:
        if path.is_file():  # a model.tar.gz: unpacked once, shared by the instances
            unpack_archive(path, self._workdir / "model")
            return self._workdir / "model"
        return path

    def _artifacts(self, *, copy_directories: bool) -> ModelArtifacts | None:
        root = self.spec.model_root
        if root is None:
            return None
        aws = self._aws
        s3 = None if aws is None else (lambda: aws.client("s3"))
        return ModelArtifacts(
            root, self._workdir / "models", s3=s3, copy_directories=copy_directories
        )

    def _model_loader(self, load: Callable[[Path], object]) -> ModelLoader:
        if self._client is None:
            artifacts = self._artifacts(copy_directories=False)
            assert artifacts is not None
            return DirectoryModelLoader(artifacts, load)
        from .containers._sources import ContainerModelLoader

        artifacts = self._artifacts(copy_directories=True)
        if self._docker is not None:
            # The store is mounted at /opt/ml/models: the container sees that path.
            return ContainerModelLoader(
                self._client, artifacts, lambda path: f"/opt/ml/models/{path.parent.name}/model"
            )
        return ContainerModelLoader(self._client, artifacts, str)

    def container_url(self) -> str:
        """The base URL of this endpoint's running container (``http://host:port``)."""
        if self._container_url is None:
            raise RuntimeError(f"endpoint {self.spec.name} has no running container")
        return self._container_url

    def _start_container(self) -> None:
        from .containers._client import ContainerClient

        spec = self.spec
        url = spec.container_url
        if spec.container_image is not None:
            from .containers._docker import DockerContainer

            mount: Path | None = None
            if spec.container_multi_model:
                mount = self._workdir / "models"
                mount.mkdir(exist_ok=True)
            elif spec.model_dir is not None:
                mount = self._model_dir(Path(spec.model_dir))
            self._docker = DockerContainer(
                spec.container_image,
                ping=lambda where: ContainerClient(where, timeout=2.0).ping(),
                model_dir=mount,
                multi_model=spec.container_multi_model,
                env=spec.container_env,
                startup_timeout=spec.container_startup_timeout,
            )
            url = self._docker.start()
        assert url is not None
        self._container_url = url
        self._client = ContainerClient(url, timeout=spec.container_timeout)
        if not self._client.ping():
            raise RuntimeError(f"the container at {url} failed /ping")
        if not spec.container_multi_model:
            from .containers._sources import ContainerSingle

            client = self._client
            self._build = lambda: ContainerSingle(client)
            self._owned = False

    def _handler_for(self, instance: int) -> ModelHandler:
        """The model of ``instance``, loaded on first use when loading is lazy."""
        handler = self._handlers[instance]
        if handler is not None:
            return handler
        assert self._build is not None
        with self._handler_locks[instance]:
            handler = self._handlers[instance]
            if handler is None:
                handler = self._handlers[instance] = self._build()
        return handler

    def close(self, timeout: float = 10.0) -> list[str]:
        """Stops the async worker, closes sessions, unloads models; returns leftovers."""
        leftovers: list[str] = []
        if self._worker is not None:
            self._worker.close(timeout)
        for instance, context in self.sessions.drain():
            self._release_session(instance, context)
        for cache in self._caches:
            leftovers += cache.close(timeout)
        leftovers += self._timed.join(timeout)
        # Handlers the endpoint made itself are closed; one object the user passed is theirs.
        if self._owned:
            for handler in self._handlers:
                close = getattr(handler, "close", None)
                if callable(close):
                    try:
                        close()
                    except Exception:
                        _log.warning("local endpoint %s: closing a model failed", self.spec.name)
        if self._client is not None:
            self._client.close()
        if self._docker is not None:
            self._docker.stop()
        return leftovers

    # -- real time -------------------------------------------------------------------------

    def invoke(self, request: InvocationRequest) -> InvocationResult:
        self._check_target(request)
        session_id = request.session_id
        if session_id == "NEW_SESSION":
            instance = self._pick(request.target_model)
            if self._relays_sessions(instance):
                return self._relay(instance, request, None)
            return self._open_session(request, instance)
        context: object = None
        if session_id:
            info, context = self.sessions.get(session_id)
            instance = info.instance
            if self._relays_sessions(instance):
                return self._relay(instance, request, session_id)
            if is_close_request(request.body):
                return self._close_session(session_id)
        else:
            instance = self._pick(request.target_model)
        reply = self._run(
            instance,
            request,
            lambda h: call_predict(
                h,
                request.body,
                request.content_type,
                request.accept,
                **self._optional(request, context),
            ),
        )
        return InvocationResult(
            body=reply.body,
            content_type=reply.content_type or response_media_type(request.accept),
            variant=self.spec.variant_name,
            custom_attributes=reply.custom_attributes,
        )

    def _optional(self, request: InvocationRequest, context: object) -> dict[str, Any]:
        return {
            "custom_attributes": request.custom_attributes,
            "target_model": request.target_model,
            "session": context,
            "session_id": request.session_id,
        }

    def _check_target(self, request: InvocationRequest) -> None:
        name = self.spec.name
        if request.target_variant is not None and request.target_variant != self.spec.variant_name:
            raise ServiceError.validation(
                f"Variant {request.target_variant} does not exist for endpoint {name}."
            )
        if self.spec.is_multi_model and not request.target_model:
            raise ServiceError.validation(
                f"Endpoint {name} is a multi-model endpoint: the TargetModel header is required."
            )
        if not self.spec.is_multi_model and request.target_model is not None:
            raise ServiceError.validation(
                f"Endpoint {name} is not a multi-model endpoint and does not support the "
                "TargetModel header."
            )

    def _pick(self, target_model: str | None) -> int:
        if target_model is not None:
            for index, cache in enumerate(self._caches):
                if cache.has(target_model):
                    return index
        return self._rr.next()

    def _run(
        self,
        instance: int,
        request: InvocationRequest,
        fn: Callable[[ModelHandler], HandlerReply],
        *,
        timed: bool = True,
    ) -> HandlerReply:
        """Runs ``fn`` on ``instance``, bounded by the spec's ``invocation_timeout`` unless
        ``timed`` is false (async calls: the worker applies ``InvocationTimeoutSeconds``)."""
        counters = self._counters[instance]
        with self._lock:
            counters.invocations += 1
        fn = self._timed.wrap(fn, self.spec.invocation_timeout if timed else None)
        try:
            if self._caches:
                assert request.target_model is not None
                return self._caches[instance].call(request.target_model, fn)
            return fn(self._handler_for(instance))
        except Exception as exc:
            self._count_error(instance)
            raise self._model_failure(exc) from None

    def _model_failure(self, exc: Exception) -> ServiceError:
        """The answer for an exception out of a handler: itself if it is a ``ServiceFault``,
        ``ModelError`` with its status for a ``HandlerError``, else ``ModelError`` 500 naming
        only the exception type (its text may hold data)."""
        if isinstance(exc, ServiceError):
            return exc
        if isinstance(exc, HandlerError):
            return ServiceError.model_error(self.spec.name, exc.status_code, exc.message)
        _log.warning("local endpoint %s: handler raised %s", self.spec.name, type(exc).__name__)
        # The traceback only at DEBUG, opted into: the exception's text may hold data.
        _log.debug("local endpoint %s: handler traceback", self.spec.name, exc_info=exc)
        return ServiceError.model_error(
            self.spec.name, 500, f"The model raised {type(exc).__name__}."
        )

    def _count_error(self, instance: int) -> None:
        with self._lock:
            self._counters[instance].errors += 1

    # -- sessions --------------------------------------------------------------------------

    def _relays_sessions(self, instance: int) -> bool:
        """Whether the model makes its sessions itself - a container, or a handler whose
        ``predict`` takes ``session_id`` - so that the runtime forwards the opening and
        closing requests and relays the model's session headers (protocol.md §4)."""
        if self.spec.has_container:
            return True
        if self._caches:
            return False  # Python multi-model endpoints: sessions made by the runtime
        return runs_own_sessions(self._handler_for(instance))

    def _relay(
        self, instance: int, request: InvocationRequest, session_id: str | None
    ) -> InvocationResult:
        """Forwards a session request (its body unchanged) and adopts or forgets the id
        the model answers with."""
        reply = self._run(
            instance,
            request,
            lambda h: call_predict(
                h,
                request.body,
                request.content_type,
                request.accept,
                **self._optional(request, None),
            ),
        )
        new_session_id = closed_session_id = None
        if session_id is None and reply.new_session_id:
            try:
                made, expires_at = parse_session_header(reply.new_session_id)
            except ValueError as exc:
                self._count_error(instance)
                raise ServiceError.model_error(
                    self.spec.name, 502, f"The model answered a malformed session header: {exc}."
                ) from None
            info = self.sessions.adopt(made, instance, expires_at, _RELAYED)
            new_session_id = info.header
        if session_id is not None and reply.closed_session_id:
            closed = reply.closed_session_id.split(";", 1)[0].strip()
            self.sessions.forget(closed)
            closed_session_id = closed
        return InvocationResult(
            body=reply.body,
            content_type=reply.content_type or response_media_type(request.accept),
            variant=self.spec.variant_name,
            custom_attributes=reply.custom_attributes,
            new_session_id=new_session_id,
            closed_session_id=closed_session_id,
        )

    def _session_handler(self, instance: int) -> object:
        # Multi-model endpoints use the default context.
        return None if self._caches else self._handler_for(instance)

    def _open_session(self, request: InvocationRequest, instance: int) -> InvocationResult:
        opener = getattr(self._session_handler(instance), "open_session", None)
        try:
            context = opener(request.body) if callable(opener) else {}
        except Exception as exc:
            raise self._model_failure(exc) from None
        info = self.sessions.open(instance, context)
        body = {"SessionId": info.session_id, "Expires": info.header.split("=", 1)[1]}
        return InvocationResult(
            body=json.dumps(body).encode(),
            content_type="application/json",
            variant=self.spec.variant_name,
            new_session_id=info.header,
        )

    def _close_session(self, session_id: str) -> InvocationResult:
        info, context = self.sessions.close(session_id)
        closer = getattr(self._session_handler(info.instance), "close_session", None)
        if callable(closer):
            try:
                closer(context)
            except Exception as exc:
                raise self._model_failure(exc) from None
        return InvocationResult(
            body=json.dumps({"ClosedSessionId": session_id}).encode(),
            content_type="application/json",
            variant=self.spec.variant_name,
            closed_session_id=info.session_id,
        )

    def _release_session(self, instance: int, context: object) -> None:
        if context is _RELAYED:
            return  # the model made this session: it expires it itself
        if self._caches:
            return
        closer = getattr(self._handlers[instance], "close_session", None)
        if callable(closer):
            try:
                closer(context)
            except Exception:
                _log.warning("local endpoint %s: close_session failed", self.spec.name)

    def open_sessions(self) -> list[LocalSessionInfo]:
        return self.sessions.sessions()

    # -- streaming -------------------------------------------------------------------------

    def invoke_stream(self, request: InvocationRequest) -> StreamResult:
        if request.session_id == "NEW_SESSION":
            raise ServiceError.validation(
                "InvokeEndpointWithResponseStream cannot create a session; open it with "
                "InvokeEndpoint first."
            )
        if self.spec.is_multi_model:
            raise ServiceError.validation(
                f"Endpoint {self.spec.name} is a multi-model endpoint, which does not support "
                "response streaming."
            )
        self._check_target(request)
        context: object = None
        if request.session_id:
            info, context = self.sessions.get(request.session_id)
            instance = info.instance
            if context is _RELAYED:
                context = None  # the model holds this session's state; it gets session_id
        else:
            instance = self._rr.next()
        started = StartedStream()
        optional = self._optional(request, context)
        self._run(
            instance,
            request,
            lambda h: started.start(
                h, request.body, request.content_type, request.accept, **optional
            ),
        )
        return StreamResult(
            events=started.events(),
            content_type=response_media_type(request.accept),
            variant=self.spec.variant_name,
            faults=self.spec.stream_faults,
        )

    # -- async -----------------------------------------------------------------------------

    def invoke_async(self, headers: Mapping[str, str]) -> AsyncResult:
        if self._worker is None:
            raise ServiceError.validation(
                f"Endpoint {self.spec.name} is not configured for asynchronous inference."
            )
        from .async_inference._worker import AsyncRequestError

        try:
            accepted = self._worker.submit(async_request(headers))
        except AsyncRequestError as exc:
            raise ServiceError.validation(str(exc)) from None
        except RuntimeError:  # the worker is shutting down
            raise ServiceError.unavailable("The endpoint is not accepting requests.") from None
        return AsyncResult(
            accepted.inference_id, accepted.output_location, accepted.failure_location
        )

    def _invoke_for_async(self, body: bytes, request: Any) -> Any:
        from .async_inference._worker import ModelReply

        fake = InvocationRequest(
            endpoint_name=self.spec.name,
            body=body,
            request_id="async",
            content_type=request.content_type,
            accept=request.accept,
            custom_attributes=request.custom_attributes,
        )
        try:
            reply = self._run(
                self._rr.next(),
                fake,
                lambda h: call_predict(
                    h, body, request.content_type, request.accept, **self._optional(fake, None)
                ),
                # The real-time limit does not apply: async invocations may run up to
                # their InvocationTimeoutSeconds (default 900 s), enforced by the worker.
                timed=False,
            )
        except ServiceError as exc:
            status = int(exc.fields.get("OriginalStatusCode", exc.status))  # type: ignore[call-overload]
            message = str(exc.fields.get("OriginalMessage", exc.message))
            return ModelReply(status, b"", None, message)
        return ModelReply(200, reply.body, reply.content_type)

    # -- status ----------------------------------------------------------------------------

    def status(self) -> dict[str, Any]:
        sessions = self.sessions.sessions()
        instances = []
        for index, counters in enumerate(self._counters):
            entry: dict[str, Any] = {
                "index": index,
                "invocations": counters.invocations,
                "errors": counters.errors,
                "sessions": sum(1 for s in sessions if s.instance == index),
            }
            if self._caches:
                cache = self._caches[index]
                entry["memory_used_bytes"] = cache.memory_used()
                entry["models"] = {n: attrs.asdict(s) for n, s in cache.stats().items()}
            instances.append(entry)
        doc: dict[str, Any] = {
            "variant": self.spec.variant_name,
            "multi_model": self.spec.is_multi_model,
            "sessions": len(sessions),
            "instances": instances,
        }
        if self._worker is not None:
            doc["async"] = attrs.asdict(self._worker.stats())
        return doc

    def async_stats(self) -> Any:
        """The async worker's counters (``AsyncStats``), ``None`` without async."""
        return None if self._worker is None else self._worker.stats()

    def model_caches(self) -> list[ModelCache]:
        return list(self._caches)
