"""Multi-model endpoint emulation: one instance's model cache, loading on first use.

As SageMaker runs a multi-model endpoint: the first call for a ``TargetModel`` starts a
load in a background thread and is held up to the invocation window (default 60 s); if the
model is not loaded by then the call gets ``ModelNotReadyException`` (429) while loading
goes on, up to the load limit (default 360 s). A failed load is answered (``ModelError``)
to one caller, the next call loads again. Each instance has a memory budget: a load
that would not fit, or that reports 507, unloads the least recently used idle models and
tries again; an invocation answering 507 does the same.
"""

from __future__ import annotations

import enum
import itertools
import logging
import threading
import time
from collections.abc import Callable, Mapping
from typing import Protocol, TypeVar

import attrs

from ..hosting._handlers import HandlerError, ModelHandler
from ..server._wire import ServiceError

__all__ = [
    "LoadedModel",
    "ModelCache",
    "ModelGone",
    "ModelLoader",
    "ModelStats",
    "MultiModelSettings",
]

_log = logging.getLogger("smclient.local")
T = TypeVar("T")


@attrs.frozen
class MultiModelSettings:
    """Knobs of a multi-model endpoint.

    ``invocation_window``: seconds a call waits for its model to load before
    ``ModelNotReadyException`` (default 60; tests use e.g. 0.05). ``load_limit``: seconds a
    load may take before it is abandoned (default 360). ``memory_bytes``: the memory
    budget of each instance (default ``None``, unlimited). ``model_sizes``: bytes assigned
    to a ``TargetModel`` (default: its ``memory_bytes`` attribute once loaded, else its
    size on disk).

    .. versionadded:: 0.1.0
    """

    invocation_window: float = 60.0
    load_limit: float = 360.0
    memory_bytes: int | None = None
    model_sizes: Mapping[str, int] = attrs.field(factory=dict, hash=False)


@attrs.frozen
class LoadedModel:
    """A loaded model: its handler and the bytes it occupies."""

    handler: ModelHandler
    size_bytes: int


@attrs.frozen
class ModelStats:
    """Counters of one ``TargetModel`` on one instance (times in seconds).

    .. versionadded:: 0.1.0
    """

    loaded: bool
    loading: bool
    hits: int
    misses: int
    loads: int
    load_failures: int
    unloads: int
    invocations: int
    last_load_seconds: float | None
    total_load_seconds: float
    size_bytes: int

    def _repr_html_(self) -> str:  # notebooks: a short, escaped summary
        from ._html import model_stats

        return model_stats(self)


class ModelGone(Exception):
    """The host no longer has the model (a container's 404): reload and try again."""


class ModelLoader(Protocol):
    """Where one instance's models come from."""

    def estimate_size(self, target_model: str) -> int: ...

    def load(self, target_model: str) -> LoadedModel: ...

    def unload(self, target_model: str, model: LoadedModel) -> None: ...


class _State(enum.Enum):
    LOADING = "loading"
    READY = "ready"
    FAILED = "failed"


@attrs.define(eq=False)
class _Slot:
    state: _State
    started: float
    size: int
    model: LoadedModel | None = None
    error: BaseException | None = None
    in_use: int = 0
    last_used: int = 0


@attrs.define
class _Counters:
    hits: int = 0
    misses: int = 0
    loads: int = 0
    load_failures: int = 0
    unloads: int = 0
    invocations: int = 0
    last_load_seconds: float | None = None
    total_load_seconds: float = 0.0


def _as_service_error(endpoint: str, exc: BaseException) -> ServiceError:
    if isinstance(exc, ServiceError):
        return exc
    if isinstance(exc, HandlerError):
        return ServiceError.model_error(endpoint, exc.status_code, exc.message)
    return ServiceError.model_error(endpoint, 500, f"Failed to load model: {type(exc).__name__}")


