"""The handler protocol and model directories (handler.py, the inference toolkit's scripts)."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path
from typing import Any

import pytest

from smclient.local import HandlerError, HandlerReply, LocalEndpoint, ModelHandler
from smclient.local.hosting._handlers import as_handler, call_predict, call_stream, load_model_dir


def write(path: Path, source: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(source))


def test_callable_and_object_handlers() -> None:
    handler = as_handler(lambda body, ct, accept: body + b"!")
    assert isinstance(handler, ModelHandler)
    assert call_predict(handler, b"a", None, "text/plain") == HandlerReply(b"a!", "text/plain")

    class Obj:
        def predict(self, body: bytes, ct: str | None, accept: str | None) -> str:
            return "ü"

    obj = Obj()
    assert as_handler(obj) is obj
    assert call_predict(obj, b"", None, None) == HandlerReply(
        "ü".encode(), "application/octet-stream"
    )
    with pytest.raises(TypeError):
        as_handler(42)


def test_optional_keywords_only_when_declared() -> None:
    seen: dict[str, Any] = {}

    def with_attrs(
        body: bytes, ct: str | None, accept: str | None, custom_attributes: str
    ) -> bytes:
        seen["attrs"] = custom_attributes
        return b""

    def with_kwargs(body: bytes, ct: str | None, accept: str | None, **kw: Any) -> bytes:
        seen["kw"] = sorted(kw)
        return b""

    opts = {"custom_attributes": "a", "target_model": "m", "session": None}
    call_predict(as_handler(with_attrs), b"", None, None, **opts)
    call_predict(as_handler(with_kwargs), b"", None, None, **opts)
    assert seen == {"attrs": "a", "kw": ["custom_attributes", "session", "target_model"]}


def test_reply_keeps_handler_content_type_and_rejects_bad_types() -> None:
    reply = HandlerReply(b"x", "image/png", "k=v")
    assert call_predict(as_handler(lambda b, c, a: reply), b"", None, "text/plain") == reply
    with pytest.raises(TypeError):
        call_predict(as_handler(lambda b, c, a: 42), b"", None, None)
    assert list(call_stream(as_handler(lambda b, c, a: b"whole"), b"", None, None)) == [b"whole"]


def test_handler_py_with_load(tmp_path: Path) -> None:
    write(
        tmp_path / "handler.py",
        """
        from helper import PREFIX

        class Model:
            def __init__(self, model_dir):
                self.weights = (model_dir / "weights.txt").read_text()
            def predict(self, body, content_type, accept):
                return PREFIX + self.weights.encode() + body

        def load(model_dir):
            return Model(model_dir)
        """,
    )
    write(tmp_path / "helper.py", "PREFIX = b'>'\n")
    (tmp_path / "weights.txt").write_text("w")
    handler = load_model_dir(tmp_path)
    assert call_predict(handler, b"1", None, None).body == b">w1"


def test_handler_py_module_level_predict_in_code_dir(tmp_path: Path) -> None:
    write(tmp_path / "code" / "handler.py", "def predict(body, ct, accept):\n    return b'mod'\n")
    assert call_predict(load_model_dir(tmp_path), b"", None, None).body == b"mod"


def test_handler_py_without_entry_point(tmp_path: Path) -> None:
    write(tmp_path / "handler.py", "x = 1\n")
    with pytest.raises(HandlerError, match="neither"):
        load_model_dir(tmp_path)


def test_empty_model_dir(tmp_path: Path) -> None:
    with pytest.raises(HandlerError, match="no handler"):
        load_model_dir(tmp_path)


TOOLKIT = """
import json

def model_fn(model_dir):
    return lambda data: {"sum": sum(data["inputs"])}

def input_fn(body, content_type):
    assert content_type == "application/json"
    return json.loads(body)

def predict_fn(data, model):
    return model(data)

def output_fn(prediction, accept):
    return json.dumps(prediction), "application/json"
