"""LocalEndpoint / LocalRuntime lifecycle: startup, clean shutdown, smclient end to end, load."""

from __future__ import annotations

import http.client
import socket
import threading
from pathlib import Path
from typing import Any

import pytest

import smclient
from smclient.local import (
    EndpointSpec,
    HandlerError,
    LocalEndpoint,
    LocalRuntime,
    MultiModelSettings,
)
from smclient.testing import no_retry_waits

WAIT = 5.0


def upper(body: bytes, content_type: str | None, accept: str | None) -> bytes:
    return body.upper()


def port_of(url: str) -> int:
    return int(url.rsplit(":", 1)[1])


@pytest.mark.usefixtures("no_thread_leak")
def test_shutdown_leaves_no_thread_port_or_tempdir(client_for: Any) -> None:
    with LocalEndpoint(upper) as local:
        url, workdir = local.url, local.workdir
        assert url.startswith("http://127.0.0.1:")
        client = client_for(url)
        # an idle keep-alive connection stays open in the client's pool
        assert client.invoke_endpoint(EndpointName=local.name, Body=b"a")["Body"].read() == b"A"
    client.close()
    assert not workdir.exists()
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", port_of(url)), timeout=1).close()


@pytest.mark.usefixtures("no_thread_leak")
def test_close_returns_no_leftovers_and_is_idempotent() -> None:
    local = LocalEndpoint(upper).start()
    conn = http.client.HTTPConnection("127.0.0.1", port_of(local.url), timeout=WAIT)
    conn.request("POST", f"/endpoints/{local.name}/invocations", body=b"x")
    assert conn.getresponse().read() == b"X"
    assert local.close() == []  # the idle connection was closed, its thread joined
    assert local.close() == []
    conn.close()
    with pytest.raises(RuntimeError):
        local.start()


@pytest.mark.usefixtures("no_thread_leak")
def test_failed_start_cleans_up(tmp_path: Path) -> None:
    runtime = LocalRuntime(
        [EndpointSpec("ok", handler=upper), EndpointSpec("bad", model_dir=tmp_path)]
    )
    with pytest.raises(HandlerError):
        runtime.start()
    with pytest.raises(RuntimeError):
        _ = runtime.url


def test_smclient_endpoint_end_to_end() -> None:
    with LocalEndpoint(upper, name="demo") as local:
        endpoint = local.endpoint()
        assert isinstance(endpoint, smclient.Endpoint)
        result = endpoint.invoke(b"hello")
        assert result.body == b"HELLO"
        assert result.invoked_production_variant == "AllTraffic"
        assert result.attempts == 1
        endpoint.close()


def test_smclient_rides_out_a_cold_start(tmp_path: Path) -> None:
    (tmp_path / "m").mkdir()
    gate = threading.Event()
    events: list[Any] = []

    def load(path: Path) -> Any:
        assert gate.wait(WAIT)
        return upper

    def on_retry(event: Any) -> None:
        events.append(event)
        gate.set()  # the model finishes loading after the first ModelNotReady

    settings = MultiModelSettings(invocation_window=0.05)
    with LocalEndpoint(name="mme", model_root=tmp_path, loader=load, multi_model=settings) as local:
        endpoint = local.endpoint(retry=smclient.RetryPolicy(on_retry=on_retry))
        with no_retry_waits():
            result = endpoint.model("m").invoke(b"x")
        assert result.body == b"X"
        assert result.attempts >= 2
        assert len(events) == result.attempts - 1
        endpoint.close()


def test_several_endpoints_on_one_server(client_for: Any) -> None:
    specs = [EndpointSpec("a", handler=upper), EndpointSpec("b", handler=lambda b, c, a: b[::-1])]
    with LocalRuntime(specs) as runtime:
        client = client_for(runtime.url)
        assert client.invoke_endpoint(EndpointName="a", Body=b"ab")["Body"].read() == b"AB"
        assert client.invoke_endpoint(EndpointName="b", Body=b"ab")["Body"].read() == b"ba"
        assert runtime.endpoint("b").name == "b"
        with pytest.raises(ValueError, match="name one"):
            runtime.endpoint()
    with pytest.raises(ValueError, match="unique"):
        LocalRuntime(specs + specs)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"name": "bad name"},
        {"name": "ok"},  # no source
        {"name": "ok", "handler": upper, "model_root": "."},
        {"name": "ok", "handler": upper, "instance_count": 0},
        {"name": "ok", "container_url": "http://127.0.0.1:1", "instance_count": 2},
        {"name": "ok", "model_root": ".", "async_config": object()},
        {"name": "ok", "handler": upper, "session_ttl": 0},
    ],
)
def test_spec_validation(kwargs: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match=r"name|exactly one|instance|asynchronous|session_ttl"):
        EndpointSpec(**kwargs)


def test_64_concurrent_connections() -> None:
    barrier = threading.Barrier(64, timeout=WAIT)

    def handler(body: bytes, content_type: str | None, accept: str | None) -> bytes:
        barrier.wait()  # proves 64 requests are in flight at once
        return body

    with LocalEndpoint(handler) as local:
        results: list[bytes] = []
        lock = threading.Lock()

        def call(i: int) -> None:
            conn = http.client.HTTPConnection("127.0.0.1", port_of(local.url), timeout=WAIT)
            try:
                conn.request("POST", f"/endpoints/{local.name}/invocations", body=b"%d" % i)
                response = conn.getresponse()
                with lock:
                    results.append(response.read() if response.status == 200 else b"error")
            finally:
                conn.close()

        threads = [threading.Thread(target=call, args=(i,)) for i in range(64)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(WAIT)
        assert sorted(results) == sorted(b"%d" % i for i in range(64))


def test_close_wakes_calls_waiting_for_a_model_load(tmp_path: Path, client_for: Any) -> None:
    (tmp_path / "m").mkdir()
    gate, started = threading.Event(), threading.Event()

    def load(path: Path) -> Any:
        started.set()
        gate.wait(WAIT)  # a load the test never lets finish before shutdown
        return upper

    local = LocalEndpoint(
        name="mme",
        model_root=tmp_path,
        loader=load,
        multi_model=MultiModelSettings(invocation_window=30.0),
        shutdown_timeout=0.5,
    ).start()
    client = client_for(local.url, read_timeout=WAIT)
    outcome: list[str] = []

    def call() -> None:
        try:
            client.invoke_endpoint(EndpointName="mme", TargetModel="m", Body=b"x")
            outcome.append("answered")
        except Exception as exc:
            outcome.append(type(exc).__name__)

    caller = threading.Thread(target=call)
    caller.start()
    assert started.wait(WAIT)
    try:
        leftovers = local.close()
    finally:
        gate.set()
        caller.join(WAIT)
    # The waiting request was woken (not left in its 30 s window); only the stuck load,
    # which the endpoint cannot interrupt, was still running at the deadline.
    assert leftovers == ["smclient-local-load-m"]
    assert outcome
    assert outcome != ["answered"]
    for thread in threading.enumerate():
        if thread.name == "smclient-local-load-m":
            thread.join(WAIT)


def test_repr_shows_url_endpoints_and_state() -> None:
    local = LocalEndpoint(upper, name="shown")
    assert repr(local) == "<LocalEndpoint endpoints=['shown'] new>"
    with local:
        assert repr(local) == f"<LocalEndpoint {local.url} endpoints=['shown'] running>"
    assert repr(local).endswith("closed>")
