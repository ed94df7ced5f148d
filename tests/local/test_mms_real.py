"""The local runtime in front of a REAL multi-model-server with the SageMaker inference
toolkit, run as a process on loopback (what a SageMaker multi-model container image runs):
models loaded from directories and from archives unpacked once into their own model
directories, an out-of-memory model answering 507, unload and reload, and a stateful
session opened, used and closed by the model and relayed by the runtime.

Needs Java and ``pip install multi-model-server sagemaker-inference`` (``nox -s mms``);
skipped with the reason otherwise. The server is started once for the module; the only
waits are bounded ones for the real server to come up and to load models.
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError

from smclient.local import LocalEndpoint, check_container
from smclient.local.containers._sources import container_model_name

from .test_byoc_models import write_archive

pytestmark = [
    pytest.mark.skipif(shutil.which("java") is None, reason="multi-model-server needs Java"),
    pytest.mark.skipif(
        importlib.util.find_spec("mms") is None
        or importlib.util.find_spec("sagemaker_inference") is None,
        reason="multi-model-server and sagemaker-inference are not installed (nox -s mms)",
    ),
]

SERVICE = Path(__file__).parent / "mms"
STARTUP_LIMIT = 90.0  # seconds for the JVM and the frontend to answer /ping

INFERENCE = """
import json, os, time, uuid

SESSIONS = {}


def model_fn(model_dir):
    if os.path.exists(os.path.join(model_dir, "OOM")):
        raise MemoryError("this model does not fit")
    with open(os.path.join(model_dir, "answer.txt")) as f:
        return f.read()


def _header(context, name):
    return context.get_request_header(0, name) or context.get_request_header(0, name.lower())


def transform_fn(model, data, content_type, accept, context):
    if isinstance(data, (bytes, bytearray)):
        data = data.decode()
    session = _header(context, "X-Amzn-SageMaker-Session-Id")
    if session == "NEW_SESSION":
        sid = uuid.uuid4().hex
        SESSIONS[sid] = [json.loads(data)]
        expires = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() + 1200))
        context.set_response_header(0, "X-Amzn-SageMaker-Session-Id", f"{sid}; Expires={expires}")
        return json.dumps({"opened": sid}), "application/json"
    if session:
        if session not in SESSIONS:
            # What containers answer for an unknown id (protocol.md §4): 400, not a crash.
            from sagemaker_inference.errors import GenericInferenceToolkitError

            raise GenericInferenceToolkitError(400, "session not found")
        if json.loads(data).get("requestType") == "CLOSE":
            del SESSIONS[session]
            context.set_response_header(0, "X-Amzn-SageMaker-Closed-Session-Id", session)
            return json.dumps({"closed": session}), "application/json"
        SESSIONS[session].append(data)
        return json.dumps({"turns": len(SESSIONS[session])}), "application/json"
    return json.dumps({"model": model, "input": data}), "application/json"
