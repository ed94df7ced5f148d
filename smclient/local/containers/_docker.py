"""``DockerContainer``: a model image started with ``docker run`` the way SageMaker starts it.

SageMaker runs ``<image> serve`` with the container's port 8080 published, sets
``SAGEMAKER_MULTI_MODEL=true`` for a multi-model container and makes the models available
under ``/opt/ml/models`` (multi-model) or the one model under ``/opt/ml/model``
(single-model); it waits for ``GET /ping`` to answer 200 and stops the container with
SIGTERM, then SIGKILL 30 s later (protocol.md §3). This module does the same with the
``docker`` command on ``PATH``: the published port is a free port on 127.0.0.1, the model
folder is mounted read-only, and the container is removed when it stops (``--rm``).
"""

from __future__ import annotations

import atexit
import contextlib
import shutil
import socket
import subprocess
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from pathlib import Path

__all__ = ["DockerContainer", "DockerError", "remove_running"]

CONTAINER_PORT = 8080
MULTI_MODEL_DIR = "/opt/ml/models"
SINGLE_MODEL_DIR = "/opt/ml/model"


class DockerError(RuntimeError):
    """``docker`` is missing, failed, or the container did not become healthy."""


# Containers started and not yet stopped, so that none outlives the process: removed at
# interpreter exit if a runtime was never closed, and by a forced exit (a second Ctrl-C).
_running: dict[str, DockerContainer] = {}
_running_lock = threading.Lock()
_at_exit: list[bool] = []  # whether remove_running is registered with atexit


def remove_running(timeout: float = 10.0) -> list[str]:
    """``docker rm --force`` every container this process started and did not stop (no
    grace period: for exits that cannot wait); returns their names."""
    with _running_lock:
        containers = list(_running.values())
        _running.clear()
    for container in containers:
        container._id = None
        with contextlib.suppress(Exception):
            container._run([container._docker, "rm", "--force", container._name], timeout)
    return [c._name for c in containers]


def _free_port(host: str) -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


class DockerContainer:
    """One model container started from ``image``.

    ``model_dir``: the host folder mounted at ``/opt/ml/models`` (``multi_model``) or at
    ``/opt/ml/model``. ``env``: more environment variables. ``startup_timeout``: seconds to
    wait for ``/ping`` (default 120). ``stop_timeout``: seconds between SIGTERM and SIGKILL
    on stop (default 30, as SageMaker). ``docker``: the command (default ``docker`` on
    ``PATH``). ``ping``: how health is asked (``url -> bool``; raises on no answer).
    """

    def __init__(
        self,
        image: str,
        *,
        ping: Callable[[str], bool],
        model_dir: Path | None = None,
        multi_model: bool = False,
        env: Mapping[str, str] | None = None,
        startup_timeout: float = 120.0,
        stop_timeout: float = 30.0,
        docker: str = "docker",
        host: str = "127.0.0.1",
    ) -> None:
        self._image = image
        self._ping = ping
        self._model_dir = model_dir
        self._multi_model = multi_model
        self._env = dict(env or {})
        self._startup_timeout = startup_timeout
        self._stop_timeout = stop_timeout
        self._docker = docker
        self._host = host
        self._name = f"smclient-local-{uuid.uuid4().hex[:12]}"
        self._id: str | None = None
        self._port: int | None = None

    @property
    def url(self) -> str:
        """``http://127.0.0.1:<published port>``."""
        if self._port is None:
            raise RuntimeError("the container is not started")
        return f"http://{self._host}:{self._port}"

    def run_command(self, port: int) -> list[str]:
        """The ``docker run`` command line for the published ``port``."""
        env = dict(self._env)
        env.setdefault("SAGEMAKER_BIND_TO_PORT", str(CONTAINER_PORT))
        if self._multi_model:
            env["SAGEMAKER_MULTI_MODEL"] = "true"
        command = [self._docker, "run", "--rm", "--detach", "--name", self._name]
        command += ["--publish", f"{self._host}:{port}:{CONTAINER_PORT}"]
        for key, value in sorted(env.items()):
            command += ["--env", f"{key}={value}"]
        if self._model_dir is not None:
            inside = MULTI_MODEL_DIR if self._multi_model else SINGLE_MODEL_DIR
            command += ["--volume", f"{self._model_dir.resolve()}:{inside}:ro"]
        return [*command, self._image, "serve"]

    def start(self) -> str:
        """Runs the container and waits until ``/ping`` answers 200; returns its URL.
        :class:`DockerError` (after stopping it) when it does not."""
        if shutil.which(self._docker) is None:
            raise DockerError(
                f"cannot start {self._image}: the {self._docker!r} command is not on PATH "
                "(install Docker, or start the container yourself and give container_url)"
            )
        self._port = _free_port(self._host)
        done = self._run(self.run_command(self._port), 120.0)
        if done.returncode != 0:
            raise DockerError(f"docker run {self._image} failed: {_tail(done.stderr)}")
        self._id = done.stdout.strip().splitlines()[-1] if done.stdout.strip() else self._name
        with _running_lock:
            if not _at_exit:
                atexit.register(remove_running)
                _at_exit.append(True)
            _running[self._name] = self
        try:
            self._wait_healthy()
        except BaseException:
            self.stop()
            raise
        return self.url

    def _wait_healthy(self) -> None:
        deadline = time.monotonic() + self._startup_timeout
        delay = 0.05
        last = "no answer"
        while True:
            try:
                if self._ping(self.url):
                    return
                last = "/ping did not answer 200"
            except Exception as exc:  # not listening yet
                last = f"{type(exc).__name__}"
            if time.monotonic() + delay > deadline:
                logs = self._run([self._docker, "logs", "--tail", "20", self._name], 10.0)
                raise DockerError(
                    f"{self._image} did not become healthy within {self._startup_timeout:g} s "
                    f"({last}); its last log lines: {_tail(logs.stdout + logs.stderr)}"
                )
            time.sleep(delay)  # a real container coming up: bounded by startup_timeout
            delay = min(delay * 2, 1.0)

    def stop(self) -> None:
        """``docker stop`` (SIGTERM, SIGKILL after ``stop_timeout``); idempotent."""
        if self._id is None:
            return
        self._id = None
        with _running_lock:
            _running.pop(self._name, None)
        stop = [self._docker, "stop", "--time", f"{self._stop_timeout:g}", self._name]
        done = self._run(stop, self._stop_timeout + 30.0)
        if done.returncode != 0:
            with contextlib.suppress(Exception):
                self._run([self._docker, "rm", "--force", self._name], 30.0)

    def _run(self, command: list[str], timeout: float) -> subprocess.CompletedProcess[str]:
        try:
            return subprocess.run(
                command, capture_output=True, text=True, timeout=timeout, check=False
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise DockerError(f"{' '.join(command[:2])} failed: {exc}") from None


def _tail(text: str) -> str:
    lines = [line for line in text.strip().splitlines() if line.strip()]
    return " | ".join(lines[-5:]) or "(no output)"
