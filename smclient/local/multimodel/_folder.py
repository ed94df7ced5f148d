"""Models from a folder (or S3 prefix): :class:`DirectoryModelLoader` maps ``TargetModel`` to
a directory or ``.tar.gz`` under the endpoint's ``model_root`` and builds a Python handler
from it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ..hosting._handlers import as_handler, disk_size, load_model_dir
from ._artifacts import ModelArtifacts
from ._cache import LoadedModel

__all__ = ["DirectoryModelLoader"]


class DirectoryModelLoader:
    """Python models from :class:`ModelArtifacts`: a directory on this machine is loaded
    where it is, an archive (or an S3 artifact) from its model directory, unpacked once;
    ``load`` builds the handler (default :func:`load_model_dir`), once per instance. A
    handler's optional ``close()`` runs on unload."""

    def __init__(
        self,
        artifacts: ModelArtifacts,
        load: Callable[[Any], Any] = load_model_dir,
    ) -> None:
        self._artifacts = artifacts
        self._load = load

    def estimate_size(self, target_model: str) -> int:
        return self._artifacts.size(target_model)

    def load(self, target_model: str) -> LoadedModel:
        path = self._artifacts.source_dir(target_model) or self._artifacts.prepare(target_model)
        handler = as_handler(self._load(path))
        declared = getattr(handler, "memory_bytes", None)
        size = declared if isinstance(declared, int) else disk_size(path)
        return LoadedModel(handler, size)

    def unload(self, target_model: str, model: LoadedModel) -> None:
        close = getattr(model.handler, "close", None)
        if callable(close):
            close()
