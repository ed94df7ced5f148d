"""``EndpointSpec``: what one local endpoint hosts and how."""

from __future__ import annotations

import os
import re
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Literal

import attrs

from .multimodel._cache import MultiModelSettings
from .server._wire import StreamFaults
from .sessions._store import DEFAULT_SESSION_TTL

__all__ = ["EndpointSpec"]

_NAME = re.compile(r"[a-zA-Z0-9](-*[a-zA-Z0-9])*")


@attrs.frozen
class EndpointSpec:
    """What one local endpoint hosts. Give one model source:

    - ``handler``: a handler object, a plain callable, or a handler class (instantiated
      once per instance) - single model, see :mod:`smclient.local` for the protocol;
    - ``model_dir``: a model directory or ``.tar.gz`` (single model, loaded per instance);
    - ``model_root``: a folder, or an ``s3://bucket/prefix`` URL, whose entries
      (directories or ``.tar.gz``) are the ``TargetModel`` values of a multi-model endpoint;
    - ``container_url``: a running bring-your-own container, single-model contract, or
      the multi-model contract with ``container_multi_model=True`` (one instance); with
      ``model_root`` too, each model's artifact is unpacked once into its own model
      directory and the container is told that directory's path, as SageMaker does;
    - ``container_image``: the same for an image the runtime starts itself with
      ``docker run ... <image> serve`` (port 8080 published on loopback,
      ``SAGEMAKER_MULTI_MODEL=true`` and the prepared models mounted at
      ``/opt/ml/models`` with ``container_multi_model=True`` and ``model_root``, else
      ``model_dir`` mounted at ``/opt/ml/model``), health-checked on ``/ping`` for up to
      ``container_startup_timeout`` seconds (default 120) and stopped on close.
      ``container_env`` adds environment variables.

    ``loader`` builds a handler from a model directory (default: ``handler.py`` or the
    inference toolkit's ``inference.py``). ``instance_count`` instances (default 1) share
    the traffic round robin; sessions stick to theirs. Each instance has its own model, as
    on SageMaker: ``model_dir`` is loaded (``model_fn`` runs) once per instance, a handler
    class is instantiated per instance, while a handler object or function you pass is one
    object every instance shares. ``instance_loading``: ``"eager"`` (default, as SageMaker:
    every instance loads at start) or ``"lazy"`` (an instance loads on its first request).
    ``session_ttl`` seconds (default 1200) with ``clock`` giving seconds since the epoch
    (default ``time.time``).
    ``async_config`` (an ``AsyncSettings``) enables ``async-invocations``.
    ``stream_faults`` injects failures into the streaming route (tests).
    ``invocation_timeout``: seconds a model may take to answer before the caller gets the
    service's timeout ``ModelError`` (default 60, SageMaker's limit; ``None``: no limit,
    the model runs on the connection's own thread; on a timeout the handler itself keeps
    running, as a container would). Async invocations are bounded by their
    ``InvocationTimeoutSeconds`` instead.

    ``bidi_handler``: an async handler for bidirectional streams
    (``InvokeEndpointWithBidirectionalStream``, see :mod:`smclient.local.bidi`), served on
    the runtime's own port over HTTP/2 (alone, it makes an endpoint that serves only
    those); ``container_bidi=True`` fronts the endpoint's container over the bidirectional
    WebSocket contract instead. Both need the ``duplex`` extra.

    .. versionadded:: 0.1.0
    .. versionadded:: 0.2.0 ``bidi_handler``, ``container_bidi``
    .. versionadded:: 0.2.0 ``container_image``, ``container_env``,
       ``container_startup_timeout``, ``instance_loading``; ``model_root`` with a
       multi-model container, or as an ``s3://`` URL.
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
    container_image: str | None = None
    container_env: Mapping[str, str] = attrs.field(factory=dict, hash=False)
    container_startup_timeout: float = 120.0
    instance_loading: Literal["eager", "lazy"] = "eager"
    bidi_handler: object | None = None
    container_bidi: bool = False

    def __attrs_post_init__(self) -> None:
        if len(self.name) > 63 or not _NAME.fullmatch(self.name):
            raise ValueError(f"invalid endpoint name {self.name!r}")
        self._check_sources()
        if self.instance_count < 1:
            raise ValueError("instance_count must be >= 1")
        if self.has_container and self.instance_count != 1:
            raise ValueError("a container endpoint has exactly one instance")
        if self.instance_loading not in ("eager", "lazy"):
            raise ValueError(
                f"instance_loading must be 'eager' or 'lazy', got {self.instance_loading!r}"
            )
        if self.async_config is not None and self.is_multi_model:
            raise ValueError("asynchronous inference is not available on multi-model endpoints")
        if self.invocation_timeout is not None and self.invocation_timeout <= 0:
            raise ValueError("invocation_timeout must be > 0 seconds")
        if self.session_ttl <= 0:
            raise ValueError("session_ttl must be > 0 seconds")

    def _check_sources(self) -> None:
        if self.bidi_handler is not None and self.container_bidi:
            raise ValueError("give bidi_handler or container_bidi=True, not both")
        if self.container_bidi and not self.has_container:
            raise ValueError("container_bidi=True needs container_url or container_image")
        if self.is_bidi_only:
            return
        if self.container_url is not None and self.container_image is not None:
            raise ValueError("give container_url or container_image, not both")
        if not self.has_container:
            sources = [self.handler, self.model_dir, self.model_root]
            if sum(s is not None for s in sources) != 1:
                raise ValueError(
                    "give exactly one of handler, model_dir, model_root, container_url or "
                    "container_image"
                )
            if self.container_multi_model:
                raise ValueError(
                    "container_multi_model=True needs container_url or container_image"
                )
            return
        if self.handler is not None:
            raise ValueError("a container endpoint takes no handler")
        if self.container_multi_model:
            if self.model_dir is not None:
                raise ValueError(
                    "a multi-model container takes model_root (its models), not model_dir"
                )
            if self.container_image is not None and self.model_root is None:
                raise ValueError(
                    "container_image with container_multi_model=True needs model_root: the "
                    "folder (or s3:// URL) of models mounted at /opt/ml/models"
                )
        else:
            if self.model_root is not None:
                raise ValueError(
                    "model_root with a container needs container_multi_model=True (for a "
                    "single-model image give model_dir, mounted at /opt/ml/model)"
                )
            if self.model_dir is not None and self.container_url is not None:
                raise ValueError(
                    "model_dir with a container needs container_image (a running container "
                    "at container_url already has its model)"
                )

    @property
    def is_bidi_only(self) -> bool:
        """Whether this endpoint serves only bidirectional streams (a ``bidi_handler`` and
        no other model source)."""
        return (
            self.bidi_handler is not None
            and not self.has_container
            and (self.handler is None and self.model_dir is None and self.model_root is None)
        )

    @property
    def serves_bidi(self) -> bool:
        """Whether this endpoint serves ``invocations-bidirectional-stream``."""
        return self.bidi_handler is not None or self.container_bidi

    @property
    def has_container(self) -> bool:
        """Whether a bring-your-own container serves this endpoint."""
        return self.container_url is not None or self.container_image is not None

    @property
    def is_multi_model(self) -> bool:
        """Whether the endpoint hosts many models (a ``model_root`` folder, or a
        multi-model container), chosen per request with ``TargetModel``."""
        return self.model_root is not None or (self.has_container and self.container_multi_model)
