"""Models from a folder: :class:`DirectoryModelLoader` maps ``TargetModel`` to a directory
or ``.tar.gz`` under the endpoint's ``model_root`` and builds a Python handler from it.
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..hosting._handlers import (
    as_handler,
    disk_size,
    load_model_dir,
    unpack_archive,
)
from ..server._wire import ServiceError
from ._cache import LoadedModel

__all__ = ["DirectoryModelLoader"]


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