"""


def _free_port() -> int:
    # multi-model-server refuses ports above 32766 (its Connector checks), and the OS hands
    # out port 0 from above 32767: try free ports below that instead.
    for port in random.Random().sample(range(20000, 32767), 200):
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError("no free port below 32767 on loopback")


def _ping(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/ping", timeout=2) as response:
            return bool(response.status == 200)
    except OSError:
        return False


@pytest.fixture(scope="module")
def mms(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A multi-model-server on a free loopback port, in its own process group."""
    work = tmp_path_factory.mktemp("mms")
    port = _free_port()
    config = work / "config.properties"
    config.write_text(
        "\n".join(
            [
                "model_store=/",
                f"inference_address=http://127.0.0.1:{port}",
                f"management_address=http://127.0.0.1:{port}",
                "default_service_handler=smclient_mms_service:handle",
                "default_workers_per_model=1",
                "decode_input_request=false",
                "number_of_netty_threads=2",
                "netty_client_threads=2",
                "vmargs=-Xmx256m -XX:-UseContainerSupport -XX:+UseSerialGC",
            ]
        )
        + "\n"
    )
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(SERVICE), os.environ.get("PYTHONPATH", "")]),
        "TMPDIR": str(work),  # its pid file: one per server, not one per machine
        "TEMP": str(work),
        "SAGEMAKER_MULTI_MODEL": "true",
    }
    command = [
        sys.executable,
        "-c",
        "import sys; from mms.model_server import start; sys.argv[0] = 'multi-model-server'; start()",
        "--start",
        "--foreground",
        "--mms-config",
        str(config),
        "--model-store",
        "/",
    ]
    log = (work / "mms.out").open("w")
    process = subprocess.Popen(
        command, cwd=work, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + STARTUP_LIMIT
    try:
        while not _ping(url):
            if process.poll() is not None or time.monotonic() > deadline:
                pytest.fail(
                    f"multi-model-server did not start: {(work / 'mms.out').read_text()[-2000:]}"
                )
            time.sleep(0.2)  # a real JVM coming up (bounded by STARTUP_LIMIT)
        yield url
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(20)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait(10)
        log.close()


@pytest.fixture
def root(tmp_path: Path) -> Path:
    root = tmp_path / "models"
    for name, answer in (("plain", "plain"), ("huge", "huge")):
        (root / name / "code").mkdir(parents=True)
        (root / name / "code" / "inference.py").write_text(INFERENCE)
        (root / name / "answer.txt").write_text(answer)
    (root / "huge" / "OOM").write_text("")
    write_archive(
        root / "packed.tar.gz",
        {"answer.txt": b"packed", "code/inference.py": INFERENCE.encode()},
    )
    return root


def invoke(client: Any, target: str, body: dict[str, Any], **kw: Any) -> dict[str, Any]:
    response = client.invoke_endpoint(
        EndpointName="mms",
        TargetModel=target,
        Body=json.dumps(body).encode(),
        ContentType="application/json",
        **kw,
    )
    response["Body"] = json.loads(response["Body"].read())
    return response  # type: ignore[no-any-return]


@pytest.fixture
def endpoint(mms: str, root: Path) -> Iterator[LocalEndpoint]:
    with LocalEndpoint(
        name="mms",
        container_url=mms,
        container_multi_model=True,
        model_root=root,
        container_timeout=60,
    ) as local:
        yield local
        for target in ("plain", "packed.tar.gz", "huge"):
            local.unload_model(target)
        # multi-model-server keeps a 507'd model registered without a worker: clear it.
        with contextlib.suppress(Exception):
            req = urllib.request.Request(
                f"{mms}/models/{container_model_name('huge')}", method="DELETE"
            )
            urllib.request.urlopen(req, timeout=30).close()


def test_loads_from_a_directory_and_from_an_archive(
    endpoint: LocalEndpoint, client_for: Any
) -> None:
    client = client_for(endpoint.url, read_timeout=70)
    plain = invoke(client, "plain", {"x": 1})
    assert plain["Body"] == {"model": "plain", "input": '{"x": 1}'}
    assert plain["ContentType"] == "application/json"
    assert invoke(client, "packed.tar.gz", {"x": 2})["Body"]["model"] == "packed"


def test_an_out_of_memory_model_answers_507(endpoint: LocalEndpoint, client_for: Any) -> None:
    with pytest.raises(ClientError) as info:
        invoke(client_for(endpoint.url, read_timeout=70), "huge", {})
    assert info.value.response["Error"]["Code"] == "ModelError"
    assert info.value.response["OriginalStatusCode"] == 507


def test_unload_and_reload(endpoint: LocalEndpoint, client_for: Any) -> None:
    client = client_for(endpoint.url, read_timeout=70)
    invoke(client, "packed.tar.gz", {})
    assert endpoint.unload_model("packed.tar.gz") == 1
    assert invoke(client, "packed.tar.gz", {"again": True})["Body"]["model"] == "packed"
    stats = endpoint.model_stats()["packed.tar.gz"]
    assert (stats.loads, stats.unloads) == (2, 1)


def test_a_session_opened_used_and_closed_by_the_model(
    endpoint: LocalEndpoint, client_for: Any
) -> None:
    client = client_for(endpoint.url, read_timeout=70)
    opened = invoke(client, "plain", {"requestType": "NEW_SESSION"}, SessionId="NEW_SESSION")
    session = opened["Body"]["opened"]
    assert opened["NewSessionId"].startswith(f"{session}; Expires=")
    assert invoke(client, "plain", {"q": 1}, SessionId=session)["Body"] == {"turns": 2}
    closed = invoke(client, "plain", {"requestType": "CLOSE"}, SessionId=session)
    assert closed["ClosedSessionId"] == session
    assert endpoint.sessions() == []


def test_check_container_sessions_against_the_real_server(mms: str, root: Path) -> None:
    results = check_container(
        mms,
        timeout=60,
        model_url=str(root / "plain"),
        model_prefix="smclient-real-check",
        invoke_body=b'{"x": 1}',
        oom_attempts=0,
        sessions=True,
    )
    assert results is not None
    verdicts = {r.name: r.result for r in results}
    assert {verdicts[n] for n in ("session open", "session use", "session close")} == {"PASS"}
    assert verdicts["session closed id"] == "PASS"  # the model's 400 for a closed id
    assert verdicts["load"] == "PASS"
    assert verdicts["cleanup"] == "PASS"
