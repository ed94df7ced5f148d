"""The Python model handler protocol of the local endpoint, and loading models from disk.

A handler is any object with a ``predict`` method (or a plain callable, used as ``predict``)::

    class Handler:
        def predict(self, body: bytes, content_type: str | None, accept: str | None):
            return HandlerReply(b'{"ok": true}', content_type="application/json")

        # optional: streamed answers for invocations-response-stream
        def stream(self, body, content_type, accept) -> Iterable[bytes | str]: ...

        # optional: stateful sessions (a default dict context is used without them)
        def open_session(self, body: bytes) -> object: ...
        def close_session(self, context: object) -> None: ...

``predict`` and ``stream`` may also declare any of the keyword parameters
``custom_attributes`` (the request's header), ``target_model``, ``session`` (the
session context) and ``session_id`` (the request's ``SessionId``: ``"NEW_SESSION"``, an
id or ``None``); they are passed only when declared. A handler whose ``predict`` declares
``session_id`` runs its sessions itself, as a container does (protocol.md §4): it gets the
opening and closing requests and answers them with a :class:`HandlerReply` carrying
``new_session_id`` / ``closed_session_id`` (see :class:`~smclient.local.StatefulHandler`).
``predict`` returns ``bytes``,
``str`` (UTF-8) or a :class:`HandlerReply`. Raise :class:`HandlerError` for a model
error (the caller sees ``ModelError`` 424 with ``OriginalStatusCode``); a status of 507
means "out of memory" to a multi-model endpoint, which then unloads models and retries.

From a model directory, :func:`load_model_dir` uses ``handler.py`` (a ``load(model_dir)``
function returning a handler, or module-level ``predict``) or the SageMaker inference
toolkit's ``inference.py`` (``model_fn``/``input_fn``/``predict_fn``/``output_fn`` or
``transform_fn``), looked up in the directory and in its ``code/`` subdirectory.
"""

from __future__ import annotations

import functools
import importlib.util
import inspect
import itertools
import json
import os
import sys
import tarfile
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import Path
from types import ModuleType
from typing import Any, Protocol, runtime_checkable

import attrs

from ..server._wire import response_media_type

__all__ = [
    "HandlerError",
    "HandlerReply",
    "ModelHandler",
    "SessionHandler",
    "StreamError",
    "StreamingHandler",
    "ToolkitContext",
    "as_handler",
    "call_predict",
    "call_stream",
    "disk_size",
    "load_model_dir",
    "runs_own_sessions",
    "unpack_archive",
]

_OPTIONAL = ("custom_attributes", "target_model", "session", "session_id")


@attrs.frozen
class HandlerReply:
    """A handler's answer: ``body`` bytes, ``content_type`` (default: the request's
    ``Accept``, else ``application/octet-stream``) and ``custom_attributes`` returned in
    ``X-Amzn-SageMaker-Custom-Attributes``.

    A handler that runs its own sessions (its ``predict`` declares ``session_id``) sets
    ``new_session_id`` on the answer to a ``NEW_SESSION`` request, as a container sets
    ``X-Amzn-SageMaker-Session-Id``: ``"<id>; Expires=YYYY-MM-DDTHH:MM:SSZ"`` (or the bare
    id: the endpoint's ``session_ttl`` applies), and ``closed_session_id`` (the id) on the
    answer that closed one. The runtime relays them as ``NewSessionId`` /
    ``ClosedSessionId`` and routes later calls with the id to the instance that answered.

    .. versionadded:: 0.1.0
    .. versionadded:: 0.2.0 ``new_session_id`` and ``closed_session_id``.
    """

    body: bytes
    content_type: str | None = None
    custom_attributes: str | None = None
    new_session_id: str | None = None
    closed_session_id: str | None = None


class HandlerError(Exception):
    """Raised by a handler for a model error: callers see ``ModelError`` (HTTP 424) with
    ``OriginalStatusCode`` = ``status_code`` (default 500) and ``OriginalMessage`` =
    ``message``. 507 tells a multi-model endpoint the instance is out of memory.

    .. versionadded:: 0.1.0
    """

    def __init__(self, message: str, status_code: int = 500) -> None:
        super().__init__(message, status_code)
        self.message = message
        self.status_code = status_code

    def __str__(self) -> str:
        return f"{self.status_code}: {self.message}"


