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
    def content_type(self) -> str:
        """The MIME type sent as ``ContentType`` with a body this codec encoded (e.g.
        ``application/json``), unless the call gives its own ``content_type``."""
        ...

    def encode(self, value: Any) -> bytes:
        """``value`` as request body bytes; :class:`InvalidInputError` when it cannot be."""
        ...

    def decode(self, data: bytes) -> Any:
        """A response body (bytes) as a Python value."""
        ...


def json_bytes(value: Any, *, field: str = "body", allow_nan: bool = False) -> bytes:
    """``value`` as compact UTF-8 JSON; :class:`InvalidInputError` naming ``field`` when it
    cannot be: a type JSON does not have, NaN or an infinity (not JSON: most parsers refuse
    it) unless ``allow_nan``, a circular reference, or nesting deeper than Python's
    recursion limit."""
    try:
        text = json.dumps(value, separators=(",", ":"), ensure_ascii=False, allow_nan=allow_nan)
    except RecursionError:
        raise InvalidInputError(
            field, "is nested too deeply to be encoded as JSON", limit="nesting below ~900 levels"
        ) from None
    except (TypeError, ValueError) as exc:
        hint = (
            "use None, or JSONCodec(allow_nan=True) to send NaN/Infinity literals"
            if "Out of range float" in str(exc)
            else "bytes, str, a binary file or JSON data (dict, list, str, int, float...)"
        )
        raise InvalidInputError(field, f"cannot be encoded as JSON: {exc}", limit=hint) from None
    try:
        return text.encode()
    except UnicodeEncodeError:  # lone surrogates ("\ud800") have no UTF-8 form
        raise InvalidInputError(
            field, "contains a string that is not valid Unicode (a lone surrogate)"
        ) from None


@attrs.frozen
class JSONCodec:
    """JSON (UTF-8), compact separators.

    ``allow_nan`` (default ``False``): NaN and infinities are not JSON and most model
    servers refuse them, so encoding one raises :class:`InvalidInputError` before anything
    is sent; ``JSONCodec(allow_nan=True)`` sends them as the ``NaN`` / ``Infinity``
    literals Python's ``json`` module reads. Data nested deeper than Python's recursion
    limit (about 900 levels) is refused the same way.

    .. versionadded:: 0.1.0
    .. versionchanged:: 0.2.0
       NaN and infinities are refused unless ``allow_nan=True``.
    """

    content_type: str = "application/json"
    allow_nan: bool = False

    def encode(self, value: Any) -> bytes:
        """``value`` as compact UTF-8 JSON; :class:`InvalidInputError` for a value JSON
        cannot hold (NaN/infinity unless ``allow_nan``, circular or too deeply nested)."""
        return json_bytes(value, allow_nan=self.allow_nan)

    def decode(self, data: bytes) -> Any:
        """The JSON document in ``data`` (UTF-8) as Python values (``json.loads``)."""
        return json.loads(data)


@attrs.frozen
class CSVCodec:
    """CSV rows: encodes a row (sequence of scalars), a sequence of rows, a 1-D/2-D array,
    or ``str`` taken as ready-made CSV text; decodes to a list of rows of strings.

    .. versionadded:: 0.1.0
    """

    content_type: str = "text/csv"

    def encode(self, value: Any) -> bytes:
        """A row, a sequence of rows or a 1-D/2-D array as UTF-8 newline-ended CSV lines;
        a ``str`` is sent as it is. :class:`InvalidInputError` for anything else."""
        if isinstance(value, str):  # already CSV text
            return _utf8(value, "body")
        if not isinstance(value, list | tuple) and not hasattr(value, "tolist"):
            raise InvalidInputError(
                "body", f"CSV needs a row or a list of rows, got {type(value).__name__}"
            )
        if hasattr(value, "tolist"):  # a NumPy array, without importing NumPy
            value = value.tolist()
        rows = value if value and isinstance(value[0], list | tuple) else [value]
        out = io.StringIO()
        csv.writer(out, lineterminator="\n").writerows(rows)
        return _utf8(out.getvalue(), "body")

    def decode(self, data: bytes) -> Any:
        """UTF-8 CSV text as a list of rows, each a list of strings."""
        return list(csv.reader(io.StringIO(data.decode())))


