"""The local async engine against an embedded moto server (S3, SNS, SQS on loopback).

Notifications are observed the way users observe them: an SQS queue subscribed to the
topics, read with a deadline. Time-based behaviour (TTL, invocation timeout) runs on a
fake clock, so nothing sleeps.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from smclient.local.async_inference._types import split_s3_url
from smclient.local.async_inference._worker import (
    AsyncRequest,
    AsyncSettings,
    AsyncWorker,
    AWSConnection,
    EmbeddedAWS,
    ModelReply,
)

pytest.importorskip("moto")

DEADLINE = 10.0  # seconds; a generous bound on loopback round trips, never reached when green


class FakeClock:
    def __init__(self, start: float = 1_700_000_000.0) -> None:
        self._now = start
        self._lock = threading.Lock()

    def __call__(self) -> float:
        with self._lock:
            return self._now

    def advance(self, seconds: float) -> None:
        with self._lock:
            self._now += seconds


def engine_threads() -> list[str]:
    return [t.name for t in threading.enumerate() if t.name.startswith("smclient-async")]


def wait_until(predicate: Callable[[], bool], timeout: float = DEADLINE) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached before the deadline")
        time.sleep(0.005)  # polling a condition another thread changes; bounded above


@pytest.fixture(scope="module")
def aws() -> Iterator[EmbeddedAWS]:
    with EmbeddedAWS() as embedded:
        yield embedded


_CACHE: dict[int, tuple[Any, Any, Any]] = {}


def _clients(aws: EmbeddedAWS) -> tuple[Any, Any, Any]:
    # One set per server (closed by its stop()): client creation dominates otherwise.
    key = id(aws)
    if key not in _CACHE:
        _CACHE.clear()
        _CACHE[key] = (aws.client("s3"), aws.client("sns"), aws.client("sqs"))
    return _CACHE[key]


class Env:
    """A bucket, two topics and one SQS queue subscribed to both, all uniquely named."""

    def __init__(self, aws: EmbeddedAWS) -> None:
        tag = uuid.uuid4().hex[:10]
        self.aws = aws
        self.s3, self.sns, self.sqs = _clients(aws)
        self.bucket = f"smclient-async-{tag}"
        self.s3.create_bucket(Bucket=self.bucket)
        self.success_topic = self.sns.create_topic(Name=f"ok-{tag}")["TopicArn"]
        self.error_topic = self.sns.create_topic(Name=f"err-{tag}")["TopicArn"]
        self.queue = self.sqs.create_queue(QueueName=f"q-{tag}")["QueueUrl"]
        arn = self.sqs.get_queue_attributes(QueueUrl=self.queue, AttributeNames=["QueueArn"])[
            "Attributes"
        ]["QueueArn"]
        for topic in (self.success_topic, self.error_topic):
            self.sns.subscribe(TopicArn=topic, Protocol="sqs", Endpoint=arn)
        self.workers: list[AsyncWorker] = []

    def settings(self, **kwargs: Any) -> AsyncSettings:
        values: dict[str, Any] = {
            "s3_output_path": f"s3://{self.bucket}/out",
            "s3_failure_path": f"s3://{self.bucket}/failed/",
            "success_topic": self.success_topic,
            "error_topic": self.error_topic,
        }
        values.update(kwargs)
        return AsyncSettings(**values)

    def worker(
        self,
        invoke: Callable[[bytes, AsyncRequest], ModelReply],
        *,
        skip_test_notifications: bool = True,
        **kwargs: Any,
    ) -> AsyncWorker:
        clock = kwargs.pop("clock", time.time)
        poll = kwargs.pop("poll_interval", 0.01)
        worker = AsyncWorker(
            "my-endpoint",
            self.settings(**kwargs),
            invoke,
            aws=self.aws,
            clock=clock,
            poll_interval=poll,
        )
        self.workers.append(worker)
        worker.start()
        if skip_test_notifications:
            for _ in worker.settings.topics:
                assert self.next()["eventName"] == "TestNotification"
        return worker

    def put_input(self, body: bytes = b'{"x": 1}') -> str:
        key = f"in/{uuid.uuid4().hex}.json"
        self.s3.put_object(Bucket=self.bucket, Key=key, Body=body)
        return f"s3://{self.bucket}/{key}"

    def get(self, url: str) -> tuple[bytes, str]:
        bucket, key = split_s3_url(url)
        found = self.s3.get_object(Bucket=bucket, Key=key)
        with found["Body"] as body:
            return body.read(), found["ContentType"]

    def exists(self, url: str) -> bool:
        bucket, key = split_s3_url(url)
        return bool(self.s3.list_objects_v2(Bucket=bucket, Prefix=key).get("KeyCount"))

    def next_envelope(self, timeout: float = DEADLINE) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            got = self.sqs.receive_message(
                QueueUrl=self.queue, MaxNumberOfMessages=1, WaitTimeSeconds=1
            )
            for message in got.get("Messages", []):
                self.sqs.delete_message(QueueUrl=self.queue, ReceiptHandle=message["ReceiptHandle"])
                envelope: dict[str, Any] = json.loads(message["Body"])
                return envelope
        raise AssertionError("no notification before the deadline")

    def next(self, timeout: float = DEADLINE) -> dict[str, Any]:
        notification: dict[str, Any] = json.loads(self.next_envelope(timeout)["Message"])
        return notification

    def close(self) -> None:
        for worker in self.workers:
            worker.close(timeout=5.0)
        self.sqs.delete_queue(QueueUrl=self.queue)


@pytest.fixture
def env(aws: EmbeddedAWS) -> Iterator[Env]:
    environment = Env(aws)
    yield environment
    environment.close()


def echo_upper(body: bytes, request: AsyncRequest) -> ModelReply:
    return ModelReply(200, body.upper(), "application/json")


# -- success and failure --------------------------------------------------------------


def test_start_publishes_the_test_notification_to_each_topic(env: Env) -> None:
    env.worker(echo_upper, skip_test_notifications=False)
    seen = {}
    for _ in range(2):
        envelope = env.next_envelope()
        seen[envelope["TopicArn"]] = json.loads(envelope["Message"])
    expected = {
        "eventVersion": "1.0",
        "eventSource": "aws:sagemaker",
        "eventName": "TestNotification",
    }
    assert seen == {env.success_topic: expected, env.error_topic: expected}


def test_start_fails_clearly_for_a_missing_topic(env: Env) -> None:
    bogus = env.success_topic + "-missing"
    worker = AsyncWorker("ep", env.settings(success_topic=bogus), echo_upper, aws=env.aws)
    with pytest.raises(RuntimeError, match="cannot publish to SNS topic"):
        worker.start()
    with pytest.raises(RuntimeError, match="not accepting"):
        worker.submit(AsyncRequest(env.put_input()))


def test_success_writes_the_output_and_publishes_completed(env: Env) -> None:
    clock = FakeClock()
    seen: list[AsyncRequest] = []

    def model(body: bytes, request: AsyncRequest) -> ModelReply:
        seen.append(request)
        clock.advance(2.5)
        return ModelReply(200, body.upper(), "application/json")

    worker = env.worker(model, clock=clock)
    source = env.put_input(b'{"x": "abc"}')
    request = AsyncRequest(source, content_type="application/json", accept="application/json")
    accepted = worker.submit(request)

    assert accepted.inference_id  # generated
    assert accepted.output_location.startswith(f"s3://{env.bucket}/out/")
    assert accepted.output_location.endswith(".out")
    assert accepted.failure_location.startswith(f"s3://{env.bucket}/failed/")
    assert accepted.failure_location.endswith("-error.out")
    note = env.next()
    assert env.get(accepted.output_location) == (b'{"X": "ABC"}', "application/json")
    assert not env.exists(accepted.failure_location)
    assert seen == [request]
    assert note == {
        "awsRegion": "us-east-1",
        "eventTime": "2023-11-14T22:13:22.500Z",
        "receivedTime": "2023-11-14T22:13:20.000Z",
        "invocationStatus": "Completed",
        "requestParameters": {
            "contentType": "application/json",
            "accept": "application/json",
            "endpointName": "my-endpoint",
            "inputLocation": source,
        },
        "responseParameters": {
            "contentType": "application/json",
            "outputLocation": accepted.output_location,
        },
        "inferenceId": accepted.inference_id,
        "eventVersion": "1.0",
        "eventSource": "aws:sagemaker",
        "eventName": "InferenceResult",
    }
    assert worker.stats().completed == 1


@pytest.mark.parametrize(("status", "kind"), [(500, "server"), (400, "client"), (507, "server")])
def test_model_error_writes_the_failure_and_publishes_failed(
    env: Env, status: int, kind: str
) -> None:
    def model(body: bytes, request: AsyncRequest) -> ModelReply:
        return ModelReply(status, b'{"error": "boom"}', "application/json", message="boom")

    worker = env.worker(model)
    accepted = worker.submit(AsyncRequest(env.put_input(), inference_id="my-id-1"))
    note = env.next()
    assert note["invocationStatus"] == "Failed"
    assert note["inferenceId"] == "my-id-1"
    assert note["failureReason"].startswith(
        f"ClientError: Received {kind} error ({status}) from model."
    )
    assert note["responseParameters"]["failureLocation"] == accepted.failure_location
    assert "responseBody" not in note["responseParameters"]
    body, content_type = env.get(accepted.failure_location)
    assert content_type == "application/json"
    assert json.loads(body) == {
        "inferenceId": "my-id-1",
        "errorCode": "ModelError",
        "failureReason": note["failureReason"],
        "originalStatusCode": status,
        "originalMessage": "boom",
    }
    assert not env.exists(accepted.output_location)
    assert worker.stats().failed == 1


def test_a_model_that_raises_fails_the_request(env: Env) -> None:
    def model(body: bytes, request: AsyncRequest) -> ModelReply:
        raise ZeroDivisionError("secret detail")

    worker = env.worker(model)
    accepted = worker.submit(AsyncRequest(env.put_input()))
    note = env.next()
    assert note["invocationStatus"] == "Failed"
    assert note["failureReason"].startswith("ServerError: The model raised ZeroDivisionError.")
    assert "secret detail" not in note["failureReason"]
    assert json.loads(env.get(accepted.failure_location)[0])["errorCode"] == "InternalFailure"


@pytest.mark.parametrize("missing", ["key", "bucket"])
def test_missing_input_fails_with_a_clear_reason(env: Env, missing: str) -> None:
    worker = env.worker(echo_upper)
    if missing == "key":
        source, code = f"s3://{env.bucket}/in/nothing-here.json", "NoSuchKey"
    else:
        source, code = f"s3://no-such-bucket-{uuid.uuid4().hex[:8]}/in.json", "NoSuchBucket"
    accepted = worker.submit(AsyncRequest(source))
    note = env.next()
    assert note["invocationStatus"] == "Failed"
    assert note["failureReason"] == (
        f"ClientError: Failed to download input data from {source}: "
        f"the object does not exist ({code})."
    )
    assert json.loads(env.get(accepted.failure_location)[0])["errorCode"] == "InputNotFound"


def test_an_unwritable_output_path_fails_the_request(env: Env) -> None:
    worker = env.worker(echo_upper, s3_output_path=f"s3://no-such-bucket-{uuid.uuid4().hex[:8]}")
    accepted = worker.submit(AsyncRequest(env.put_input()))
    note = env.next()
    assert note["invocationStatus"] == "Failed"
    assert note["failureReason"].startswith("ServerError: Failed to upload the output to ")
    assert json.loads(env.get(accepted.failure_location)[0])["errorCode"] == "OutputUnavailable"


def test_https_input_locations_are_read(env: Env) -> None:
    worker = env.worker(echo_upper)
    bucket, key = split_s3_url(env.put_input(b"abc"))
    worker.submit(AsyncRequest(f"https://{bucket}.s3.us-east-1.amazonaws.com/{key}"))
    note = env.next()
    assert note["invocationStatus"] == "Completed"
    assert env.get(note["responseParameters"]["outputLocation"])[0] == b"ABC"


def test_filename_and_extension_shape_the_locations(env: Env) -> None:
    worker = env.worker(echo_upper)
    accepted = worker.submit(
        AsyncRequest(env.put_input(), s3_output_path_extension="batch/7", filename="r.json")
    )
    assert accepted.output_location == f"s3://{env.bucket}/out/batch/7/r.json"
    assert accepted.failure_location == f"s3://{env.bucket}/failed/batch/7/r-error.json"
    assert env.next()["invocationStatus"] == "Completed"
    assert env.exists(accepted.output_location)


def test_the_response_is_embedded_when_configured(env: Env) -> None:
    replies = iter(
        [
            ModelReply(200, b"plain text", "text/plain"),
            ModelReply(200, b"\xff\x00", "application/octet-stream"),
            ModelReply(500, b"bad", "text/plain"),
            ModelReply(200, b"x" * (128 * 1024 + 1), "text/plain"),
        ]
    )
    lock = threading.Lock()

    def model(body: bytes, request: AsyncRequest) -> ModelReply:
        with lock:
            return next(replies)

    worker = env.worker(
        model,
        max_concurrent_invocations=1,
        include_inference_response_in=("SUCCESS_NOTIFICATION_TOPIC", "ERROR_NOTIFICATION_TOPIC"),
    )
    for _ in range(4):
        worker.submit(AsyncRequest(env.put_input()))
    bodies = [env.next()["responseParameters"].get("responseBody") for _ in range(4)]
    assert bodies == [
        {"content": "plain text", "encoding": "TEXT"},
        {"content": "/wA=", "encoding": "BASE64"},
        {"content": "bad", "encoding": "TEXT"},
        None,  # over 128 KiB: not embedded
    ]


# -- time: TTL and invocation timeout ---------------------------------------------------


class Gate:
    """A model that blocks until released, counting calls and concurrency."""

    def __init__(self) -> None:
        self.release = threading.Event()
        self.lock = threading.Lock()
        self.running = 0
        self.peak = 0
        self.order: list[str | None] = []

    def __call__(self, body: bytes, request: AsyncRequest) -> ModelReply:
        with self.lock:
            self.running += 1
            self.peak = max(self.peak, self.running)
            self.order.append(request.inference_id)
        try:
            self.release.wait(DEADLINE)
            return ModelReply(200, body, "application/json")
        finally:
            with self.lock:
                self.running -= 1

    def count(self) -> int:
        with self.lock:
            return self.running


@pytest.fixture
def gate() -> Iterator[Gate]:
    model = Gate()
    yield model
    model.release.set()  # before the env fixture closes the workers


def test_a_request_queued_past_its_ttl_expires_while_workers_are_busy(env: Env, gate: Gate) -> None:
    clock = FakeClock()
    worker = env.worker(gate, clock=clock, max_concurrent_invocations=1)
    first = worker.submit(AsyncRequest(env.put_input(), inference_id="first"))
    wait_until(lambda: gate.count() == 1)
    queued = worker.submit(
        AsyncRequest(env.put_input(), inference_id="queued", request_ttl_seconds=60)
    )
    clock.advance(61)
    note = env.next()  # the busy worker's sweep fails the queued request
    assert note["inferenceId"] == "queued"
    assert note["invocationStatus"] == "Failed"
    assert note["failureReason"] == (
        "ClientError: Request expired: it waited in the backlog longer than "
        "RequestTTLSeconds (60 s)."
    )
    assert json.loads(env.get(queued.failure_location)[0])["errorCode"] == "RequestExpired"
    gate.release.set()
    note = env.next()
    assert (note["inferenceId"], note["invocationStatus"]) == ("first", "Completed")
    assert env.exists(first.output_location)
    assert gate.order == ["first"]  # the expired request never ran


def test_a_request_past_its_ttl_when_a_worker_frees_up_does_not_run(env: Env, gate: Gate) -> None:
    clock = FakeClock()
    # A long poll interval: no sweep happens, the check at dequeue time decides.
    worker = env.worker(gate, clock=clock, max_concurrent_invocations=1, poll_interval=30)
    worker.submit(AsyncRequest(env.put_input(), inference_id="first"))
    wait_until(lambda: gate.count() == 1)
    worker.submit(AsyncRequest(env.put_input(), inference_id="late", request_ttl_seconds=60))
    clock.advance(60.5)
    worker.submit(AsyncRequest(env.put_input(), inference_id="fresh", request_ttl_seconds=60))
    gate.release.set()
    got = {(n["inferenceId"], n["invocationStatus"]) for n in (env.next() for _ in range(3))}
    assert got == {("first", "Completed"), ("late", "Failed"), ("fresh", "Completed")}
    assert gate.order == ["first", "fresh"]


def test_an_invocation_over_its_timeout_fails_and_its_late_result_is_discarded(
    env: Env, gate: Gate
) -> None:
    clock = FakeClock()
    worker = env.worker(gate, clock=clock, max_concurrent_invocations=1)
    accepted = worker.submit(
        AsyncRequest(env.put_input(), inference_id="slow", invocation_timeout_seconds=5)
    )
    wait_until(lambda: gate.count() == 1)
    clock.advance(5)
    note = env.next()
    assert note["invocationStatus"] == "Failed"
    assert note["failureReason"] == (
        "ClientError: Model invocation timed out: no answer within InvocationTimeoutSeconds (5 s)."
    )
    assert json.loads(env.get(accepted.failure_location)[0])["errorCode"] == (
        "ModelInvocationTimeExceeded"
    )
    # The slot is free again although the abandoned call still runs.
    nxt = worker.submit(AsyncRequest(env.put_input(), inference_id="next"))
    wait_until(lambda: gate.count() == 2)
    gate.release.set()
    note = env.next()
    assert (note["inferenceId"], note["invocationStatus"]) == ("next", "Completed")
    assert env.exists(nxt.output_location)
    worker.close(timeout=5.0)
    assert not env.exists(accepted.output_location)


# -- concurrency, backlog and shutdown ---------------------------------------------------


def test_concurrency_is_bounded_and_the_rest_waits_in_the_backlog(env: Env, gate: Gate) -> None:
    worker = env.worker(gate, max_concurrent_invocations=2)
    for i in range(6):
        worker.submit(AsyncRequest(env.put_input(), inference_id=f"r{i}"))
    wait_until(lambda: gate.count() == 2)
    stats = worker.stats()
    assert (stats.in_flight, stats.backlog) == (2, 4)
    gate.release.set()
    done = {env.next()["inferenceId"] for _ in range(6)}
    assert done == {f"r{i}" for i in range(6)}
    assert gate.peak == 2
    assert sorted(map(str, gate.order[:2])) == ["r0", "r1"]
    assert worker.stats() == type(stats)(backlog=0, in_flight=0, completed=6, failed=0)


def test_the_backlog_is_first_in_first_out(env: Env, gate: Gate) -> None:
    worker = env.worker(gate, max_concurrent_invocations=1)
    worker.submit(AsyncRequest(env.put_input(), inference_id="r0"))
    wait_until(lambda: gate.count() == 1)
    for i in range(1, 4):
        worker.submit(AsyncRequest(env.put_input(), inference_id=f"r{i}"))
    assert worker.stats().backlog == 3
    gate.release.set()
    assert [env.next()["inferenceId"] for _ in range(4)] == ["r0", "r1", "r2", "r3"]
    assert gate.order == ["r0", "r1", "r2", "r3"]
    assert gate.peak == 1


def test_close_fails_queued_and_running_requests_and_leaves_no_thread(
    env: Env, gate: Gate, caplog: pytest.LogCaptureFixture
) -> None:
    worker = env.worker(gate, max_concurrent_invocations=1)
    worker.submit(AsyncRequest(env.put_input(), inference_id="running"))
    wait_until(lambda: gate.count() == 1)
    worker.submit(AsyncRequest(env.put_input(), inference_id="queued"))
    started = time.monotonic()
    worker.close(timeout=0.3)
    assert time.monotonic() - started < 2.0
    # The model call ignores the deadline: it is left behind, and the log says so.
    assert "threads still running after close" in caplog.text
    reasons = {n["inferenceId"]: n["failureReason"] for n in (env.next() for _ in range(2))}
    assert reasons == {
        "queued": "ServerError: The endpoint shut down before the request ran.",
        "running": "ServerError: The endpoint shut down while the invocation was running.",
    }
    with pytest.raises(RuntimeError, match="not accepting"):
        worker.submit(AsyncRequest(env.put_input()))
    gate.release.set()
    wait_until(lambda: not engine_threads())


def test_close_after_work_joins_every_thread(env: Env) -> None:
    worker = env.worker(echo_upper, max_concurrent_invocations=3)
    for _ in range(3):
        worker.submit(AsyncRequest(env.put_input()))
    for _ in range(3):
        assert env.next()["invocationStatus"] == "Completed"
    assert engine_threads()
    worker.close(timeout=5.0)
    assert not engine_threads()
    worker.close()  # idempotent


def test_a_worker_reaches_any_s3_compatible_url(
    aws: EmbeddedAWS, env: Env, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "fake")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "fake")
    connection = AWSConnection(aws.endpoint_url, "us-east-1")
    worker = AsyncWorker("ep", env.settings(), echo_upper, aws=connection)
    worker.start()
    try:
        assert env.next()["eventName"] == "TestNotification"
        assert env.next()["eventName"] == "TestNotification"
        accepted = worker.submit(AsyncRequest(env.put_input(b"hi")))
        assert env.next()["invocationStatus"] == "Completed"
        assert env.get(accepted.output_location)[0] == b"HI"
    finally:
        worker.close()


def test_an_https_url_that_is_not_s3_fails_as_unreadable_input(env: Env) -> None:
    worker = env.worker(echo_upper)
    accepted = worker.submit(AsyncRequest("https://example.com/bucket/key"))
    note = env.next()
    assert note["failureReason"] == (
        "ClientError: Failed to download input data from https://example.com/bucket/key: "
        "the read failed (InvalidLocation)."
    )
    assert json.loads(env.get(accepted.failure_location)[0])["errorCode"] == "InputUnavailable"


def test_without_topics_results_are_written_and_nothing_is_published(env: Env) -> None:
    worker = env.worker(echo_upper, success_topic=None, error_topic=None)
    ok = worker.submit(AsyncRequest(env.put_input(b"a")))
    bad = worker.submit(AsyncRequest(f"s3://{env.bucket}/missing"))
    wait_until(lambda: worker.stats().completed + worker.stats().failed == 2)
    assert env.get(ok.output_location)[0] == b"A"
    assert json.loads(env.get(bad.failure_location)[0])["errorCode"] == "InputNotFound"
    got = env.sqs.receive_message(QueueUrl=env.queue, WaitTimeSeconds=0)
    assert not got.get("Messages")
