"""Rich HTML summaries (``_repr_html_``, smclient/_html.py): escaped, short, never the whole
body, never custom attributes, images inline when small; plain reprs unchanged.

Pure rendering tests build the values directly (no I/O); the last ones go through a
local endpoint on a loopback port the test starts, for a real stream and session."""

from __future__ import annotations

import base64
import datetime
import json
import re
import types

import pytest

from smclient import AsyncInvocation, Completion, Endpoint, InvocationResult, Session, _html
from smclient.local import LocalEndpoint, ModelStats

SCRIPT = "<script>alert('pwned')</script>"
# A 1x1 transparent PNG.
PNG = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChwGA60e6kgAAAABJRU5ErkJggg=="
)


def result(
    body: bytes, content_type: str | None = "application/json", **kw: object
) -> InvocationResult:
    fields: dict[str, object] = {
        "body": body,
        "content_type": content_type,
        "invoked_production_variant": "AllTraffic",
        "custom_attributes": None,
        "request_id": "req-1",
        "attempts": 2,
        "elapsed": 0.0123,
    }
    fields.update(kw)
    return InvocationResult(**fields)  # type: ignore[arg-type]


def tags(html: str) -> set[str]:
    """The names of the HTML elements in ``html``."""
    return {name.lower() for name in re.findall(r"<([a-zA-Z][a-zA-Z0-9]*)", html)}


ALLOWED = {"div", "strong", "span", "table", "tr", "th", "td", "pre", "img"}


# --- Escaping ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "content_type", ["text/html", "text/plain", None, "application/octet-stream"]
)
def test_a_body_with_a_script_shows_as_text(content_type: str | None) -> None:
    html = result(SCRIPT.encode(), content_type)._repr_html_()
    assert "<script" not in html.lower()
    assert "&lt;script&gt;alert(&#x27;pwned&#x27;)&lt;/script&gt;" in html
    assert tags(html) <= ALLOWED


def test_json_strings_are_escaped_after_pretty_printing() -> None:
    html = result(json.dumps({"a": SCRIPT, "b": [1, 2]}).encode())._repr_html_()
    assert "<script" not in html.lower()
    # Pretty-printed: one key per line, two-space indent, quotes escaped.
    assert "{\n  &quot;a&quot;: &quot;&lt;script&gt;" in html
    assert "&quot;b&quot;: [\n    1,\n    2\n  ]" in html


def test_content_type_and_request_id_cannot_inject_markup() -> None:
    evil = 'image/png" onerror="alert(1)'
    html = result(PNG, evil, request_id="<b>id</b>")._repr_html_()
    assert '" onerror' not in html
    assert "<img" not in html  # not an image type once parsed: shown as an escaped preview
    assert "&lt;b&gt;id&lt;/b&gt;" in html
    assert tags(html) <= ALLOWED


def test_svg_is_never_inlined() -> None:
    svg = b'<svg xmlns="http://www.w3.org/2000/svg" onload="alert(1)"/>'
    html = result(svg, "image/svg+xml")._repr_html_()
    assert "<img" not in html
    assert "<svg" not in html
    assert "&lt;svg" in html


def test_failure_reason_and_locations_are_escaped() -> None:
    inv = invocation(output_location="s3://b/<x>.out")
    done = Completion(invocation=inv, succeeded=False, source="notification", failure_reason=SCRIPT)
    html = done._repr_html_()
    assert "<script" not in html.lower()
    assert "&lt;script&gt;" in html
    assert "failed" in html


# --- Truncation -------------------------------------------------------------------------------


def test_a_large_text_body_is_cut_and_says_so() -> None:
    body = ("0123456789" * 10_000).encode()  # 100,000 bytes on one line
    html = result(body, "text/plain")._repr_html_()
    assert len(html) < _html.PREVIEW_CHARS + 3000
    assert "preview cut; the body is 100,000 bytes" in html
    assert "100,000 bytes" in html


def test_a_long_json_body_is_cut_by_lines() -> None:
    body = json.dumps(list(range(5000))).encode()
    html = result(body)._repr_html_()
    shown = re.search(r"<pre[^>]*>(.*?)</pre>", html, re.DOTALL)
    assert shown is not None
    assert shown.group(1).count("\n") == _html.PREVIEW_LINES - 1
    assert f"the body is {len(body):,} bytes" in html