@attrs.frozen
class RawCodec:
    """Bytes as they are.

    .. versionadded:: 0.1.0
    """

    content_type: str = "application/octet-stream"

    def encode(self, value: Any) -> bytes:
        """``bytes``, ``bytearray`` or ``memoryview`` as ``bytes``, unchanged;
        :class:`InvalidInputError` for any other type."""
        if isinstance(value, bytes | bytearray | memoryview):
            return bytes(value)
        raise InvalidInputError("body", f"RAW needs bytes, got {type(value).__name__}")

    def decode(self, data: bytes) -> Any:
        """The response body as it is (``bytes``)."""
        return data


@attrs.frozen
class NPYCodec:
    """NumPy arrays in ``.npy`` format (``smclient[numpy]``).

    .. versionadded:: 0.1.0
    """

    content_type: str = "application/x-npy"

    def encode(self, value: Any) -> bytes:
        """``value`` (anything ``numpy.asarray`` takes) in ``.npy`` format, without pickle;
        :class:`InvalidInputError` for ragged or object arrays, ``ImportError`` without NumPy."""
        np = _numpy()
        out = io.BytesIO()
        try:
            np.save(out, np.asarray(value), allow_pickle=False)
        except (TypeError, ValueError) as exc:  # ragged or object arrays need pickle
            raise InvalidInputError(
                "body", f"cannot be saved as .npy: {exc}", limit="a numeric array"
            ) from None
        return out.getvalue()

    def decode(self, data: bytes) -> Any:
        """A ``.npy`` body as a NumPy array (pickled object arrays are refused)."""
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


def read_file(fileobj: BinaryIO, field: str = "body") -> bytes:
    """Read a binary file object up to the real-time limit; restore its position on error."""
    if getattr(fileobj, "closed", False) is True:
        raise InvalidInputError(field, "the file object is closed", limit="an open binary file")
    if not callable(getattr(fileobj, "seekable", None)) or not callable(fileobj.read):
        raise InvalidInputError(
            field,
            f"{type(fileobj).__name__} has read() but is not a file object (no seekable())",
            limit="a binary file object (io.BufferedIOBase), or bytes: io.BytesIO(obj.read())",
        )
    try:
        start = fileobj.tell() if fileobj.seekable() else None
        data = fileobj.read(MAX_BODY_BYTES + 1)
    except (OSError, ValueError) as exc:  # closed underneath, not readable, I/O error
        raise InvalidInputError(field, f"could not be read: {exc}") from None
    if not isinstance(data, bytes | bytearray):
        raise InvalidInputError(field, "file objects must be opened in binary mode ('rb')")
    if len(data) > MAX_BODY_BYTES:
        if start is not None:
            fileobj.seek(start)  # nothing lost: the caller can send it another way
        body_size(MAX_BODY_BYTES + 1 if start is None else _remaining(fileobj, start), field)
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
    if codec is not None and not isinstance(codec, Codec):
        raise InvalidInputError(
            "codec",
            f"expected a codec, got {type(codec).__name__}",
            limit="smclient.JSON, CSV, RAW, NPY or an object with content_type, encode, decode",
        )
    if isinstance(body, bytes | bytearray | memoryview):
        data = bytes(body)
    elif codec is None and isinstance(body, str):
        data = _utf8(body, "body")
    elif hasattr(body, "read"):
        data = read_file(body)
    else:
        chosen = codec or JSON
        data = chosen.encode(body)
        if not isinstance(data, bytes | bytearray | memoryview):
            raise InvalidInputError(
                "codec", f"{type(chosen).__name__}.encode returned {type(data).__name__}, not bytes"
            )
        data = bytes(data)
        content_type = content_type or chosen.content_type
    body_size(len(data))
    if content_type is None and codec is not None:
        content_type = codec.content_type
    return data, content_type


def _utf8(text: str, field: str) -> bytes:
    try:
        return text.encode()
    except UnicodeEncodeError:  # lone surrogates have no UTF-8 form
        raise InvalidInputError(
            field, "contains a string that is not valid Unicode (a lone surrogate)"
        ) from None


def encode_open_body(body: Any) -> tuple[Any, str | None]:
    """A session's open body checked before anything is sent, errors naming ``open_body``:
    bytes and str as they are (str must be valid Unicode), a binary file read, anything else
    encoded as JSON. Returns the body and the content type it implies (JSON's for data)."""
    content_type = None
    if isinstance(body, bytes | bytearray | memoryview):
        data = bytes(body)
    elif isinstance(body, str):
        data = _utf8(body, "open_body")
    elif hasattr(body, "read"):
        data = read_file(body, "open_body")
    else:
        data, content_type = json_bytes(body, field="open_body"), JSON.content_type
    body_size(len(data), "open_body")
    return data, content_type
