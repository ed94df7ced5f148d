"""Models of a bring-your-own container already running at a URL.

Single-model contract: ``/invocations`` wrapped as a handler (:class:`ContainerSingle`).
Multi-model: a :class:`~smclient.local.multimodel._cache.ModelLoader` whose loads are
``POST /models`` (409 "already loaded" counts as loaded, 507 makes the cache unload idle
models and retry) and whose unloads are ``DELETE /models/{name}``; an invoke answering
404 makes the cache reload the model and try again, 507 unload others and try again, as
SageMaker does.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from ..hosting._handlers import HandlerError, HandlerReply
from ..multimodel._artifacts import ModelArtifacts, model_key
from ..multimodel._cache import LoadedModel, ModelGone
from ..server._wire import ServiceError, response_media_type
from ._client import ContainerError, ContainerTimeoutError, ContainerUnreachableError

__all__ = ["ContainerModelLoader", "ContainerSingle", "container_model_name"]


def container_model_name(target_model: str) -> str:
    """The opaque ``model_name`` sent to the container for a ``TargetModel`` (SageMaker
    also names models by a hash, not by the TargetModel string); the same as the name of
    its model directory."""
    return model_key(target_model)


def _message(body: bytes) -> str:
    """The container's error text (SageMaker passes it on as ``OriginalMessage``)."""
    return body[:1024].decode("utf-8", "replace")


_SESSION = "X-Amzn-SageMaker-Session-Id"


def _session_headers(session_id: str | None) -> dict[str, str]:
    # SageMaker passes the caller's SessionId (NEW_SESSION or an id) to the container.
    return {_SESSION: session_id} if session_id else {}


def _reply(response: Any, accept: str | None, session_id: str | None = None) -> HandlerReply:
    if not 200 <= response.status < 300:
        raise HandlerError(_message(response.body), response.status)
    headers: Mapping[str, str] = response.headers
    new = None
    if session_id == "NEW_SESSION":
        # The container's answer to an opening request: "<id>; Expires=..." (newer
        # containers set the runtime's own header name directly).
        new = headers.get("x-amzn-sagemaker-new-session-id") or headers.get(
            "x-amzn-sagemaker-session-id"
        )
    return HandlerReply(
        response.body,
        response.content_type or response_media_type(accept),
        response.custom_attributes,
        new_session_id=new,
        closed_session_id=headers.get("x-amzn-sagemaker-closed-session-id"),
    )


def _unreachable(exc: Exception) -> Exception:
    if isinstance(exc, ContainerTimeoutError):  # the model may have run: not retryable
        return HandlerError("The container did not answer in time.", 504)
    return ServiceError.unavailable("The model container is not reachable.")


class ContainerSingle:
    """A container's single-model contract (``POST /invocations``) as a handler."""

    def __init__(self, client: Any) -> None:
        self._client = client

    def predict(
        self,
        body: bytes,
        content_type: str | None,
        accept: str | None,
        custom_attributes: str | None = None,
        session_id: str | None = None,
    ) -> HandlerReply:
        try:
            response = self._client.invoke_single(
                body,
                content_type=content_type,
                accept=accept,
                custom_attributes=custom_attributes,
                extra_headers=_session_headers(session_id),
            )
        except ContainerUnreachableError as exc:
            raise _unreachable(exc) from None
        return _reply(response, accept, session_id)


class _ContainerModel:
    """One model loaded in a multi-model container, as a handler."""

    def __init__(self, client: Any, model_name: str) -> None:
        self._client = client
        self.model_name = model_name

    def predict(
        self,
        body: bytes,
        content_type: str | None,
        accept: str | None,
        custom_attributes: str | None = None,
        target_model: str | None = None,
        session_id: str | None = None,
    ) -> HandlerReply:
        try:
            response = self._client.invoke(
                self.model_name,
                body,
                content_type=content_type,
                accept=accept,
                custom_attributes=custom_attributes,
                target_model=target_model,
                extra_headers=_session_headers(session_id),
            )
        except ContainerUnreachableError as exc:
            raise _unreachable(exc) from None
        if response.status == 404:  # the container lost the model: reload and retry
            raise ModelGone(self.model_name)
        return _reply(response, accept, session_id)


class ContainerModelLoader:
    """Loads ``TargetModel`` values into a multi-model container, as SageMaker's agent does:
    with ``artifacts`` the model's artifact is first unpacked once into its own model
    directory and the container is told that directory's path - ``url_for(path)``: the host
    path for a container on this machine, ``/opt/ml/models/<key>/model`` for one whose
    store is mounted there. Without ``artifacts`` the container is told
    ``/opt/ml/models/<model_name>/model`` and must find the model there itself."""

    def __init__(
        self,
        client: Any,
        artifacts: ModelArtifacts | None = None,
        url_for: Callable[[Path], str] = str,
    ) -> None:
        self._client = client
        self._artifacts = artifacts
        self._url_for = url_for

    def estimate_size(self, target_model: str) -> int:
        # The container manages its memory and says 507; sizes come from model_sizes. The
        # artifact must exist all the same (a typo is a 400, not a load).
        if self._artifacts is not None:
            self._artifacts.size(target_model)
        return 0

    def load(self, target_model: str) -> LoadedModel:
        name = container_model_name(target_model)
        if self._artifacts is not None:
            url = self._url_for(self._artifacts.prepare(target_model))
        else:
            url = f"/opt/ml/models/{name}/model"
        try:
            self._client.load(name, url)
        except ContainerUnreachableError as exc:
            raise _unreachable(exc) from None
        except ContainerError as exc:
            if exc.status == 507:
                # multi-model-server can leave a model that got 507 registered with no
                # worker (a later load says 409, invoke 503): clear it before the retry.
                with contextlib.suppress(ContainerError):
                    self._client.unload(name)
            if exc.status != 409:  # 409: the container has it already
                raise HandlerError(exc.message, exc.status) from None
        return LoadedModel(_ContainerModel(self._client, name), 0)

    def unload(self, target_model: str, model: LoadedModel) -> None:
        try:
            self._client.unload(container_model_name(target_model))
        except ContainerError as exc:
            if exc.status != 404:  # 404: already gone
                raise
