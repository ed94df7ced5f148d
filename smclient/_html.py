"""Rich HTML summaries for notebooks: the ``_repr_html_`` of results, streams, sessions,
and async-inference handles and completions. (The local runtime's ``ModelStats`` draws its
own, in ``smclient/local/multimodel/_html.py``: the local runtime reaches the core only
through public names.)

Jupyter shows ``_repr_html_`` instead of ``repr()`` (which stays the plain one-liner). The
summaries are short and safe to render:

- every value is HTML-escaped, so a body holding ``<script>`` shows as text;
- a body is previewed, never shown whole: at most :data:`PREVIEW_CHARS` characters or
  :data:`PREVIEW_LINES` lines of text (JSON pretty-printed when the body is at most
  :data:`JSON_PARSE_BYTES`), or an image (PNG, JPEG, GIF, WebP, BMP) of at most
  :data:`IMAGE_BYTES` as a ``data:`` URI; the number of bytes left out is said;
- nothing that may hold a secret is shown: no custom attributes (some send tokens there),
  no clients, no credentials, no request headers.

Rendering never does I/O: a completion's output stays in S3 until ``result()`` is called.
"""

from __future__ import annotations

import base64
import binascii
import datetime
import html
import json
import time
from collections.abc import Iterable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ._async_session import AsyncSession
    from ._async_streaming import AsyncResponseStream
    from ._asyncinference import AsyncInvocation, Completion
    from ._models import InvocationResult
    from ._session import Session
    from ._session_info import SessionInfo
    from ._streaming import ResponseStream

PREVIEW_CHARS = 2000  # characters of text shown at most
PREVIEW_LINES = 40  # lines of text shown at most
JSON_PARSE_BYTES = 1 << 20  # bodies up to 1 MiB are parsed to be pretty-printed
IMAGE_BYTES = 256 << 10  # images up to 256 KiB are shown inline (as base64)
IMAGE_TYPES = frozenset({"image/png", "image/jpeg", "image/gif", "image/webp", "image/bmp"})
_HEX_BYTES = 32  # bytes of a binary body shown as hex

_STYLE = (
    "border-collapse:collapse;font-size:0.9em;text-align:left;margin:0.2em 0;"
    "font-family:var(--jp-ui-font-family, sans-serif)"
)
_CELL = "padding:0.15em 0.8em 0.15em 0;vertical-align:top;text-align:left"
_PRE = (
    "margin:0.3em 0;padding:0.4em;max-height:24em;overflow:auto;white-space:pre-wrap;"
    "border:1px solid rgba(128,128,128,0.3);font-size:0.9em"
)


def _e(value: object) -> str:
    return html.escape(str(value), quote=True)


def _card(title: str, badge: str, rows: Iterable[tuple[str, object]], extra: str = "") -> str:
    """A titled two-column table; ``rows`` are escaped here, ``extra`` is trusted HTML."""
    body = "".join(
        f'<tr><th style="{_CELL}">{_e(label)}</th><td style="{_CELL}">{_e(value)}</td></tr>'
        for label, value in rows
        if value is not None
    )
    return (
        f'<div class="smclient-repr"><strong>{_e(title)}</strong> '
        f'<span style="opacity:0.75">{_e(badge)}</span>'
        f'<table style="{_STYLE}">{body}</table>{extra}</div>'
    )


def _seconds(value: float | None) -> str | None:
    if value is None:
        return None
    return f"{value * 1000:.1f} ms" if value < 1 else f"{value:.2f} s"


def _bytes(count: int | None) -> str | None:
    return None if count is None else f"{count:,} bytes"


def _countdown(seconds: float) -> str:
    if seconds <= 0:
        return f"{_duration(-seconds)} ago"
    return f"in {_duration(seconds)}"


def _duration(seconds: float) -> str:
    total = int(seconds)
    hours, rest = divmod(total, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours} h {minutes} min"
    if minutes:
        return f"{minutes} min {secs} s"
    return f"{seconds:.1f} s"


def _utc(stamp: float) -> str:
    moment = datetime.datetime.fromtimestamp(stamp, tz=datetime.timezone.utc)
    return moment.strftime("%Y-%m-%d %H:%M:%S UTC")


def _media_type(content_type: str | None) -> str:
    return (content_type or "").split(";", 1)[0].strip().lower()


def _is_json(media: str) -> bool:
    return media == "application/json" or media.endswith("+json")


def _clip(text: str) -> tuple[str, bool]:
    """``text`` cut to the preview limits; whether anything was cut."""
    lines = text.split("\n")
    clipped = "\n".join(lines[:PREVIEW_LINES]) if len(lines) > PREVIEW_LINES else text
    if len(clipped) > PREVIEW_CHARS:
        clipped = clipped[:PREVIEW_CHARS]
    return clipped, clipped != text


