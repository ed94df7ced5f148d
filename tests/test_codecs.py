from __future__ import annotations

import io
import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from smclient import CSV, JSON, NPY, RAW, Codec, InvalidInputError, JSONCodec

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.text()
    | st.floats(allow_nan=False, allow_infinity=False),
    lambda inner: st.lists(inner) | st.dictionaries(st.text(), inner),
    max_leaves=20,
)


@given(json_values)
def test_json_round_trips(value: object) -> None:
    assert JSON.decode(JSON.encode(value)) == value


def test_csv_rows() -> None:
    assert CSV.encode([1, 2, "a,b"]) == b'1,2,"a,b"\n'
    assert CSV.decode(CSV.encode([[1, 2], [3, 4]])) == [["1", "2"], ["3", "4"]]


def test_raw_only_takes_bytes() -> None:
    assert RAW.decode(RAW.encode(b"\x00\x01")) == b"\x00\x01"
    with pytest.raises(InvalidInputError):
        RAW.encode("text")


def test_npy_round_trips() -> None:
    array = np.arange(6, dtype=np.float32).reshape(2, 3)
    back = NPY.decode(NPY.encode(array))
    assert back.dtype == np.float32
    assert (back == array).all()


def test_codecs_satisfy_the_protocol() -> None:
    for codec in (JSON, CSV, RAW, NPY):
        assert isinstance(codec, Codec)


def test_json_rejects_what_it_cannot_encode() -> None:
    with pytest.raises(InvalidInputError, match="JSON"):
        JSON.encode({1, 2})


def test_csv_takes_ready_made_text_and_rejects_scalars() -> None:
    assert CSV.encode("1.5,2.0\n3,4") == b"1.5,2.0\n3,4"
    with pytest.raises(InvalidInputError, match="CSV"):
        CSV.encode(5)


@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf, {"x": [1.0, math.nan]}])
def test_json_refuses_nan_and_infinity_unless_allowed(value: object) -> None:
    with pytest.raises(InvalidInputError, match="allow_nan=True") as info:
        JSON.encode(value)
    assert info.value.field == "body"


def test_json_allow_nan_sends_the_literals() -> None:
    assert JSONCodec(allow_nan=True).encode([math.nan, math.inf, -math.inf]) == (
        b"[NaN,Infinity,-Infinity]"
    )


def test_json_refuses_deep_nesting_circles_and_lone_surrogates() -> None:
    deep: list[object] = []
    for _ in range(100_000):
        deep = [deep]
    with pytest.raises(InvalidInputError, match="nested too deeply"):
        JSON.encode(deep)
    circle: list[object] = []
    circle.append(circle)
    with pytest.raises(InvalidInputError, match="JSON"):
        JSON.encode(circle)
    with pytest.raises(InvalidInputError, match="surrogate"):
        JSON.encode("\ud800")
    with pytest.raises(InvalidInputError, match="surrogate"):
        CSV.encode("\ud800")


def test_npy_refuses_ragged_arrays() -> None:
    with pytest.raises(InvalidInputError, match="npy"):
        NPY.encode([[1, 2], [3]])


class _ReadOnly:
    def read(self, size: int = -1) -> bytes:
        return b"x"


def test_file_bodies_closed_or_not_file_objects_are_refused() -> None:
    from smclient._codecs import encode_body

    closed = io.BytesIO(b"x")
    closed.close()
    with pytest.raises(InvalidInputError, match="closed") as info:
        encode_body(closed, codec=None, content_type=None)
    assert info.value.field == "body"
    with pytest.raises(InvalidInputError, match="seekable"):
        encode_body(_ReadOnly(), codec=None, content_type=None)
    with pytest.raises(InvalidInputError, match="binary mode"):
        encode_body(io.StringIO("text"), codec=None, content_type=None)