class ModelCache:
    """The models of one instance of a multi-model endpoint."""

    def __init__(
        self,
        loader: ModelLoader,
        settings: MultiModelSettings,
        *,
        endpoint_name: str,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._loader = loader
        self._settings = settings
        self._endpoint = endpoint_name
        self._clock = clock
        self._cond = threading.Condition()
        self._slots: dict[str, _Slot] = {}
        self._counters: dict[str, _Counters] = {}
        self._threads: set[threading.Thread] = set()
        self._tick = itertools.count(1)
        self._closed = False

    def has(self, target_model: str) -> bool:
        """Whether the model is loaded or loading here (for routing)."""
        with self._cond:
            slot = self._slots.get(target_model)
            return slot is not None and slot.state is not _State.FAILED

    def call(self, target_model: str, fn: Callable[[ModelHandler], T]) -> T:
        """Runs ``fn`` with the model's handler, loading it first if needed. Raises
        :class:`ServiceError` (429 while loading past the window)."""
        last = HandlerError("The model was unloaded while invoked.", 404)
        for _ in range(3):
            slot = self._acquire(target_model)
            try:
                assert slot.model is not None
                return fn(slot.model.handler)
            except ModelGone:
                self._drop(target_model, slot)
            except HandlerError as exc:
                if exc.status_code != 507 or not self._evict_one(exclude=target_model):
                    raise
                last = exc
            finally:
                with self._cond:
                    slot.in_use -= 1
        raise last

    def wait_loaded(self, target_model: str, timeout: float) -> bool:
        """Waits up to ``timeout`` seconds until the model is loaded here."""

        def ready() -> bool:
            slot = self._slots.get(target_model)
            return slot is not None and slot.state is _State.READY

        with self._cond:
            return self._cond.wait_for(ready, timeout)

    def unload(self, target_model: str) -> bool:
        """Unloads an idle loaded model; ``False`` if it is not loaded or in use."""
        with self._cond:
            slot = self._slots.get(target_model)
            if slot is None or slot.state is not _State.READY or slot.in_use:
                return False
        self._drop(target_model, slot)
        return True

    def stats(self) -> dict[str, ModelStats]:
        with self._cond:
            out = {}
            for name, c in self._counters.items():
                slot = self._slots.get(name)
                out[name] = ModelStats(
                    loaded=slot is not None and slot.state is _State.READY,
                    loading=slot is not None and slot.state is _State.LOADING,
                    size_bytes=slot.size if slot is not None and slot.model else 0,
                    **attrs.asdict(c),
                )
            return out

    def memory_used(self) -> int:
        with self._cond:
            return sum(s.size for s in self._slots.values() if s.state is not _State.FAILED)

    def close(self, timeout: float = 10.0) -> list[str]:
        """Unloads every model and joins loader threads; returns threads left running."""
        with self._cond:
            self._closed = True
            ready = [(n, s) for n, s in self._slots.items() if s.state is _State.READY]
            self._slots.clear()
            threads = list(self._threads)
            self._cond.notify_all()
        for name, slot in ready:
            self._unload_model(name, slot)
        deadline = time.monotonic() + timeout
        for thread in threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        return [t.name for t in threads if t.is_alive()]

    # -- internals ---------------------------------------------------------------------

    def _acquire(self, target: str) -> _Slot:
        deadline = time.monotonic() + self._settings.invocation_window
        waited: _Slot | None = None
        with self._cond:
            while True:
                if self._closed:
                    raise ServiceError.unavailable("The endpoint is shutting down.")
                slot = self._slots.get(target)
                # A failed slot stays until one caller got its error (below), even when
                # nobody was waiting as the load failed: else a slow load that fails would
                # answer ModelNotReadyException forever, each caller starting a new load.
                if slot is None:
                    size = self._settings.model_sizes.get(target)
                    if size is None:
                        # Sizing may walk a model directory: not while holding the lock.
                        self._cond.release()
                        try:
                            size = self._loader.estimate_size(target)  # raises if unknown
                        finally:
                            self._cond.acquire()
                        if self._closed or self._slots.get(target) is not slot:
                            continue  # closed, or another call started a load meanwhile
                    # Counters exist only for models that were found (no entry per typo).
                    slot = self._start_load(target, size)
                    self._counters[target].misses += 1
                    waited = slot
                counters = self._counters[target]
                if slot.state is _State.READY:
                    slot.in_use += 1
                    slot.last_used = next(self._tick)
                    counters.invocations += 1
                    if waited is None:
                        counters.hits += 1
                    return slot
                if slot.state is _State.FAILED:
                    del self._slots[target]  # this caller reports it; the next one reloads
                    assert slot.error is not None
                    raise _as_service_error(self._endpoint, slot.error)
                waited = slot
                if self._clock() - slot.started > self._settings.load_limit:
                    slot.state = _State.FAILED
                    slot.error = HandlerError("Model load exceeded the load limit.", 504)
                    counters.load_failures += 1
                    continue
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise ServiceError.not_ready(
                        f"Model {target} is still loading; retry the request later."
                    )
                self._cond.wait(remaining)

    def _start_load(self, target: str, size: int) -> _Slot:
        slot = _Slot(_State.LOADING, started=self._clock(), size=size)
        self._slots[target] = slot
        self._counters.setdefault(target, _Counters())
        thread = threading.Thread(
            target=self._load,
            args=(target, slot),
            name=f"smclient-local-load-{target}",
            daemon=True,  # a stuck load must not hold the process at exit; close() joins it
        )
        self._threads.add(thread)
        thread.start()
        return slot

    def _load(self, target: str, slot: _Slot) -> None:
        started = self._clock()
        try:
            model = self._load_with_room(target, slot)
        except BaseException as exc:
            with self._cond:
                self._counters[target].load_failures += 1
                if slot.state is _State.LOADING:
                    slot.state, slot.error = _State.FAILED, exc
                self._threads.discard(threading.current_thread())
                self._cond.notify_all()
            return
        elapsed = self._clock() - started
        with self._cond:
            self._threads.discard(threading.current_thread())
            stale = self._closed or slot.state is not _State.LOADING
            if not stale:
                declared = self._settings.model_sizes.get(target)
                slot.state, slot.model = _State.READY, model
                slot.size = declared if declared is not None else model.size_bytes
                slot.last_used = next(self._tick)
                c = self._counters[target]
                c.loads += 1
                c.last_load_seconds = elapsed
                c.total_load_seconds += elapsed
                self._cond.notify_all()
        if stale:  # abandoned past the load limit, or shut down meanwhile
            self._loader.unload(target, model)
            return
        self._make_room(0, exclude=target, strict=False)  # the real size may exceed the estimate

    def _load_with_room(self, target: str, slot: _Slot) -> LoadedModel:
        while True:
            self._make_room(slot.size, exclude=target, reserved=slot)
            try:
                return self._loader.load(target)
            except HandlerError as exc:
                if exc.status_code != 507 or not self._evict_one(exclude=target):
                    raise

    def _make_room(
        self, needed: int, *, exclude: str, reserved: _Slot | None = None, strict: bool = True
    ) -> None:
        budget = self._settings.memory_bytes
        if budget is None:
            return
        victims: list[tuple[str, _Slot]] = []
        with self._cond:
            used = sum(
                s.size
                for s in self._slots.values()
                if s.state is not _State.FAILED and s is not reserved
            )
            # Pick every victim first and evict only if that makes room: a model that
            # cannot fit (bigger than the budget, or the rest is in use) answers 507 with
            # the cache untouched.
            idle = sorted(
                (s.last_used, n, s)
                for n, s in self._slots.items()
                if n != exclude and s.state is _State.READY and not s.in_use
            )
            for _, name, vslot in idle:
                if used + needed <= budget:
                    break
                victims.append((name, vslot))
                used -= vslot.size
            if strict and used + needed > budget:
                raise HandlerError("Not enough memory to load the model.", 507)
            for name, _ in victims:
                del self._slots[name]
        self._unload_all(victims)

    def _unload_all(self, victims: list[tuple[str, _Slot]]) -> None:
        # Every model taken out of the cache is unloaded and counted, even if one
        # unload fails.
        if not victims:
            return
        try:
            self._unload_model(*victims[0])
        finally:
            self._unload_all(victims[1:])

    def _lru(self, exclude: str) -> tuple[str, _Slot] | None:
        idle = [
            (s.last_used, n, s)
            for n, s in self._slots.items()
            if n != exclude and s.state is _State.READY and not s.in_use
        ]
        if not idle:
            return None
        _, name, slot = min(idle, key=lambda item: item[0])
        return name, slot

    def _evict_one(self, *, exclude: str) -> bool:
        with self._cond:
            victim = self._lru(exclude)
            if victim is None:
                return False
            del self._slots[victim[0]]
        self._unload_model(*victim)
        return True

    def _drop(self, target: str, slot: _Slot) -> None:
        with self._cond:
            if self._slots.get(target) is not slot:
                return
            del self._slots[target]
        self._unload_model(target, slot)

    def _unload_model(self, name: str, slot: _Slot) -> None:
        with self._cond:
            self._counters[name].unloads += 1
            self._cond.notify_all()
        if slot.model is not None:
            try:
                self._loader.unload(name, slot.model)
            except Exception:
                _log.warning("local endpoint: unloading %s failed", name, exc_info=True)
