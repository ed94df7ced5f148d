"""``EndpointSpec``: what one local endpoint hosts and how."""

from __future__ import annotations

import os
import re
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import attrs

from .multimodel._cache import MultiModelSettings
from .server._wire import StreamFaults
from .sessions._store import DEFAULT_SESSION_TTL

__all__ = ["EndpointSpec"]

_NAME = re.compile(r"[a-zA-Z0-9](-*[a-zA-Z0-9])*")


@attrs.frozen
class EndpointSpec:
    """What one local endpoint hosts. Give exactly one model source:

    - ``handler``: a handler object or a plain callable (single model, see
      :mod:`smclient.local` for the handler protocol);
    - ``model_dir``: a model directory or ``.tar.gz`` (single model);
    - ``model_root``: a folder whose entries (directories or ``.tar.gz``) are the
      ``TargetModel`` values of a multi-model endpoint;
    - ``container_url``: a running bring-your-own container, single-model contract, or
      the multi-model contract with ``container_multi_model=True`` (one instance).

    ``loader`` builds a handler from a model directory (default: ``handler.py`` or the
    inference toolkit's ``inference.py``). ``instance_count`` instances (default 1) share
    the traffic round robin; sessions stick to theirs. ``session_ttl`` seconds (default
    1200) with ``clock`` giving seconds since the epoch (default ``time.time``).
    ``async_config`` (an ``AsyncSettings``) enables ``async-invocations``.
    ``stream_faults`` injects failures into the streaming route (tests).
    ``invocation_timeout``: seconds a model may take to answer before the caller gets the
    service's timeout ``ModelError`` (default 60, SageMaker's limit; ``None``: no limit,
    the model runs on the connection's own thread; on a timeout the handler itself keeps
    running, as a container would). Async invocations are bounded by their
    ``InvocationTimeoutSeconds`` instead.

    .. versionadded:: 0.1.0
    """

    name: str
    handler: object | None = None
    model_dir: str | os.PathLike[str] | None = None
    model_root: str | os.PathLike[str] | None = None
    container_url: str | None = None
    container_multi_model: bool = False
    loader: Callable[[Path], object] | None = None
    variant_name: str = "AllTraffic"
    instance_count: int = 1
    multi_model: MultiModelSettings = attrs.field(factory=MultiModelSettings)
    session_ttl: float = DEFAULT_SESSION_TTL
    clock: Callable[[], float] = time.time
    async_config: Any = None
    stream_faults: StreamFaults | None = None
    container_timeout: float = 70.0
    # The service's limit (protocol.md §1): a stuck handler must not hold a request forever.
    invocation_timeout: float | None = 60.0

    def __attrs_post_init__(self) -> None:
        if len(self.name) > 63 or not _NAME.fullmatch(self.name):
            raise ValueError(f"invalid endpoint name {self.name!r}")
        sources = [self.handler, self.model_dir, self.model_root, self.container_url]
        if sum(s is not None for s in sources) != 1:
            raise ValueError("give exactly one of handler, model_dir, model_root or container_url")
        if self.instance_count < 1:
            raise ValueError("instance_count must be >= 1")
        if self.container_url is not None and self.instance_count != 1:
            raise ValueError("a container endpoint has exactly one instance")
        if self.async_config is not None and self.is_multi_model:
            raise ValueError("asynchronous inference is not available on multi-model endpoints")
        if self.invocation_timeout is not None and self.invocation_timeout <= 0:
            raise ValueError("invocation_timeout must be > 0 seconds")
        if self.session_ttl <= 0:
            raise ValueError("session_ttl must be > 0 seconds")

    @property
    def is_multi_model(self) -> bool:
        return self.model_root is not None or (
            self.container_url is not None and self.container_multi_model
        )