"""


def test_inference_toolkit_script_runs_unchanged(tmp_path: Path, client_for: Any) -> None:
    write(tmp_path / "code" / "inference.py", TOOLKIT)
    with LocalEndpoint(model_dir=tmp_path) as local:
        response = client_for(local.url).invoke_endpoint(
            EndpointName=local.name,
            Body=json.dumps({"inputs": [1, 2, 3]}),
            ContentType="application/json",
        )
        assert json.loads(response["Body"].read()) == {"sum": 6}
        assert response["ContentType"] == "application/json"


def test_toolkit_defaults_and_transform_fn(tmp_path: Path) -> None:
    write(
        tmp_path / "a" / "inference.py",
        "def model_fn(model_dir, context=None):\n    return lambda data: data['x'] * 2\n",
    )
    handler = load_model_dir(tmp_path / "a")
    reply = call_predict(handler, b'{"x": 21}', "application/json", None)
    assert reply == HandlerReply(b"42", "application/json")
    write(
        tmp_path / "b" / "inference.py",
        """
        def model_fn(model_dir):
            return "m"
        def transform_fn(model, body, content_type, accept):
            return model.encode() + body
        """,
    )
    assert call_predict(load_model_dir(tmp_path / "b"), b"!", None, "text/plain").body == b"m!"
    write(tmp_path / "c" / "inference.py", "x = 1\n")
    with pytest.raises(HandlerError, match="model_fn"):
        load_model_dir(tmp_path / "c")


TOOLKIT_WITH_CONTEXT = """
import json

def model_fn(model_dir, context):
    assert context.system_properties["model_dir"] == model_dir
    return {"dir": context.model_dir}

def input_fn(body, content_type, context):
    return {"data": json.loads(body), "name": context.model_name}

def predict_fn(data, model, context):
    return {**data, "same_dir": model["dir"] == context.system_properties["model_dir"]}

def output_fn(prediction, accept, context):
    return json.dumps({**prediction, "gpu": context.system_properties["gpu_id"]}), accept
"""


def test_toolkit_functions_declaring_a_context_get_one(tmp_path: Path) -> None:
    write(tmp_path / "m" / "inference.py", TOOLKIT_WITH_CONTEXT)
    reply = call_predict(load_model_dir(tmp_path / "m"), b"[1]", "application/json", None)
    assert json.loads(reply.body) == {"data": [1], "name": "m", "same_dir": True, "gpu": None}
    write(
        tmp_path / "t" / "inference.py",
        """
        def model_fn(model_dir):
            return "m"
        def transform_fn(model, body, content_type, accept, context):
            return model + context.model_name + body.decode(), "text/plain"
        """,
    )
    reply = call_predict(load_model_dir(tmp_path / "t"), b"!", None, None)
    assert reply == HandlerReply(b"mt!", "text/plain")


def test_toolkit_function_with_too_many_parameters_is_a_handler_error(tmp_path: Path) -> None:
    write(
        tmp_path / "m" / "inference.py",
        """
        def model_fn(model_dir):
            return "m"
        def predict_fn(data, model, context, extra):
            return data
        """,
    )
    with pytest.raises(HandlerError, match="predict_fn takes 4 arguments"):
        call_predict(load_model_dir(tmp_path / "m"), b"x", None, None)


def test_single_model_from_tar_gz(tmp_path: Path, client_for: Any) -> None:
    import io
    import tarfile

    archive = tmp_path / "model.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        data = TOOLKIT.encode()
        member = tarfile.TarInfo("code/inference.py")
        member.size = len(data)
        tar.addfile(member, io.BytesIO(data))
    with LocalEndpoint(model_dir=archive) as local:
        response = client_for(local.url).invoke_endpoint(
            EndpointName=local.name, Body=b'{"inputs": [4, 5]}', ContentType="application/json"
        )
        assert json.loads(response["Body"].read()) == {"sum": 9}
        unpacked = local.workdir
    assert not unpacked.exists()


def test_unpack_refuses_links(tmp_path: Path) -> None:
    import tarfile

    from smclient.local.hosting._handlers import unpack_archive

    archive = tmp_path / "links.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        link = tarfile.TarInfo("passwd")
        link.type = tarfile.SYMTYPE
        link.linkname = "/etc/passwd"
        tar.addfile(link)
    with pytest.raises(HandlerError, match="not a file"):
        unpack_archive(archive, tmp_path / "out")
    with pytest.raises(HandlerError, match="cannot unpack"):
        unpack_archive(tmp_path / "missing.tar.gz", tmp_path / "out")


def test_models_with_same_named_helpers_stay_apart(tmp_path: Path) -> None:
    for name in ("one", "two"):
        write(tmp_path / name / "helper.py", f"NAME = {name!r}\n")
        write(
            tmp_path / name / "handler.py",
            "import helper\n\ndef predict(body, ct, accept):\n    return helper.NAME\n",
        )
    one = load_model_dir(tmp_path / "one")
    two = load_model_dir(tmp_path / "two")
    assert call_predict(one, b"", None, None).body == b"one"
    assert call_predict(two, b"", None, None).body == b"two"
