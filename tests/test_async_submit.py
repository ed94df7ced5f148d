"""submit(): uploads, headers, limits checked before sending, handles as JSON."""
# ruff: noqa: F811  (fixtures imported from tests/_async_helpers.py)

from __future__ import annotations

import io
import json
import pathlib
import threading
from typing import Any

import pytest

from smclient import CSV, InvalidInputError, ValidationError
from smclient._asyncinference import AsyncInvocation, _checks, submit

from ._async_helpers import (  # noqa: F401
    Requests,
    empty_bucket,
    failures,
    fresh_registry,
    moto,
    requests,
    shared_endpoint,
)

PREFIX = "s3://in-bucket/inputs"


@pytest.fixture
def ep(shared_endpoint: Any) -> Any:
    empty_bucket(shared_endpoint, "in-bucket")
    return shared_endpoint


def keys(ep: Any) -> list[str]:
    listed = ep.client("s3").list_objects_v2(Bucket="in-bucket")
    return [o["Key"] for o in listed.get("Contents", [])]


def test_submit_uploads_and_sends_every_header(ep: Any, requests: Requests) -> None:
    seen = requests
    seen.watch(ep.client("sagemaker-runtime"))
    inv = submit(
        ep,
        {"x": 1},
        input_prefix=PREFIX,
        accept="application/json",
        custom_attributes="trace=1",
        inference_id="my-id",
        request_ttl=600,
        invocation_timeout=120,
        s3_output_path_extension="run-1",
        filename="result.json",
    )
    [(operation, params)] = seen.params
    assert operation == "InvokeEndpointAsync"
    assert params["InputLocation"] == inv.input_location
    assert params["ContentType"] == "application/json"
    assert params["RequestTTLSeconds"] == 600
    assert params["InvocationTimeoutSeconds"] == 120
    assert params["S3OutputPathExtension"] == "run-1"
    assert params["Filename"] == "result.json"
    assert params["InferenceId"] == inv.inference_id == "my-id"
    assert inv.deadline == pytest.approx(inv.submitted_at + 600 + 120 + 60)
    [key] = keys(ep)
    assert inv.input_location == f"s3://in-bucket/{key}"
    assert key.startswith("inputs/")
    stored = ep.client("s3").get_object(Bucket="in-bucket", Key=key)
    assert json.loads(stored["Body"].read()) == {"x": 1}
    assert stored["ContentType"] == "application/json"


def test_submit_generates_an_inference_id_and_default_deadline(ep: Any) -> None:
    inv = submit(ep, b"raw", input_prefix=PREFIX)
    assert len(inv.inference_id) == 36
    assert inv.deadline == pytest.approx(inv.submitted_at + 21600 + 900 + 60)
    assert inv.failure_location is not None
    assert inv.output_location.startswith("s3://")


def test_submit_with_input_location_uploads_nothing(ep: Any) -> None:
    inv = submit(ep, input_location="s3://in-bucket/already/there.csv", codec=CSV)
    assert inv.input_location == "s3://in-bucket/already/there.csv"
    assert inv.codec == "csv"
    assert keys(ep) == []


def test_submit_streams_a_path_in_parts(
    ep: Any, tmp_path: pathlib.Path, requests: Requests
) -> None:
    path = tmp_path / "big.bin"
    data = bytes(range(256)) * (9 * 4096)  # 9 MiB: two multipart chunks of 8 MiB
    path.write_bytes(data)
    seen = requests
    seen.watch(ep.client("s3"))
    threads = set(threading.enumerate())
    inv = submit(ep, path, input_prefix=PREFIX, content_type="application/octet-stream")
    assert set(threading.enumerate()) <= threads  # the transfer's threads are joined
    assert inv.input_location.endswith(".bin")
    assert seen.counts["UploadPart"] == 2
    assert seen.counts["PutObject"] == 0
    bucket, key = _checks.split_s3_url(inv.input_location)
    assert ep.client("s3").get_object(Bucket=bucket, Key=key)["Body"].read() == data


