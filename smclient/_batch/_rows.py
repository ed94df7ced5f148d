"""Row formats of the tabular helpers: how a chunk of rows becomes one request body, and how
the answer becomes one prediction per row. pandas and NumPy are imported only here, and only
when a frame is scored."""

from __future__ import annotations

import csv
import io
import json
from typing import Any, Literal

from .._errors import InvalidInputError

__all__ = ["FORMATS", "RowFormat", "decode_rows", "encode_rows"]

RowFormat = Literal["csv", "jsonlines", "json", "npy"]
FORMATS: dict[str, str] = {
    "csv": "text/csv",
    "jsonlines": "application/jsonlines",
    "json": "application/json",
    "npy": "application/x-npy",
}


def check_format(value: str) -> str:
    if value not in FORMATS:
        raise InvalidInputError(
            "format", f"got {value!r}", limit="one of " + ", ".join(repr(f) for f in FORMATS)
        )
    return value


class PredictionCountError(ValueError):
    """The answer held another number of predictions than the chunk had rows."""


def encode_rows(part: Any, fmt: str, *, single: bool) -> bytes:
    """The body for the rows of the DataFrame ``part``. ``single``: one row per request
    (the ``json`` format then sends the record itself rather than a list of one)."""
    if fmt == "csv":
        return str(part.to_csv(header=False, index=False, lineterminator="\n")).encode()
    if fmt == "jsonlines":
        text = str(part.to_json(orient="records", lines=True, date_format="iso"))
        return (text if text.endswith("\n") else text + "\n").encode()
    if fmt == "json":
        text = str(part.to_json(orient="records", date_format="iso"))
        if single:
            text = text[1:-1]  # "[{...}]" -> "{...}": pandas writes no spaces around them
        return text.encode()
    from .._codecs import NPY

    return NPY.encode(part.to_numpy())


def decode_rows(data: bytes, content_type: str | None, fmt: str, rows: int) -> list[Any]:
    """One prediction per row from an answer, read by its content type (else by ``fmt``).

    ``text/csv``: one line per row; a line of one field is that value, several fields a
    list; numbers become ``int``/``float``. JSON lines: one JSON value per line. JSON: with
    one row, the whole answer; else a list of ``rows`` values, or an object whose
    ``"predictions"`` member is one. NPY: an array whose first axis has ``rows`` entries.
    """
    kind = (content_type or "").split(";")[0].strip().lower()
    if kind in ("application/x-npy", "application/npy") or (not kind and fmt == "npy"):
        from .._codecs import NPY

        array = NPY.decode(data)
        values: list[Any] = [array] if array.ndim == 0 else list(array)
        if rows == 1 and len(values) != 1:
            values = [array]
    elif kind == "text/csv" or (kind not in _JSONISH and fmt == "csv"):
        lines = [row for row in csv.reader(io.StringIO(data.decode())) if row]
        values = [_scalar(row[0]) if len(row) == 1 else [_scalar(v) for v in row] for row in lines]
    elif kind in ("application/jsonlines", "application/x-jsonlines", "application/jsonl") or (
        kind not in _JSONISH and fmt == "jsonlines"
    ):
        values = [json.loads(line) for line in data.decode().splitlines() if line.strip()]
    else:
        doc = json.loads(data)
        if rows == 1 and not _is_wrapped(doc, 1):
            return [doc]
        if isinstance(doc, dict) and isinstance(doc.get("predictions"), list):
            doc = doc["predictions"]
        if not isinstance(doc, list):
            raise PredictionCountError(
                f"expected a JSON list of {rows} predictions, got {type(doc).__name__}"
            )
        values = doc
    if len(values) != rows:
        raise PredictionCountError(
            f"the answer holds {len(values)} predictions for {rows} rows "
            f"(content type {content_type!r})"
        )
    return values


_JSONISH = ("application/json", "application/jsonlines", "application/x-jsonlines")


def _is_wrapped(doc: Any, rows: int) -> bool:
    return (
        isinstance(doc, dict)
        and isinstance(doc.get("predictions"), list)
        and len(doc["predictions"]) == rows
    )


def _scalar(text: str) -> Any:
    for cast in (int, float):
        try:
            return cast(text)
        except ValueError:
            pass
    return text
