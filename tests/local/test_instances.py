"""Each instance has its own model (model_fn per instance, eagerly or lazily), and answers
carry a real media type whatever the Accept header."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from smclient.local import EndpointSpec, LocalEndpoint, LocalRuntime
from smclient.local.server._wire import response_media_type

INFERENCE = """
import json, os

def model_fn(model_dir):
    log = os.path.join(model_dir, "..", "loads.txt")
    with open(log, "a") as f:
        f.write("load\\n")
    with open(log) as f:
        return {"id": len(f.read().splitlines())}  # the how-manyth load this is

def transform_fn(model, body, content_type, accept):
    return json.dumps({"model": model["id"]}), "application/json"
"""


def model_dir(tmp_path: Path) -> Path:
    folder = tmp_path / "model"
    (folder / "code").mkdir(parents=True)
    (folder / "code" / "inference.py").write_text(INFERENCE)
    return folder


def loads(tmp_path: Path) -> int:
    log = tmp_path / "loads.txt"
    return len(log.read_text().splitlines()) if log.exists() else 0


def test_each_instance_loads_its_own_model_eagerly(tmp_path: Path, client_for: Any) -> None:
    folder = model_dir(tmp_path)
    with LocalEndpoint(name="ep", model_dir=folder, instance_count=3) as local:
        assert loads(tmp_path) == 3  # model_fn ran once per instance, at start
        client = client_for(local.url)
        models = {
            json.loads(client.invoke_endpoint(EndpointName="ep", Body=b"x")["Body"].read())["model"]
            for _ in range(6)
        }
        assert len(models) == 3  # round robin over three separate models
        assert loads(tmp_path) == 3


def test_lazy_instances_load_on_their_first_request(tmp_path: Path, client_for: Any) -> None:
    folder = model_dir(tmp_path)
    with LocalEndpoint(
        name="ep", model_dir=folder, instance_count=3, instance_loading="lazy"
    ) as local:
        assert loads(tmp_path) == 0
        client = client_for(local.url)
        client.invoke_endpoint(EndpointName="ep", Body=b"x")
        assert loads(tmp_path) == 1
        for _ in range(5):
            client.invoke_endpoint(EndpointName="ep", Body=b"x")
        assert loads(tmp_path) == 3


def test_a_handler_class_is_instantiated_per_instance(client_for: Any) -> None:
    made: list[object] = []

    class Model:
        def __init__(self) -> None:
            made.append(self)

        def predict(self, body: bytes, content_type: Any, accept: Any) -> bytes:
            return str(made.index(self)).encode()

    with LocalRuntime([EndpointSpec("ep", handler=Model, instance_count=2)]) as runtime:
        client = client_for(runtime.url)
        answers = {
            client.invoke_endpoint(EndpointName="ep", Body=b"")["Body"].read() for _ in range(4)
        }
        assert answers == {b"0", b"1"}
        assert len(made) == 2


def test_a_handler_object_is_shared_and_not_closed(client_for: Any) -> None:
    class Model:
        closed = False

        def predict(self, body: bytes, content_type: Any, accept: Any) -> bytes:
            return b"ok"

        def close(self) -> None:
            self.closed = True

    model = Model()
    with LocalEndpoint(model, name="ep", instance_count=2) as local:
        client_for(local.url).invoke_endpoint(EndpointName="ep", Body=b"")
    assert model.closed is False  # the user's object is theirs to close


@pytest.mark.parametrize(
    ("accept", "expected"),
    [
        (None, "application/octet-stream"),
        ("*/*", "application/octet-stream"),
        ("text/*", "application/octet-stream"),
        ("application/json", "application/json"),
        ("application/json, text/plain", "application/json"),
        ("text/plain;q=0.5, application/json", "application/json"),
        ("*/*;q=0.1, text/csv;q=0.9", "text/csv"),
        ("application/json;q=0, text/csv", "text/csv"),
        ("garbage", "application/octet-stream"),
    ],
)
def test_response_media_type(accept: str | None, expected: str) -> None:
    assert response_media_type(accept) == expected


@pytest.mark.parametrize(
    ("accept", "expected"),
    [
        ("*/*", "application/octet-stream"),
        ("text/csv, application/json", "text/csv"),
        ("application/json; charset=utf-8", "application/json"),
    ],
)
def test_the_answer_content_type_is_a_real_media_type(
    accept: str, expected: str, client_for: Any
) -> None:
    with LocalEndpoint(lambda body, ct, accept: b"x", name="ep") as local:
        response = client_for(local.url).invoke_endpoint(EndpointName="ep", Body=b"", Accept=accept)
        assert response["ContentType"] == expected


def test_a_toolkit_model_answers_json_for_any_accept(tmp_path: Path, client_for: Any) -> None:
    folder = tmp_path / "toolkit"
    folder.mkdir()
    (folder / "inference.py").write_text(
        "def model_fn(d):\n    return len\n"
        "def output_fn(prediction, accept):\n    return str(prediction) + ' ' + accept\n"
    )
    with LocalEndpoint(name="ep", model_dir=folder) as local:
        response = client_for(local.url).invoke_endpoint(
            EndpointName="ep", Body=b"abc", ContentType="text/plain", Accept="*/*"
        )
        assert response["ContentType"] == "application/json"
        assert response["Body"].read() == b"3 application/json"


def test_streaming_answers_a_real_media_type(client_for: Any) -> None:
    with LocalEndpoint(lambda body, ct, accept: b"x", name="ep") as local:
        response = client_for(local.url).invoke_endpoint_with_response_stream(
            EndpointName="ep", Body=b"", Accept="application/jsonlines, */*"
        )
        assert response["ContentType"] == "application/jsonlines"
        list(response["Body"])
