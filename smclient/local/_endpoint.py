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
    unpack_archive,
)
from .multimodel._cache import ModelCache, ModelLoader
from .multimodel._folder import DirectoryModelLoader
from .server._wire import (
    AsyncResult,
    InvocationRequest,
    InvocationResult,
    ServiceError,
    StreamResult,
)
from .sessions._store import LocalSessionInfo, RoundRobin, SessionStore, is_close_request

__all__ = ["HostedEndpoint"]

_log = logging.getLogger("smclient.local")


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
        self._handler: ModelHandler | None = None
        self._caches: list[ModelCache] = []
        self._client: Any = None
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
            self._handler = as_handler(spec.handler)
        elif spec.model_dir is not None:
            path = Path(spec.model_dir)
            if path.is_file():
                unpack_archive(path, self._workdir / "model")
                path = self._workdir / "model"
            self._handler = as_handler(load(path))
        elif spec.container_url is not None:
            from .containers._client import ContainerClient

            self._client = ContainerClient(spec.container_url, timeout=spec.container_timeout)
            if not self._client.ping():
                raise RuntimeError(f"the container at {spec.container_url} failed /ping")
            if not spec.container_multi_model:
                from .containers._sources import ContainerSingle

                self._handler = ContainerSingle(self._client)
        for _ in range(spec.instance_count if spec.is_multi_model else 0):
            loader: ModelLoader
            if self._client is not None:
                from .containers._sources import ContainerModelLoader

                root = Path(spec.model_root) if spec.model_root is not None else None
                loader = ContainerModelLoader(self._client, root)
            else:
                assert spec.model_root is not None
                loader = DirectoryModelLoader(Path(spec.model_root), self._workdir, load)
            self._caches.append(ModelCache(loader, spec.multi_model, endpoint_name=spec.name))
        if spec.async_config is not None:
            from .async_inference._worker import AsyncWorker

            self._worker = AsyncWorker(
                spec.name, spec.async_config, self._invoke_for_async, aws=self._aws
            )
            self._worker.start()

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
        # A handler the endpoint loaded itself is closed; one the user passed is theirs.
        close = getattr(self._handler, "close", None)
        if callable(close) and self.spec.handler is None:
            close()
        if self._client is not None:
            self._client.close()
        return leftovers

    # -- real time -------------------------------------------------------------------------

    def invoke(self, request: InvocationRequest) -> InvocationResult:
        self._check_target(request)
        session_id = request.session_id
        if session_id == "NEW_SESSION":
            return self._open_session(request)
        context: object = None
        if session_id:
            info, context = self.sessions.get(session_id)
            if is_close_request(request.body):
                return self._close_session(session_id)
            instance = info.instance
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
            content_type=reply.content_type or "application/octet-stream",
            variant=self.spec.variant_name,
            custom_attributes=reply.custom_attributes,
        )

    def _optional(self, request: InvocationRequest, context: object) -> dict[str, Any]:
        return {
            "custom_attributes": request.custom_attributes,
            "target_model": request.target_model,
            "session": context,
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
            assert self._handler is not None
            return fn(self._handler)
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

    def _session_handler(self) -> object:
        return self._handler  # multi-model endpoints use the default context

    def _open_session(self, request: InvocationRequest) -> InvocationResult:
        instance = self._pick(request.target_model)
        opener = getattr(self._session_handler(), "open_session", None)
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
        closer = getattr(self._session_handler(), "close_session", None)
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
        closer = getattr(self._session_handler(), "close_session", None)
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
            content_type=request.accept or "application/octet-stream",
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
