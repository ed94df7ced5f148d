"""The pytest fixtures smclient registers as a plugin (entry point ``pytest11``)."""

from __future__ import annotations

import threading
from typing import Any

from smclient.local import EndpointSpec


def echo(body: bytes, content_type: str | None, accept: str | None) -> bytes:
    return body


def test_local_endpoint_fixture(smclient_local_endpoint: Any, client_for: Any) -> None:
    local = smclient_local_endpoint(echo, name="fixture-endpoint")
    response = client_for(local.url).invoke_endpoint(EndpointName="fixture-endpoint", Body=b"x")
    assert response["Body"].read() == b"x"
    assert local.endpoint().invoke(b"y").body == b"y"


def test_local_runtime_fixture(smclient_local_runtime: Any) -> None:
    runtime = smclient_local_runtime(
        EndpointSpec("a", handler=echo), EndpointSpec("b", handler=echo)
    )
    assert runtime.endpoint_names == ["a", "b"]
    assert runtime.endpoint("b").invoke(b"z").body == b"z"


def test_fixture_threads_are_gone_in_the_next_test() -> None:
    # Runs after the fixtures above tore down (in file order) or alone: either way no
    # local endpoint thread may be alive.
    assert not [t for t in threading.enumerate() if t.name.startswith("smclient-local")]


def test_moto_server_fixture(smclient_moto_server: Any) -> None:
    s3 = smclient_moto_server.client("s3")
    s3.create_bucket(Bucket="fixture-bucket")
    assert [b["Name"] for b in s3.list_buckets()["Buckets"]] == ["fixture-bucket"]
    assert smclient_moto_server.endpoint_url.startswith("http://127.0.0.1:")


def test_no_retry_waits_fixture(smclient_no_retry_waits: None) -> None:
    from smclient import _retry

    assert _retry._no_waits is True
