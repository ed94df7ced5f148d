"""The model artifacts of a multi-model endpoint, prepared as SageMaker's agent does.

A ``TargetModel`` is a path under the endpoint's model root: a host folder or an
``s3://bucket/prefix`` URL (read through the runtime's S3 connection, the embedded moto
server by default). Before a model loads, its artifact - a ``.tar.gz`` archive, or a
directory (an S3 "folder" of objects) - is unpacked (or copied) once into its own model
directory, ``<store>/<key>/model``, where ``key`` is an opaque hash of the ``TargetModel``
(SageMaker names them by a hash too). The directory stays after an unload (SageMaker keeps
unloaded models on the instance disk), so a reload does not unpack again. A container
runtime mounts ``<store>`` at ``/opt/ml/models`` and tells the container
``/opt/ml/models/<key>/model``; a container on the host is told the host path.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
import threading
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..hosting._handlers import disk_size, unpack_archive
from ..server._wire import ServiceError

__all__ = ["ModelArtifacts", "model_key"]


def model_key(target_model: str) -> str:
    """The opaque name of a ``TargetModel``'s model directory (and of the model in a
    container): 32 hex characters of its SHA-256."""
    return hashlib.sha256(target_model.encode()).hexdigest()[:32]


def _missing(root: str, target_model: str) -> ServiceError:
    # The service's wording for a TargetModel with no object behind it.
    return ServiceError.validation(
        f"Failed to download model data(prefix: {root.rstrip('/')}/, key: {target_model})."
        " Please ensure that there is an object located at the URL."
    )


class ModelArtifacts:
    """Model artifacts under ``root`` (a folder or ``s3://bucket/prefix``) prepared into
    ``store``. ``s3`` returns the S3 client for an S3 root (called on first use).
    ``copy_directories``: whether a directory under a folder root is copied into the store
    (a container needs every model under the mounted store) or used where it is."""

    def __init__(
        self,
        root: str | os.PathLike[str],
        store: Path,
        *,
        s3: Callable[[], Any] | None = None,
        copy_directories: bool = True,
    ) -> None:
        text = os.fspath(root)
        self._s3_url: tuple[str, str] | None = None
        self._root: Path | None = None
        if text.startswith("s3://"):
            bucket, _, prefix = text[len("s3://") :].partition("/")
            if not bucket:
                raise ValueError(f"model root {text!r} names no bucket")
            self._s3_url = (bucket, prefix.strip("/"))
            if s3 is None:
                raise ValueError("an s3:// model root needs an S3 connection")
        else:
            self._root = Path(text).resolve()
        self._text = text
        self._store = store
        self._s3 = s3
        self._copy = copy_directories
        self._locks: dict[str, threading.Lock] = {}
        self._locks_lock = threading.Lock()

    @property
    def store(self) -> Path:
        """The folder holding the prepared model directories (``/opt/ml/models``)."""
        return self._store

    def model_dir(self, target_model: str) -> Path:
        """Where ``target_model``'s model directory is (or will be) in the store."""
        return self._store / model_key(target_model) / "model"

    def size(self, target_model: str) -> int:
        """The artifact's size in bytes; 400 ``ValidationError`` (the service's "Failed to
        download model data") when there is no artifact for ``target_model``."""
        if self._root is not None:
            return disk_size(self._local(target_model))
        return sum(size for _, size in self._s3_objects(target_model))

    def source_dir(self, target_model: str) -> Path | None:
        """The artifact itself when it is a directory on this machine that is used where it
        is (``copy_directories=False``), else ``None``."""
        if self._root is None or self._copy:
            return None
        path = self._local(target_model)
        return path if path.is_dir() else None

    def prepare(self, target_model: str) -> Path:
        """The model directory of ``target_model``, unpacked (or copied, or downloaded) on
        the first call only; concurrent calls for one model wait for the one preparing."""
        dest = self.model_dir(target_model)
        with self._lock_for(target_model):
            if dest.is_dir():
                return dest
            # Unpack next to the destination and rename: a failed or interrupted unpack
            # never leaves a half model directory that a later load would take as done.
            dest.parent.mkdir(parents=True, exist_ok=True)
            partial = dest.parent / f"partial-{uuid.uuid4().hex}"
            try:
                if self._root is not None:
                    self._prepare_local(target_model, partial)
                else:
                    self._prepare_s3(target_model, partial)
                partial.rename(dest)
            finally:
                if partial.exists():
                    shutil.rmtree(partial, ignore_errors=True)
        return dest

    # -- folders ------------------------------------------------------------------------

    def _local(self, target_model: str) -> Path:
        assert self._root is not None
        path = (self._root / target_model).resolve()
        inside = self._root in path.parents
        if not inside or not path.exists():
            raise _missing(self._root.name, target_model)
        return path

    def _prepare_local(self, target_model: str, partial: Path) -> None:
        source = self._local(target_model)
        if source.is_dir():
            shutil.copytree(source, partial, symlinks=False)
        else:
            unpack_archive(source, partial)

    # -- S3 ---------------------------------------------------------------------------------

    def _s3_objects(self, target_model: str) -> list[tuple[str, int]]:
        """``(key, size)`` of the artifact: the object ``<prefix>/<TargetModel>``, else every
        object under ``<prefix>/<TargetModel>/`` (a model stored as a folder)."""
        assert self._s3_url is not None
        assert self._s3 is not None
        bucket, prefix = self._s3_url
        key = f"{prefix}/{target_model}" if prefix else target_model
        if ".." in target_model.split("/"):
            raise _missing(self._text, target_model)
        client = self._s3()
        from botocore.exceptions import ClientError

        try:
            head = client.head_object(Bucket=bucket, Key=key)
            return [(key, int(head.get("ContentLength", 0)))]
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") not in ("404", "NoSuchKey", "NotFound"):
                raise ServiceError.validation(
                    f"Failed to download model data for {target_model}: "
                    f"{exc.response.get('Error', {}).get('Code')}"
                ) from None
        found: list[tuple[str, int]] = []
        paginator = client.get_paginator("list_objects_v2")
        try:
            for page in paginator.paginate(Bucket=bucket, Prefix=key.rstrip("/") + "/"):
                found += [(o["Key"], int(o.get("Size", 0))) for o in page.get("Contents", [])]
        except ClientError:
            found = []
        if not found:
            raise _missing(self._text, target_model)
        return found

    def _prepare_s3(self, target_model: str, partial: Path) -> None:
        assert self._s3_url is not None
        assert self._s3 is not None
        bucket, prefix = self._s3_url
        key = f"{prefix}/{target_model}" if prefix else target_model
        objects = self._s3_objects(target_model)
        client = self._s3()
        if [k for k, _ in objects] == [key]:
            # One object: an archive (SageMaker's model.tar.gz), unpacked into the model dir.
            with tempfile.TemporaryDirectory(dir=partial.parent) as tmp:
                archive = Path(tmp) / "model.tar.gz"
                client.download_file(bucket, key, str(archive))
                unpack_archive(archive, partial)
            return
        folder = key.rstrip("/") + "/"
        partial.mkdir(parents=True)
        root = partial.resolve()
        for name, _ in objects:
            relative = name[len(folder) :]
            if not relative or relative.endswith("/"):
                continue  # a "folder" marker object
            dest = (root / relative).resolve()
            if root not in dest.parents:
                continue  # a key that would land outside the model directory
            dest.parent.mkdir(parents=True, exist_ok=True)
            client.download_file(bucket, name, str(dest))

    def _lock_for(self, target_model: str) -> threading.Lock:
        with self._locks_lock:
            return self._locks.setdefault(target_model, threading.Lock())
