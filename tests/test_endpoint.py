"""Endpoint.invoke: the success path on moto (in-process mock_aws, its documented result
queue), client settings, pickling, and validation before anything is sent."""

from __future__ import annotations

import io
import multiprocessing
import os
import pickle
import threading

import pytest
from moto import mock_aws

from smclient import (
    CSV,
    ClientConfig,
    ConfigurationError,
    Endpoint,
    InvalidInputError,
    InvocationResult,
    SMClientError,
)
from smclient.testing import MotoResult, Reply, ScriptedRuntime, queue_moto_results

pytestmark = pytest.mark.usefixtures("aws_env", "each_transport")


def test_invoke_on_moto_returns_a_typed_result() -> None:
    ep = Endpoint("my-endpoint", region="us-east-1")  # made before the mock starts
    with mock_aws():
        queue_moto_results(
            [
                MotoResult(
                    '{"label": "cat"}',
                    content_type="application/json",
                    invoked_production_variant="blue",
                    custom_attributes="trace=1",
                )
            ]
        )
        result = ep.invoke({"image": [1, 2]})
    assert isinstance(result, InvocationResult)
    assert result.json() == {"label": "cat"}
    assert (result.content_type, result.invoked_production_variant, result.custom_attributes) == (
        "application/json",
        "blue",
        "trace=1",
    )
    assert result.attempts == 1
    assert result.elapsed >= 0
    assert result.request_id


def test_model_handle_on_moto_sends_target_model() -> None:
    ep = Endpoint("mme", region="us-east-1")
    with mock_aws():
        queue_moto_results([MotoResult("a"), MotoResult("b")])
        first = ep.model("model-a.tar.gz").invoke(b"same")
        second = ep.invoke(b"same", target_model="model-b.tar.gz")
    # moto memoises on the x-amzn-sagemaker-* headers: different TargetModels, different results
    assert (first.text(), second.text()) == ("a", "b")


def test_headers_reach_the_wire(runtime: ScriptedRuntime) -> None:
    runtime.queue(
        Reply.ok(
            b"1,2\n", content_type="text/csv", headers={"X-Amzn-SageMaker-Custom-Attributes": "c=2"}
        )
    )
    result = runtime.endpoint("wire").invoke(
        [[1, 2], [3, 4]],
        codec=CSV,
        accept="text/csv",
        target_variant="v1",
        target_container_hostname="c1",
        inference_id="id-1",
        custom_attributes="a=1",
        enable_explanations="`true`",
        inference_component="ic",
    )
    req = runtime.requests[0]
    assert req.path == "/endpoints/wire/invocations"
    assert req.body == b"1,2\n3,4\n"
    h = req.headers
    assert h["content-type"] == "text/csv"
    assert h["accept"] == "text/csv"
    assert h["x-amzn-sagemaker-target-variant"] == "v1"
    assert h["x-amzn-sagemaker-target-container-hostname"] == "c1"
    assert h["x-amzn-sagemaker-inference-id"] == "id-1"
    assert h["x-amzn-sagemaker-custom-attributes"] == "a=1"
    assert h["x-amzn-sagemaker-enable-explanations"] == "`true`"
    assert h["x-amzn-sagemaker-inference-component"] == "ic"
    assert "authorization" not in h  # unsigned: no credentials on the wire
    assert result.decode(CSV) == [["1", "2"]]
    assert result.custom_attributes == "c=2"


def test_client_settings_are_those_of_the_client_actually_used(runtime: ScriptedRuntime) -> None:
    ep = runtime.endpoint()
    ep.invoke(b"x")
    config = ep.client().meta.config
    assert config.read_timeout == 70
    assert config.connect_timeout == 10
    assert config.max_pool_connections == 50
    assert config.retries["total_max_attempts"] == 1
    assert ep.client() is ep.client()  # built once, cached


def test_bodies_of_every_kind(runtime: ScriptedRuntime) -> None:
    ep = runtime.endpoint()
    assert ep.invoke(b"raw").body == b"raw"
    assert ep.invoke("héllo").body == "héllo".encode()
    assert ep.invoke(io.BytesIO(b"from a file")).body == b"from a file"
    ep.invoke({"a": [1, 2]})
    assert runtime.requests[-1].body == b'{"a":[1,2]}'
    assert runtime.requests[-1].headers["content-type"] == "application/json"


