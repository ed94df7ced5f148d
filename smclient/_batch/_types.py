"""The values of batch scoring: an item with its per-call options, one item's outcome, and
the summary of a run."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import attrs

from .._codecs import Codec
from .._models import InvocationResult

__all__ = ["BatchItem", "BatchResult", "BatchSummary"]


@attrs.frozen
class BatchItem:
    """One request of :meth:`Endpoint.invoke_many <smclient.Endpoint.invoke_many>` with its
    own options: ``BatchItem(body, target_model="model-a.tar.gz", inference_id="row-17")``.

    ``body`` is anything :meth:`Endpoint.invoke <smclient.Endpoint.invoke>` accepts. The other
    fields are the per-call options of ``invoke``; ``None`` (the default) means "the
    ``invoke_many`` default" (for ``content_type``, ``accept``, ``custom_attributes`` and
    ``codec``), or "not sent" for the others. Every value is checked, as by ``invoke``,
    before the item's request is sent; a bad value fails that item only
    (:class:`~smclient.InvalidInputError` in its :class:`BatchResult`).

    Items that are not ``BatchItem`` are taken as bodies with the defaults.

    .. versionadded:: 0.2.0
    """

    body: Any = attrs.field(repr=False)
    target_model: str | None = None
    inference_id: str | None = None
    custom_attributes: str | None = None
    content_type: str | None = None
    accept: str | None = None
    target_variant: str | None = None
    target_container_hostname: str | None = None
    inference_component: str | None = None
    enable_explanations: str | None = None
    codec: Codec | None = attrs.field(default=None, repr=False)


@attrs.frozen(repr=False)
class BatchResult:
    """The outcome of one item of a batch: a success (``result`` set, ``error`` is
    ``None``) or a failure (``error`` set: the typed error ``invoke`` would have raised,
    for example :class:`~smclient.ModelError` or :class:`~smclient.RetriesExhaustedError`).

    ``index`` is the item's 0-based position in the input, ``item`` the
    :class:`BatchItem` sent (a plain body is wrapped in one).

    .. versionadded:: 0.2.0
    """

    index: int
    item: BatchItem
    result: InvocationResult | None = None
    error: Exception | None = None

    @property
    def ok(self) -> bool:
        """``True`` for a success."""
        return self.error is None

    def unwrap(self) -> InvocationResult:
        """The :class:`~smclient.InvocationResult`, or raise the item's error."""
        if self.error is not None:
            raise self.error
        assert self.result is not None
        return self.result

    def __repr__(self) -> str:
        outcome = f"result={self.result!r}" if self.error is None else f"error={self.error!r}"
        return f"BatchResult(index={self.index}, {outcome})"


@attrs.frozen
class BatchSummary:
    """How a batch went, so far or in the end.

    ``succeeded`` and ``failed`` count finished items; ``failures`` counts the failed
    ones by error class name (``{"ModelError": 2}``); ``retries`` is the number of
    retried requests (every request beyond each item's first); ``elapsed`` is the seconds
    since the run started; ``cancelled`` counts items read from the input whose call never
    finished because the run stopped first (not sent, or a retry wait cut short, after a stop
    on error, an early ``close()`` or Ctrl-C); ``finished``
    is ``True`` once the input was read to the end and every item was reported, or
    the run stopped.

    ``str(summary)`` is a one-line report:
    ``"998 succeeded, 2 failed (ModelError: 2), 5 retries in 4.1 s (243.9 calls/s)"``.

    .. versionadded:: 0.2.0
    """

    succeeded: int
    failed: int
    failures: Mapping[str, int]
    retries: int
    elapsed: float
    cancelled: int = 0
    finished: bool = False

    @property
    def total(self) -> int:
        """Finished items: ``succeeded + failed``."""
        return self.succeeded + self.failed

    @property
    def calls_per_second(self) -> float:
        """Finished items per second of ``elapsed`` (``0.0`` before any time has passed)."""
        return self.total / self.elapsed if self.elapsed > 0 else 0.0

    def __str__(self) -> str:
        text = f"{self.succeeded} succeeded, {self.failed} failed"
        if self.failures:
            text += " (" + ", ".join(f"{k}: {v}" for k, v in sorted(self.failures.items())) + ")"
        text += f", {self.retries} retries in {self.elapsed:.1f} s"
        text += f" ({self.calls_per_second:.1f} calls/s)"
        if self.cancelled:
            text += f"; {self.cancelled} cancelled"
        return text


def as_item(value: Any) -> BatchItem:
    return value if isinstance(value, BatchItem) else BatchItem(value)


def item_kwargs(item: BatchItem, defaults: Mapping[str, Any]) -> dict[str, Any]:
    """The keyword arguments of ``invoke`` for ``item``: its own options over ``defaults``."""
    kwargs = dict(defaults)
    for name in (
        "target_model",
        "inference_id",
        "custom_attributes",
        "content_type",
        "accept",
        "target_variant",
        "target_container_hostname",
        "inference_component",
        "enable_explanations",
        "codec",
    ):
        value = getattr(item, name)
        if value is not None:
            kwargs[name] = value
    return kwargs