class StreamError(Exception):
    """Raised by a handler's ``stream`` after it started: the stream ends with a
    ``ModelStreamError`` event carrying ``error_code`` (e.g. ``ModelInvocationTimeExceeded``
    or the default ``StreamBroken``).

    .. versionadded:: 0.1.0
    """

    def __init__(self, message: str, error_code: str = "StreamBroken") -> None:
        super().__init__(message, error_code)
        self.message = message
        self.error_code = error_code


@runtime_checkable
class ModelHandler(Protocol):
    """The one required method of a handler. See the module docstring.

    .. versionadded:: 0.1.0
    """

    def predict(
        self, body: bytes, content_type: str | None, accept: str | None
    ) -> HandlerReply | bytes | str:
        """Answer one request ``body`` (with its ``ContentType`` and ``Accept``, ``None``
        when not sent): ``bytes``, ``str`` (sent as UTF-8) or a :class:`HandlerReply`.
        Raise :class:`HandlerError` for a model error (the caller sees ``ModelError``)."""
        ...


@runtime_checkable
class StreamingHandler(Protocol):
    """A handler that can stream its answer chunk by chunk.

    .. versionadded:: 0.1.0
    """

    def stream(
        self, body: bytes, content_type: str | None, accept: str | None
    ) -> Iterable[bytes | str]:
        """Answer one streamed request chunk by chunk: each non-empty item (``str`` as
        UTF-8) is sent as one ``PayloadPart`` event; raise :class:`StreamError` to end the
        stream with a ``ModelStreamError`` event."""
        ...


@runtime_checkable
class SessionHandler(Protocol):
    """A handler that keeps per-session state: ``open_session`` returns the context
    passed as ``session=`` to later calls, ``close_session`` releases it.

    .. versionadded:: 0.1.0
    """

    def open_session(self, body: bytes) -> object:
        """Start a session from the opening request's ``body``; the returned context is
        passed as ``session=`` to later calls of that session."""
        ...

    def close_session(self, context: object) -> None:
        """Release a session's ``context`` (closed by the client or expired)."""
        ...


class _CallableHandler:
    """Adapts ``fn(body, content_type, accept)`` to the handler protocol."""

    def __init__(self, fn: Callable[..., Any]) -> None:
        self._fn = fn

    def predict(self, body: bytes, content_type: str | None, accept: str | None, **kw: Any) -> Any:
        return _call(self._fn, (body, content_type, accept), kw)

    def __repr__(self) -> str:
        return f"<handler {getattr(self._fn, '__qualname__', type(self._fn).__name__)}>"


def as_handler(obj: object) -> ModelHandler:
    """``obj`` itself if it has ``predict``, else a callable wrapped as a handler; a
    handler class is instantiated (with no arguments)."""
    if isinstance(obj, type) and callable(getattr(obj, "predict", None)):
        obj = obj()
    if isinstance(obj, ModelHandler):
        return obj
    if callable(obj):
        return _CallableHandler(obj)
    raise TypeError(f"a handler needs a predict method or must be callable, got {type(obj)}")


@functools.lru_cache(maxsize=256)
def _accepted(fn: Callable[..., Any]) -> frozenset[str] | None:
    """Optional keyword names ``fn`` declares; ``None`` if it takes ``**kwargs``."""
    try:
        params = inspect.signature(fn).parameters.values()
    except (TypeError, ValueError):
        return frozenset()
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params):
        return None
    return frozenset(p.name for p in params if p.name in _OPTIONAL)