def test_pickled_endpoint_works_in_a_worker_process(runtime: ScriptedRuntime) -> None:
    ep = runtime.endpoint("pickled")
    ep.invoke(b"warm")  # a client exists in this process; it must not travel
    clone = pickle.loads(pickle.dumps(ep))
    assert clone.name == "pickled"
    assert repr(clone) == repr(ep)
    ctx = multiprocessing.get_context("spawn")
    with ctx.Pool(1) as pool:
        body = pool.apply(_invoke_in_worker, (ep,))
    assert body == b"from worker"
    assert runtime.requests[-1].body == b"from worker"


def _invoke_in_worker(ep: Endpoint) -> bytes:
    return ep.invoke(b"from worker").body


def test_no_region_is_a_configuration_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AWS_DEFAULT_REGION")
    monkeypatch.setenv("AWS_CONFIG_FILE", "/nonexistent")
    with pytest.raises(ConfigurationError, match="region"):
        Endpoint("e").invoke(b"x")


def test_repr_never_shows_the_body() -> None:
    result = InvocationResult(b"secret" * 100, "text/plain", "v", None, "rid", 1, 0.1)
    assert "secret" not in repr(result)
    assert "600 bytes" in repr(result)


@pytest.mark.parametrize(
    ("call", "field"),
    [
        (lambda ep: ep.invoke(b"x" * 6_291_457), "body"),
        (lambda ep: ep.invoke(b"x", target_model=" leading-space"), "target_model"),
        (lambda ep: ep.invoke(b"x", target_model="m" * 1025), "target_model"),
        (lambda ep: ep.invoke(b"x", target_model=""), "target_model"),
        (lambda ep: ep.invoke(b"x", inference_id="i" * 65), "inference_id"),
        (lambda ep: ep.invoke(b"x", inference_id=" leading-space"), "inference_id"),
        (lambda ep: ep.invoke(b"x", target_variant="v" * 64), "target_variant"),
        (lambda ep: ep.invoke(b"x", target_variant="under_score"), "target_variant"),
        (lambda ep: ep.invoke(b"x", target_container_hostname="a b"), "target_container_hostname"),
        (lambda ep: ep.invoke(b"x", inference_component="-lead"), "inference_component"),
        (lambda ep: ep.invoke(b"x", enable_explanations="e" * 65), "enable_explanations"),
        (lambda ep: ep.stream(b"x", session_id=123), "session_id"),
        (lambda ep: ep.invoke(b"x", custom_attributes="c" * 1025), "custom_attributes"),
        (lambda ep: ep.invoke(b"x", custom_attributes="ünïcode"), "custom_attributes"),
        (lambda ep: ep.invoke(b"x", content_type="bad\nheader"), "content_type"),
        (lambda ep: ep.invoke(object()), "body"),
        (lambda ep: ep.invoke(io.StringIO("text mode")), "body"),
        (lambda ep: ep.model("\tmodel"), "target_model"),
    ],
)
def test_bad_input_is_rejected_before_sending(
    runtime: ScriptedRuntime, call: object, field: str
) -> None:
    ep = runtime.endpoint()
    with pytest.raises(InvalidInputError) as info:
        call(ep)  # type: ignore[operator]
    assert info.value.field == field
    assert isinstance(info.value, ValueError)
    assert isinstance(info.value, SMClientError)
    assert runtime.requests == []


@pytest.mark.parametrize("name", ["", "-lead", "trail-", "under_score", "x" * 64, "dots.no"])
def test_bad_endpoint_names(name: str) -> None:
    with pytest.raises(InvalidInputError, match="endpoint_name"):
        Endpoint(name)


def test_valid_endpoint_names() -> None:
    for name in ("a", "my--endpoint-1", "x" * 63):
        assert Endpoint(name).name == name


def test_oversized_file_is_rejected_and_not_consumed(runtime: ScriptedRuntime) -> None:
    f = io.BytesIO(b"head" + b"x" * 6_291_457)
    f.seek(4)
    with pytest.raises(InvalidInputError, match="6,291,456"):
        runtime.endpoint().invoke(f)
    assert f.tell() == 4  # the caller can still send it another way
    assert runtime.requests == []


