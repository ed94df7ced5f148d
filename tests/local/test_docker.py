"""Containers the runtime starts itself with ``docker run``. There is no Docker daemon on the
machines these tests run on: a recording fake of the ``docker`` command
(tests/local/fake_docker.py) is put first on PATH. It records every call and, for ``run``,
starts the in-repo fake container (tests/local/fake_container.py) as a separate process on
the published port, reading models through the mounted folder. What is proved: the command
lines SageMaker's contract asks for, the health wait, models reaching the container at
/opt/ml/models/<key>/model inside the mount, sessions, and the stop on close."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError

from smclient.local import ContainerClient, EndpointSpec, LocalEndpoint, LocalRuntime
from smclient.local.containers._sources import container_model_name

from . import fake_docker
from .test_byoc_models import invoke, make_root


@pytest.fixture
def docker(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """The fake docker first on PATH; yields its folder (calls are read from there)."""
    folder = tmp_path / "docker-bin"
    folder.mkdir()
    fake_docker.install(folder)
    monkeypatch.setenv("PATH", f"{folder}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("FAKE_DOCKER_STATE", str(folder))
    yield folder
    # Whatever a failing test left running is stopped.
    for pid_file in folder.glob("*.pid"):
        fake_docker._signal(pid_file.stem, folder, 9)


def test_a_multi_model_image_runs_as_sagemaker_runs_it(
    docker: Path, tmp_path: Path, client_for: Any
) -> None:
    root = make_root(tmp_path)
    with LocalEndpoint(
        name="byoc",
        container_image="my-mme:latest",
        container_multi_model=True,
        model_root=root,
        container_env={"SAGEMAKER_MODEL_SERVER_WORKERS": "1"},
        container_startup_timeout=60,
    ) as local:
        client = client_for(local.url)
        assert invoke(client, "plain", b"a")["Body"] == b"plain:a"
        assert invoke(client, "packed.tar.gz", b"b")["Body"] == b"packed:b"
        store = local.workdir / "byoc" / "models"
        (run,) = [c for c in fake_docker.calls(docker) if c[0] == "run"]
        name = run[run.index("--name") + 1]
        publish = run[run.index("--publish") + 1]
        assert publish.startswith("127.0.0.1:")
        assert publish.endswith(":8080")
        assert run[-2:] == ["my-mme:latest", "serve"]
        assert "--rm" in run
        envs = [run[i + 1] for i, a in enumerate(run) if a == "--env"]
        assert "SAGEMAKER_MULTI_MODEL=true" in envs
        assert "SAGEMAKER_BIND_TO_PORT=8080" in envs
        assert "SAGEMAKER_MODEL_SERVER_WORKERS=1" in envs
        assert run[run.index("--volume") + 1] == f"{store.resolve()}:/opt/ml/models:ro"
        log = (docker / f"{name}.log").read_text()
        assert "serving" in log
    calls = fake_docker.calls(docker)
    assert calls[-1] == ["stop", "--time", "30", name]
    assert not (docker / f"{name}.pid").exists()
    assert "stopped on SIGTERM" in (docker / f"{name}.log").read_text()


def test_models_are_told_their_path_inside_the_container(
    docker: Path, tmp_path: Path, client_for: Any
) -> None:
    root = make_root(tmp_path)
    spec = EndpointSpec("byoc", container_image="img", container_multi_model=True, model_root=root)
    with LocalRuntime([spec]) as runtime:
        client = client_for(runtime.url)
        invoke(client, "packed.tar.gz")
        key = container_model_name("packed.tar.gz")
        (run,) = [c for c in fake_docker.calls(docker) if c[0] == "run"]
        container = ContainerClient("http://" + run[run.index("--publish") + 1].rsplit(":", 1)[0])
        assert container.describe(key).url == f"/opt/ml/models/{key}/model"
        assert (runtime.workdir / "byoc" / "models" / key / "model" / "answer.txt").exists()
        with pytest.raises(ClientError) as info:
            invoke(client, "huge")  # the fake container says 507 (out of memory)
        assert info.value.response["OriginalStatusCode"] == 507
        # As SageMaker: the 507 unloaded the other (idle) model before the model failed.
        assert runtime.model_stats()["packed.tar.gz"].unloads == 1
        assert container.list_models() == []


def test_a_single_model_image_gets_its_model_at_opt_ml_model(
    docker: Path, tmp_path: Path, client_for: Any
) -> None:
    model = tmp_path / "model"
    model.mkdir()
    with LocalEndpoint(name="byoc", container_image="single", model_dir=model) as local:
        response = client_for(local.url).invoke_endpoint(EndpointName="byoc", Body=b"one")
        assert response["Body"].read() == b"one"
    (run,) = [c for c in fake_docker.calls(docker) if c[0] == "run"]
    envs = [run[i + 1] for i, a in enumerate(run) if a == "--env"]
    assert "SAGEMAKER_MULTI_MODEL=true" not in envs
    assert run[run.index("--volume") + 1] == f"{model.resolve()}:/opt/ml/model:ro"


def test_a_failing_docker_run_is_a_clear_start_error(docker: Path, tmp_path: Path) -> None:
    endpoint = LocalEndpoint(
        name="byoc", container_image="broken", container_multi_model=True, model_root=tmp_path
    )
    with pytest.raises(RuntimeError, match="docker run broken failed: Unable to find image"):
        endpoint.start()


def test_a_container_that_never_answers_ping_is_stopped(docker: Path, tmp_path: Path) -> None:
    # The one bounded real wait here: the runtime's health wait (0.3 s) for a container
    # that never listens.
    endpoint = LocalEndpoint(
        name="byoc",
        container_image="silent",
        container_multi_model=True,
        model_root=tmp_path,
        container_startup_timeout=0.3,
    )
    with pytest.raises(RuntimeError, match=r"did not become healthy within 0\.3 s"):
        endpoint.start()
    commands = [c[0] for c in fake_docker.calls(docker)]
    assert commands == ["run", "logs", "stop"]


def test_without_docker_on_path_the_error_says_what_to_do(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    endpoint = LocalEndpoint(
        name="byoc", container_image="img", container_multi_model=True, model_root=tmp_path
    )
    with pytest.raises(RuntimeError, match="'docker' command is not on PATH"):
        endpoint.start()


def test_serve_starts_an_image_from_the_command_line(
    docker: Path, tmp_path: Path, client_for: Any
) -> None:
    from .test_cli import Served

    root = make_root(tmp_path)
    with Served(["serve", "--mme-image", "byoc=my-mme", "--model-root", f"byoc={root}"]) as served:
        client = client_for(served.out.url)
        assert invoke(client, "plain", b"cli")["Body"] == b"plain:cli"
    assert served.rc == [0]
    commands = [c[0] for c in fake_docker.calls(docker)]
    assert commands == ["run", "stop"]


def test_remove_running_force_removes_what_was_not_stopped(docker: Path, tmp_path: Path) -> None:
    # What a forced exit (a second Ctrl-C) and interpreter exit call: no container outlives
    # the process that started it.
    from smclient.local.containers import _docker

    with LocalEndpoint(
        name="byoc", container_image="img", container_multi_model=True, model_root=tmp_path
    ):
        (run,) = [c for c in fake_docker.calls(docker) if c[0] == "run"]
        name = run[run.index("--name") + 1]
        assert _docker.remove_running(10) == [name]
        assert not (docker / f"{name}.pid").exists()  # the fake's process was killed
    # Closing afterwards does not stop it a second time.
    assert [c[0] for c in fake_docker.calls(docker)] == ["run", "rm"]


def test_a_runtime_never_closed_removes_its_container_at_exit(docker: Path, tmp_path: Path) -> None:
    script = (
        "from smclient.local import LocalEndpoint\n"
        f"LocalEndpoint(name='byoc', container_image='img', container_multi_model=True,"
        f" model_root={str(tmp_path)!r}).start()\n"
        "print('started', flush=True)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120, check=False
    )
    assert "started" in done.stdout, done.stderr
    assert [c[0] for c in fake_docker.calls(docker)] == ["run", "rm"]
    assert not list(docker.glob("*.pid"))
