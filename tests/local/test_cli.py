"""``smclient local serve`` / ``check-container`` through ``_cli.main``."""

from __future__ import annotations

import io
import json
import os
import re
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from smclient.local import run_cli as main

from .fake_container import FakeContainer

WAIT = 10.0


def shout(body: bytes, content_type: str | None, accept: str | None) -> bytes:
    return body.upper() + b"!"


class Output(io.StringIO):
    """Captures output; ``ready`` is set once the URL was printed."""

    def __init__(self) -> None:
        super().__init__()
        self.ready = threading.Event()

    def write(self, text: str) -> int:
        written = super().write(text)
        if "Press Ctrl-C" in self.getvalue():
            self.ready.set()
        return written

    @property
    def url(self) -> str:
        match = re.search(r"http://127\.0\.0\.1:\d+", self.getvalue())
        assert match is not None
        return match.group(0)


class Served:
    def __init__(self, argv: list[str]) -> None:
        self.out = Output()
        self.stop = threading.Event()
        self.rc: list[int] = []
        self.thread = threading.Thread(
            target=lambda: self.rc.append(main(argv, out=self.out, stop=self.stop))
        )

    def __enter__(self) -> Served:
        self.thread.start()
        if not self.out.ready.wait(WAIT):
            self.stop.set()
            self.thread.join(WAIT)
            pytest.fail(f"serve did not start: {self.out.getvalue()}")
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.thread.join(WAIT)
        assert not self.thread.is_alive()


@pytest.mark.usefixtures("no_thread_leak")
def test_serve_handler_from_command_line(client_for: Any) -> None:
    with Served(["serve", "--handler", f"demo={__name__}:shout", "--instances", "2"]) as served:
        client = client_for(served.out.url)
        response = client.invoke_endpoint(EndpointName="demo", Body=b"hi")
        assert response["Body"].read() == b"HI!"
        client.close()
    assert served.rc == [0]
    assert "endpoint demo (single-model, 2 instance(s))" in served.out.getvalue()
    assert "shutting down" in served.out.getvalue()


def test_serve_from_config_file(tmp_path: Path, client_for: Any) -> None:
    models = tmp_path / "models"
    (models / "m1").mkdir(parents=True)
    (models / "m1" / "handler.py").write_text("def predict(b, c, a):\n    return b'm1'\n")
    config = {
        "endpoints": [
            {
                "name": "mme",
                "model_root": str(models),
                "instance_count": 2,
                "multi_model": {"invocation_window": 5, "memory_bytes": 10_000},
                "session_ttl": 60,
            },
            {"name": "echo", "handler": f"{__name__}:shout"},
        ]
    }
    path = tmp_path / "local.json"
    path.write_text(json.dumps(config))
    with Served(["serve", "--config", str(path)]) as served:
        client = client_for(served.out.url)
        response = client.invoke_endpoint(EndpointName="mme", TargetModel="m1", Body=b"")
        assert response["Body"].read() == b"m1"
        assert client.invoke_endpoint(EndpointName="echo", Body=b"a")["Body"].read() == b"A!"
    assert "endpoint mme (multi-model, 2 instance(s))" in served.out.getvalue()


def test_serve_prints_where_async_endpoints_find_s3(tmp_path: Path) -> None:
    import boto3

    config = {
        "endpoints": [
            {
                "name": "scorer",
                "handler": f"{__name__}:shout",
                "async": {"s3_output_path": "s3://cli-async-bucket/out"},
            },
            {"name": "echo", "handler": f"{__name__}:shout"},
        ]
    }
    path = tmp_path / "local.json"
    path.write_text(json.dumps(config))
    with Served(["serve", "--config", str(path)]) as served:
        text = served.out.getvalue()
        assert "endpoint scorer (single-model, async, 1 instance(s))" in text
        assert "  async endpoints: scorer\n" in text
        match = re.search(r"S3/SNS endpoint URL: (http://127\.0\.0\.1:\d+) \(embedded", text)
        assert match is not None, text
        assert match.group(1) != served.out.url
        s3 = boto3.client(
            "s3",
            endpoint_url=match.group(1),
            region_name="us-east-1",
            aws_access_key_id="x",
            aws_secret_access_key="x",
        )
        try:
            s3.create_bucket(Bucket="cli-async-bucket")  # users can reach the embedded server
            assert "cli-async-bucket" in [b["Name"] for b in s3.list_buckets()["Buckets"]]
        finally:
            s3.close()


