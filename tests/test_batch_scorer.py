"""Scorer: data frames (pandas, Arrow, dicts of arrays, record lists) scored row-wise or in
chunks in each row format against the local endpoint; predictions aligned with the rows,
errors per row; pickling without credentials, one endpoint per process."""

from __future__ import annotations

import io
import json
import pickle
from collections.abc import Iterator
from typing import Any

import pytest

from smclient import NPY, ClientConfig, Endpoint, InvalidInputError, ModelError, Scorer
from smclient.local import HandlerError, HandlerReply, LocalEndpoint

pd = pytest.importorskip("pandas", reason="the tabular helpers need pandas (smclient[pandas])")
np = pytest.importorskip("numpy", reason="needs numpy")


def predict(body: bytes, content_type: str | None, accept: str | None) -> HandlerReply:
    """Doubles column x of every row; a row with x == 13 is a model error. Answers in the
    request's format (JSON lines for JSON lines and JSON, CSV for CSV, NPY for NPY)."""
    if content_type == "text/csv":
        xs = [float(line.split(",")[0]) for line in body.decode().splitlines()]
        reply = "".join(f"{2 * x}\n" for x in xs).encode()
        kind = "text/csv"
    elif content_type == "application/x-npy":
        array = np.load(io.BytesIO(body))
        xs = [float(v) for v in array[:, 0]]
        out = io.BytesIO()
        np.save(out, array[:, 0] * 2)
        reply, kind = out.getvalue(), "application/x-npy"
    elif content_type == "application/json":
        doc = json.loads(body)
        rows = doc if isinstance(doc, list) else [doc]
        xs = [r["x"] for r in rows]
        answer: Any = [{"y": 2 * x} for x in xs]
        if not isinstance(doc, list):
            answer = answer[0]
        elif len(xs) > 2:
            answer = {"predictions": answer}  # TF Serving's wrapping, also understood
        reply, kind = json.dumps(answer).encode(), "application/json"
    else:
        xs = [json.loads(line)["x"] for line in body.decode().splitlines()]
        reply = "".join(json.dumps({"y": 2 * x}) + "\n" for x in xs).encode()
        kind = "application/jsonlines"
    if 13 in xs:
        raise HandlerError("cannot score 13", 422)
    return HandlerReply(reply, content_type=kind)


@pytest.fixture(scope="module")
def local() -> Iterator[LocalEndpoint]:
    with LocalEndpoint(predict) as server:
        yield server


@pytest.fixture
def ep(local: LocalEndpoint) -> Iterator[Endpoint]:
    with local.endpoint() as endpoint:
        yield endpoint


def frame(n: int = 30) -> Any:
    return pd.DataFrame(
        {"x": list(range(n)), "label": [f"r{i}" for i in range(n)]}, index=range(100, 100 + n)
    )


