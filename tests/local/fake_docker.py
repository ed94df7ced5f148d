"""A recording fake of the ``docker`` command, for tests on machines without a Docker daemon.

``install(folder)`` writes an executable ``docker`` into ``folder`` (put it first on
``PATH``). Every call appends its arguments as one JSON line to ``<folder>/calls.jsonl``.

- ``docker run --rm --detach --name N --publish 127.0.0.1:P:8080 [--env K=V]...
  [--volume HOST:/opt/ml/models:ro] IMAGE serve`` starts, as a detached process, a
  :class:`~tests.local.fake_container.FakeContainer` on port P that reads models through
  the mount (multi-model when ``SAGEMAKER_MULTI_MODEL=true``, with stateful sessions) and
  prints the container id. Image ``broken`` fails like a missing image (status 125); image
  ``silent`` starts nothing, so ``/ping`` never answers.
- ``docker stop --time T N`` sends SIGTERM and waits for the process; ``docker rm
  --force N`` kills it; ``docker logs ... N`` prints its output.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def install(folder: Path) -> Path:
    """Writes the fake ``docker`` into ``folder``; returns the call log's path."""
    script = folder / "docker"
    script.write_text(f'#!/bin/sh\nexec "{sys.executable}" "{Path(__file__).resolve()}" "$@"\n')
    script.chmod(0o755)
    return folder / "calls.jsonl"


def calls(folder: Path) -> list[list[str]]:
    """The recorded calls, oldest first."""
    log = folder / "calls.jsonl"
    if not log.exists():
        return []
    return [json.loads(line) for line in log.read_text().splitlines() if line]


def _option(args: list[str], name: str) -> list[str]:
    return [args[i + 1] for i, a in enumerate(args[:-1]) if a == name]


def _run(args: list[str], state: Path) -> int:
    name = _option(args, "--name")[0]
    image = args[-2]
    if image == "broken":
        print("Unable to find image 'broken:latest' locally", file=sys.stderr)
        return 125
    env = dict(item.split("=", 1) for item in _option(args, "--env"))
    port = int(_option(args, "--publish")[0].split(":")[1])
    mounts = {}
    for volume in _option(args, "--volume"):
        host, inside, *_ = volume.split(":")
        mounts[inside] = host
    if image != "silent":
        log = (state / f"{name}.log").open("w")
        process = subprocess.Popen(
            [
                sys.executable,
                __file__,
                "_serve",
                json.dumps({"port": port, "env": env, "mounts": mounts}),
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            env={**os.environ, "PYTHONPATH": str(ROOT)},
        )
        (state / f"{name}.pid").write_text(str(process.pid))
    print(f"{name}-id")
    return 0


def _signal(name: str, state: Path, signum: int) -> None:
    pid_file = state / f"{name}.pid"
    if not pid_file.exists():
        return
    pid = int(pid_file.read_text())
    pid_file.unlink()
    try:
        os.kill(pid, signum)
        os.waitpid(pid, 0)
    except (ProcessLookupError, ChildProcessError):
        # Not our child (the run call's process ended): wait until it is gone.
        for _ in range(200):
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                return
            threading.Event().wait(0.05)


def _serve(config: dict[str, object]) -> None:
    from tests.local.fake_container import FakeContainer

    env = dict(config["env"])  # type: ignore[call-overload]
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    with FakeContainer(
        port=int(config["port"]),  # type: ignore[call-overload]
        single_model=env.get("SAGEMAKER_MULTI_MODEL") != "true",
        check_model_dirs=True,
        mounts=dict(config["mounts"]),  # type: ignore[call-overload]
        sessions=True,
    ):
        print("serving", flush=True)
        stop.wait()
    print("stopped on SIGTERM", flush=True)


def main(args: list[str]) -> int:
    if args[:1] == ["_serve"]:
        _serve(json.loads(args[1]))
        return 0
    state = Path(__file__).resolve().parent if False else Path(os.environ["FAKE_DOCKER_STATE"])
    with (state / "calls.jsonl").open("a") as log:
        log.write(json.dumps(args) + "\n")
    command = args[0] if args else ""
    if command == "run":
        return _run(args, state)
    if command == "stop":
        _signal(args[-1], state, signal.SIGTERM)
        return 0
    if command == "rm":
        _signal(args[-1], state, signal.SIGKILL)
        return 0
    if command == "logs":
        log_file = state / f"{args[-1]}.log"
        print(log_file.read_text() if log_file.exists() else "")
        return 0
    print(f"fake docker: unsupported command {command!r}", file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
