"""Codecs turn Python values into request bodies and response bodies back into values.

A codec is any object with ``content_type``, ``encode(value) -> bytes`` and
``decode(data: bytes) -> value``. ``JSON``, ``CSV`` and ``RAW`` are provided;
``NPY`` (NumPy ``.npy``) needs the ``smclient[numpy]`` extra and imports NumPy
only when used.
"""

from __future__ import annotations

import csv
import io
import json
from typing import Any, BinaryIO, Protocol, runtime_checkable

import attrs

from ._errors import InvalidInputError
from ._validation import MAX_BODY_BYTES, body_size

__all__ = ["CSV", "JSON", "NPY", "RAW", "CSVCodec", "Codec", "JSONCodec", "NPYCodec", "RawCodec"]


@runtime_checkable
class Codec(Protocol):
    """Encodes request values and decodes response bodies.

    .. versionadded:: 0.1.0
    """

    @property
    def content_type(self) -> str: ...

    def encode(self, value: Any) -> bytes: ...

    def decode(self, data: bytes) -> Any: ...


@attrs.frozen
class JSONCodec:
    """JSON (UTF-8), compact separators.

    .. versionadded:: 0.1.0
    """

    content_type: str = "application/json"

    def encode(self, value: Any) -> bytes:
        try:
            return json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode()
        except (TypeError, ValueError) as exc:
            raise InvalidInputError(
                "body", f"cannot be encoded as JSON: {exc}", limit="bytes, str, file or JSON data"
            ) from None

    def decode(self, data: bytes) -> Any:
        return json.loads(data)


@attrs.frozen
class CSVCodec:
    """CSV rows: encodes a row (sequence of scalars), a sequence of rows, a 1-D/2-D array,
    or ``str`` taken as ready-made CSV text; decodes to a list of rows of strings.

    .. versionadded:: 0.1.0
    """

    content_type: str = "text/csv"

    def encode(self, value: Any) -> bytes:
        if isinstance(value, str):  # already CSV text
            return value.encode()
        if not isinstance(value, list | tuple) and not hasattr(value, "tolist"):
            raise InvalidInputError(
                "body", f"CSV needs a row or a list of rows, got {type(value).__name__}"
            )
        if hasattr(value, "tolist"):  # a NumPy array, without importing NumPy
            value = value.tolist()
        rows = value if value and isinstance(value[0], list | tuple) else [value]
        out = io.StringIO()
        csv.writer(out, lineterminator="\n").writerows(rows)
        return out.getvalue().encode()

    def decode(self, data: bytes) -> Any:
        return list(csv.reader(io.StringIO(data.decode())))


@attrs.frozen
class RawCodec:
    """Bytes as they are.

    .. versionadded:: 0.1.0
    """

    content_type: str = "application/octet-stream"

    def encode(self, value: Any) -> bytes:
        if isinstance(value, bytes | bytearray | memoryview):
            return bytes(value)
        raise InvalidInputError("body", f"RAW needs bytes, got {type(value).__name__}")

    def decode(self, data: bytes) -> Any:
        return data


@attrs.frozen
class NPYCodec:
    """NumPy arrays in ``.npy`` format (``smclient[numpy]``).

    .. versionadded:: 0.1.0
    """

    content_type: str = "application/x-npy"

    def encode(self, value: Any) -> bytes:
        np = _numpy()
        out = io.BytesIO()
        np.save(out, np.asarray(value), allow_pickle=False)
        return out.getvalue()

    def decode(self, data: bytes) -> Any:
        return _numpy().load(io.BytesIO(data), allow_pickle=False)


def _numpy() -> Any:
    try:
        import numpy
    except ImportError:
        raise ImportError("the NPY codec needs NumPy: pip install 'smclient[numpy]'") from None
    return numpy


JSON = JSONCodec()
CSV = CSVCodec()
RAW = RawCodec()
NPY = NPYCodec()


def read_file(fileobj: BinaryIO) -> bytes:
    """Read a binary file object up to the real-time limit; restore its position on error."""
    start = fileobj.tell() if fileobj.seekable() else None
    data = fileobj.read(MAX_BODY_BYTES + 1)
    if not isinstance(data, bytes | bytearray):
        raise InvalidInputError("body", "file objects must be opened in binary mode ('rb')")
    if len(data) > MAX_BODY_BYTES:
        if start is not None:
            fileobj.seek(start)  # nothing lost: the caller can send it another way
        body_size(MAX_BODY_BYTES + 1 if start is None else _remaining(fileobj, start))
    return bytes(data)


def _remaining(fileobj: BinaryIO, start: int) -> int:
    end = fileobj.seek(0, io.SEEK_END)
    fileobj.seek(start)
    return end - start


def encode_body(
    body: Any, *, codec: Codec | None, content_type: str | None
) -> tuple[bytes, str | None]:
    """The request bytes and content type for ``body``.

    ``bytes``-like are sent as they are, ``str`` as UTF-8, binary file objects are
    read; anything else is encoded with ``codec`` (default JSON, whose content type
    becomes the default). An explicit ``codec`` encodes every body that is not bytes.
    """
    if isinstance(body, bytes | bytearray | memoryview):
        data = bytes(body)
    elif codec is None and isinstance(body, str):
        data = body.encode()
    elif hasattr(body, "read"):
        data = read_file(body)
    else:
        chosen = codec or JSON
        data = chosen.encode(body)
        content_type = content_type or chosen.content_type
    body_size(len(data))
    if content_type is None and codec is not None:
        content_type = codec.content_type
    return data, content_type
