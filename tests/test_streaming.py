"""Response streaming on the wire: the local endpoint's streaming route (real chunked
event-stream frames that botocore decodes) and, for events a Python handler cannot
produce (InternalStreamFailure, unknown events), a scripted loopback server."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest

from smclient import (
    ClientConfig,
    InvalidInputError,
    ModelStreamError,
    RetryPolicy,
    StreamInterruptedError,
    StreamTimeoutError,
)
from smclient.local import LocalEndpoint, StreamError, StreamFaults
from smclient.local.server import _eventstream as es
from smclient.testing import Reply, ScriptedRuntime, no_retry_waits

pytestmark = pytest.mark.usefixtures("each_transport")


class Chunks:
    """A streaming handler that answers with fixed chunks, optionally failing after them."""

    def __init__(self, chunks: list[bytes], error: StreamError | None = None) -> None:
        self.chunks = chunks
        self.error = error
        self.stopped = threading.Event()

    def predict(self, body: bytes, content_type: str | None, accept: str | None) -> bytes:
        return b"".join(self.chunks)

    def stream(self, body: bytes, content_type: str | None, accept: str | None) -> Iterator[bytes]:
        try:
            yield from self.chunks
            if self.error is not None:
                raise self.error
        finally:
            self.stopped.set()


def test_lines_json_and_metadata_from_a_real_stream() -> None:
    handler = Chunks([b'{"tok', b'en": "h\xc3', b'\xa9"}\n{"token": 2}\n', b'{"token": 3}'])
    with (
        LocalEndpoint(handler) as local,
        local.endpoint().stream(b"{}", accept="application/jsonlines") as s,
    ):
        assert list(s.json_lines()) == [{"token": "hé"}, {"token": 2}, {"token": 3}]
        assert s.content_type == "application/jsonlines"
        assert s.invoked_production_variant == "AllTraffic"
        assert s.bytes_received == len(b"".join(handler.chunks))
        assert s.chunks_received == 4
        assert s.time_to_first_byte is not None
        assert s.time_to_first_byte >= 0
        assert s.attempts == 1
        assert s.request_id


def test_sse_and_text() -> None:
    handler = Chunks([b'data: {"a"', b": 1}\n\nda", b"ta: [DONE]\n\n"])
    with LocalEndpoint(handler) as local:
        ep = local.endpoint()
        with ep.stream(b"x") as s:
            assert [e.json() for e in s.sse()] == [{"a": 1}]
        with ep.stream(b"x") as s:
            assert s.text() == 'data: {"a": 1}\n\ndata: [DONE]\n\n'


def test_model_stream_error_keeps_its_error_code_and_what_arrived() -> None:
    handler = Chunks(
        [b"partial ", b"answer"], StreamError("took too long", "ModelInvocationTimeExceeded")
    )
    received: list[bytes] = []
    with (
        LocalEndpoint(handler) as local,
        local.endpoint().stream(b"x") as s,
        pytest.raises(ModelStreamError) as info,
    ):
        received.extend(s)
    err = info.value
    assert received == [b"partial ", b"answer"]
    assert err.stream_error_code == "ModelInvocationTimeExceeded"
    assert err.message == "took too long"
    assert err.bytes_received == 14
    assert err.operation == "InvokeEndpointWithResponseStream"


def test_a_cut_connection_mid_stream_is_a_typed_error() -> None:
    handler = Chunks([b"one\n", b"two\n", b"three\n", b"four\n"])
    with (
        LocalEndpoint(handler, stream_faults=StreamFaults(cut_after_events=2)) as local,
        local.endpoint().stream(b"x") as s,
        pytest.raises(StreamInterruptedError) as info,
    ):
        list(s.lines())
    assert not isinstance(info.value, StreamTimeoutError)
    assert info.value.bytes_received == 8
    assert info.value.chunks_received == 2


def test_a_stall_longer_than_the_read_timeout_is_a_typed_error() -> None:
    release = threading.Event()
    faults = StreamFaults(stall_after_events=1, stall_release=release, stall_timeout=5.0)
    handler = Chunks([b"first\n", b"second\n"])
    try:
        with LocalEndpoint(handler, stream_faults=faults) as local:
            ep = local.endpoint(config=ClientConfig(read_timeout=0.3, sign_requests=False))
            with ep.stream(b"x") as s, pytest.raises(StreamTimeoutError) as info:
                list(s)
            release.set()  # let the server's stalled writer finish before shutdown
            assert info.value.bytes_received == 6
    finally:
        release.set()


def test_leaving_the_block_early_releases_the_connection() -> None:
    handler = Chunks([b"x" * 100] * 10_000)
    with LocalEndpoint(handler) as local:
        with local.endpoint().stream(b"x") as s:
            next(iter(s))
        # The server notices the closed connection and stops the model's generator.
        assert handler.stopped.wait(10.0)


def test_the_tail_without_newline_is_emitted_once_and_iteration_ends() -> None:
    with LocalEndpoint(Chunks([b"no newline at all"])) as local, local.endpoint().stream(b"x") as s:
        assert list(s.lines()) == ["no newline at all"]
        assert list(s) == []


def _event_stream(*messages: bytes) -> Reply:
    return Reply.ok(b"".join(messages), content_type="application/vnd.amazon.eventstream")


def test_internal_stream_failure_before_the_first_byte_is_retried(runtime: ScriptedRuntime) -> None:
    runtime.queue(
        _event_stream(es.internal_stream_failure("try again")),
        _event_stream(es.payload_part(b"fine\n")),
    )
    with no_retry_waits(), runtime.endpoint().stream(b"x") as s:
        assert list(s.lines()) == ["fine"]
        assert s.attempts == 2
    assert len(runtime.requests) == 2
    assert runtime.requests[0].path == "/endpoints/scripted/invocations-response-stream"


def test_internal_stream_failure_after_bytes_is_not_retried(runtime: ScriptedRuntime) -> None:
    from smclient import InternalStreamFailureError

    runtime.queue(_event_stream(es.payload_part(b"half"), es.internal_stream_failure("broke")))
    with runtime.endpoint().stream(b"x") as s, pytest.raises(InternalStreamFailureError):
        list(s)
    assert len(runtime.requests) == 1


def test_unknown_events_are_ignored(runtime: ScriptedRuntime) -> None:
    unknown = es.encode_message(
        [
            (":message-type", "event"),
            (":event-type", "FutureEvent"),
            (":content-type", "application/json"),
        ],
        b"{}",
    )
    runtime.queue(_event_stream(es.payload_part(b"a"), unknown, es.payload_part(b"b")))
    with runtime.endpoint().stream(b"x") as s:
        assert s.text() == "ab"


def test_a_corrupt_frame_is_a_typed_error(runtime: ScriptedRuntime) -> None:
    good = es.payload_part(b"ok")
    broken = bytearray(es.payload_part(b"damaged"))
    broken[-1] ^= 0xFF  # bad message CRC
    runtime.queue(_event_stream(good, bytes(broken)))
    with runtime.endpoint().stream(b"x") as s, pytest.raises(StreamInterruptedError) as info:
        list(s)
    assert info.value.bytes_received == 2


def test_stream_headers_and_session_id_reach_the_wire(runtime: ScriptedRuntime) -> None:
    runtime.queue(_event_stream(es.payload_part(b"ok")))
    with runtime.endpoint("streamer").stream(
        {"q": 1},
        accept="text/event-stream",
        session_id="sess-1",
        inference_id="i-1",
        custom_attributes="c",
    ) as s:
        assert s.text() == "ok"
    headers = runtime.requests[0].headers
    assert headers["x-amzn-sagemaker-session-id"] == "sess-1"
    assert headers["x-amzn-sagemaker-inference-id"] == "i-1"
    assert (
        headers["x-amzn-sagemaker-accept"] == "text/event-stream"
        or headers["accept"] == "text/event-stream"
    )
    assert runtime.requests[0].body == b'{"q":1}'


def test_bad_input_is_refused_before_sending(runtime: ScriptedRuntime) -> None:
    ep = runtime.endpoint()
    with pytest.raises(InvalidInputError):
        ep.stream(b"x" * 6_291_457)
    with pytest.raises(InvalidInputError):
        ep.stream(b"x", session_id="not a valid id")
    assert runtime.requests == []


def test_errors_before_the_stream_starts_follow_the_policy(runtime: ScriptedRuntime) -> None:
    from smclient import ValidationError

    runtime.queue(Reply.error("ServiceUnavailable", 503), _event_stream(es.payload_part(b"ok")))
    with no_retry_waits(), runtime.endpoint().stream(b"x") as s:
        assert s.text() == "ok"
    runtime.queue(Reply.error("ValidationError", 400, "no such endpoint"))
    with pytest.raises(ValidationError):
        runtime.endpoint(retry=RetryPolicy()).stream(b"x")
