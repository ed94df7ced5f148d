"""Progress of long waits: a callback, tqdm when it is installed, or a plain text bar on a
terminal. Silent when not asked for, and silent on anything that is not a terminal."""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable
from typing import Any, TextIO

Progress = Callable[[int, int], None]  # (finished, total)


class _TextBar:
    """``[#####-----] 5/10`` rewritten in place on a terminal stream."""

    def __init__(self, stream: TextIO, width: int = 30) -> None:
        self._stream = stream
        self._width = width
        self._open = False

    def close(self) -> None:
        """End the line of a bar left short (a wait that returned early)."""
        if self._open:
            self._stream.write("\n")
            self._stream.flush()
            self._open = False

    def __call__(self, finished: int, total: int) -> None:
        self._open = finished < total
        filled = self._width * finished // total if total else self._width
        bar = "#" * filled + "-" * (self._width - filled)
        end = "\n" if finished >= total else ""
        self._stream.write(f"\r[{bar}] {finished}/{total} async results{end}")
        self._stream.flush()


class _Tqdm:
    def __init__(self, tqdm: Any) -> None:
        self._tqdm = tqdm
        self._bar: Any = None

    def __call__(self, finished: int, total: int) -> None:
        if self._bar is None:
            self._bar = self._tqdm(total=total, unit="result", desc="async results")
        self._bar.update(finished - self._bar.n)
        if finished >= total:
            self.close()

    def close(self) -> None:
        """Close the bar (also one left short by a wait that returned early)."""
        if self._bar is not None:
            self._bar.close()


def reporter(progress: bool | Progress | None, stream: TextIO | None = None) -> Progress | None:
    """The callable to report to: ``progress`` itself when callable; for ``True``,
    ``tqdm.auto`` (terminals and notebooks) when installed, else a text bar when
    ``stream`` (default ``sys.stderr``) is a terminal, else nothing."""
    if progress is None or progress is False:
        return None
    if callable(progress):
        return progress
    try:
        auto = importlib.import_module("tqdm.auto")  # optional: never a dependency
    except ImportError:
        out = stream or sys.stderr
        return _TextBar(out) if out.isatty() else None
    return _Tqdm(auto.tqdm)
