"""Nothing the local endpoint starts keeps the process alive: its threads are daemons,
closed endpoints join them up to a deadline, and ``serve`` exits after that deadline."""

from __future__ import annotations

import http.client
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError

from smclient.local import EndpointSpec, LocalRuntime, MultiModelSettings
from smclient.local._cli import _Interrupts

from .test_cli import Served

WAIT = 10.0
STUCK = threading.Event()  # released by the test that holds handlers on it
STUCK_ENTERED = threading.Event()  # set once a handler waits on STUCK


def stuck(body: bytes, content_type: str | None, accept: str | None) -> bytes:
    STUCK_ENTERED.set()
    assert STUCK.wait(WAIT)
    return b"late"


def wait_gone(prefix: str) -> None:
    deadline = time.monotonic() + WAIT
    while any(t.name.startswith(prefix) for t in threading.enumerate()):
        assert time.monotonic() < deadline, "threads did not end"
        time.sleep(0.005)


def test_every_thread_of_a_running_endpoint_is_a_daemon(tmp_path: Path, client_for: Any) -> None:
    gate = threading.Event()
    (tmp_path / "m").mkdir()

    def load(path: Path) -> Any:
        assert gate.wait(WAIT)
        return lambda b, c, a: b

    specs = [
        EndpointSpec(
            "held", handler=lambda b, c, a: gate.wait(WAIT) and b, invocation_timeout=0.05
        ),
        EndpointSpec(
            "mme",
            model_root=tmp_path,
            loader=load,
            multi_model=MultiModelSettings(invocation_window=0.05),
        ),
    ]
    before = set(threading.enumerate())
    try:
        with LocalRuntime(specs) as rt:
            client = client_for(rt.url)
            with pytest.raises(ClientError, match="timed out"):
                client.invoke_endpoint(EndpointName="held", Body=b"x")
            with pytest.raises(ClientError, match="ModelNotReady"):
                client.invoke_endpoint(EndpointName="mme", TargetModel="m", Body=b"x")
            ours = [t for t in set(threading.enumerate()) - before if t.name.startswith("smclient")]
            kinds = {t.name.split("-")[2] for t in ours}
            assert {"server", "conn", "invoke", "load"} <= kinds
            assert [t.name for t in ours if not t.daemon] == []
            gate.set()
    finally:
        gate.set()


def test_an_endpoint_never_closed_lets_the_process_exit(tmp_path: Path) -> None:
    script = (
        "import threading, urllib.request, urllib.error\n"
        "from smclient.local import LocalEndpoint\n"
        "never = threading.Event()\n"
        "ep = LocalEndpoint(lambda b, c, a: never.wait(), invocation_timeout=0.05).start()\n"
        "request = urllib.request.Request(ep.url + '/endpoints/local-endpoint/invocations',"
        " data=b'x', method='POST')\n"
        "try:\n"
        "    urllib.request.urlopen(request, timeout=5)\n"
        "except urllib.error.HTTPError as exc:\n"
        "    print(exc.code)\n"
    )
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=WAIT, env=env
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "424"


def test_serve_exits_after_the_shutdown_deadline_with_a_stuck_handler() -> None:
    STUCK.clear()
    STUCK_ENTERED.clear()
    argv = ["serve", "--handler", f"stuck={__name__}:stuck", "--shutdown-timeout", "0.05"]
    served = Served(argv)
    caller: threading.Thread | None = None
    conn: http.client.HTTPConnection | None = None
    try:
        with served:
            host, port = served.out.url.removeprefix("http://").split(":")
            conn = http.client.HTTPConnection(host, int(port), timeout=WAIT)
            caller = threading.Thread(
                target=conn.request, args=("POST", "/endpoints/stuck/invocations", b"x")
            )
            caller.start()
            caller.join(WAIT)
            # the request reached the handler: shutdown cannot just cut it
            assert STUCK_ENTERED.wait(WAIT)
        assert served.rc == [0]
        text = served.out.getvalue()
        assert "exiting anyway" in text
        assert "smclient-local-conn" in text
    finally:
        STUCK.set()
        if caller is not None:
            caller.join(WAIT)
        if conn is not None:
            conn.close()
        wait_gone("smclient-local-conn")


def test_a_second_signal_forces_the_exit() -> None:
    stop = threading.Event()
    interrupts = _Interrupts(stop)
    interrupts(signal.SIGTERM, None)
    assert stop.is_set()
    with pytest.raises(KeyboardInterrupt):
        interrupts(signal.SIGINT, None)


def test_negative_shutdown_timeout_is_a_usage_error(capsys: Any) -> None:
    from smclient.local import run_cli as main

    assert main(["serve", "--handler", "x=json:dumps", "--shutdown-timeout", "-1"]) == 2
    assert "shutdown-timeout" in capsys.readouterr().err


def read_until(stream: Any, text: str) -> None:
    while True:
        line = stream.readline()
        assert line, f"the process ended before printing {text!r}"
        if text in line:
            return


def stuck_announced(body: bytes, content_type: str | None, accept: str | None) -> bytes:
    print("handler entered", flush=True)
    return stuck(body, content_type, accept)


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")
def test_a_second_sigterm_ends_a_shutdown_stuck_on_a_handler() -> None:
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    proc = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys; from smclient.local import run_cli; sys.exit(run_cli(sys.argv[1:]))",
            "serve",
            "--handler",
            f"stuck={__name__}:stuck_announced",
            "--shutdown-timeout",
            "30",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        assert proc.stdout is not None
        first = proc.stdout.readline()
        url = first.rsplit(" ", 1)[-1].strip()
        host, port = url.removeprefix("http://").split(":")
        conn = http.client.HTTPConnection(host, int(port), timeout=WAIT)
        conn.request("POST", "/endpoints/stuck/invocations", b"x")
        read_until(proc.stdout, "handler entered")  # past the endpoint lines
        proc.send_signal(signal.SIGTERM)
        read_until(proc.stdout, "shutting down")
        start = time.monotonic()
        proc.send_signal(signal.SIGTERM)  # shutdown now waits up to 30 s: force it
        # The point: the process ends promptly instead of waiting 30 s for the handler,
        # with the documented status. (It used to return 130 from main() and then, under
        # load, hang in the interpreter's finalization with the stuck handler's thread:
        # the forced exit is now os._exit(130).)
        code = proc.wait(WAIT)
        assert code == 130
        assert time.monotonic() - start < WAIT
        conn.close()
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.communicate(timeout=WAIT)