def expected_y(n: int, chunk: int) -> list[Any]:
    bad = {i for i in range(n) if (i // chunk) == (13 // chunk)}  # the chunk holding row 13
    return [None if i in bad else 2 * i for i in range(n)]


@pytest.mark.parametrize("fmt", ["jsonlines", "json", "csv", "npy"])
@pytest.mark.parametrize("chunk", [1, 4])
def test_predictions_are_aligned_with_the_rows(ep: Endpoint, fmt: Any, chunk: int) -> None:
    df = frame()
    out = Scorer(ep, format=fmt, columns=["x"], rows_per_request=chunk)(df)
    assert list(out.index) == list(df.index)
    assert list(out.columns) == ["x", "label", "prediction", "error"]
    assert out["label"].tolist() == df["label"].tolist()
    got = [
        None if p is None else (p["y"] if isinstance(p, dict) else float(p))
        for p in out["prediction"]
    ]
    assert got == expected_y(30, chunk)
    errors = out["error"].tolist()
    failed = [i for i, e in enumerate(errors) if e is not None]
    assert failed == [i for i, y in enumerate(expected_y(30, chunk)) if y is None]
    assert all(errors[i].startswith("ModelError (HTTP 424)") for i in failed)


def test_only_new_columns_and_other_names(ep: Endpoint) -> None:
    out = Scorer(
        ep,
        columns=["x"],
        keep_input=False,
        prediction_column="score",
        error_column="why",
    )(frame(5))
    assert list(out.columns) == ["score", "why"]
    assert list(out.index) == list(range(100, 105))


def test_error_column_none_raises_the_first_error(ep: Endpoint) -> None:
    with pytest.raises(ModelError):
        Scorer(ep, columns=["x"], error_column=None)(frame())


def test_a_wrong_number_of_predictions_fails_those_rows() -> None:
    def one_line_only(body: bytes, content_type: str | None, accept: str | None) -> bytes:
        return b"1\n"

    with LocalEndpoint(one_line_only) as server, server.endpoint() as ep:
        out = Scorer(ep, format="csv", columns=["x"], rows_per_request=3)(frame(4))
    assert out["prediction"].tolist() == [None, None, None, 1]
    assert (
        out["error"].tolist()[:3]
        == [
            "PredictionCountError: the answer holds 1 predictions for 3 rows "
            "(content type 'application/octet-stream')"
        ]
        * 3
    )
    assert out["error"].tolist()[3] is None


def test_arrow_tables_dict_batches_and_record_lists(ep: Endpoint) -> None:
    pa = pytest.importorskip("pyarrow", reason="Arrow tables need pyarrow")
    scorer = Scorer(ep, columns=["x"], format="csv")
    table = scorer(pa.Table.from_pandas(frame(4), preserve_index=False))
    assert table.column_names == ["x", "label", "prediction", "error"]
    assert table.column("prediction").to_pylist() == [0.0, 2.0, 4.0, 6.0]

    batch = scorer({"x": np.arange(3), "label": np.array(["a", "b", "c"])})
    assert sorted(batch) == ["error", "label", "prediction", "x"]
    assert batch["prediction"].tolist() == [0.0, 2.0, 4.0]

    records = Scorer(ep, format="csv")([{"x": 1}, {"x": 13}])
    assert records[0] == {"x": 1, "prediction": 2.0, "error": None}
    assert records[1]["prediction"] is None
    assert records[1]["error"].startswith("ModelError")
    assert scorer([]) == []


def test_empty_frames_and_meta_send_nothing() -> None:
    calls = []

    def count(body: bytes, content_type: str | None, accept: str | None) -> bytes:
        calls.append(body)
        return b"{}"

    with LocalEndpoint(count) as server, server.endpoint() as ep:
        scorer = Scorer(ep)
        meta = scorer.meta(frame(3))
        empty = scorer(frame(0))
    assert list(meta.columns) == ["x", "label", "prediction", "error"]
    assert len(meta) == 0
    assert len(empty) == 0
    assert calls == []


def test_a_model_handle_sends_its_target_model_on_every_request() -> None:
    import tempfile
    from pathlib import Path

    with tempfile.TemporaryDirectory() as root:
        for name in ("m1", "m2"):
            model = Path(root, name)
            model.mkdir()
            (model / "handler.py").write_text(
                "def predict(body, content_type, accept):\n    return b'{\"ok\": true}\\n'\n"
            )
        with LocalEndpoint(model_root=root) as server, server.endpoint() as ep:
            out = Scorer(ep.model("m2"), columns=["x"])(frame(3))
            assert out["prediction"].tolist() == [{"ok": True}] * 3
            assert server.model_stats()["m2"].invocations == 3
            assert "m1" not in server.model_stats()


def test_bad_settings_are_rejected(ep: Endpoint) -> None:
    with pytest.raises(InvalidInputError, match="format"):
        Scorer(ep, format="xml")  # type: ignore[arg-type]
    with pytest.raises(InvalidInputError, match="rows_per_request"):
        Scorer(ep, rows_per_request=0)
    with pytest.raises(InvalidInputError, match="concurrency"):
        Scorer(ep, concurrency=500)
    with pytest.raises(InvalidInputError, match="error_column"):
        Scorer(ep, prediction_column="p", error_column="p")
    with pytest.raises(InvalidInputError, match="batch"):
        Scorer(ep)(42)
    with pytest.raises(InvalidInputError, match=r"columns: \['z'\] not in the frame"):
        Scorer(ep, columns=["x", "z"])(frame(2))


def test_pickles_without_credentials_and_shares_one_endpoint_per_process() -> None:
    import boto3

    session = boto3.Session(
        aws_access_key_id="AKIDEXAMPLE",
        aws_secret_access_key="very-secret-key",
        region_name="eu-west-1",
    )
    ep = Endpoint(
        "prod-endpoint",
        region="eu-west-1",
        boto3_session=session,
        config=ClientConfig(read_timeout=30.0),
    )
    scorer = Scorer(ep.model("m.tar.gz"), format="csv", rows_per_request=8, concurrency=4)
    blob = pickle.dumps(scorer)
    assert b"very-secret-key" not in blob
    assert b"AKIDEXAMPLE" not in blob
    first, second = pickle.loads(blob), pickle.loads(blob)
    assert first.endpoint is second.endpoint  # one client per worker process
    assert first.endpoint is not ep
    assert (first.endpoint.name, first.endpoint.region) == ("prod-endpoint", "eu-west-1")
    assert first.endpoint.config.read_timeout == 30.0
    assert (first.target_model, first.format, first.rows_per_request, first.concurrency) == (
        "m.tar.gz",
        "csv",
        8,
        4,
    )
    assert repr(first) == (
        "Scorer('prod-endpoint', target_model='m.tar.gz', format='csv', "
        "rows_per_request=8, concurrency=4)"
    )


def test_map_frames_is_what_spark_map_in_pandas_calls(ep: Endpoint) -> None:
    frames = iter([frame(3), frame(2)])
    outs = list(Scorer(ep, columns=["x"], format="csv").map_frames(frames))
    assert [o["prediction"].tolist() for o in outs] == [[0.0, 2.0, 4.0], [0.0, 2.0]]


def test_npy_answers_for_single_rows(ep: Endpoint) -> None:
    out = Scorer(ep, columns=["x"], format="npy")(frame(2))
    assert [float(p) for p in out["prediction"]] == [0.0, 2.0]
    assert NPY.content_type == "application/x-npy"