def test_a_small_body_is_shown_whole_without_a_cut_note() -> None:
    html = result(b"hello", "text/plain")._repr_html_()
    assert ">hello</pre>" in html
    assert "preview cut" not in html


def test_a_huge_json_body_is_not_parsed_but_still_previewed() -> None:
    body = json.dumps({"x": "y" * (_html.JSON_PARSE_BYTES + 10)}).encode()
    html = result(body)._repr_html_()
    assert len(html) < _html.PREVIEW_CHARS + 3000
    assert "preview cut" in html


def test_invalid_json_falls_back_to_text() -> None:
    html = result(b"{not json", "application/json")._repr_html_()
    assert "{not json" in html


def test_binary_bodies_show_a_short_hex_dump() -> None:
    body = bytes(range(256)) * 100
    html = result(body, "application/x-npy")._repr_html_()
    assert "00 01 02 03" in html
    assert "(25,568 more bytes)" in html
    assert len(html) < 2000


def test_an_empty_body_says_so() -> None:
    assert "(empty body)" in result(b"", None)._repr_html_()


# --- Images -----------------------------------------------------------------------------------


def test_small_images_are_shown_inline() -> None:
    html = result(PNG, "image/png")._repr_html_()
    assert f'src="data:image/png;base64,{base64.b64encode(PNG).decode()}"' in html
    assert "<pre" not in html


def test_image_content_type_parameters_are_ignored() -> None:
    html = result(PNG, "IMAGE/JPEG; q=0.9")._repr_html_()
    assert 'src="data:image/jpeg;base64,' in html


def test_images_over_the_limit_are_not_inlined() -> None:
    big = PNG + b"\0" * _html.IMAGE_BYTES
    html = result(big, "image/png")._repr_html_()
    assert "<img" not in html
    assert "base64" not in html
    assert "larger than the 262,144-byte preview limit" in html
    assert len(html) < 2000


# --- What is shown, and what never is -----------------------------------------------------------


def test_invocation_result_summary_fields() -> None:
    html = result(b"{}", custom_attributes="token=s3cr3t")._repr_html_()
    assert "OK after 2 attempts in 12.3 ms" in html
    assert "application/json" in html
    assert "req-1" in html
    assert "s3cr3t" not in html  # custom attributes may carry tokens: never shown
    assert "set (not shown)" in html


def test_plain_repr_is_unchanged() -> None:
    value = result(SCRIPT.encode(), "text/html", custom_attributes="token=s3cr3t")
    assert repr(value).startswith("InvocationResult(body=<31 bytes>, content_type='text/html'")
    assert "script" not in repr(value)
    assert "s3cr3t" not in repr(value)


def invocation(**kw: object) -> AsyncInvocation:
    fields: dict[str, object] = {
        "endpoint_name": "scorer",
        "inference_id": "inf-1",
        "output_location": "s3://bucket/out/inf-1.out",
        "failure_location": "s3://bucket/out/inf-1-error.out",
        "input_location": "s3://bucket/in/1",
        "submitted_at": 1_800_000_000.0,
        "deadline": 1_800_022_560.0,
        "content_type": "application/json",
    }
    fields.update(kw)
    return AsyncInvocation(**fields)  # type: ignore[arg-type]


def test_async_invocation_shows_locations_and_time_to_deadline() -> None:
    inv = invocation()
    html = _html.async_invocation(inv, now=1_800_000_000.0)
    assert "inf-1" in html
    assert "s3://bucket/out/inf-1.out" in html
    assert "s3://bucket/out/inf-1-error.out" in html
    assert "2027-01-15 08:00:00 UTC" in html  # submitted
    assert "(in 6 h 16 min)" in html  # 22,560 s left
    assert "ago)" in _html.async_invocation(inv, now=1_800_022_570.0)
    assert "inf-1" in inv._repr_html_()


def test_completion_never_fetches_the_output() -> None:
    class NoIO:
        def client(self, *args: object, **kwargs: object) -> None:
            raise AssertionError("rendering must not read S3")

    inv = invocation(endpoint=NoIO())
    html = Completion(invocation=inv, succeeded=True, source="s3", size=1234)._repr_html_()
    assert "succeeded" in html
    assert "s3://bucket/out/inf-1.out" in html
    assert "1,234 bytes" in html


