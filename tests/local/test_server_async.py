"""The async-invocations route with plain boto3 ``invoke_endpoint_async`` (embedded moto)."""

from __future__ import annotations

import json
import threading
import time
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest
from botocore.exceptions import ClientError

from smclient.local import EndpointSpec, HandlerError, LocalRuntime
from smclient.local.async_inference._worker import AsyncSettings

WAIT = 10.0


def model(body: bytes, content_type: str | None, accept: str | None) -> bytes:
    if body == b"fail":
        raise HandlerError("cannot score", 422)
    if body == b"crash":
        raise ZeroDivisionError("secret detail")
    return b"scored:" + body


ENTERED, RELEASE = threading.Event(), threading.Event()


def slow(body: bytes, content_type: str | None, accept: str | None) -> bytes:
    ENTERED.set()
    assert RELEASE.wait(WAIT)
    return b"slow:" + body


@pytest.fixture(scope="module")
def runtime() -> Iterator[LocalRuntime]:
    settings = AsyncSettings(
        s3_output_path="s3://out-bucket/results", s3_failure_path="s3://out-bucket/fail"
    )
    specs = [
        EndpointSpec("async-ep", handler=model, async_config=settings),
        EndpointSpec("realtime", handler=model),
        # a tiny real-time limit that async invocations must not be held to
        EndpointSpec("async-slow", handler=slow, async_config=settings, invocation_timeout=0.05),
    ]
    with LocalRuntime(specs) as rt:
        s3 = rt.aws.client("s3")
        s3.create_bucket(Bucket="in-bucket")
        s3.create_bucket(Bucket="out-bucket")
        yield rt
        # moto's state is per process: leave none behind for other tests
        reset = urllib.request.Request(f"{rt.aws.endpoint_url}/moto-api/reset", method="POST")
        with urllib.request.urlopen(reset, timeout=WAIT) as answer:
            answer.read()


def wait_done(runtime: LocalRuntime, count: int, name: str = "async-ep") -> None:
    deadline = time.monotonic() + WAIT
    while True:
        stats = runtime.hosted(name).async_stats()
        if stats.completed + stats.failed >= count:
            return
        assert time.monotonic() < deadline, stats
        time.sleep(0.01)  # polls the worker's counters; the work itself is not timed


def split(url: str) -> tuple[str, str]:
    bucket, _, key = url.removeprefix("s3://").partition("/")
    return bucket, key


def test_async_invocation_writes_output(runtime: LocalRuntime, client_for: Any) -> None:
    s3 = runtime.aws.client("s3")
    s3.put_object(Bucket="in-bucket", Key="req.json", Body=b"payload")
    done = runtime.hosted("async-ep").async_stats()
    response = client_for(runtime.url).invoke_endpoint_async(
        EndpointName="async-ep",
        InputLocation="s3://in-bucket/req.json",
        ContentType="application/json",
        InferenceId="inf-1",
    )
    assert response["ResponseMetadata"]["HTTPStatusCode"] == 202
    assert response["InferenceId"] == "inf-1"
    assert response["OutputLocation"].startswith("s3://out-bucket/results/")
    assert response["FailureLocation"].startswith("s3://out-bucket/fail/")
    wait_done(runtime, done.completed + done.failed + 1)
    bucket, key = split(response["OutputLocation"])
    assert s3.get_object(Bucket=bucket, Key=key)["Body"].read() == b"scored:payload"


def test_async_model_error_writes_failure(runtime: LocalRuntime, client_for: Any) -> None:
    s3 = runtime.aws.client("s3")
    s3.put_object(Bucket="in-bucket", Key="bad.json", Body=b"fail")
    done = runtime.hosted("async-ep").async_stats()
    response = client_for(runtime.url).invoke_endpoint_async(
        EndpointName="async-ep", InputLocation="s3://in-bucket/bad.json"
    )
    assert response["InferenceId"]
    wait_done(runtime, done.completed + done.failed + 1)
    bucket, key = split(response["FailureLocation"])
    assert b"422" in s3.get_object(Bucket=bucket, Key=key)["Body"].read()


def test_async_handler_that_raises_is_a_model_error_500(
    runtime: LocalRuntime, client_for: Any
) -> None:
    # What docs/local-async.md promises for "the model handler raised".
    s3 = runtime.aws.client("s3")
    s3.put_object(Bucket="in-bucket", Key="crash.json", Body=b"crash")
    done = runtime.hosted("async-ep").async_stats()
    response = client_for(runtime.url).invoke_endpoint_async(
        EndpointName="async-ep", InputLocation="s3://in-bucket/crash.json"
    )
    wait_done(runtime, done.completed + done.failed + 1)
    bucket, key = split(response["FailureLocation"])
    failure = json.loads(s3.get_object(Bucket=bucket, Key=key)["Body"].read())
    assert failure["errorCode"] == "ModelError"
    assert failure["failureReason"].startswith(
        "ClientError: Received server error (500) from model."
    )
    assert failure["originalStatusCode"] == 500
    assert failure["originalMessage"] == "The model raised ZeroDivisionError."
    assert "secret" not in json.dumps(failure)


def test_async_invocation_is_not_held_to_the_real_time_limit(
    runtime: LocalRuntime, client_for: Any
) -> None:
    s3 = runtime.aws.client("s3")
    s3.put_object(Bucket="in-bucket", Key="slow.json", Body=b"late")
    ENTERED.clear()
    RELEASE.clear()
    try:
        response = client_for(runtime.url).invoke_endpoint_async(
            EndpointName="async-slow", InputLocation="s3://in-bucket/slow.json"
        )
        assert ENTERED.wait(WAIT)
        time.sleep(0.15)  # three times the endpoint's 0.05 s real-time invocation_timeout
    finally:
        RELEASE.set()
    wait_done(runtime, 1, "async-slow")
    assert runtime.hosted("async-slow").async_stats().completed == 1
    bucket, key = split(response["OutputLocation"])
    assert s3.get_object(Bucket=bucket, Key=key)["Body"].read() == b"slow:late"


@pytest.mark.parametrize(
    ("endpoint", "kwargs", "fragment"),
    [
        ("async-ep", {"InputLocation": "s3://in-bucket/x", "RequestTTLSeconds": 30000}, ""),
        ("async-ep", {"InputLocation": "ftp://nope"}, ""),
        ("realtime", {"InputLocation": "s3://in-bucket/x"}, "not configured for asynchronous"),
        ("missing", {"InputLocation": "s3://in-bucket/x"}, "not found"),
    ],
)
def test_async_validation_errors(
    runtime: LocalRuntime, client_for: Any, endpoint: str, kwargs: dict[str, Any], fragment: str
) -> None:
    with pytest.raises(ClientError) as info:
        client_for(runtime.url).invoke_endpoint_async(EndpointName=endpoint, **kwargs)
    assert info.value.response["Error"]["Code"] == "ValidationError"
    assert info.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400
    assert fragment in info.value.response["Error"]["Message"]


def test_status_shows_async_counters(runtime: LocalRuntime) -> None:
    assert set(runtime.status()["endpoints"]["async-ep"]["async"]) == {
        "backlog",
        "in_flight",
        "completed",
        "failed",
    }
