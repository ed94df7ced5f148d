"""The notebook summary of :class:`ModelStats` (its ``_repr_html_``).

The core's summaries live in ``smclient/_html.py``; the local runtime reaches the core only
through public names, so this one is drawn here, in the same look: a titled two-column
table, every value escaped.
"""

from __future__ import annotations

import html
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ._cache import ModelStats

_STYLE = (
    "border-collapse:collapse;font-size:0.9em;text-align:left;margin:0.2em 0;"
    "font-family:var(--jp-ui-font-family, sans-serif)"
)
_CELL = "padding:0.15em 0.8em 0.15em 0;vertical-align:top;text-align:left"


def _seconds(value: float | None) -> str:
    if value is None:
        return "(none)"
    return f"{value * 1000:.1f} ms" if value < 1 else f"{value:.2f} s"


def model_stats(stats: ModelStats) -> str:
    """One model's counters on one instance, as a short HTML table."""
    state = "loaded" if stats.loaded else "loading" if stats.loading else "not loaded"
    rows = [
        ("state", state),
        ("invocations", f"{stats.invocations:,}"),
        ("hits / misses", f"{stats.hits:,} / {stats.misses:,}"),
        ("loads", f"{stats.loads:,} ({stats.load_failures:,} failed)"),
        ("unloads", f"{stats.unloads:,}"),
        ("last load", _seconds(stats.last_load_seconds)),
        ("total load time", _seconds(stats.total_load_seconds)),
        ("size", f"{stats.size_bytes:,} bytes"),
    ]
    body = "".join(
        f'<tr><th style="{_CELL}">{html.escape(label)}</th>'
        f'<td style="{_CELL}">{html.escape(value)}</td></tr>'
        for label, value in rows
    )
    return (
        f'<div class="smclient-repr"><strong>ModelStats</strong> '
        f'<span style="opacity:0.75">{html.escape(state)}</span>'
        f'<table style="{_STYLE}">{body}</table></div>'
    )
