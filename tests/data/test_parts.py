"""Reading an npz array in chunks of rows: the chunks join to what numpy loads, in any layout."""

from __future__ import annotations

import io
import zipfile

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from pixelrnn.data import DatasetError
from pixelrnn.data.parts import npz_array


def npz_bytes(compressed: bool = False, **named) -> bytes:
    buffer = io.BytesIO()
    (np.savez_compressed if compressed else np.savez)(buffer, **named)
    return buffer.getvalue()


@settings(max_examples=25, deadline=None)
@given(x=arrays(st.sampled_from([np.uint8, np.int16, ">i4", np.int64]),
                st.tuples(st.integers(0, 9), st.integers(1, 4), st.integers(1, 5))),
       fortran=st.booleans(), compressed=st.booleans(), chunk_bytes=st.integers(1, 200))
def test_chunks_join_to_the_array(x, fortran, compressed, chunk_bytes):
    stored = np.asfortranarray(x) if fortran else x
    with npz_array(io.BytesIO(npz_bytes(compressed, data=stored)), "data", "mem") as rows:
        assert rows.shape == x.shape and rows.dtype == x.dtype
        chunks = list(rows.chunks(chunk_bytes))
    row_bytes = x[0].nbytes if len(x) else 0
    if not fortran:  # each chunk holds whole rows, at most chunk_bytes of them (one row at least)
        assert all(len(c) <= max(1, chunk_bytes // max(row_bytes, 1)) for c in chunks)
    joined = np.concatenate(chunks) if chunks else np.zeros((0, *x.shape[1:]), x.dtype)
    assert np.array_equal(joined, x)


def test_a_member_inside_a_zip_is_read_without_extracting(tmp_path):
    x = np.arange(5 * 12, dtype=np.uint8).reshape(5, 12)
    with zipfile.ZipFile(tmp_path / "outer.zip", "w", compression=zipfile.ZIP_DEFLATED) as outer:
        outer.writestr("folder/inner.npz", npz_bytes(data=x, labels=np.arange(5)))
    with zipfile.ZipFile(tmp_path / "outer.zip") as outer, outer.open("folder/inner.npz") as member:
        with npz_array(member, "data", "outer.zip:inner.npz") as rows:
            assert np.array_equal(np.concatenate(list(rows.chunks(24))), x)


@pytest.mark.parametrize("damage", ["truncated", "not_zip", "no_key", "object", "crc"])
def test_damaged_arrays_are_one_line_errors(damage):
    raw = npz_bytes(data=np.arange(4000, dtype=np.uint8).reshape(40, 100))
    if damage == "truncated":
        raw = raw[: len(raw) // 2]
    elif damage == "not_zip":
        raw = b"not a zip" * 10
    elif damage == "object":
        raw = npz_bytes(data=np.array([1, "a"], dtype=object))
    elif damage == "crc":  # one pixel flipped: the zip's CRC no longer matches
        position = raw.index(bytes(range(100)))
        raw = raw[:position] + b"\xff" + raw[position + 1:]
    key = "other" if damage == "no_key" else "data"
    with pytest.raises(DatasetError) as error:
        with npz_array(io.BytesIO(raw), key, "bad.npz") as rows:
            list(rows.chunks(300))
    message = str(error.value)
    assert "bad.npz" in message and "\n" not in message
