"""Values and checks of the local async engine: no server needed."""

from __future__ import annotations

import json
from typing import Any

import attrs
import pytest

from smclient.local.async_inference import _notify as notify
from smclient.local.async_inference._types import locations, split_s3_url
from smclient.local.async_inference._worker import (
    AsyncAccepted,
    AsyncRequest,
    AsyncRequestError,
    AsyncSettings,
    AsyncWorker,
    AWSConnection,
    ModelReply,
)

TOPIC = "arn:aws:sns:us-east-1:123456789012:results"


def _fail(body: bytes, request: AsyncRequest) -> ModelReply:
    raise AssertionError("never called")


@pytest.mark.parametrize(
    ("changes", "header"),
    [
        ({"input_location": "ftp://bucket/key"}, "InputLocation"),
        ({"input_location": ""}, "InputLocation"),
        ({"input_location": "s3://b/" + "k" * 1030}, "InputLocation"),
        ({"inference_id": ""}, "InferenceId"),
        ({"inference_id": "x" * 65}, "InferenceId"),
        ({"inference_id": " leading"}, "InferenceId"),
        ({"inference_id": "tab\there"}, "InferenceId"),
        ({"request_ttl_seconds": 59}, "RequestTTLSeconds"),
        ({"request_ttl_seconds": 21601}, "RequestTTLSeconds"),
        ({"request_ttl_seconds": True}, "RequestTTLSeconds"),
        ({"invocation_timeout_seconds": 0}, "InvocationTimeoutSeconds"),
        ({"invocation_timeout_seconds": 3601}, "InvocationTimeoutSeconds"),
        ({"invocation_timeout_seconds": 1.5}, "InvocationTimeoutSeconds"),
        ({"s3_output_path_extension": ""}, "S3OutputPathExtension"),
        ({"s3_output_path_extension": "a" * 513}, "S3OutputPathExtension"),
        ({"s3_output_path_extension": "s3://elsewhere"}, "S3OutputPathExtension"),
        ({"s3_output_path_extension": "with space"}, "S3OutputPathExtension"),
        ({"filename": ""}, "Filename"),
        ({"filename": "f" * 33}, "Filename"),
        ({"filename": "a.b.c"}, "Filename"),
        ({"filename": ".hidden"}, "Filename"),
        ({"filename": "a/b"}, "Filename"),
        ({"content_type": "é"}, "ContentType"),
        ({"accept": "a" * 1025}, "Accept"),
        ({"custom_attributes": "ü"}, "CustomAttributes"),
    ],
)
def test_requests_out_of_limits_are_rejected_naming_the_header(
    changes: dict[str, Any], header: str
) -> None:
    request = attrs.evolve(AsyncRequest("s3://bucket/key"), **changes)
    with pytest.raises(AsyncRequestError, match=header):
        request.validate()


@pytest.mark.parametrize(
    "request_",
    [
        AsyncRequest("s3://bucket/key"),
        AsyncRequest("https://bucket.s3.amazonaws.com/key"),
        AsyncRequest(
            "s3://bucket/key",
            inference_id="x" * 64,
            request_ttl_seconds=60,
            invocation_timeout_seconds=3600,
            s3_output_path_extension="a/b!_.*'()-",
            filename="out-1_2.json",
        ),
        AsyncRequest("s3://bucket/key", request_ttl_seconds=21600, invocation_timeout_seconds=1),
    ],
)
def test_requests_at_the_limits_are_accepted(request_: AsyncRequest) -> None:
    request_.validate()


def test_submit_rejects_before_queueing_and_needs_a_started_worker() -> None:
    worker = AsyncWorker(
        "ep", AsyncSettings("s3://bucket/out"), _fail, aws=AWSConnection(None, "us-east-1")
    )
    with pytest.raises(AsyncRequestError, match="InputLocation"):
        worker.submit(AsyncRequest("file:///etc/passwd"))
    with pytest.raises(RuntimeError, match="not accepting"):
        worker.submit(AsyncRequest("s3://bucket/key"))
    assert repr(worker) == "AsyncWorker(endpoint_name='ep', state='new', backlog=0)"
    worker.close()  # never started: nothing to stop
    assert worker.stats().backlog == 0
    with pytest.raises(RuntimeError, match="starts once"):
        worker.start()


