"""invocations-response-stream: event-stream frames decoded by plain boto3/botocore."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from typing import Any

import botocore.exceptions
import pytest
import urllib3.exceptions
from botocore.eventstream import EventStreamBuffer
from botocore.exceptions import ClientError, EventStreamError

from smclient.local import (
    EndpointSpec,
    HandlerError,
    LocalRuntime,
    StreamError,
    StreamFaults,
)
from smclient.local.server._eventstream import (
    encode_message,
    internal_stream_failure,
    model_stream_error,
    payload_part,
)

WAIT = 5.0


class Streamer:
    def __init__(self) -> None:
        self.gate = threading.Event()

    def predict(self, body: bytes, content_type: str | None, accept: str | None) -> bytes:
        return body

    def stream(
        self, body: bytes, content_type: str | None, accept: str | None, session: Any = None
    ) -> Iterator[bytes | str]:
        if body == b"fail-early":
            raise HandlerError("cannot start", 400)
        if body == b"gated":
            yield b"first"
            assert self.gate.wait(WAIT)
            yield b"second"
            return
        if body == b"timeout":
            yield b"partial"
            raise StreamError("took too long", "ModelInvocationTimeExceeded")
        if body == b"broken":
            yield b"partial"
            raise RuntimeError("boom")
        if body == b"empty":
            return
        if body == b"early-stream-error":
            raise StreamError("gave up before the first token", "ModelInvocationTimeExceeded")
        if body == b"session":
            yield json.dumps(session).encode()
            return
        for word in body.split():
            yield word + b" "
        yield "ü"


@pytest.fixture(scope="module")
def streamer() -> Streamer:
    return Streamer()


@pytest.fixture(scope="module")
def runtime(streamer: Streamer) -> Iterator[LocalRuntime]:
    release = threading.Event()
    specs = [
        EndpointSpec("stream", handler=streamer),
        EndpointSpec("nostream", handler=lambda body, ct, accept: b"whole:" + body),
        EndpointSpec("cut", handler=streamer, stream_faults=StreamFaults(cut_after_events=1)),
        EndpointSpec(
            "stall",
            handler=streamer,
            stream_faults=StreamFaults(stall_after_events=1, stall_release=release),
        ),
        EndpointSpec("mme", model_root="."),
        EndpointSpec(
            "stall-first",
            handler=streamer,
            stream_faults=StreamFaults(stall_before_response=True, stall_release=release),
        ),
        EndpointSpec(
            "fail",
            handler=streamer,
            stream_faults=StreamFaults(internal_failure_after_events=1),
        ),
    ]
    with LocalRuntime(specs) as rt:
        yield rt
        release.set()


def events(response: dict[str, Any]) -> list[dict[str, Any]]:
    try:
        return list(response["Body"])
    finally:
        response["Body"].close()


def test_payload_parts_decoded_by_boto3(runtime: LocalRuntime, client_for: Any) -> None:
    client = client_for(runtime.url)
    response = client.invoke_endpoint_with_response_stream(
        EndpointName="stream", Body=b"a b", Accept="text/plain", CustomAttributes="c=1"
    )
    assert response["ContentType"] == "text/plain"
    assert response["InvokedProductionVariant"] == "AllTraffic"
    assert response["ResponseMetadata"]["HTTPHeaders"]["transfer-encoding"] == "chunked"
    parts = [e["PayloadPart"]["Bytes"] for e in events(response)]
    assert parts == [b"a ", b"b ", "ü".encode()]


def test_first_event_arrives_before_the_stream_ends(
    runtime: LocalRuntime, client_for: Any, streamer: Streamer
) -> None:
    client = client_for(runtime.url, read_timeout=WAIT)
    response = client.invoke_endpoint_with_response_stream(EndpointName="stream", Body=b"gated")
    stream = iter(response["Body"])
    assert next(stream) == {"PayloadPart": {"Bytes": b"first"}}
    streamer.gate.set()  # only now may the model produce the second chunk
    assert next(stream) == {"PayloadPart": {"Bytes": b"second"}}
    assert list(stream) == []
    response["Body"].close()


def test_handler_without_stream_sends_one_part(runtime: LocalRuntime, client_for: Any) -> None:
    response = client_for(runtime.url).invoke_endpoint_with_response_stream(
        EndpointName="nostream", Body=b"x"
    )
    assert events(response) == [{"PayloadPart": {"Bytes": b"whole:x"}}]


def test_model_stream_error_event(runtime: LocalRuntime, client_for: Any) -> None:
    response = client_for(runtime.url).invoke_endpoint_with_response_stream(
        EndpointName="stream", Body=b"timeout"
    )
    stream = iter(response["Body"])
    assert next(stream) == {"PayloadPart": {"Bytes": b"partial"}}
    with pytest.raises(EventStreamError) as info:
        next(stream)
    response["Body"].close()
    assert info.value.response["Error"] == {"Code": "ModelStreamError", "Message": "took too long"}


def test_empty_stream_has_no_events(runtime: LocalRuntime, client_for: Any) -> None:
    response = client_for(runtime.url).invoke_endpoint_with_response_stream(
        EndpointName="stream", Body=b"empty"
    )
    assert events(response) == []


def test_stream_error_before_first_chunk_is_an_event(
    runtime: LocalRuntime, client_for: Any
) -> None:
    response = client_for(runtime.url).invoke_endpoint_with_response_stream(
        EndpointName="stream", Body=b"early-stream-error"
    )
    assert response["ResponseMetadata"]["HTTPStatusCode"] == 200
    with pytest.raises(EventStreamError) as info:
        events(response)
    assert info.value.response["Error"]["Code"] == "ModelStreamError"


def test_model_crash_mid_stream_is_stream_broken(runtime: LocalRuntime, client_for: Any) -> None:
    response = client_for(runtime.url).invoke_endpoint_with_response_stream(
        EndpointName="stream", Body=b"broken"
    )
    with pytest.raises(EventStreamError) as info:
        events(response)
    assert info.value.response["Error"]["Code"] == "ModelStreamError"
    assert "boom" not in info.value.response["Error"]["Message"]


def test_error_before_first_chunk_is_model_error(runtime: LocalRuntime, client_for: Any) -> None:
    with pytest.raises(ClientError) as info:
        client_for(runtime.url).invoke_endpoint_with_response_stream(
            EndpointName="stream", Body=b"fail-early"
        )
    assert info.value.response["Error"]["Code"] == "ModelError"
    assert info.value.response["OriginalStatusCode"] == 400


@pytest.mark.parametrize(
    ("endpoint", "kwargs", "fragment"),
    [
        ("stream", {"SessionId": "NEW_SESSION"}, "cannot create a session"),
        ("stream", {"SessionId": "no-such-session"}, "does not exist"),
        ("mme", {}, "does not support response streaming"),
        ("missing", {}, "not found"),
    ],
)
def test_stream_validation_errors(
    runtime: LocalRuntime, client_for: Any, endpoint: str, kwargs: dict[str, str], fragment: str
) -> None:
    with pytest.raises(ClientError) as info:
        client_for(runtime.url).invoke_endpoint_with_response_stream(
            EndpointName=endpoint, Body=b"x", **kwargs
        )
    assert info.value.response["Error"]["Code"] == "ValidationError"
    assert fragment in info.value.response["Error"]["Message"]


def test_stream_with_existing_session(runtime: LocalRuntime, client_for: Any) -> None:
    client = client_for(runtime.url)
    opened = client.invoke_endpoint(EndpointName="stream", Body=b"{}", SessionId="NEW_SESSION")
    session_id = opened["NewSessionId"].split(";")[0]
    response = client.invoke_endpoint_with_response_stream(
        EndpointName="stream", Body=b"session", SessionId=session_id
    )
    assert "NewSessionId" not in response
    assert json.loads(events(response)[0]["PayloadPart"]["Bytes"]) == {}


def test_cut_connection_raises_protocol_error(runtime: LocalRuntime, client_for: Any) -> None:
    response = client_for(runtime.url).invoke_endpoint_with_response_stream(
        EndpointName="cut", Body=b"a b c"
    )
    with pytest.raises(urllib3.exceptions.ProtocolError):
        events(response)


def test_stall_trips_the_read_timeout(runtime: LocalRuntime, client_for: Any) -> None:
    client = client_for(runtime.url, read_timeout=0.2)
    response = client.invoke_endpoint_with_response_stream(EndpointName="stall", Body=b"a b c")
    stream = iter(response["Body"])
    assert next(stream) == {"PayloadPart": {"Bytes": b"a "}}
    with pytest.raises(urllib3.exceptions.ReadTimeoutError):
        next(stream)
    response["Body"].close()


def test_stall_before_response_times_out_the_call(runtime: LocalRuntime, client_for: Any) -> None:
    client = client_for(runtime.url, read_timeout=0.2)
    with pytest.raises(botocore.exceptions.ReadTimeoutError):
        client.invoke_endpoint_with_response_stream(EndpointName="stall-first", Body=b"a")


def test_injected_internal_stream_failure(runtime: LocalRuntime, client_for: Any) -> None:
    response = client_for(runtime.url).invoke_endpoint_with_response_stream(
        EndpointName="fail", Body=b"a b c"
    )
    stream = iter(response["Body"])
    assert next(stream) == {"PayloadPart": {"Bytes": b"a "}}
    with pytest.raises(EventStreamError) as info:
        next(stream)
    response["Body"].close()
    assert info.value.response["Error"]["Code"] == "InternalStreamFailure"


def decode(data: bytes) -> list[Any]:
    buffer = EventStreamBuffer()
    buffer.add_data(data)
    return list(buffer)


def test_frames_round_trip_through_botocore_decoder() -> None:
    data = payload_part(b"abc") + model_stream_error("m", "StreamBroken")
    data += internal_stream_failure("x")
    first, second, third = decode(data)
    assert first.headers == {
        ":event-type": "PayloadPart",
        ":content-type": "application/octet-stream",
        ":message-type": "event",
    }
    assert first.payload == b"abc"
    assert second.headers[":exception-type"] == "ModelStreamError"
    assert json.loads(second.payload) == {"Message": "m", "ErrorCode": "StreamBroken"}
    assert second.to_response_dict()["status_code"] == 400
    assert third.headers[":exception-type"] == "InternalStreamFailure"
    assert decode(encode_message([], b""))[0].payload == b""


def test_bad_header_is_refused() -> None:
    with pytest.raises(ValueError, match="too long"):
        encode_message([("x" * 256, "v")], b"")


@pytest.mark.parametrize("release", [None, threading.Event()], ids=["no-release", "release"])
def test_shutdown_wakes_a_stalled_stream(release: threading.Event | None) -> None:
    import socket
    import time

    faults = StreamFaults(stall_before_response=True, stall_release=release, stall_timeout=3.0)
    spec = EndpointSpec("stalled", handler=Streamer(), stream_faults=faults)
    rt = LocalRuntime([spec], shutdown_timeout=3.0).start()
    host, port = rt.url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=WAIT) as conn:
        try:
            conn.sendall(
                b"POST /endpoints/stalled/invocations-response-stream HTTP/1.1\r\n"
                b"Host: x\r\nContent-Length: 1\r\n\r\na"
            )
            deadline = time.monotonic() + WAIT
            while rt.hosted().status()["instances"][0]["invocations"] < 1:
                assert time.monotonic() < deadline
                time.sleep(0.005)
        finally:
            start = time.monotonic()
            leftovers = rt.close()
            elapsed = time.monotonic() - start
    assert leftovers == []
    assert elapsed < 1.5  # not the 3 s stall_timeout
