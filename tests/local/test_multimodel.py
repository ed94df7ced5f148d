"""Multi-model endpoints: load on first use, invocation window, LRU under a memory budget."""

from __future__ import annotations

import io
import tarfile
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError

from smclient.local import HandlerError, HandlerReply, LocalEndpoint, MultiModelSettings

WAIT = 5.0  # seconds: deadline of every wait in these tests (never reached when passing)


class Model:
    def __init__(self, name: str, memory_bytes: int = 100) -> None:
        self.name = name
        self.memory_bytes = memory_bytes
        self.closed = False
        self.oom_once = name.startswith("oom-invoke")

    def predict(self, body: bytes, content_type: str | None, accept: str | None) -> HandlerReply:
        if self.oom_once:
            self.oom_once = False
            raise HandlerError("CUDA out of memory", 507)
        return HandlerReply(f"{self.name}:{body.decode()}".encode(), "text/plain")

    def close(self) -> None:
        self.closed = True


class Loader:
    """Builds a Model per directory; loads of names in ``gates`` wait for their event."""

    def __init__(self) -> None:
        self.gates: dict[str, threading.Event] = {}
        self.started: dict[str, threading.Event] = {}
        self.loaded: list[Model] = []
        self.oom_loads = 0

    def gate(self, name: str) -> threading.Event:
        self.started[name] = threading.Event()
        self.gates[name] = threading.Event()
        return self.gates[name]

    def __call__(self, path: Path) -> Model:
        name = path.name
        if name in self.started:
            self.started[name].set()
        if name in self.gates:
            assert self.gates[name].wait(WAIT)
        if name == "oom-load" and self.oom_loads == 0:
            self.oom_loads += 1
            raise HandlerError("out of memory", 507)
        if name == "broken":
            raise HandlerError("weights corrupt", 500)
        size = int((path / "size").read_text()) if (path / "size").exists() else 100
        model = Model(name, size)
        self.loaded.append(model)
        return model


@pytest.fixture
def root(tmp_path: Path) -> Path:
    for name in ("a", "b", "c", "slow", "oom-load", "oom-invoke", "broken", "big"):
        (tmp_path / name).mkdir()
    (tmp_path / "big" / "size").write_text("1000")
    return tmp_path


def invoke(client: Any, target: str, body: bytes = b"x") -> bytes:
    response = client.invoke_endpoint(EndpointName="mme", TargetModel=target, Body=body)
    return response["Body"].read()  # type: ignore[no-any-return]


def start(root: Path, loader: Loader, **settings: Any) -> LocalEndpoint:
    return LocalEndpoint(
        name="mme", model_root=root, loader=loader, multi_model=MultiModelSettings(**settings)
    )


def test_loads_on_first_use_then_hits(root: Path, client_for: Any) -> None:
    loader = Loader()
    with start(root, loader) as local:
        client = client_for(local.url)
        assert invoke(client, "a") == b"a:x"
        assert invoke(client, "a", b"y") == b"a:y"
        stats = local.model_stats()["a"]
        assert (stats.loaded, stats.loads, stats.misses, stats.hits) == (True, 1, 1, 1)
        assert stats.invocations == 2
        assert stats.last_load_seconds is not None
        assert stats.size_bytes == 100


def test_slow_load_answers_not_ready_then_serves(root: Path, client_for: Any) -> None:
    loader = Loader()
    release = loader.gate("slow")
    with start(root, loader, invocation_window=0.05) as local:
        client = client_for(local.url)
        with pytest.raises(ClientError) as info:
            invoke(client, "slow")
        err = info.value.response
        assert err["Error"]["Code"] == "ModelNotReadyException"
        assert err["ResponseMetadata"]["HTTPStatusCode"] == 429
        assert loader.started["slow"].wait(WAIT)
        status = local.status()["endpoints"]["mme"]["instances"][0]["models"]["slow"]
        assert status["loading"] is True
        assert status["loaded"] is False
        release.set()
        # a call with a long window waits for the load in progress instead of failing
        assert local.wait_model_loaded("slow", timeout=WAIT)
        assert invoke(client, "slow") == b"slow:x"
        stats = local.model_stats()["slow"]
        assert stats.loads == 1
        assert stats.misses == 1


