"""Where models come from: a folder of model directories/archives, or a bring-your-own
container already running at a URL.

Folder: :class:`DirectoryModelLoader` maps ``TargetModel`` to a directory or ``.tar.gz``.
Container, single-model contract: ``/invocations`` wrapped as a handler. Multi-model: a
:class:`~smclient.local._multimodel.ModelLoader` whose loads are ``POST /models`` (409
"already loaded" counts as loaded, 507 makes the cache unload idle models and retry) and
whose unloads are ``DELETE /models/{name}``; an invoke answering 404 makes the cache
reload the model and try again, 507 unload others and try again, as SageMaker does.
"""

from __future__ import annotations

import contextlib
import hashlib
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ._handlers import (
    HandlerError,
    HandlerReply,
    as_handler,
    disk_size,
    load_model_dir,
    unpack_archive,
)
from ._multimodel import LoadedModel, ModelGone
from ._wire import ServiceError

__all__ = [
    "ContainerModelLoader",
    "ContainerSingle",
    "DirectoryModelLoader",
    "container_model_name",
]


def container_model_name(target_model: str) -> str:
    """The opaque ``model_name`` sent to the container for a ``TargetModel`` (SageMaker
    also names models by a hash, not by the TargetModel string)."""
    return hashlib.sha256(target_model.encode()).hexdigest()[:32]


def _message(body: bytes) -> str:
    """The container's error text (SageMaker passes it on as ``OriginalMessage``)."""
    return body[:1024].decode("utf-8", "replace")


def _reply(response: Any, accept: str | None) -> HandlerReply:
    if not 200 <= response.status < 300:
        raise HandlerError(_message(response.body), response.status)
    return HandlerReply(response.body, response.content_type or accept, response.custom_attributes)


def _unreachable(exc: Exception) -> Exception:
    from ._container import ContainerTimeoutError

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
    ) -> HandlerReply:
        from ._container import ContainerUnreachableError

        try:
            response = self._client.invoke_single(
                body, content_type=content_type, accept=accept, custom_attributes=custom_attributes
            )
        except ContainerUnreachableError as exc:
            raise _unreachable(exc) from None
        return _reply(response, accept)


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
    ) -> HandlerReply:
        from ._container import ContainerUnreachableError

        try:
            response = self._client.invoke(
                self.model_name,
                body,
                content_type=content_type,
                accept=accept,
                custom_attributes=custom_attributes,
                target_model=target_model,
            )
        except ContainerUnreachableError as exc:
            raise _unreachable(exc) from None
        if response.status == 404:
            raise ModelGone(self.model_name)
        return _reply(response, accept)


class ContainerModelLoader:
    """Loads ``TargetModel`` values into a multi-model container. The ``url`` sent is the
    model's path under ``model_root`` when given (a container on this machine can read
    it), else ``/opt/ml/models/<model_name>/model`` as on SageMaker."""

    def __init__(self, client: Any, model_root: Path | None) -> None:
        self._client = client
        self._root = model_root

    def estimate_size(self, target_model: str) -> int:
        # The container manages its memory and says 507; sizes come from model_sizes.
        return 0

    def load(self, target_model: str) -> LoadedModel:
        from ._container import ContainerError, ContainerUnreachableError

        name = container_model_name(target_model)
        if self._root is not None:
            url = str(self._root / target_model)
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
        from ._container import ContainerError

        try:
            self._client.unload(container_model_name(target_model))
        except ContainerError as exc:
            if exc.status != 404:  # 404: already gone
                raise


class DirectoryModelLoader:
    """Models from a root folder: ``TargetModel`` names a directory or a ``.tar.gz`` under
    ``root`` (archives are unpacked once into ``workdir``); ``load`` builds the handler
    (default :func:`load_model_dir`). A handler's optional ``close()`` runs on unload."""

    def __init__(
        self,
        root: Path,
        workdir: Path,
        load: Callable[[Path], Any] = load_model_dir,
    ) -> None:
        self._root = root.resolve()
        self._workdir = workdir
        self._load = load
        self._unpack_lock = threading.Lock()

    def resolve(self, target_model: str) -> Path:
        path = (self._root / target_model).resolve()
        inside = path == self._root or self._root in path.parents
        if not inside or path == self._root or not path.exists():
            raise ServiceError.validation(
                f"Failed to download model data(prefix: {self._root.name}/, key: {target_model})."
                " Please ensure that there is an object located at the URL."
            )
        return path

    def estimate_size(self, target_model: str) -> int:
        return disk_size(self.resolve(target_model))

    def load(self, target_model: str) -> LoadedModel:
        path = self.resolve(target_model)
        if path.is_file():
            dest = self._workdir / hashlib.sha256(target_model.encode()).hexdigest()[:32]
            with self._unpack_lock:  # several instances may load the same archive
                if not (dest / ".unpacked").exists():
                    unpack_archive(path, dest)
                    (dest / ".unpacked").touch()
            path = dest
        handler = as_handler(self._load(path))
        declared = getattr(handler, "memory_bytes", None)
        size = declared if isinstance(declared, int) else disk_size(path)
        return LoadedModel(handler, size)

    def unload(self, target_model: str, model: LoadedModel) -> None:
        close = getattr(model.handler, "close", None)
        if callable(close):
            close()