def test_model_handle_refuses_a_second_target_model(runtime: ScriptedRuntime) -> None:
    handle = runtime.endpoint().model("a")
    with pytest.raises(TypeError):
        handle.invoke(b"x", target_model="b")  # type: ignore[call-arg]


def test_client_config_rejects_nonsense() -> None:
    with pytest.raises(InvalidInputError, match="read_timeout"):
        ClientConfig(read_timeout=0)
    with pytest.raises(InvalidInputError, match="max_pool_connections"):
        ClientConfig(max_pool_connections=0)


def test_close_and_reuse(runtime: ScriptedRuntime) -> None:
    with runtime.endpoint() as ep:
        first = ep.client()
        ep.invoke(b"x")
    assert ep.client() is not first  # a closed endpoint rebuilds its client on demand
    assert ep.invoke(b"y").body == b"y"


def test_a_forked_process_builds_its_own_client(
    runtime: ScriptedRuntime, monkeypatch: pytest.MonkeyPatch
) -> None:
    import os

    ep = runtime.endpoint()
    parent_client = ep.client()
    real_pid = os.getpid()
    monkeypatch.setattr(os, "getpid", lambda: real_pid + 1)  # what a fork looks like to us
    assert ep.client() is not parent_client  # the parent's connection pool is never shared
    assert ep.invoke(b"child").body == b"child"


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork (POSIX only)")
def test_a_fork_while_another_thread_holds_the_client_lock_does_not_deadlock_the_child(
    runtime: ScriptedRuntime,
) -> None:
    import signal

    ep = runtime.endpoint()
    lock = ep._factory._lock
    held, release = threading.Event(), threading.Event()

    def hold() -> None:
        with lock:  # as a thread building or closing clients would
            held.set()
            release.wait(10)

    thread = threading.Thread(target=hold)
    thread.start()
    assert held.wait(10)
    pid = os.fork()
    if pid == 0:  # the child: never return into pytest
        code = 2
        try:
            # A deadlocked child exits with 3 instead of hanging the test run.
            signal.signal(signal.SIGALRM, lambda *_: os._exit(3))
            signal.alarm(10)
            code = 0 if ep.invoke(b"child").body == b"child" else 1
        finally:
            os._exit(code)
    release.set()
    thread.join(10)
    _pid, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0  # 3: deadlocked on the parent's lock
    assert ep.invoke(b"parent").body == b"parent"  # the parent's lock still works


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_a_fork_while_another_thread_holds_a_fast_pool_lock_does_not_deadlock_the_child(
    runtime: ScriptedRuntime,
) -> None:
    import signal

    from smclient._request import build_invoke

    ep = runtime.endpoint(config=ClientConfig(transport="fast", sign_requests=False))
    transport = ep._factory.transport()  # code that holds a transport across the fork
    request = build_invoke(ep.name, b"child")
    lock = transport._pool._lock  # type: ignore[attr-defined]
    held, release = threading.Event(), threading.Event()

    def hold() -> None:
        with lock:  # as a thread taking or returning a connection would
            held.set()
            release.wait(10)

    thread = threading.Thread(target=hold)
    thread.start()
    assert held.wait(10)
    pid = os.fork()
    if pid == 0:  # the child: never return into pytest
        code = 2
        try:
            # A deadlocked child exits with 3 instead of hanging the test run.
            signal.signal(signal.SIGALRM, lambda *_: os._exit(3))
            signal.alarm(10)
            code = 0 if transport.send(request).body == b"child" else 1  # type: ignore[union-attr]
        finally:
            os._exit(code)
    release.set()
    thread.join(10)
    _pid, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0  # 3: deadlocked on the parent's lock
    assert ep.invoke(b"parent").body == b"parent"


def test_one_endpoint_shared_by_threads(runtime: ScriptedRuntime) -> None:
    from concurrent.futures import ThreadPoolExecutor

    ep = runtime.endpoint("shared")
    with ThreadPoolExecutor(8) as pool:
        bodies = list(pool.map(lambda i: ep.invoke(f"call {i}").text(), range(64)))
    assert bodies == [f"call {i}" for i in range(64)]
    assert len(runtime.requests) == 64