def test_call_within_window_waits_for_load(root: Path, client_for: Any) -> None:
    loader = Loader()
    release = loader.gate("slow")
    with start(root, loader, invocation_window=WAIT) as local:
        client = client_for(local.url)
        result: list[bytes] = []
        caller = threading.Thread(target=lambda: result.append(invoke(client, "slow")))
        caller.start()
        assert loader.started["slow"].wait(WAIT)
        release.set()
        caller.join(WAIT)
        assert result == [b"slow:x"]


def test_load_limit_abandons_a_stuck_load(root: Path, client_for: Any) -> None:
    loader = Loader()
    release = loader.gate("slow")
    with start(root, loader, invocation_window=0.05, load_limit=0.0) as local:
        client = client_for(local.url)
        with pytest.raises(ClientError) as info:
            invoke(client, "slow")
        assert info.value.response["Error"]["Code"] == "ModelError"
        assert info.value.response["OriginalStatusCode"] == 504
        release.set()
        assert local.model_stats()["slow"].load_failures == 1


def test_slow_load_that_fails_answers_model_error_once_then_reloads(
    root: Path, client_for: Any
) -> None:
    release = threading.Event()
    attempts: list[int] = []

    def load(path: Path) -> Model:
        attempts.append(1)
        assert release.wait(WAIT)
        raise HandlerError("weights corrupt", 500)

    settings = MultiModelSettings(invocation_window=0.05)
    with LocalEndpoint(name="mme", model_root=root, loader=load, multi_model=settings) as local:
        client = client_for(local.url)
        with pytest.raises(ClientError, match="ModelNotReady"):
            invoke(client, "a")
        release.set()
        deadline = time.monotonic() + WAIT
        while local.model_stats()["a"].load_failures < 1:
            assert time.monotonic() < deadline
            time.sleep(0.005)
        release.clear()  # a new load would now hang: a 429 would show it started one
        with pytest.raises(ClientError) as info:
            invoke(client, "a")
        err = info.value.response
        assert err["Error"]["Code"] == "ModelError"
        assert (err["OriginalStatusCode"], err["OriginalMessage"]) == (500, "weights corrupt")
        assert len(attempts) == 1
        # the error was delivered once: the next call loads again
        with pytest.raises(ClientError, match="ModelNotReady"):
            invoke(client, "a")
        while len(attempts) < 2:  # the new load's thread has started (or starts now)
            assert time.monotonic() < deadline + WAIT
            time.sleep(0.005)
        release.set()


def test_lru_unloaded_when_budget_is_full(root: Path, client_for: Any) -> None:
    loader = Loader()
    with start(root, loader, memory_bytes=250) as local:
        client = client_for(local.url)
        invoke(client, "a")
        invoke(client, "b")
        invoke(client, "a")  # b is now least recently used
        invoke(client, "c")
        stats = local.model_stats()
        assert stats["a"].loaded
        assert stats["c"].loaded
        assert not stats["b"].loaded
        assert stats["b"].unloads == 1
        assert next(m for m in loader.loaded if m.name == "b").closed
        assert local.hosted().model_caches()[0].memory_used() == 200


def test_model_bigger_than_budget_is_model_error_507(root: Path, client_for: Any) -> None:
    with start(root, Loader(), memory_bytes=500, model_sizes={"big": 1000}) as local:
        with pytest.raises(ClientError) as info:
            invoke(client_for(local.url), "big")
        assert info.value.response["Error"]["Code"] == "ModelError"
        assert info.value.response["OriginalStatusCode"] == 507


