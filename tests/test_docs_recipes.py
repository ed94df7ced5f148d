"""The How-to recipes run: their code blocks are executed here (moto in-process, loopback
servers on port 0 that the recipes' own code starts), so a recipe cannot drift from the
library. The FastAPI recipe runs where the docs extra installed FastAPI (CI), and is
skipped, with the reason, under the README's plain test install."""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import pytest

from smclient.local import HandlerError, LocalEndpoint
from smclient.testing import Reply, ScriptedRuntime

DOCS = Path(__file__).resolve().parent.parent / "docs"
BLOCK = re.compile(r"```python\n(.*?)```", re.DOTALL)


def blocks(page: str) -> list[str]:
    return BLOCK.findall((DOCS / page).read_text())


def test_moto_recipe_runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    app, *tests = blocks("howto/moto-tests.md")
    (tmp_path / "app").mkdir()
    (tmp_path / "app" / "__init__.py").write_text("")
    (tmp_path / "app" / "scoring.py").write_text(app)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    ran = []
    try:
        for code in tests:
            namespace: dict[str, object] = {}
            exec(compile(code, "moto-tests.md", "exec"), namespace)
            for name, func in namespace.items():
                if name.startswith("test_") and callable(func):
                    func()
                    ran.append(name)
    finally:
        sys.modules.pop("app.scoring", None)
        sys.modules.pop("app", None)
    assert ran == [
        "test_score_reads_the_models_answer",
        "test_score_rides_out_a_cold_start",
        "test_score_is_zero_when_the_model_fails",
    ]


def test_batch_recipe_runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    code = blocks("howto/batch-scoring.md")[0]
    monkeypatch.chdir(tmp_path)
    (tmp_path / "reviews.csv").write_text("id,text\n1,great\n2,boom\n3,fine\n")

    def predict(body: bytes, content_type: str | None, accept: str | None) -> bytes:
        text = json.loads(body)["text"]
        if text == "boom":
            raise HandlerError("cannot score this", status_code=400)
        return json.dumps({"score": len(text)}).encode()

    with LocalEndpoint(predict, name="sentiment") as local:
        target = 'Endpoint("sentiment", region="eu-west-1")'
        assert target in code
        exec(
            compile(code.replace(target, "local.endpoint()"), "batch.md", "exec"), {"local": local}
        )
    lines = [json.loads(line) for line in (tmp_path / "scores.jsonl").read_text().splitlines()]
    assert lines == [
        {"id": "1", "score": 5},
        {"id": "2", "error": "ModelError"},
        {"id": "3", "score": 4},
    ]


def test_fastapi_recipe_runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("fastapi", reason="FastAPI comes with the docs extra")
    pytest.importorskip("httpx2", reason="FastAPI's TestClient needs httpx2 (docs extra)")
    service, test = blocks("howto/fastapi.md")
    (tmp_path / "service.py").write_text(service)
    monkeypatch.syspath_prepend(str(tmp_path))
    namespace: dict[str, object] = {}
    try:
        exec(compile(test, "fastapi.md", "exec"), namespace)
        namespace["test_model_error_is_a_502"](monkeypatch)  # type: ignore[operator]
        import service as module  # the recipe's app, as the test imported it

        with ScriptedRuntime() as runtime:
            from fastapi.testclient import TestClient

            monkeypatch.setattr(module, "endpoint", runtime.endpoint("sentiment"))
            runtime.queue(Reply.ok(b'{"label": "pos"}'))
            answer = TestClient(module.app).post("/score", json={"text": "hi"})
            assert answer.status_code == 200
            assert answer.json()["score"] == {"label": "pos"}
            assert runtime.requests[0].headers["x-amzn-sagemaker-target-model"] == "sentiment-v1"
    finally:
        sys.modules.pop("service", None)
