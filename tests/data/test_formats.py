"""Format parsers (pixelrnn.data.formats) against hostile input: amat text scanned as bytes, pickles that ask for more than they hold."""

from __future__ import annotations

import pickle
import struct

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from hostile import Call, address_space_bound
from hostile_readers import hostile_pickle
from pixelrnn.data.formats import AMAT_CHUNK, parse_amat, parse_cifar_batch, parse_idx_images
from pixelrnn.errors import DatasetError
from pixelrnn.limits import using_limits


def refused(call, *args) -> str:
    with pytest.raises(DatasetError) as error:
        call(*args)
    assert "\n" not in str(error.value)
    return str(error.value)


@settings(max_examples=30, deadline=None, derandomize=True)
@given(st.lists(st.tuples(st.lists(st.integers(0, 1), min_size=784, max_size=784), st.sampled_from([" ", "  ", "\t", " \t "]),
                          st.integers(0, 3)), min_size=1, max_size=3), st.booleans())
def test_amat_with_any_blanks_equals_a_token_by_token_reading(rows, crlf):
    newline = "\r\n" if crlf else "\n"
    text = "".join(newline * blank_lines + separator.join(map(str, values)) + newline for values, separator, blank_lines in rows)
    parsed = parse_amat(text.encode())
    assert np.array_equal(parsed.reshape(len(rows), 784), np.array([values for values, _, _ in rows]))


def test_amat_errors_name_the_line_of_the_file():
    line = " ".join(["0"] * 784) + "\n"
    assert "line 4 has 783 values" in refused(parse_amat, (line + "\n\n" + line[2:]).encode(), "a.amat")
    assert "line 2 holds a value other than 0 or 1" in refused(parse_amat, (line + "2" + line[1:]).encode(), "a.amat")
    assert "line 1 holds a value other than 0 or 1" in refused(parse_amat, ("01" + line[1:]).encode(), "a.amat")
    assert "empty .amat file" in refused(parse_amat, b"\n \n\t\n", "a.amat")


def test_an_amat_line_longer_than_a_chunk_is_refused_in_bounded_memory():
    with address_space_bound(256 << 20):
        assert f"line 2 is longer than {AMAT_CHUNK:,} bytes" in refused(parse_amat, b"\n" + b"0 " * AMAT_CHUNK, "a.amat")
        assert "line 1 has 1 values" in refused(parse_amat, b"0" * (AMAT_CHUNK - 1) + b"\n", "a.amat")
        assert "empty .amat file" in refused(parse_amat, b"\n" * (8 * AMAT_CHUNK), "a.amat")  # a flood of blank lines


def test_idx_image_size_is_bounded():
    header = b"\x00\x00\x08\x03" + struct.pack(">III", 1, 5000, 5000)
    assert "an image of 5000x5000 is 25,000,000 pixels" in refused(parse_idx_images, header, "t.idx")
    with using_limits(image_pixels=25_000_000):
        assert "IDX header says 1x5000x5000" in refused(parse_idx_images, header, "t.idx")


@pytest.mark.parametrize("kind,message", [
    ("length", "expected 1000000000000 bytes in a bytes8, but only 4 remain"),
    ("reconstruct", "an array of shape (1000000000000,) is over the decoded-bytes limit"),
    ("ndarray", "_ArrayType() takes no arguments"),  # numpy.ndarray inside a pickle is never called
    ("frombuffer", "cannot reshape array of size 3 into shape (1000000000000,)"),
    ("global", "eval is not allowed"),
])
def test_a_pickle_gets_nothing_it_does_not_hold(kind, message):
    with address_space_bound(256 << 20):
        assert message in refused(parse_cifar_batch, hostile_pickle(kind, 10**12), "test_batch")


def test_reconstruct_takes_only_the_array_type():
    multiarray = np._core.multiarray
    raw = pickle.dumps({b"data": Call(multiarray._reconstruct, np.ma.MaskedArray, (0,), b"b")}, protocol=2)
    assert "not allowed" in refused(parse_cifar_batch, raw, "test_batch")
    raw = pickle.dumps({b"data": Call(multiarray._reconstruct, np.ndarray, (2, -1), b"b")}, protocol=2)
    assert "a shape of sizes" in refused(parse_cifar_batch, raw, "test_batch")