def test_serve_without_async_prints_no_s3_url() -> None:
    with Served(["serve", "--handler", f"demo={__name__}:shout"]) as served:
        assert "S3/SNS" not in served.out.getvalue()


@pytest.mark.parametrize(
    "argv",
    [
        ["serve"],
        ["serve", "--handler", "no-equals-sign"],
        ["serve", "--handler", "x=no_such_module_xyz:f"],
        ["serve", "--handler", "x=os"],
        ["serve", "--handler", "bad name=os:getcwd"],
        ["serve", "--mme", "x=/tmp", "--instances", "0"],
    ],
)
def test_serve_rejects_bad_endpoints(argv: list[str], capsys: Any) -> None:
    assert main(argv) == 2
    assert "smclient local: error:" in capsys.readouterr().err


def test_bad_config_files(tmp_path: Path, capsys: Any) -> None:
    bad_json = tmp_path / "bad.json"
    bad_json.write_text("{nope")
    assert main(["serve", "--config", str(bad_json)]) == 2
    unknown_key = tmp_path / "unknown.json"
    unknown_key.write_text(json.dumps({"endpoints": [{"name": "a", "colour": "red"}]}))
    assert main(["serve", "--config", str(unknown_key)]) == 2
    assert main(["serve", "--config", str(tmp_path / "missing.json")]) == 2
    assert "colour" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("config", "fragment"),
    [
        ({"endpoints": [{"name": "m", "model_root": ".", "multi_model": {"window": 1}}]}, "'m'"),
        ({"endpoints": [{"name": "a", "handler": "json:dumps", "async": {"bucket": 1}}]}, "'a'"),
        ({"endpoints": [{"name": "a", "handler": "json:dumps", "instance_count": "2"}]}, "'a'"),
        ({"endpoints": {"name": "a"}}, "must be a JSON list"),
        ({"endpoints": ["a"]}, "must be a JSON object"),
        ({"port": "http", "endpoints": [{"name": "a", "handler": "json:dumps"}]}, "port"),
        ({"port": 70000, "endpoints": [{"name": "a", "handler": "json:dumps"}]}, "port"),
    ],
)
def test_bad_config_values_exit_2(
    tmp_path: Path, capsys: Any, config: dict[str, Any], fragment: str
) -> None:
    path = tmp_path / "local.json"
    path.write_text(json.dumps(config))
    assert main(["serve", "--config", str(path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("smclient local: error:")
    assert fragment in err
    assert "Traceback" not in err


def test_model_that_fails_to_load_exits_1(tmp_path: Path, capsys: Any) -> None:
    assert main(["serve", "--model", f"m={tmp_path}"]) == 1
    assert "cannot start" in capsys.readouterr().err


def test_usage_errors_exit_2(capsys: Any) -> None:
    assert main([]) == 2
    assert main(["frobnicate"]) == 2
    assert main(["--help"]) == 0
    assert "serve" in capsys.readouterr().out


def test_check_container_against_a_conforming_fake() -> None:
    out = io.StringIO()
    with FakeContainer(memory_budget=6) as fake:
        assert main(["check-container", fake.url, "--timeout", "5"], out=out) == 0
    assert out.getvalue()


def test_check_container_nothing_listening() -> None:
    out = io.StringIO()
    with FakeContainer() as fake:
        url = fake.url
    assert main(["check-container", url, "--timeout", "1"], out=out) == 2


@pytest.fixture
def served_process(tmp_path: Path) -> Iterator[subprocess.Popen[str]]:
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    proc = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys; from smclient.local import run_cli; sys.exit(run_cli(sys.argv[1:]))",
            "serve",
            "--handler",
            "demo=json:dumps",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    yield proc
    if proc.poll() is None:
        proc.kill()
    proc.communicate(timeout=WAIT)


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")
def test_sigterm_shuts_serve_down_cleanly(served_process: subprocess.Popen[str]) -> None:
    assert served_process.stdout is not None
    first = served_process.stdout.readline()
    assert "listening on http://127.0.0.1:" in first
    served_process.send_signal(signal.SIGTERM)
    assert served_process.wait(WAIT) == 0


def test_unreachable_container_exits_1_without_traceback(capsys: Any) -> None:
    with FakeContainer() as fake:
        url = fake.url  # nothing listens there once the fake stopped
    assert main(["serve", "--container", f"c={url}"]) == 1
    err = capsys.readouterr().err
    assert "cannot start" in err
    assert "Traceback" not in err
