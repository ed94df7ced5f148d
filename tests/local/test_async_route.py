"""End to end: plain boto3 ``invoke_endpoint_async`` against a LocalEndpoint whose async
engine uses an EmbeddedAWS the test prepared (bucket, topic, subscribed queue)."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from typing import Any

import boto3
import pytest

from smclient.local import LocalEndpoint
from smclient.local.async_inference._worker import AsyncSettings, EmbeddedAWS

pytest.importorskip("moto")


@pytest.fixture
def aws() -> Iterator[EmbeddedAWS]:
    with EmbeddedAWS() as embedded:
        yield embedded


def _receive(sqs: Any, queue: str, deadline: float) -> dict[str, Any]:
    while time.monotonic() < deadline:
        got = sqs.receive_message(QueueUrl=queue, MaxNumberOfMessages=1, WaitTimeSeconds=1)
        for message in got.get("Messages", []):
            sqs.delete_message(QueueUrl=queue, ReceiptHandle=message["ReceiptHandle"])
            body: dict[str, Any] = json.loads(json.loads(message["Body"])["Message"])
            return body
    raise AssertionError("no notification before the deadline")


def test_plain_boto3_async_round_trip(aws: EmbeddedAWS) -> None:
    tag = uuid.uuid4().hex[:8]
    s3, sns, sqs = aws.client("s3"), aws.client("sns"), aws.client("sqs")
    bucket = f"smclient-route-{tag}"
    s3.create_bucket(Bucket=bucket)
    s3.put_object(Bucket=bucket, Key="in/req.txt", Body=b"hello")
    topic = sns.create_topic(Name=f"route-{tag}")["TopicArn"]
    queue = sqs.create_queue(QueueName=f"route-{tag}")["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    sns.subscribe(TopicArn=topic, Protocol="sqs", Endpoint=arn)

    def predict(body: bytes, content_type: str | None, accept: str | None) -> bytes:
        return body.upper()

    settings = AsyncSettings(f"s3://{bucket}/out", success_topic=topic, error_topic=topic)
    with LocalEndpoint(predict, name="async-ep", async_config=settings, aws=aws) as local:
        client = boto3.session.Session().client(
            "sagemaker-runtime",
            region_name="us-east-1",
            endpoint_url=local.url,
            aws_access_key_id="x",
            aws_secret_access_key="x",
        )
        try:
            deadline = time.monotonic() + 10
            assert _receive(sqs, queue, deadline)["eventName"] == "TestNotification"
            answer = client.invoke_endpoint_async(
                EndpointName="async-ep",
                InputLocation=f"s3://{bucket}/in/req.txt",
                ContentType="text/plain",
                InferenceId="route-1",
            )
            assert answer["ResponseMetadata"]["HTTPStatusCode"] == 202
            assert answer["InferenceId"] == "route-1"
            assert answer["OutputLocation"].startswith(f"s3://{bucket}/out/")
            note = _receive(sqs, queue, deadline)
            assert note["invocationStatus"] == "Completed"
            assert note["responseParameters"]["outputLocation"] == answer["OutputLocation"]
            key = answer["OutputLocation"][len(f"s3://{bucket}/") :]
            with s3.get_object(Bucket=bucket, Key=key)["Body"] as body:
                assert body.read() == b"HELLO"
            with pytest.raises(client.exceptions.ValidationError):
                client.invoke_endpoint_async(
                    EndpointName="async-ep", InputLocation="ftp://nowhere/x"
                )
        finally:
            client.close()