class Recording(io.BytesIO):
    def __init__(self, data: bytes, seekable: bool = True) -> None:
        super().__init__(data)
        self.reads: list[int] = []
        self._seekable = seekable

    def seekable(self) -> bool:
        return self._seekable

    def read(self, size: int | None = -1) -> bytes:
        self.reads.append(-1 if size is None else size)
        return super().read(size)


def test_submit_streams_a_file_object_without_reading_it_whole(ep: Any) -> None:
    data = b"a" * (9 * 1024 * 1024)
    stream = Recording(data)
    inv = submit(ep, stream, input_prefix=PREFIX)
    assert stream.reads
    assert all(0 < size <= 8 * 1024 * 1024 for size in stream.reads)
    bucket, key = _checks.split_s3_url(inv.input_location)
    assert ep.client("s3").get_object(Bucket=bucket, Key=key)["Body"].read() == data


def test_oversized_seekable_input_is_refused_before_upload(
    ep: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: pathlib.Path, requests: Requests
) -> None:
    monkeypatch.setattr(_checks, "MAX_INPUT_BYTES", 10)
    seen = requests
    seen.watch(ep.client("s3"))
    seen.watch(ep.client("sagemaker-runtime"))
    path = tmp_path / "x"
    path.write_bytes(b"0123456789A")
    for body in (b"0123456789A", io.BytesIO(b"0123456789A"), path):
        with pytest.raises(InvalidInputError, match="at most 10 bytes"):
            submit(ep, body, input_prefix=PREFIX)
    assert not seen.params


def test_oversized_unseekable_stream_aborts_the_upload(
    ep: Any, monkeypatch: pytest.MonkeyPatch, requests: Requests
) -> None:
    monkeypatch.setattr(_checks, "MAX_INPUT_BYTES", 10)
    seen = requests
    seen.watch(ep.client("sagemaker-runtime"))
    with pytest.raises(InvalidInputError, match="too large"):
        submit(ep, Recording(b"x" * 100, seekable=False), input_prefix=PREFIX)
    assert not seen.params
    assert keys(ep) == []


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"request_ttl": 59}, "request_ttl"),
        ({"request_ttl": 21601}, "request_ttl"),
        ({"request_ttl": 60.5}, "request_ttl"),
        ({"invocation_timeout": 0}, "invocation_timeout"),
        ({"invocation_timeout": 3601}, "invocation_timeout"),
        ({"inference_id": "x" * 65}, "inference_id"),
        ({"inference_id": ""}, "inference_id"),
        ({"custom_attributes": "é"}, "custom_attributes"),
        ({"custom_attributes": "a" * 1025}, "custom_attributes"),
        ({"content_type": "a" * 1025}, "content_type"),
        ({"accept": "\n"}, "accept"),
        ({"s3_output_path_extension": "a" * 513}, "s3_output_path_extension"),
        ({"s3_output_path_extension": "s3://x"}, "s3_output_path_extension"),
        ({"s3_output_path_extension": "a b"}, "s3_output_path_extension"),
        ({"filename": "a" * 33}, "filename"),
        ({"filename": "a.b.c"}, "filename"),
        ({"filename": ".hidden"}, "filename"),
        ({"input_prefix": "in-bucket/x"}, "input_prefix"),
        ({"input_prefix": "s3://A_B/x"}, "input_prefix"),
        ({"input_prefix": None}, "input_prefix"),
    ],
)
def test_limits_are_checked_before_anything_is_sent(
    ep: Any, kwargs: dict[str, Any], field: str, requests: Requests
) -> None:
    seen = requests
    seen.watch(ep.client("s3"))
    seen.watch(ep.client("sagemaker-runtime"))
    kwargs.setdefault("input_prefix", PREFIX)
    with pytest.raises(InvalidInputError) as info:
        submit(ep, b"body", **kwargs)
    assert info.value.field == field
    assert not seen.params


