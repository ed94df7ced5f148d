"""Errors keep their context: give-ups are the last real error (``except ModelNotReadyError``
works) with the history; stream errors carry the real attempt and request id; 424s without
an error type stay ModelErrors; botocore errors that are not answers name endpoint and
operation. Wire tests use the scripted loopback runtime (moto has no ModelNotReady, no
streaming); event-stream frames are encoded here, by the format's specification."""

from __future__ import annotations

import binascii
import json
import struct

import botocore.exceptions as bce
import pytest

from smclient import (
    ClientConfig,
    ConfigurationError,
    InternalStreamFailureError,
    InvalidInputError,
    ModelError,
    ModelNotReadyError,
    ModelStreamError,
    RetriesExhaustedError,
    RetryPolicy,
    ServiceError,
    ServiceUnavailableError,
    TransportError,
    ValidationError,
)
from smclient._errors import ErrorContext, translate, translate_stream_break
from smclient.testing import Reply, ScriptedRuntime
from tests.conftest import FakeClock


def policy(clock: FakeClock, **kwargs: object) -> RetryPolicy:
    return RetryPolicy(sleep=clock.sleep, clock=clock, random=lambda: 0.5, **kwargs)  # type: ignore[arg-type]


# -- event-stream frames (AWS event stream encoding: prelude, headers, payload, CRCs) ----------


def _frame(headers: dict[str, str], payload: bytes) -> bytes:
    raw = b""
    for name, value in headers.items():
        data = value.encode()
        raw += bytes([len(name)]) + name.encode() + b"\x07" + struct.pack(">H", len(data)) + data
    total = 12 + len(raw) + len(payload) + 4
    prelude = struct.pack(">II", total, len(raw))
    head = prelude + struct.pack(">I", binascii.crc32(prelude)) + raw + payload
    return head + struct.pack(">I", binascii.crc32(head))


def _part(data: bytes) -> bytes:
    return _frame({":message-type": "event", ":event-type": "PayloadPart"}, data)


def _exception(kind: str, **fields: str) -> bytes:
    return _frame(
        {":message-type": "exception", ":exception-type": kind},
        json.dumps(fields).encode(),
    )


def _stream(*frames: bytes) -> Reply:
    return Reply.ok(b"".join(frames), content_type="application/vnd.amazon.eventstream")


# -- give-ups -----------------------------------------------------------------------------


def test_a_cold_start_that_runs_out_of_time_is_caught_as_model_not_ready(
    runtime: ScriptedRuntime, clock: FakeClock
) -> None:
    runtime.queue(*[Reply.model_not_ready("m")] * 50)
    ep = runtime.endpoint("mme", retry=policy(clock))
    ep.client().meta.events.register(
        "after-call.sagemaker-runtime.InvokeEndpoint", lambda **_: clock.advance(60.0)
    )
    first = clock()
    try:
        ep.model("m").invoke(b"x")
    except ModelNotReadyError as err:
        caught = err
    else:
        pytest.fail("no error")
    assert isinstance(caught, RetriesExhaustedError)
    assert type(caught).__name__ == "ModelNotReadyError"
    assert caught.attempts == len(runtime.requests) > 1
    assert caught.history == ("ModelNotReadyException",) * caught.attempts
    assert caught.elapsed == pytest.approx(clock() - first)
    assert (caught.error_code, caught.http_status, caught.target_model) == (
        "ModelNotReadyException",
        429,
        "m",
    )
    assert caught.request_id
    assert isinstance(caught.last_error, ModelNotReadyError)
    assert not isinstance(caught.last_error, RetriesExhaustedError)
    assert caught.__cause__ is caught.last_error
    assert isinstance(caught.last_error.__cause__, bce.ClientError)
    assert f"retries exhausted after {caught.attempts} attempts" in str(caught)


def test_transient_give_up_is_the_last_503(runtime: ScriptedRuntime, clock: FakeClock) -> None:
    runtime.queue(*[Reply.error("ServiceUnavailable", 503)] * 10)
    with pytest.raises(ServiceUnavailableError) as info:
        runtime.endpoint(retry=policy(clock)).invoke(b"x")
    assert isinstance(info.value, RetriesExhaustedError)
    assert info.value.attempts == 4 == len(runtime.requests)