def body_preview(body: bytes, content_type: str | None) -> str:
    """HTML previewing ``body``: an image, pretty JSON, text, or a hex dump; always short
    and escaped."""
    media = _media_type(content_type)
    size = len(body)
    if not body:
        return '<div style="opacity:0.75">(empty body)</div>'
    if media in IMAGE_TYPES:
        if size > IMAGE_BYTES:
            return (
                f'<div style="opacity:0.75">{_e(media)} image of {size:,} bytes: larger than '
                f"the {IMAGE_BYTES:,}-byte preview limit</div>"
            )
        data = base64.b64encode(body).decode("ascii")
        return (
            f'<img src="data:{media};base64,{data}" alt="{_e(media)}, {size:,} bytes" '
            'style="max-width:32em;max-height:24em;margin:0.3em 0"/>'
        )
    text: str | None = None
    if _is_json(media) and size <= JSON_PARSE_BYTES:
        try:
            text = json.dumps(json.loads(body), indent=2, ensure_ascii=False)
        except ValueError:
            text = None
    if text is None:
        head = body[: PREVIEW_CHARS * 4]
        decoded = head.decode("utf-8", errors="replace")
        binary = "\x00" in decoded or decoded.count("\ufffd") > max(2, len(decoded) // 20)
        if binary:
            dump = binascii.hexlify(body[:_HEX_BYTES], " ").decode("ascii")
            more = f" ... ({size - _HEX_BYTES:,} more bytes)" if size > _HEX_BYTES else ""
            return f'<pre style="{_PRE}">{_e(dump)}{_e(more)}</pre>'
        text = decoded
        shown, cut = _clip(text)
        cut = cut or len(head) < size
    else:
        shown, cut = _clip(text)
    note = ""
    if cut:
        note = f'<div style="opacity:0.75">... (preview cut; the body is {size:,} bytes)</div>'
    return f'<pre style="{_PRE}">{_e(shown)}</pre>{note}'


# --- One function per class with a ``_repr_html_`` hook --------------------------------------


def invocation_result(result: InvocationResult) -> str:
    """``InvocationResult._repr_html_``."""
    attempts = f"{result.attempts} attempt{'s' if result.attempts != 1 else ''}"
    rows: list[tuple[str, object]] = [
        ("status", f"OK after {attempts} in {_seconds(result.elapsed)}"),
        ("content type", result.content_type or "(none)"),
        ("body", _bytes(len(result.body))),
        ("variant", result.invoked_production_variant),
        ("request id", result.request_id),
        ("custom attributes", "set (not shown)" if result.custom_attributes else None),
        ("new session", result.new_session_id),
        ("closed session", result.closed_session_id),
    ]
    preview = body_preview(result.body, result.content_type)
    return _card("InvocationResult", "OK", rows, preview)


def response_stream(stream: ResponseStream | AsyncResponseStream) -> str:
    """``ResponseStream._repr_html_`` and ``AsyncResponseStream._repr_html_`` (counters
    so far; the payload is not kept)."""
    rows: list[tuple[str, object]] = [
        ("content type", stream.content_type or "(none)"),
        ("received", f"{stream.bytes_received:,} bytes in {stream.chunks_received:,} chunks"),
        ("first byte after", _seconds(stream.time_to_first_byte) or "(not yet)"),
        ("attempts", stream.attempts),
        ("variant", stream.invoked_production_variant),
        ("request id", stream.request_id),
    ]
    return _card(type(stream).__name__, "stream", rows)


def session(sess: Session | AsyncSession, *, now: float | None = None) -> str:
    """``Session._repr_html_`` and ``AsyncSession._repr_html_``: state, id, endpoint,
    expiry and the time left (by the session's clock, else ``now``, default the time)."""
    state = sess.state.value
    try:
        info: SessionInfo | None = sess.info
    except AssertionError:  # no id yet: the open call has not answered
        info = None
    expires = None
    if info is not None and info.expires_at is not None:
        left: float | None = getattr(sess, "expires_in", None)
        if left is None:
            left = info.expires_at.timestamp() - (time.time() if now is None else now)
        stamp = info.expires_at.astimezone(datetime.timezone.utc)
        expires = stamp.strftime("%Y-%m-%d %H:%M:%S UTC")
        expires = f"{expires} ({'expires' if left > 0 else 'expired'} {_countdown(left)})"
    endpoint = getattr(sess, "endpoint", None)
    rows: list[tuple[str, object]] = [
        ("state", state),
        ("id", info.id if info is not None else "(none yet)"),
        ("endpoint", endpoint.name if endpoint is not None else None),
        ("expires", expires or "(unknown)"),
    ]
    return _card(type(sess).__name__, state, rows)


def async_invocation(inv: AsyncInvocation, *, now: float | None = None) -> str:
    """``AsyncInvocation._repr_html_``: where its output and failure will appear."""
    now = time.time() if now is None else now
    rows: list[tuple[str, object]] = [
        ("endpoint", inv.endpoint_name),
        ("inference id", inv.inference_id),
        ("submitted", _utc(inv.submitted_at)),
        ("deadline", f"{_utc(inv.deadline)} ({_countdown(inv.deadline - now)})"),
        ("input", inv.input_location),
        ("output", inv.output_location),
        ("failure", inv.failure_location),
        ("content type", inv.content_type),
        ("accept", inv.accept),
    ]
    return _card("AsyncInvocation", "submitted", rows)


def completion(done: Completion) -> str:
    """``Completion._repr_html_``: the outcome, without fetching the output."""
    inv = done.invocation
    outcome = "succeeded" if done.succeeded else "failed"
    rows: list[tuple[str, object]] = [
        ("outcome", outcome),
        ("inference id", inv.inference_id),
        ("endpoint", inv.endpoint_name),
        ("found via", done.source),
        ("output" if done.succeeded else "failure", _where(done)),
        ("size", _bytes(done.size)),
        ("failure reason", _clip(done.failure_reason)[0] if done.failure_reason else None),
    ]
    return _card("Completion", outcome, rows)


def _where(done: Completion) -> str | None:
    inv = done.invocation
    return inv.output_location if done.succeeded else inv.failure_location