def runs_own_sessions(handler: ModelHandler) -> bool:
    """Whether ``handler.predict`` (or the wrapped callable) names a ``session_id``
    parameter: then the handler opens and closes sessions itself, as a container does."""
    fn = handler._fn if isinstance(handler, _CallableHandler) else handler.predict
    try:
        param = inspect.signature(fn).parameters.get("session_id")
    except (TypeError, ValueError):
        return False
    kinds = (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
    return param is not None and param.kind in kinds


def _call(fn: Callable[..., Any], args: tuple[Any, ...], optional: dict[str, Any]) -> Any:
    try:
        names = _accepted(fn)
    except TypeError:  # unhashable callable
        names = _accepted.__wrapped__(fn)
    kwargs = optional if names is None else {k: v for k, v in optional.items() if k in names}
    return fn(*args, **kwargs)


def _to_bytes(value: object) -> bytes:
    if isinstance(value, bytes):
        return value
    if isinstance(value, (bytearray, memoryview)):
        return bytes(value)
    if isinstance(value, str):
        return value.encode("utf-8")
    raise TypeError(f"a handler must return bytes, str or HandlerReply, got {type(value)}")


def call_predict(
    handler: ModelHandler,
    body: bytes,
    content_type: str | None,
    accept: str | None,
    **optional: Any,
) -> HandlerReply:
    """Calls ``handler.predict`` with the optional keywords it declares; normalises the
    answer to a :class:`HandlerReply` with a content type."""
    result = _call(handler.predict, (body, content_type, accept), optional)
    if isinstance(result, HandlerReply):
        if result.content_type is None:
            return attrs.evolve(result, content_type=response_media_type(accept))
        return result
    return HandlerReply(_to_bytes(result), response_media_type(accept))


def call_stream(
    handler: ModelHandler,
    body: bytes,
    content_type: str | None,
    accept: str | None,
    **optional: Any,
) -> Iterator[bytes]:
    """Chunks of ``handler.stream``, or ``predict``'s whole answer as one chunk."""
    stream = getattr(handler, "stream", None)
    if stream is None:
        yield call_predict(handler, body, content_type, accept, **optional).body
        return
    for chunk in _call(stream, (body, content_type, accept), optional):
        yield _to_bytes(chunk)


# -- model directories ---------------------------------------------------------------

_import_lock = threading.Lock()
_module_ids = itertools.count()


def _import_file(path: Path) -> ModuleType:
    name = f"_smclient_local_model_{next(_module_ids)}"
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise HandlerError(f"cannot import {path.name}")
    module = importlib.util.module_from_spec(spec)
    # Like the inference toolkit, the script's folder is importable while it loads, so
    # it can import helper modules shipped next to it.
    folder = str(path.parent.resolve())
    with _import_lock:
        before = set(sys.modules)
        sys.path.insert(0, str(path.parent))
        try:
            spec.loader.exec_module(module)
        finally:
            sys.path.remove(str(path.parent))
            # Forget helper modules imported from the model's folder, so that another
            # model shipping its own helper.py gets its own, not this one.
            for key in set(sys.modules) - before:
                origin = getattr(sys.modules[key], "__file__", None) or ""
                if origin.startswith(folder + os.sep):
                    del sys.modules[key]
    return module


def _find(model_dir: Path, filename: str) -> Path | None:
    for candidate in (model_dir / filename, model_dir / "code" / filename):
        if candidate.is_file():
            return candidate
    return None


def load_model_dir(model_dir: Path) -> ModelHandler:
    """The handler of a model directory (``handler.py`` first, then ``inference.py``);
    :class:`HandlerError` if it has neither or loading fails."""
    script = _find(model_dir, "handler.py")
    if script is not None:
        module = _import_file(script)
        load = getattr(module, "load", None)
        if callable(load):
            return as_handler(load(model_dir))
        if callable(getattr(module, "predict", None)):
            return as_handler(module)
        raise HandlerError(f"{script.name} defines neither load(model_dir) nor predict")
    script = _find(model_dir, "inference.py")
    if script is not None:
        return ToolkitHandler(_import_file(script), model_dir)
    raise HandlerError("model directory has no handler.py or inference.py (nor in code/)")


@attrs.frozen
class ToolkitContext:
    """The ``context`` passed to an inference toolkit function that declares one more
    parameter than the toolkit's own arguments (as the model server's context object):
    ``model_dir`` (the model directory, a string), ``model_name`` (its folder's name) and
    ``system_properties``, a dict with ``"model_dir"`` and ``"gpu_id"`` (always ``None``:
    the local endpoint has no GPU assignment)."""

    model_dir: str
    model_name: str
    system_properties: Mapping[str, object] = attrs.field(hash=False)


def _call_toolkit(fn: Callable[..., Any], context: ToolkitContext, *args: Any) -> Any:
    # As the toolkit does: every declared parameter counts (defaults included); one more
    # than the arguments means the function takes the context last.
    try:
        count = len(inspect.signature(fn).parameters)
    except (TypeError, ValueError):  # a builtin without a signature: no context
        return fn(*args)
    if count == len(args):
        return fn(*args)
    if count == len(args) + 1:
        return fn(*args, context)
    name = getattr(fn, "__name__", "function")
    raise HandlerError(
        f"inference.py: {name} takes {count} arguments, expected {len(args)} or {len(args) + 1}"
    )


class ToolkitHandler:
    """Runs a SageMaker inference toolkit script: ``model_fn(model_dir)`` once, then per
    request ``transform_fn(model, body, content_type, accept)`` or
    ``output_fn(predict_fn(input_fn(body, content_type), model), accept)``. Each of the
    five gets a :class:`ToolkitContext` as last argument when it declares one parameter
    more, as the toolkit counts them.

    Defaults as in the toolkit (without numpy): ``input_fn`` decodes JSON for
    ``application/json`` and UTF-8 text for ``text/*`` (else passes bytes), ``predict_fn``
    calls ``model(data)``, ``output_fn`` encodes JSON. An ``output_fn`` may return
    ``(body, content_type)``.
    """

    def __init__(self, module: ModuleType, model_dir: Path) -> None:
        model_fn = getattr(module, "model_fn", None)
        if model_fn is None:
            raise HandlerError("inference.py has no model_fn")
        self._module = module
        self._context = ToolkitContext(
            str(model_dir), model_dir.name, {"model_dir": str(model_dir), "gpu_id": None}
        )
        self._model = _call_toolkit(model_fn, self._context, str(model_dir))

    def predict(self, body: bytes, content_type: str | None, accept: str | None) -> HandlerReply:
        module, model, context = self._module, self._model, self._context
        # As the toolkit: no Accept, or any type, means its default accept (JSON).
        accept = response_media_type(accept, default="application/json")
        transform_fn = getattr(module, "transform_fn", None)
        if transform_fn is not None:
            result = _call_toolkit(transform_fn, context, model, body, content_type, accept)
        else:
            input_fn = getattr(module, "input_fn", _default_input)
            predict_fn = getattr(module, "predict_fn", _default_predict)
            output_fn = getattr(module, "output_fn", _default_output)
            data = _call_toolkit(input_fn, context, body, content_type)
            prediction = _call_toolkit(predict_fn, context, data, model)
            result = _call_toolkit(output_fn, context, prediction, accept)
        if isinstance(result, tuple):
            return HandlerReply(_to_bytes(result[0]), str(result[1]))
        return HandlerReply(_to_bytes(result), accept)


def _default_input(body: bytes, content_type: str | None) -> Any:
    ctype = (content_type or "").split(";")[0].strip().lower()
    if ctype == "application/json":
        return json.loads(body)
    if ctype.startswith("text/"):
        return body.decode("utf-8")
    return body


def _default_predict(data: Any, model: Any) -> Any:
    return model(data)


def _default_output(prediction: Any, accept: str) -> bytes:
    if isinstance(prediction, (bytes, str)):
        return _to_bytes(prediction)
    return json.dumps(prediction).encode()


# -- archives ------------------------------------------------------------------------


def unpack_archive(archive: Path, dest: Path) -> None:
    """Unpacks a ``.tar.gz`` model archive into ``dest``, refusing members that would land
    outside it (absolute paths, ``..``), links and device files."""
    dest = dest.resolve()
    dest.mkdir(parents=True, exist_ok=True)
    try:
        with tarfile.open(archive, "r:*") as tar:
            members = tar.getmembers()
            for member in members:
                target = (dest / member.name).resolve()
                if not (member.isfile() or member.isdir()):
                    raise HandlerError(f"archive member {member.name!r} is not a file", 400)
                if os.path.commonpath([dest, target]) != str(dest):
                    raise HandlerError(f"archive member {member.name!r} escapes the model dir", 400)
            for member in members:
                # Checked above; the "data" filter (Python >= 3.10.12) checks again.
                if hasattr(tarfile, "data_filter"):
                    tar.extract(member, dest, set_attrs=False, filter="data")
                else:  # pragma: no cover - old patch releases
                    tar.extract(member, dest, set_attrs=False)
    except (tarfile.TarError, OSError) as exc:
        raise HandlerError(f"cannot unpack model archive: {type(exc).__name__}", 400) from exc


def disk_size(path: Path) -> int:
    """Bytes used by a file or a directory tree."""
    if path.is_file():
        return path.stat().st_size
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())