def test_an_error_that_is_not_retried_is_not_a_give_up(
    runtime: ScriptedRuntime, clock: FakeClock
) -> None:
    runtime.queue(Reply.error("ServiceUnavailable", 503), Reply.error("ValidationError", 400))
    with pytest.raises(ValidationError) as info:
        runtime.endpoint(retry=policy(clock)).invoke(b"x")
    assert not isinstance(info.value, RetriesExhaustedError)
    assert info.value.attempts == 2 == len(runtime.requests)


# -- streams --------------------------------------------------------------------------------


@pytest.mark.parametrize("transport", ["fast", "boto3"])
def test_stream_errors_carry_the_real_attempt_and_request_id(
    runtime: ScriptedRuntime, clock: FakeClock, transport: str
) -> None:
    runtime.queue(
        Reply.error("ServiceUnavailable", 503),
        _stream(_part(b"half "), _exception("ModelStreamError", Message="boom", ErrorCode="X")),
    )
    config = ClientConfig(sign_requests=False, transport=transport)  # type: ignore[arg-type]
    stream = runtime.endpoint(retry=policy(clock), config=config).stream(b"x")
    with stream, pytest.raises(ModelStreamError) as info:
        list(stream)
    err = info.value
    assert err.attempts == stream.attempts == 2 == len(runtime.requests)
    assert err.request_id == stream.request_id
    assert err.request_id
    assert (err.stream_error_code, err.bytes_received) == ("X", 5)


@pytest.mark.parametrize("transport", ["fast", "boto3"])
def test_a_stream_error_before_any_byte_carries_its_attempt(
    runtime: ScriptedRuntime, clock: FakeClock, transport: str
) -> None:
    runtime.queue(
        Reply.error("ServiceUnavailable", 503),
        _stream(_exception("ModelStreamError", Message="early", ErrorCode="StreamBroken")),
    )
    config = ClientConfig(sign_requests=False, transport=transport)  # type: ignore[arg-type]
    with pytest.raises(ModelStreamError) as info:
        runtime.endpoint(retry=policy(clock), config=config).stream(b"x")
    assert info.value.attempts == 2 == len(runtime.requests)
    assert info.value.request_id


def test_internal_stream_failures_that_run_out_are_a_give_up(
    runtime: ScriptedRuntime, clock: FakeClock
) -> None:
    runtime.queue(*[_stream(_exception("InternalStreamFailure", Message="again"))] * 6)
    with pytest.raises(InternalStreamFailureError) as info:
        runtime.endpoint(retry=policy(clock)).stream(b"x")
    err = info.value
    assert isinstance(err, RetriesExhaustedError)
    assert err.attempts == 4 == len(runtime.requests)
    assert err.last_error.attempts == 4  # type: ignore[attr-defined]  # was 1 before issue 14
    assert err.request_id
    assert err.last_error.request_id == err.request_id  # type: ignore[attr-defined]
    assert err.history == ("InternalStreamFailure",) * 4


def test_a_broken_stream_names_its_request_id() -> None:
    ctx = ErrorContext("ep", "InvokeEndpointWithResponseStream", None, 3, "rid-9")
    err = translate_stream_break(OSError("reset"), ctx, bytes_received=4, chunks_received=1)
    assert (err.attempts, err.request_id) == (3, "rid-9")  # type: ignore[attr-defined]
    assert "endpoint 'ep'" in str(err)
    assert "request id rid-9" in str(err)


# -- 424 without an error type ----------------------------------------------------------------


@pytest.mark.parametrize("transport", ["fast", "boto3"])
def test_a_424_without_error_type_is_a_model_error_with_its_fields(
    runtime: ScriptedRuntime, transport: str
) -> None:
    body = {"OriginalStatusCode": 503, "OriginalMessage": "busy", "LogStreamArn": "arn:x"}
    runtime.queue(
        Reply(424, json.dumps({"message": "Received error", **body}).encode(), ()),
        Reply(424, b"not json", ()),
    )
    config = ClientConfig(sign_requests=False, transport=transport)  # type: ignore[arg-type]
    ep = runtime.endpoint(retry=RetryPolicy.never(), config=config)
    with pytest.raises(ModelError) as info:
        ep.invoke(b"x")
    err = info.value
    assert (err.original_status_code, err.original_message, err.log_stream_arn) == (
        503,
        "busy",
        "arn:x",
    )
    assert (err.error_code, err.http_status, err.endpoint) == ("ModelError", 424, "scripted")
    with pytest.raises(ModelError) as info:
        ep.invoke(b"x")
    assert info.value.original_status_code is None


