"""Hosting a bring-your-own container: single-model and multi-model contracts, over the wire."""

from __future__ import annotations

from typing import Any

import pytest
from botocore.exceptions import ClientError

from smclient.local import LocalEndpoint
from smclient.local.containers._client import ContainerClient
from smclient.local.containers._sources import container_model_name

from .fake_container import FakeContainer


def invoke(client: Any, target: str, body: bytes = b"x", **kw: Any) -> dict[str, Any]:
    response = client.invoke_endpoint(EndpointName="byoc", TargetModel=target, Body=body, **kw)
    response["Body"] = response["Body"].read()
    return response  # type: ignore[no-any-return]


def mme(fake: FakeContainer) -> LocalEndpoint:
    return LocalEndpoint(name="byoc", container_url=fake.url, container_multi_model=True)


def test_single_model_container(client_for: Any) -> None:
    with (
        FakeContainer(single_model=True) as fake,
        LocalEndpoint(name="byoc", container_url=fake.url) as local,
    ):
        response = client_for(local.url).invoke_endpoint(
            EndpointName="byoc", Body=b"echo", ContentType="text/csv", CustomAttributes="k=v"
        )
        assert response["Body"].read() == b"echo"
        assert response["ContentType"] == "text/csv"
        assert response["CustomAttributes"] == "k=v"


def test_single_model_container_error_is_model_error(client_for: Any) -> None:
    with (
        FakeContainer(single_model=True, statuses={"invocations": 500}) as fake,
        LocalEndpoint(name="byoc", container_url=fake.url) as local,
    ):
        with pytest.raises(ClientError) as info:
            client_for(local.url).invoke_endpoint(EndpointName="byoc", Body=b"echo")
        assert info.value.response["Error"]["Code"] == "ModelError"
        assert info.value.response["OriginalStatusCode"] == 500


def test_loads_on_first_use_and_forwards_headers(client_for: Any) -> None:
    with FakeContainer() as fake, mme(fake) as local:
        client = client_for(local.url)
        response = invoke(client, "a.tar.gz", b"hi", ContentType="text/plain")
        assert response["Body"] == b"hi"
        assert response["ContentType"] == "text/plain"
        invoke(client, "a.tar.gz")
        name = container_model_name("a.tar.gz")
        assert fake.models == {name: f"/opt/ml/models/{name}/model"}
        invokes = [r for r in fake.requests if r.path.endswith("/invoke")]
        assert invokes[0].headers["x-amzn-sagemaker-target-model"] == "a.tar.gz"
        stats = local.model_stats()["a.tar.gz"]
        assert (stats.loads, stats.hits) == (1, 1)


@pytest.mark.parametrize("stuck_on_507", [False, True])
def test_507_on_load_unloads_lru_via_delete_and_retries(
    client_for: Any, stuck_on_507: bool
) -> None:
    with FakeContainer(memory_budget=2, stuck_on_507=stuck_on_507) as fake, mme(fake) as local:
        client = client_for(local.url)
        invoke(client, "a")
        invoke(client, "b")
        invoke(client, "a")  # b is least recently used
        assert invoke(client, "c")["Body"] == b"x"
        assert set(fake.models) == {container_model_name("a"), container_model_name("c")}
        deletes = [r.path for r in fake.requests if r.method == "DELETE"]
        # the failed registration of c is cleared first (it may be stuck without worker)
        assert deletes == [f"/models/{container_model_name(n)}" for n in ("c", "b")]
        assert local.model_stats()["b"].unloads == 1


def test_507_with_nothing_to_unload_is_model_error(client_for: Any) -> None:
    with FakeContainer(memory_budget=0) as fake, mme(fake) as local:
        with pytest.raises(ClientError) as info:
            invoke(client_for(local.url), "a")
        assert info.value.response["Error"]["Code"] == "ModelError"
        assert info.value.response["OriginalStatusCode"] == 507


def test_404_on_invoke_reloads_the_model(client_for: Any) -> None:
    with FakeContainer() as fake, mme(fake) as local:
        client = client_for(local.url)
        invoke(client, "a")
        with ContainerClient(fake.url, timeout=5) as direct:
            direct.unload(container_model_name("a"))  # the container lost it
        assert invoke(client, "a", b"again")["Body"] == b"again"
        stats = local.model_stats()["a"]
        assert stats.loads == 2
        assert stats.loaded


def test_409_on_load_counts_as_loaded(client_for: Any) -> None:
    with FakeContainer() as fake, mme(fake) as local:
        fake.add_model(container_model_name("a"))
        assert invoke(client_for(local.url), "a")["Body"] == b"x"
        assert local.model_stats()["a"].loads == 1


def test_container_that_fails_ping_refuses_to_start() -> None:
    with FakeContainer(statuses={"ping": 503}) as fake:
        local = mme(fake)
        with pytest.raises(RuntimeError, match="failed /ping"):
            local.start()


def test_models_are_unloaded_on_shutdown(client_for: Any) -> None:
    with FakeContainer() as fake:
        with mme(fake) as local:
            invoke(client_for(local.url), "a")
        assert fake.models == {}


def test_container_gone_is_service_unavailable(client_for: Any) -> None:
    with FakeContainer(single_model=True) as fake:
        local = LocalEndpoint(name="byoc", container_url=fake.url).start()
    try:  # the container stopped after the endpoint started
        with pytest.raises(ClientError) as info:
            client_for(local.url).invoke_endpoint(EndpointName="byoc", Body=b"x")
        assert info.value.response["Error"]["Code"] == "ServiceUnavailable"
        assert info.value.response["ResponseMetadata"]["HTTPStatusCode"] == 503
    finally:
        local.close()


def test_container_too_slow_is_model_error(client_for: Any) -> None:
    with (
        FakeContainer(stall={"invoke"}) as fake,
        LocalEndpoint(
            name="byoc", container_url=fake.url, container_multi_model=True, container_timeout=0.2
        ) as local,
    ):
        with pytest.raises(ClientError) as info:
            invoke(client_for(local.url), "a")
        assert info.value.response["Error"]["Code"] == "ModelError"
        assert info.value.response["OriginalStatusCode"] == 504
