from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from smclient import CSV, JSON, NPY, RAW, Codec, InvalidInputError

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text() | st.floats(allow_nan=False),
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
