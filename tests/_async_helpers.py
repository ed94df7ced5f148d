"""Helpers of the async-inference tests: moto in-process, request counting, scripted errors."""

from __future__ import annotations

import types
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import pytest

from smclient import Endpoint
from smclient._asyncinference import AsyncInvocation


@pytest.fixture(autouse=True)
def fresh_registry() -> Iterator[None]:
    """Each test starts with nothing known about async results in the process (the tests
    reuse output locations; the registry is process-wide)."""
    from smclient._asyncinference._registry import REGISTRY

    REGISTRY.clear()
    yield
    REGISTRY.clear()


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
    while listed:
        s3.delete_objects(
            Bucket=bucket, Delete={"Objects": [{"Key": item["Key"]} for item in listed]}
        )
        listed = s3.list_objects_v2(Bucket=bucket).get("Contents", [])


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


class FakeS3:
    """An in-memory S3 listing (``list_objects_v2`` pages of ``page_size``, ``head_object``),
    counting calls: for paging and scale tests where moto would be slow to fill."""

    def __init__(self, keys: Iterable[str], page_size: int = 1000) -> None:
        self.keys = sorted(keys)
        self.page_size = page_size
        self.calls: Counter[str] = Counter()

    def list_objects_v2(
        self, *, Bucket: str, Prefix: str = "", ContinuationToken: str | None = None
    ) -> dict[str, Any]:
        self.calls["ListObjectsV2"] += 1
        start = int(ContinuationToken or 0)
        matching = [k for k in self.keys if k.startswith(Prefix)]
        page = matching[start : start + self.page_size]
        more = start + self.page_size < len(matching)
        answer: dict[str, Any] = {
            "Contents": [{"Key": k, "Size": 1} for k in page],
            "IsTruncated": more,
        }
        if more:
            answer["NextContinuationToken"] = str(start + self.page_size)
        return answer

    def head_object(self, *, Bucket: str, Key: str) -> dict[str, Any]:
        self.calls["HeadObject"] += 1
        if Key not in self.keys:
            import botocore.exceptions

            error = {"Error": {"Code": "404", "Message": "Not Found"},
                     "ResponseMetadata": {"HTTPStatusCode": 404}}  # fmt: skip
            raise botocore.exceptions.ClientError(error, "HeadObject")  # type: ignore[arg-type]
        return {"ContentLength": 1}


class FakeEndpoint:
    """Hands out a fake S3 client (the Poller's ``endpoint`` seam)."""

    def __init__(self, s3: FakeS3) -> None:
        self.s3 = s3
        self.name = "async-ep"

    def client(self, service: str) -> Any:
        assert service == "s3"
        return self.s3
