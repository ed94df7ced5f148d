"""Property tests: any chunking of a byte stream gives the same lines, JSON values and
server-sent events as the unchunked stream (no trailing newline, split UTF-8 included)."""

from __future__ import annotations

import itertools
import json

from hypothesis import given
from hypothesis import strategies as st

from smclient._splitting import SSEEvent, iter_json_lines, iter_lines, iter_sse


@st.composite
def chunked(draw: st.DrawFn, data: bytes) -> list[bytes]:
    cuts = sorted(draw(st.lists(st.integers(0, len(data)), max_size=12)))
    bounds = [0, *cuts, len(data)]
    return [data[a:b] for a, b in itertools.pairwise(bounds)]


texts = st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=60)
lines_strategy = st.lists(texts.map(lambda t: t.replace("\n", " ").replace("\r", " ")), max_size=8)


@given(lines_strategy, st.booleans(), st.data())
def test_lines_do_not_depend_on_chunking(
    lines: list[str], trailing: bool, data: st.DataObject
) -> None:
    raw = ("\n".join(lines) + ("\n" if trailing and lines else "")).encode()
    chunks = data.draw(chunked(raw))
    expected = list(iter_lines([raw]))
    assert list(iter_lines(chunks)) == expected
    # And the unchunked split is the obvious one: the tail without a newline comes once.
    obvious = raw.decode().split("\n")
    if obvious and obvious[-1] == "":
        obvious.pop()
    assert expected == obvious


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | texts,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(texts, inner, max_size=3),
    max_leaves=8,
)


@given(st.lists(json_values, max_size=6), st.booleans(), st.data())
def test_json_lines_survive_any_chunking(
    values: list[object], trailing: bool, data: st.DataObject
) -> None:
    raw = "\n".join(json.dumps(v, ensure_ascii=False) for v in values)
    raw += "\n" if trailing else ""
    chunks = data.draw(chunked(raw.encode()))
    assert list(iter_json_lines(chunks)) == values


@given(
    st.lists(st.tuples(texts, st.sampled_from(["message", "delta"])), max_size=5),
    st.booleans(),
    st.data(),
)
def test_sse_events_survive_any_chunking(
    events: list[tuple[str, str]], final_blank: bool, data: st.DataObject
) -> None:
    body = ""
    expected = []
    for text, name in events:
        payload_lines = text.replace("\r", " ").split("\n")
        body += f"event: {name}\n" + "".join(f"data: {line}\n" for line in payload_lines) + "\n"
        expected.append(SSEEvent("\n".join(payload_lines), event=name))
    if not final_blank and body:
        body = body[:-1]  # the last event ends without its blank line
    expected = [e for e in expected if e.data != "[DONE]"][
        : next((i for i, e in enumerate(expected) if e.data == "[DONE]"), None)
    ]
    chunks = data.draw(chunked(body.encode()))
    assert list(iter_sse(chunks)) == expected


def test_multibyte_character_split_across_chunks() -> None:
    raw = "héllo 😀\nwörld".encode()
    split = raw.index("😀".encode()) + 2  # in the middle of the emoji
    assert list(iter_lines([raw[:split], raw[split:]])) == ["héllo 😀", "wörld"]


def test_crlf_split_across_chunks_and_empty_input() -> None:
    assert list(iter_lines([b"a\r", b"\nb\r\n"])) == ["a", "b"]
    assert list(iter_lines([])) == []
    assert list(iter_lines([b"", b""])) == []


def test_sse_details() -> None:
    raw = b': comment\nid: 7\nretry: 100\ndata: {"a": 1}\n\ndata: [DONE]\n\ndata: never\n\n'
    events = list(iter_sse([raw]))
    assert events == [SSEEvent('{"a": 1}', id="7", retry=100)]
    assert events[0].json() == {"a": 1}
    assert [e.data for e in iter_sse([raw], done=None)] == ['{"a": 1}', "[DONE]", "never"]
