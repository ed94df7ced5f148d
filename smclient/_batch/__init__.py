"""Batch scoring: ``invoke_many`` on one machine, tabular helpers, and a picklable scorer for
Ray Data, Dask and Spark (private package; the public names are re-exported by
:mod:`smclient`)."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

from .._codecs import Codec
from .._errors import InvalidInputError
from .._models import InvocationResult
from .._retry import RetryPolicy
from ._progress import BatchProgress
from ._runner import BatchRun, check_window
from ._scorer import Scorer
from ._types import BatchItem, BatchResult, BatchSummary, item_kwargs

if TYPE_CHECKING:
    from collections.abc import AsyncIterable, Awaitable

    from .._endpoint import Endpoint, ModelHandle
    from ._aio import AsyncBatchRun

__all__ = [
    "BatchItem",
    "BatchResult",
    "BatchRun",
    "BatchSummary",
    "Scorer",
    "ainvoke_many",
    "invoke_many",
]


def invoke_many(
    target: Endpoint | ModelHandle,
    items: Iterable[Any],
    *,
    concurrency: int,
    window: int | None,
    ordered: bool,
    stop_on_error: bool,
    rate_limit: float | None,
    progress: bool | BatchProgress | None,
    content_type: str | None,
    accept: str | None,
    custom_attributes: str | None,
    codec: Codec | None,
    retry: RetryPolicy | None,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> BatchRun:
    """The shared body of ``Endpoint.invoke_many`` and ``ModelHandle.invoke_many``."""
    from .._endpoint import ModelHandle

    endpoint = target.endpoint if isinstance(target, ModelHandle) else target
    concurrency, window = check_window(concurrency, window, endpoint.config.max_pool_connections)
    defaults = _defaults(content_type, accept, custom_attributes, codec)

    if isinstance(target, ModelHandle):
        handle = target

        def call(item: BatchItem, policy: RetryPolicy) -> InvocationResult:
            kwargs = item_kwargs(item, defaults)
            named = kwargs.pop("target_model", None)
            if named is not None and named != handle.target_model:
                raise _other_model(named, handle.target_model)
            return handle.invoke(item.body, retry=policy, **kwargs)

    else:

        def call(item: BatchItem, policy: RetryPolicy) -> InvocationResult:
            return endpoint.invoke(item.body, retry=policy, **item_kwargs(item, defaults))

    return BatchRun(
        call,
        items,
        retry=retry or endpoint.retry,
        concurrency=concurrency,
        window=window,
        ordered=ordered,
        stop_on_error=stop_on_error,
        rate_limit=rate_limit,
        progress=progress,
        clock=clock,
        sleep=sleep,
    )


def ainvoke_many(
    target: Any,
    items: Iterable[Any] | AsyncIterable[Any],
    *,
    concurrency: int,
    window: int | None,
    ordered: bool,
    stop_on_error: bool,
    rate_limit: float | None,
    progress: bool | BatchProgress | None,
    content_type: str | None,
    accept: str | None,
    custom_attributes: str | None,
    codec: Codec | None,
    retry: RetryPolicy | None,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], Awaitable[None]] | None = None,
) -> AsyncBatchRun:
    """The shared body of an asyncio facade's ``invoke_many``: ``target`` is an endpoint
    (``config``, ``retry``, ``async invoke(body, **options)``) or a model handle of one
    (``endpoint``, ``target_model``, ``async invoke``)."""
    import asyncio

    from ._aio import AsyncBatchRun

    handle_model: str | None = getattr(target, "target_model", None)
    endpoint = target.endpoint if handle_model is not None else target
    concurrency, window = check_window(concurrency, window, endpoint.config.max_pool_connections)
    defaults = _defaults(content_type, accept, custom_attributes, codec)

    async def call(item: BatchItem, policy: RetryPolicy) -> InvocationResult:
        kwargs = item_kwargs(item, defaults)
        if handle_model is not None:
            named = kwargs.pop("target_model", None)
            if named is not None and named != handle_model:
                raise _other_model(named, handle_model)
        result: InvocationResult = await target.invoke(item.body, retry=policy, **kwargs)
        return result

    return AsyncBatchRun(
        call,
        items,
        retry=retry or endpoint.retry,
        concurrency=concurrency,
        window=window,
        ordered=ordered,
        stop_on_error=stop_on_error,
        rate_limit=rate_limit,
        progress=progress,
        clock=clock,
        sleep=sleep or asyncio.sleep,
    )


def _defaults(
    content_type: str | None, accept: str | None, custom_attributes: str | None, codec: Any
) -> dict[str, Any]:
    given = {
        "content_type": content_type,
        "accept": accept,
        "custom_attributes": custom_attributes,
        "codec": codec,
    }
    return {k: v for k, v in given.items() if v is not None}


def _other_model(named: str, handle_model: str) -> InvalidInputError:
    return InvalidInputError(
        "target_model",
        f"item names {named!r}, but this handle invokes {handle_model!r}",
        limit="leave it None on a model handle, or use the endpoint's invoke_many",
    )


# Public classes say smclient.Name (re-exported there lazily), whichever name is touched first.
for _name in __all__:
    _obj = globals()[_name]
    if isinstance(_obj, type):
        _obj.__module__ = "smclient"
del _name, _obj
