"""Progress of a batch: the same choice as async inference's ``wait`` (a callback, tqdm when
installed, a text bar on a terminal, else nothing), with batch labels, an unknown total
(a generator has no length) and a summary line at the end."""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable
from typing import Any, TextIO

from ._types import BatchSummary

BatchProgress = Callable[[int, "int | None"], None]  # (finished, total or None when unknown)


class _Reporter:
    """Calls ``update(summary, total)`` after each finished item and ``close(summary)`` once."""

    active = True  # False: nothing to report to, so no summary is built per item

    def update(self, summary: BatchSummary, total: int | None) -> None:
        raise NotImplementedError

    def close(self, summary: BatchSummary) -> None:
        pass


class _Callback(_Reporter):
    def __init__(self, fn: BatchProgress) -> None:
        self._fn = fn

    def update(self, summary: BatchSummary, total: int | None) -> None:
        self._fn(summary.total, total)


class _TextBar(_Reporter):
    """``[#####-----] 50/100 calls, 2 failed`` (or ``1234 calls, 2 failed`` without a total),
    rewritten in place on a terminal; the summary line at the end."""

    def __init__(self, stream: TextIO, width: int = 30) -> None:
        self._stream = stream
        self._width = width

    def update(self, summary: BatchSummary, total: int | None) -> None:
        done = summary.total
        if total:
            filled = self._width * min(done, total) // total
            text = f"[{'#' * filled}{'-' * (self._width - filled)}] {done}/{total} calls"
        else:
            text = f"{done} calls"
        self._stream.write(f"\r{text}, {summary.failed} failed")
        self._stream.flush()

    def close(self, summary: BatchSummary) -> None:
        self._stream.write(f"\r{summary}\n")
        self._stream.flush()


class _Tqdm(_Reporter):
    def __init__(self, tqdm: Any) -> None:
        self._tqdm = tqdm
        self._bar: Any = None

    def update(self, summary: BatchSummary, total: int | None) -> None:
        if self._bar is None:
            self._bar = self._tqdm(total=total, unit="call", desc="invoke_many")
        self._bar.set_postfix(failed=summary.failed, refresh=False)
        self._bar.update(summary.total - self._bar.n)

    def close(self, summary: BatchSummary) -> None:
        if self._bar is not None:
            self._bar.close()
            self._tqdm.write(str(summary))


def reporter(progress: bool | BatchProgress | None, stream: TextIO | None = None) -> _Reporter:
    """What to report to: ``progress`` itself when callable; for ``True``, ``tqdm.auto``
    (terminals and notebooks) when installed, else a text bar when ``stream`` (default
    ``sys.stderr``) is a terminal; else nothing."""
    if progress is None or progress is False:
        return _Silent()
    if callable(progress):
        return _Callback(progress)
    try:
        auto = importlib.import_module("tqdm.auto")  # optional: never a dependency
    except ImportError:
        out = stream or sys.stderr
        return _TextBar(out) if out.isatty() else _Silent()
    return _Tqdm(auto.tqdm)


class _Silent(_Reporter):
    active = False

    def update(self, summary: BatchSummary, total: int | None) -> None:
        pass