def test_model_bigger_than_budget_evicts_nothing(root: Path, client_for: Any) -> None:
    loader = Loader()
    with start(root, loader, memory_bytes=250, model_sizes={"big": 1000}) as local:
        client = client_for(local.url)
        invoke(client, "a")
        invoke(client, "b")
        with pytest.raises(ClientError) as info:
            invoke(client, "big")
        assert info.value.response["OriginalStatusCode"] == 507
        stats = local.model_stats()
        assert (stats["a"].loaded, stats["b"].loaded) == (True, True)
        assert (stats["a"].unloads, stats["b"].unloads) == (0, 0)
        assert local.hosted().model_caches()[0].memory_used() == 200
        assert not any(m.closed for m in loader.loaded)


def test_no_room_while_models_are_in_use_evicts_nothing(root: Path, client_for: Any) -> None:
    entered, leave = threading.Event(), threading.Event()

    class Held(Model):
        def predict(
            self, body: bytes, content_type: str | None, accept: str | None
        ) -> HandlerReply:
            entered.set()
            assert leave.wait(WAIT)
            return HandlerReply(b"held", "text/plain")

    loaded: list[Model] = []

    def load(path: Path) -> Model:
        loaded.append(Held(path.name) if path.name == "slow" else Model(path.name))
        return loaded[-1]

    sizes = {"slow": 100, "a": 100, "c": 250}
    settings = MultiModelSettings(memory_bytes=300, model_sizes=sizes)
    with LocalEndpoint(name="mme", model_root=root, loader=load, multi_model=settings) as local:
        client = client_for(local.url)
        invoke(client, "a")
        holder = threading.Thread(target=invoke, args=(client_for(local.url), "slow"))
        holder.start()
        try:
            assert entered.wait(WAIT)  # "slow" is in use: only "a" could be evicted
            with pytest.raises(ClientError) as info:
                invoke(client, "c")
            assert info.value.response["OriginalStatusCode"] == 507
            stats = local.model_stats()
            assert stats["a"].loaded
            assert stats["a"].unloads == 0
        finally:
            leave.set()
            holder.join(WAIT)
        assert not loaded[0].closed


def test_every_evicted_model_is_unloaded_and_counted(root: Path, client_for: Any) -> None:
    loader = Loader()
    with start(root, loader, memory_bytes=300, model_sizes={"c": 300}) as local:
        client = client_for(local.url)
        invoke(client, "a")
        invoke(client, "b")
        assert invoke(client, "c") == b"c:x"
        stats = local.model_stats()
        assert (stats["a"].unloads, stats["b"].unloads) == (1, 1)
        assert [m.closed for m in loader.loaded if m.name in "ab"] == [True, True]


def test_load_reporting_507_unloads_lru_and_retries(root: Path, client_for: Any) -> None:
    loader = Loader()
    with start(root, loader) as local:
        client = client_for(local.url)
        invoke(client, "a")
        invoke(client, "b")
        assert invoke(client, "oom-load") == b"oom-load:x"
        stats = local.model_stats()
        assert not stats["a"].loaded
        assert stats["b"].loaded
        assert stats["a"].unloads == 1


def test_invoke_reporting_507_unloads_lru_and_retries(root: Path, client_for: Any) -> None:
    with start(root, Loader()) as local:
        client = client_for(local.url)
        invoke(client, "a")
        assert invoke(client, "oom-invoke") == b"oom-invoke:x"
        assert not local.model_stats()["a"].loaded


def test_invoke_507_with_nothing_to_unload_is_model_error(root: Path, client_for: Any) -> None:
    with start(root, Loader()) as local:
        with pytest.raises(ClientError) as info:
            invoke(client_for(local.url), "oom-invoke")
        assert info.value.response["OriginalStatusCode"] == 507