@pytest.mark.parametrize(
    "changes",
    [
        {"s3_output_path": "bucket/out"},
        {"s3_output_path": "s3://"},
        {"s3_output_path": "s3://Bad_Bucket/out"},
        {"s3_failure_path": "https://bucket/f"},
        {"success_topic": "not-an-arn"},
        {"error_topic": "arn:aws:sqs:us-east-1:123456789012:queue"},
        {"include_inference_response_in": ("SNS_NOTIFICATION",)},
        {"include_inference_response_in": ("SUCCESS_NOTIFICATION_TOPIC",) * 2},
        {"max_concurrent_invocations": 0},
        {"max_concurrent_invocations": 1001},
        {"max_concurrent_invocations": True},
    ],
)
def test_invalid_settings_raise_value_error(changes: dict[str, Any]) -> None:
    values: dict[str, Any] = {"s3_output_path": "s3://bucket/out", **changes}
    with pytest.raises(ValueError, match=next(iter(changes))):
        AsyncSettings(**values)


def test_settings_normalise_and_list_topics() -> None:
    settings = AsyncSettings(
        "s3://bucket",
        success_topic=TOPIC,
        error_topic=TOPIC,
        include_inference_response_in="ERROR_NOTIFICATION_TOPIC",
        max_concurrent_invocations=1000,
    )
    assert settings.topics == (TOPIC,)
    assert settings.include_inference_response_in == ("ERROR_NOTIFICATION_TOPIC",)


@pytest.mark.parametrize(
    ("output", "failure", "ext", "filename", "expected"),
    [
        ("s3://bkt/out", None, None, None, ("s3://bkt/out/ID.out", "s3://bkt/out/ID-error.out")),
        (
            "s3://bkt/o/",
            "s3://bkt/f/",
            None,
            None,
            ("s3://bkt/o/ID.out", "s3://bkt/f/ID-error.out"),
        ),
        ("s3://bkt", None, "x/y/", None, ("s3://bkt/x/y/ID.out", "s3://bkt/x/y/ID-error.out")),
        ("s3://bkt/o", "s3://ccc", None, "r.json", ("s3://bkt/o/r.json", "s3://ccc/r-error.json")),
        ("s3://bkt/o", None, "e", "noext", ("s3://bkt/o/e/noext", "s3://bkt/o/e/noext-error")),
    ],
)
def test_locations(
    output: str,
    failure: str | None,
    ext: str | None,
    filename: str | None,
    expected: tuple[str, str],
) -> None:
    settings = AsyncSettings(output, s3_failure_path=failure)
    request = AsyncRequest("s3://in/k", s3_output_path_extension=ext, filename=filename)
    assert locations(settings, request, "ID") == expected


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("s3://bucket/a/b.json", ("bucket", "a/b.json")),
        ("https://bucket.s3.amazonaws.com/a/b%20c", ("bucket", "a/b c")),
        ("https://bucket.s3.eu-west-1.amazonaws.com/k", ("bucket", "k")),
        ("https://bucket.s3-eu-west-1.amazonaws.com/k", ("bucket", "k")),
        ("https://s3.eu-west-1.amazonaws.com/bucket/a/k", ("bucket", "a/k")),
        ("https://s3.amazonaws.com/bucket/k", ("bucket", "k")),
    ],
)
def test_split_s3_url(url: str, expected: tuple[str, str]) -> None:
    assert split_s3_url(url) == expected


@pytest.mark.parametrize(
    "url", ["s3://bucket", "s3://bucket/", "https://example.com/bucket/k", "http://b.s3.x/k"]
)
def test_split_s3_url_rejects_what_is_not_an_object(url: str) -> None:
    with pytest.raises(ValueError, match=r"URL|bucket"):
        split_s3_url(url)


def test_iso_times_are_utc_with_milliseconds() -> None:
    assert notify.iso(0.0) == "1970-01-01T00:00:00.000Z"
    assert notify.iso(1_700_000_000.1239) == "2023-11-14T22:13:20.123Z"


def test_failure_document_caps_the_model_message_and_omits_it_for_other_failures() -> None:
    reply = ModelReply(500, b"\xff" + b"e" * 70_000, "text/plain")
    doc = json.loads(notify.failure_document("id", notify.model_error(reply)))
    assert doc["originalStatusCode"] == 500
    assert len(doc["originalMessage"]) == 64 * 1024
    assert doc["originalMessage"].startswith("\ufffd")
    doc = json.loads(notify.failure_document("id", notify.timed_out(3)))
    assert set(doc) == {"inferenceId", "errorCode", "failureReason"}
    assert doc["errorCode"] in notify.ERROR_CODES


def test_reprs_hold_no_payload() -> None:
    reply = ModelReply(200, b"secret-body", "text/plain", message="secret-message")
    request = AsyncRequest("s3://bucket/key", custom_attributes="secret-attrs")
    assert "secret" not in repr(reply)
    assert "<11 bytes>" in repr(reply)
    assert "secret" not in repr(request)
    assert "bucket" in repr(AsyncAccepted("i", "s3://bucket/o", "s3://bucket/f"))
