"""Helpers of the async-inference tests: moto in-process, request counting, scripted errors."""

from __future__ import annotations

import types
from collections import Counter
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from smclient import Endpoint
from smclient._asyncinference import AsyncInvocation


@pytest.fixture(scope="module")
def moto() -> Iterator[None]:
    """moto in-process for a whole module (clients are slow to build: share them)."""
    from moto import mock_aws

    with pytest.MonkeyPatch.context() as patch:
        for name, value in {
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_SESSION_TOKEN": "testing",
            "AWS_DEFAULT_REGION": "us-east-1",
        }.items():
            patch.setenv(name, value)
        patch.delenv("AWS_PROFILE", raising=False)
        with mock_aws():
            yield


@pytest.fixture(scope="module")
def shared_endpoint(moto: None) -> Iterator[Endpoint]:
    with Endpoint("async-ep", region="us-east-1") as endpoint:
        yield endpoint


def empty_bucket(endpoint: Endpoint, bucket: str) -> None:
    s3 = endpoint.client("s3")
    try:
        listed = s3.list_objects_v2(Bucket=bucket).get("Contents", [])
    except s3.exceptions.NoSuchBucket:
        s3.create_bucket(Bucket=bucket)
        return
    for item in listed:
        s3.delete_object(Bucket=bucket, Key=item["Key"])


class Requests:
    """Counts API calls per operation with a botocore event hook (removed by ``close``)."""

    def __init__(self) -> None:
        self.counts: Counter[str] = Counter()
        self.params: list[tuple[str, dict[str, Any]]] = []
        self._clients: list[Any] = []

    def watch(self, client: Any) -> Any:
        client.meta.events.register("before-parameter-build", self._seen)
        self._clients.append(client)
        return client

    def close(self) -> None:
        for client in self._clients:
            client.meta.events.unregister("before-parameter-build", self._seen)

    def _seen(self, params: dict[str, Any], model: Any, **_: Any) -> None:
        self.counts[model.name] += 1
        self.params.append((model.name, dict(params)))


def fail_with(
    client: Any,
    operation: str,
    status: int,
    code: str,
    when: Callable[[dict[str, Any]], bool] = lambda p: True,
) -> Callable[[], None]:
    """Make ``operation`` on ``client`` answer ``status``/``code`` (before moto sees it).
    Returns the function that removes the hook."""
    service = client.meta.service_model.service_id.hyphenize()

    def answer(params: dict[str, Any], **_: Any) -> Any:
        if not when(params):
            return None
        http = types.SimpleNamespace(status_code=status, headers={}, raw=None, content=b"")
        body = {
            "Error": {"Code": code, "Message": "scripted"},
            "ResponseMetadata": {"HTTPStatusCode": status},
        }
        return http, body

    event = f"before-call.{service}.{operation}"
    client.meta.events.register(event, answer)
    return lambda: client.meta.events.unregister(event, answer)


@pytest.fixture
def requests() -> Iterator[Requests]:
    seen = Requests()
    yield seen
    seen.close()


@pytest.fixture
def failures() -> Iterator[Callable[..., None]]:
    """``failures(client, operation, status, code, when=...)``; hooks removed after the test."""
    undo: list[Callable[[], None]] = []
    yield lambda *args, **kwargs: undo.append(fail_with(*args, **kwargs))
    for fn in undo:
        fn()


def handle(
    endpoint: Endpoint,
    n: int,
    *,
    bucket: str = "out-bucket",
    deadline: float = 1e12,
    failure_folder: str = "failures",
) -> AsyncInvocation:
    return AsyncInvocation(
        endpoint_name=endpoint.name,
        inference_id=f"inf-{n}",
        output_location=f"s3://{bucket}/results/{n:05d}.out",
        failure_location=f"s3://{bucket}/{failure_folder}/{n:05d}-error.out",
        input_location=f"s3://in-bucket/in/{n}",
        submitted_at=0.0,
        deadline=deadline,
        region="us-east-1",
        endpoint=endpoint,
    )