# -- botocore errors that are not answers ------------------------------------------------------


@pytest.mark.parametrize(
    ("exc", "expected"),
    [
        (bce.ParamValidationError(report="Invalid length for parameter X"), InvalidInputError),
        (bce.NoRegionError(), ConfigurationError),
        (bce.NoCredentialsError(), ConfigurationError),
        (bce.ProfileNotFound(profile="nope"), ConfigurationError),
        (bce.UnknownServiceError(service_name="x", known_service_names="y"), ConfigurationError),
        (bce.IncompleteReadError(actual_bytes=1, expected_bytes=2), TransportError),
        (bce.FlexibleChecksumError(error_msg="bad crc"), TransportError),
        (bce.BotoCoreError(), TransportError),
    ],
)
def test_botocore_errors_name_endpoint_and_operation(
    exc: Exception, expected: type[Exception]
) -> None:
    err = translate(exc, ErrorContext("ep-1", "InvokeEndpoint", "m", 2))
    assert type(err) is expected
    assert "InvokeEndpoint on endpoint 'ep-1'" in str(err)
    if not isinstance(err, InvalidInputError):
        assert (err.endpoint, err.operation) == ("ep-1", "InvokeEndpoint")  # type: ignore[attr-defined]


def test_no_region_on_a_real_call_is_a_configuration_error(
    monkeypatch: pytest.MonkeyPatch, tmp_path: object
) -> None:
    from smclient import Endpoint

    for name in ("AWS_DEFAULT_REGION", "AWS_REGION", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", "/nonexistent/config")
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent/credentials")
    with pytest.raises(ConfigurationError) as info:
        Endpoint("no-region").invoke(b"x")
    assert (info.value.endpoint, info.value.operation) == ("no-region", "InvokeEndpoint")
    assert "region" in str(info.value)


def test_an_unusable_answer_says_what_is_missing() -> None:
    err = ServiceError(
        "the answer has no OutputLocation: the result cannot be found",
        http_status=200,
        request_id="r",
        endpoint="ep",
        operation="InvokeEndpointAsync",
    )
    text = str(err)
    assert "None" not in text
    assert text.startswith("InvokeEndpointAsync on endpoint 'ep' answered with HTTP 200, but")
    assert "OutputLocation" in text


# -- sessions refused before sending --------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"content_type": "bad\x00type"}, "content_type"),
        ({"open_body": {"x": {1, 2}}}, "open_body"),
        ({"open_body": {"x": float("nan")}}, "open_body"),
        ({"open_body": b"x" * 6_291_457}, "open_body"),
        ({"target_model": " m"}, "target_model"),
        ({"retry": {"timeout": 1}}, "retry"),
    ],
)
def test_a_session_refused_before_sending_logs_nothing_about_the_model(
    runtime: ScriptedRuntime,
    caplog: pytest.LogCaptureFixture,
    kwargs: dict[str, object],
    field: str,
) -> None:
    ep = runtime.endpoint()
    with caplog.at_level("DEBUG", logger="smclient"), pytest.raises(InvalidInputError) as info:
        ep.session(**kwargs)  # type: ignore[arg-type]
    assert info.value.field == field
    assert runtime.requests == []
    assert "may have reached the model" not in caplog.text


def test_a_submit_answered_without_output_location_says_so(runtime: ScriptedRuntime) -> None:
    runtime.queue(Reply(202, b'{"InferenceId": "abc"}', (("Content-Type", "application/json"),)))
    ep = runtime.endpoint("async-ep", retry=RetryPolicy.never())
    with pytest.raises(ServiceError) as info:
        ep.submit(input_location="s3://bucket/in/x.json")
    text = str(info.value)
    assert "None (HTTP" not in text
    assert text.startswith("InvokeEndpointAsync on endpoint 'async-ep' answered with HTTP 202")
    assert "no OutputLocation" in text
    assert info.value.request_id
    assert len(runtime.requests) == 1
