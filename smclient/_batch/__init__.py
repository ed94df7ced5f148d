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
from ._types import BatchItem, BatchResult, BatchSummary, item_kwargs

if TYPE_CHECKING:
    from .._endpoint import Endpoint, ModelHandle

__all__ = ["BatchItem", "BatchResult", "BatchRun", "BatchSummary", "invoke_many"]


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
    defaults: dict[str, Any] = {
        k: v
        for k, v in {
            "content_type": content_type,
            "accept": accept,
            "custom_attributes": custom_attributes,
            "codec": codec,
        }.items()
        if v is not None
    }

    if isinstance(target, ModelHandle):
        handle = target

        def call(item: BatchItem, policy: RetryPolicy) -> InvocationResult:
            kwargs = item_kwargs(item, defaults)
            named = kwargs.pop("target_model", None)
            if named is not None and named != handle.target_model:
                raise InvalidInputError(
                    "target_model",
                    f"item names {named!r}, but this handle invokes {handle.target_model!r}",
                    limit="leave it None on a ModelHandle, or use Endpoint.invoke_many",
                )
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


# Public classes say smclient.Name (re-exported there lazily), whichever name is touched first.
for _name in __all__:
    _obj = globals()[_name]
    if isinstance(_obj, type):
        _obj.__module__ = "smclient"
del _name, _obj