def test_model_stats_summary() -> None:
    stats = ModelStats(
        loaded=True,
        loading=False,
        hits=7,
        misses=1,
        loads=1,
        load_failures=0,
        unloads=0,
        invocations=8,
        last_load_seconds=1.5,
        total_load_seconds=1.5,
        size_bytes=2048,
    )
    html = stats._repr_html_()
    assert "loaded" in html
    assert "7 / 1" in html
    assert "1.50 s" in html
    assert "2,048 bytes" in html
    assert repr(stats).startswith("ModelStats(loaded=True")


def test_session_shows_state_id_and_expiry_countdown() -> None:
    expires = datetime.datetime(2027, 1, 15, 8, 20, tzinfo=datetime.timezone.utc)
    now = [expires.timestamp() - 600.0]
    endpoint = Endpoint("chat", region="us-east-1")
    sess = Session.attach(endpoint, "abc-123", expires, clock=lambda: now[0])
    html = sess._repr_html_()
    assert "open" in html
    assert "abc-123" in html
    assert "chat" in html
    assert "2027-01-15 08:20:00 UTC (expires in 10 min 0 s)" in html
    now[0] = expires.timestamp() + 5
    assert "expired 5.0 s ago" in sess._repr_html_()
    assert repr(sess).startswith("Session(id='abc-123', endpoint='chat'")
    sess.detach()  # nothing to close: it was never opened here


def test_response_stream_summary_from_counters() -> None:
    stream = types.SimpleNamespace(
        content_type="text/event-stream",
        bytes_received=1536,
        chunks_received=3,
        time_to_first_byte=None,
        attempts=1,
        invoked_production_variant="AllTraffic",
        request_id="<r>",
    )
    html = _html.response_stream(stream)  # type: ignore[arg-type]
    assert "1,536 bytes in 3 chunks" in html
    assert "(not yet)" in html
    assert "&lt;r&gt;" in html


# --- Through a real local endpoint (loopback, port 0) ----------------------------------------------


class Chat:
    def open_session(self, body: bytes) -> dict[str, int]:
        return {"turns": 0}

    def predict(
        self, body: bytes, content_type: str | None, accept: str | None, session: object = None
    ) -> bytes:
        return SCRIPT.encode()

    def stream(self, body: bytes, content_type: str | None, accept: str | None) -> object:
        yield b"<b>one</b>\n"
        yield b"two\n"


def test_real_objects_render() -> None:
    with LocalEndpoint(Chat(), name="chat") as local:
        endpoint = local.endpoint()
        answer = endpoint.invoke(b"hi", content_type="text/plain", accept="text/html")
        assert "&lt;script&gt;" in answer._repr_html_()
        with endpoint.stream(b"hi", accept="text/plain") as stream:
            assert list(stream.lines()) == ["<b>one</b>", "two"]
        html = stream._repr_html_()
        assert "text/plain" in html
        assert f"{stream.bytes_received:,} bytes in {stream.chunks_received:,} chunks" in html
        assert "<b>" not in html  # the payload is never kept or shown
        with endpoint.session() as sess:
            assert sess.id in sess._repr_html_()
        assert "closed" in sess._repr_html_()
        endpoint.close()


def test_async_stream_and_session_render() -> None:
    import asyncio

    from smclient import AsyncEndpoint, ClientConfig

    async def main(url: str) -> None:
        config = ClientConfig(sign_requests=False)
        async with AsyncEndpoint("chat", region="us-east-1", endpoint_url=url, config=config) as ep:
            async with ep.stream(b"hi", accept="text/plain") as stream:
                assert [line async for line in stream.lines()] == ["<b>one</b>", "two"]
            html = stream._repr_html_()
            assert html.startswith('<div class="smclient-repr"><strong>AsyncResponseStream')
            assert f"{stream.bytes_received:,} bytes in" in html
            assert "<b>" not in html
            async with ep.session() as sess:
                html = sess._repr_html_()
                assert "<strong>AsyncSession</strong>" in html
                assert sess.id in html
                assert "(expires in 19 min" in html  # the local endpoint's 1200 s TTL
            assert "closed" in sess._repr_html_()

    with LocalEndpoint(Chat(), name="chat") as local:
        asyncio.run(main(local.url))