def test_failed_load_is_model_error_and_is_retried(root: Path, client_for: Any) -> None:
    with start(root, Loader()) as local:
        client = client_for(local.url)
        for _ in range(2):
            with pytest.raises(ClientError) as info:
                invoke(client, "broken")
            assert info.value.response["OriginalMessage"] == "weights corrupt"
        assert local.model_stats()["broken"].load_failures == 2


@pytest.mark.parametrize("target", ["missing", "../escape", "/etc"])
def test_unknown_or_escaping_target_is_validation_error(
    root: Path, client_for: Any, target: str
) -> None:
    with start(root, Loader()) as local:
        with pytest.raises(ClientError) as info:
            invoke(client_for(local.url), target)
        assert info.value.response["Error"]["Code"] == "ValidationError"
        assert local.model_stats() == {}  # no counters for models that do not exist


def write_archive(path: Path, files: dict[str, bytes]) -> None:
    with tarfile.open(path, "w:gz") as tar:
        for name, data in files.items():
            member = tarfile.TarInfo(name)
            member.size = len(data)
            tar.addfile(member, io.BytesIO(data))


HANDLER_PY = b"""
def predict(body, content_type, accept):
    return b"archive:" + body
"""


def test_tar_gz_model_is_unpacked_and_removed_on_close(tmp_path: Path, client_for: Any) -> None:
    write_archive(tmp_path / "m.tar.gz", {"handler.py": HANDLER_PY})
    with LocalEndpoint(name="mme", model_root=tmp_path) as local:
        workdir = local.workdir
        response = client_for(local.url).invoke_endpoint(
            EndpointName="mme", TargetModel="m.tar.gz", Body=b"1"
        )
        assert response["Body"].read() == b"archive:1"
        assert any(workdir.rglob("handler.py"))
    assert not workdir.exists()


def test_archive_escaping_its_dir_is_refused(tmp_path: Path, client_for: Any) -> None:
    write_archive(tmp_path / "evil.tar.gz", {"../../evil.py": b"x = 1"})
    with LocalEndpoint(name="mme", model_root=tmp_path) as local:
        with pytest.raises(ClientError) as info:
            client_for(local.url).invoke_endpoint(
                EndpointName="mme", TargetModel="evil.tar.gz", Body=b"1"
            )
        assert info.value.response["Error"]["Code"] == "ModelError"
        assert info.value.response["OriginalStatusCode"] == 400
    assert not (tmp_path.parent / "evil.py").exists()


def test_unload_model_and_instances_load_separately(root: Path, client_for: Any) -> None:
    loader = Loader()
    with LocalEndpoint(name="mme", model_root=root, loader=loader, instance_count=2) as local:
        client = client_for(local.url)
        invoke(client, "a")
        invoke(client, "a")  # routed to the instance that has it
        assert local.model_stats(instance=0)["a"].hits == 1
        assert local.unload_model("a") == 1
        assert not local.model_stats(instance=0)["a"].loaded
        invoke(client, "a")  # round robin: the next instance loads its own copy
        assert local.model_stats(instance=1)["a"].loads == 1
        assert local.model_stats(instance=0)["a"].loads == 1


def test_concurrent_first_calls_share_one_load(root: Path, client_for: Any) -> None:
    loader = Loader()
    release = loader.gate("slow")
    with start(root, loader, invocation_window=WAIT) as local:
        client = client_for(local.url, max_pool_connections=16)
        results: list[bytes] = []
        lock = threading.Lock()

        def call() -> None:
            body = invoke(client, "slow")
            with lock:
                results.append(body)

        callers = [threading.Thread(target=call) for _ in range(16)]
        for caller in callers:
            caller.start()
        assert loader.started["slow"].wait(WAIT)
        release.set()
        for caller in callers:
            caller.join(WAIT)
        assert results == [b"slow:x"] * 16
        stats = local.model_stats()["slow"]
        assert stats.loads == 1
        assert len([m for m in loader.loaded if m.name == "slow"]) == 1
