"""A local endpoint hosting the fake container, driven by plain boto3: the container
contract as SageMaker uses it (load on first use, 404 reload, 507 make room, errors)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import botocore.exceptions
import pytest

from smclient.local import LocalEndpoint, MultiModelSettings
from smclient.local.containers._client import ContainerClient

from .fake_container import FakeContainer

pytestmark = pytest.mark.usefixtures("no_thread_leak")

SETTINGS = MultiModelSettings(invocation_window=5.0)


@pytest.fixture
def fake() -> Iterator[FakeContainer]:
    with FakeContainer(memory_budget=1) as container:
        yield container


def _invoke(client: Any, name: str, target: str, body: bytes = b"hi", **kwargs: Any) -> Any:
    return client.invoke_endpoint(EndpointName=name, Body=body, TargetModel=target, **kwargs)


def _paths(fake: FakeContainer) -> list[str]:
    return [f"{r.method} {r.path}" for r in fake.requests if r.path != "/ping"]


def test_the_first_call_loads_the_model_and_forwards_the_headers(
    fake: FakeContainer, client_for: Callable[..., Any]
) -> None:
    with LocalEndpoint(
        container_url=fake.url, container_multi_model=True, multi_model=SETTINGS
    ) as ep:
        answer = _invoke(
            client_for(ep.url),
            ep.name,
            "a.tar.gz",
            b"1,2",
            ContentType="text/csv",
            Accept="text/csv",
            CustomAttributes="trace=1",
        )
        assert answer["Body"].read() == b"1,2"
        assert answer["ContentType"] == "text/csv"
        assert answer["CustomAttributes"] == "trace=1"
    load, invoke = [r for r in fake.requests if r.path != "/ping"][:2]
    assert load.headers["content-type"] == "application/json"
    assert invoke.headers["x-amzn-sagemaker-target-model"] == "a.tar.gz"
    assert invoke.headers["accept"] == "text/csv"
    # The container sees an opaque model name, never the TargetModel string.
    assert "a.tar.gz" not in invoke.path


def test_a_507_at_load_unloads_another_model_and_retries(
    fake: FakeContainer, client_for: Callable[..., Any]
) -> None:
    with LocalEndpoint(
        container_url=fake.url, container_multi_model=True, multi_model=SETTINGS
    ) as ep:
        client = client_for(ep.url)
        _invoke(client, ep.name, "a")
        (a_name,) = fake.models
        assert _invoke(client, ep.name, "b")["Body"].read() == b"hi"
        (b_name,) = fake.models  # a made room for b
        stats = ep.model_stats()
        paths = _paths(fake)
    assert (stats["a"].loaded, stats["b"].loaded, stats["a"].unloads) == (False, True, 1)
    after_a = paths[2:]
    assert after_a.count("POST /models") == 2  # 507, then the retry
    assert after_a.index(f"DELETE /models/{a_name}") < len(after_a) - 2
    assert after_a[-2:] == ["POST /models", f"POST /models/{b_name}/invoke"]


def test_a_model_the_container_dropped_is_reloaded(
    fake: FakeContainer, client_for: Callable[..., Any]
) -> None:
    with LocalEndpoint(
        container_url=fake.url, container_multi_model=True, multi_model=SETTINGS
    ) as ep:
        client = client_for(ep.url)
        _invoke(client, ep.name, "a")
        (name,) = fake.models
        with ContainerClient(fake.url) as direct:
            direct.unload(name)
        assert _invoke(client, ep.name, "a")["Body"].read() == b"hi"
        assert fake.models == {name: f"/opt/ml/models/{name}/model"}
    # invoke 404 -> DELETE (already gone) -> load -> invoke, as SageMaker reloads.
    assert _paths(fake)[3:7] == [
        f"POST /models/{name}/invoke",
        f"DELETE /models/{name}",
        "POST /models",
        f"POST /models/{name}/invoke",
    ]


def test_the_reference_507_quirk_does_not_stick(client_for: Callable[..., Any]) -> None:
    with (
        FakeContainer(memory_budget=1, stuck_on_507=True) as fake,
        LocalEndpoint(
            container_url=fake.url, container_multi_model=True, multi_model=SETTINGS
        ) as ep,
    ):
        # A 507 at load leaves b registered with no worker (load 409, invoke 503): the
        # host must clear it with DELETE before it retries.
        client = client_for(ep.url)
        _invoke(client, ep.name, "a")
        assert _invoke(client, ep.name, "b")["Body"].read() == b"hi"
        assert _invoke(client, ep.name, "b")["Body"].read() == b"hi"
        assert len(fake.models) == 1


def test_a_container_error_reaches_the_caller_as_model_error(
    client_for: Callable[..., Any],
) -> None:
    with (
        FakeContainer(statuses={"invoke": 500}) as fake,
        LocalEndpoint(
            container_url=fake.url, container_multi_model=True, multi_model=SETTINGS
        ) as ep,
        pytest.raises(botocore.exceptions.ClientError) as info,
    ):
        _invoke(client_for(ep.url), ep.name, "a")
    assert info.value.response["Error"]["Code"] == "ModelError"
    assert info.value.response["OriginalStatusCode"] == 500  # type: ignore[typeddict-item]


def test_a_single_model_container_serves_invocations(client_for: Callable[..., Any]) -> None:
    with FakeContainer(single_model=True) as fake, LocalEndpoint(container_url=fake.url) as ep:
        client = client_for(ep.url)
        answer = client.invoke_endpoint(EndpointName=ep.name, Body=b"x", ContentType="text/csv")
        assert answer["Body"].read() == b"x"
        with pytest.raises(botocore.exceptions.ClientError) as info:
            _invoke(client, ep.name, "a")
    assert info.value.response["Error"]["Code"] == "ValidationError"
    assert [r.path for r in fake.requests] == ["/ping", "/invocations"]


def test_a_stalled_container_is_cut_at_the_container_timeout(
    client_for: Callable[..., Any],
) -> None:
    with (
        FakeContainer(single_model=True, stall={"invocations"}) as fake,
        LocalEndpoint(container_url=fake.url, container_timeout=0.2) as ep,
        pytest.raises(botocore.exceptions.ClientError) as info,
    ):
        client_for(ep.url).invoke_endpoint(EndpointName=ep.name, Body=b"x")
    assert info.value.response["Error"]["Code"] == "ModelError"