@pytest.mark.parametrize(
    ("body", "location", "field"),
    [
        (b"x", "s3://in-bucket/k", "body"),
        (None, None, "body"),
        (None, "ftp://in-bucket/k", "input_location"),
        (None, "s3://" + "k" * 1020, "input_location"),
    ],
)
def test_body_and_location_rules(ep: Any, body: Any, location: Any, field: str) -> None:
    with pytest.raises(InvalidInputError) as info:
        submit(ep, body, input_location=location, input_prefix=PREFIX)
    assert info.value.field == field


def test_a_rejected_call_removes_the_uploaded_input(ep: Any, failures: Any) -> None:
    failures(ep.client("sagemaker-runtime"), "InvokeEndpointAsync", 400, "ValidationError")
    with pytest.raises(ValidationError) as info:
        submit(ep, b"body", input_prefix=PREFIX)
    assert info.value.operation == "InvokeEndpointAsync"
    assert info.value.http_status == 400
    assert keys(ep) == []


def test_handle_round_trips_through_json(ep: Any) -> None:
    inv = submit(ep, b"body", input_prefix=PREFIX, codec=CSV, accept="text/csv")
    text = inv.to_json()
    assert "body" not in json.loads(text)
    again = AsyncInvocation.from_json(text, endpoint=ep)
    assert again == inv
    assert again.endpoint is ep
    rebuilt = AsyncInvocation.from_json(json.loads(text))
    assert rebuilt == inv
    assert rebuilt.endpoint is not None
    assert rebuilt.endpoint.name == "async-ep"


@pytest.mark.parametrize(
    "text", ["{}", "[]", "not json", '{"format": "smclient.AsyncInvocation/1"}']
)
def test_bad_handle_documents_are_refused(text: str) -> None:
    with pytest.raises(InvalidInputError, match="cannot load"):
        AsyncInvocation.from_json(text)


def test_an_unseekable_stream_within_the_limit_is_uploaded(ep: Any) -> None:
    inv = submit(ep, Recording(b"streamed" * 1000, seekable=False), input_prefix=PREFIX)
    bucket, key = _checks.split_s3_url(inv.input_location)
    assert ep.client("s3").get_object(Bucket=bucket, Key=key)["Body"].read() == b"streamed" * 1000


def test_an_answer_without_output_location_is_a_typed_error_and_cleans_up(ep: Any) -> None:
    import types

    from smclient import ServiceError

    def answer(**_: Any) -> Any:
        http = types.SimpleNamespace(status_code=202, headers={}, raw=None, content=b"")
        metadata = {"HTTPStatusCode": 202, "RequestId": "req-1"}
        return http, {"InferenceId": "abc", "ResponseMetadata": metadata}

    runtime = ep.client("sagemaker-runtime")
    event = "before-call.sagemaker-runtime.InvokeEndpointAsync"
    runtime.meta.events.register(event, answer)
    try:
        with pytest.raises(ServiceError, match="OutputLocation") as info:
            submit(ep, b"body", input_prefix=PREFIX)
    finally:
        runtime.meta.events.unregister(event, answer)
    assert info.value.operation == "InvokeEndpointAsync"
    assert info.value.http_status == 202
    assert info.value.request_id == "req-1"
    assert keys(ep) == []


@pytest.mark.parametrize("kind", ["bytes", "str", "json"])
def test_bodies_over_the_real_time_limit_are_submitted(ep: Any, kind: str) -> None:
    # The real-time 6 MB limit (smclient._codecs.encode_body) must not apply here.
    size = 7 * 1024 * 1024
    body: Any = {"bytes": b"a" * size, "str": "a" * size, "json": ["a" * size]}[kind]
    inv = submit(ep, body, input_prefix=PREFIX)
    [key] = keys(ep)
    head = ep.client("s3").head_object(Bucket="in-bucket", Key=key)
    assert head["ContentLength"] >= size
    assert inv.content_type == ("application/json" if kind == "json" else None)
