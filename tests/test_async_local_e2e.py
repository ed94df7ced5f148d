"""End to end: smclient submits to the local endpoint's async route and waits through
SNS -> SQS notifications and S3 (embedded moto server)."""

from __future__ import annotations

import json
import time
import urllib.request
from collections.abc import Iterator
from typing import Any

import boto3
import pytest

from smclient import JSON, Endpoint
from smclient._asyncinference import AsyncInferenceError, Poller, as_completed, submit
from smclient.local import AsyncSettings, EmbeddedAWS, EndpointSpec, HandlerError, LocalRuntime
from smclient.notifications import Subscription, subscribe

WAIT = 20.0


def model(body: bytes, content_type: str | None, accept: str | None) -> bytes:
    if body == b"fail":
        raise HandlerError("cannot score", 422)
    return json.dumps({"scored": json.loads(body)}).encode()


@pytest.fixture(scope="module")
def stack() -> Iterator[tuple[LocalRuntime, Endpoint, Subscription]]:
    with EmbeddedAWS() as aws:
        session = boto3.Session(
            aws_access_key_id="local", aws_secret_access_key="local", region_name="us-east-1"
        )
        with Endpoint("async-e2e", boto3_session=session, aws_endpoint_url=aws.endpoint_url) as ep:
            s3, sns = ep.client("s3"), ep.client("sns")
            for bucket in ("e2e-in", "e2e-out"):
                s3.create_bucket(Bucket=bucket)
            ok = sns.create_topic(Name="e2e-ok")["TopicArn"]
            err = sns.create_topic(Name="e2e-error")["TopicArn"]
            settings = AsyncSettings(
                s3_output_path="s3://e2e-out/results",
                s3_failure_path="s3://e2e-out/failures",
                success_topic=ok,
                error_topic=err,
            )
            # Subscribed before the endpoint starts, so its TestNotification arrives too.
            with subscribe(ok, err, endpoint=ep) as sub:
                spec = EndpointSpec("async-e2e", handler=model, async_config=settings)
                with LocalRuntime([spec], aws=aws) as runtime:
                    runtime_ep = Endpoint(
                        "async-e2e",
                        boto3_session=session,
                        endpoint_url=runtime.url,
                        aws_endpoint_url=aws.endpoint_url,
                    )
                    with runtime_ep:
                        yield runtime, runtime_ep, sub
        reset = urllib.request.Request(f"{aws.endpoint_url}/moto-api/reset", method="POST")
        with urllib.request.urlopen(reset, timeout=WAIT) as answer:
            answer.read()


def test_results_arrive_through_notifications(stack: Any) -> None:
    _runtime, ep, sub = stack
    invs = [
        submit(ep, {"n": n}, input_prefix="s3://e2e-in/inputs", accept="application/json")
        for n in range(4)
    ]
    bad = submit(ep, b"fail", input_prefix="s3://e2e-in/inputs")
    poller = sub.poller(wait_time_seconds=1, s3=False)  # notifications only: prove that path
    start = time.monotonic()
    found = {
        c.invocation.inference_id: c
        for c in as_completed([*invs, bad], timeout=WAIT, poller=poller)
    }
    assert time.monotonic() - start < WAIT
    for n, inv in enumerate(invs):
        completion = found[inv.inference_id]
        assert completion.result() == {"scored": {"n": n}}
    assert {c.source for c in found.values()} == {"notification"}
    with pytest.raises(AsyncInferenceError) as info:
        found[bad.inference_id].result()
    assert info.value.failure_reason is not None
    assert "(422)" in info.value.failure_reason
    assert info.value.error_code == "ModelError"
    assert info.value.failure_content is not None
    poller.poll()  # anything left (duplicates, the TestNotification) is handled by now
    attributes = ep.client("sqs").get_queue_attributes(
        QueueUrl=sub.queue_url, AttributeNames=["ApproximateNumberOfMessages"]
    )
    assert attributes["Attributes"]["ApproximateNumberOfMessages"] == "0"


def test_s3_only_waiting_and_resume(stack: Any) -> None:
    _runtime, ep, _sub = stack
    inv = submit(ep, {"n": 9}, input_prefix="s3://e2e-in/inputs", filename="nine.json", codec=JSON)
    assert inv.output_location.endswith("/nine.json")
    again = type(inv).from_json(inv.to_json(), endpoint=ep)
    assert again.result(timeout=WAIT, poller=Poller(ep, interval=0.05)) == {"scored": {"n": 9}}
