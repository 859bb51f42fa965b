"""Bounded containers (pixelrnn.archives): declared sizes against the bytes present and the limits, before allocating."""

from __future__ import annotations

import gzip
import io
import struct
import tarfile
import zipfile

import numpy as np
import pytest

from hostile import (address_space_bound, deflated_zeros, npy_bytes, npy_with_header, tar_with_size, zip_of, zip_overlap,
                     zip_patch)
from pixelrnn.archives import BoundedNpz, BoundedZip, gunzip, parse_npy, tar_members
from pixelrnn.errors import DatasetError
from pixelrnn.limits import using_limits

BOUND = 256 << 20  # address space any of these refusals may use: far below what the files declare


def refused(call, *args) -> str:
    with pytest.raises(DatasetError) as error:
        call(*args)
    assert "\n" not in str(error.value)
    return str(error.value)


# --------------------------------------------------------------------- .npy members
@pytest.mark.parametrize("array", [np.arange(24, dtype=np.uint8).reshape(2, 3, 4), np.asfortranarray(np.arange(6, dtype=">i2").reshape(2, 3)),
                                   np.array(True), np.zeros((0, 5), np.int64)])
def test_npy_round_trip(array):
    parsed = parse_npy(npy_bytes(array), "a.npy")
    assert parsed.dtype == array.dtype and np.array_equal(parsed, array)


def test_an_npy_header_must_describe_exactly_the_bytes_that_follow():
    with address_space_bound(BOUND):
        message = refused(parse_npy, npy_with_header(bytes(100), (100_000_000, 28, 28), "|u1"), "evil.npz[train]")
    assert message == ("evil.npz[train]: its header declares (100000000, 28, 28) of uint8 = 78,400,000,000 bytes, the file holds 100")
    assert "holds 101" in refused(parse_npy, npy_with_header(bytes(101), (100,), "|u1"), "long")
    assert "the shape (-2, -50)" in refused(parse_npy, npy_with_header(bytes(100), (-2, -50), "|u1"), "negative")


@pytest.mark.parametrize("descr", ["<f4", "|O", "<U3", "|S2", "|V4", "<c8", "<M8[s]"])
def test_only_integer_arrays_are_read(descr):
    assert f"expected integer pixels, found dtype {np.dtype(descr)}" in refused(parse_npy, npy_with_header(bytes(8), (1,), descr), "x")


def test_unknown_npy_versions_and_garbage_are_one_line():
    good = npy_bytes(np.zeros(3, np.uint8))
    assert "npy format version (9, 0)" in refused(parse_npy, good[:6] + b"\x09\x00" + good[8:], "x")
    assert "truncated or corrupt npy array" in refused(parse_npy, b"PK\x03\x04 nested zip", "x")


# --------------------------------------------------------------------- zip archives
def test_a_valid_npz_reads_like_numpy(tmp_path):
    arrays = {"train": np.arange(32, dtype=np.uint8).reshape(2, 1, 4, 4), "levels": np.array(5)}
    np.savez_compressed(tmp_path / "a.npz", **arrays)
    with BoundedNpz(tmp_path / "a.npz", "a.npz") as archive:
        assert sorted(archive.files) == ["levels", "train"] and "train" in archive and "test" not in archive
        assert all(np.array_equal(archive[key], value) for key, value in arrays.items())
        assert "has no array 'test' (it has train, levels)" in refused(archive.__getitem__, "test")


def test_zip_bombs_are_refused_before_they_are_decoded():
    bomb = deflated_zeros("zip", "train.npy")
    with address_space_bound(BOUND):
        assert "its compression ratio is 1,027 times, over the limit of 200" in refused(lambda: BoundedNpz(bomb, "bomb.npz")["train"])
    with using_limits(decoded_bytes=1 << 20):  # the decoded-size limit holds for members of any ratio
        assert "decoded size of small.npz:train.npy is" in refused(lambda: BoundedNpz(zip_of({"train.npy": npy_bytes(np.zeros(2 << 20, np.uint8))}),
                                                                                     "small.npz")["train"])


def test_zip_directories_that_lie_are_refused():
    data = zip_of({"train.npy": npy_bytes(np.zeros(100, np.uint8)), "test.npy": npy_bytes(np.zeros(10, np.uint8))})
    assert "member train.npy" in refused(BoundedZip, zip_overlap(data), "twin.zip")
    assert "overlaps the next member" in refused(BoundedZip, zip_patch(data, 0, "compressed", 10**6), "long.zip")
    assert "runs past the end of the archive" in refused(BoundedZip, zip_patch(data, 1, "compressed", 10**6), "tail.zip")
    with BoundedZip(zip_patch(data, 0, "size", 10**9), "lie.zip") as archive:
        assert "stored member declares 1,000,000,000 bytes but holds 228" in refused(archive.read, "train.npy")
    with BoundedZip(zip_patch(data, 0, "flags", 1), "locked.zip") as archive:
        assert "member is encrypted" in refused(archive.read, "train.npy")
    with BoundedZip(zip_patch(data, 0, "method", zipfile.ZIP_BZIP2), "bz2.zip") as archive:
        assert "compression method 12 is not read" in refused(archive.read, "train.npy")
    deflated = zip_of({"train.npy": npy_bytes(np.zeros(100, np.uint8))}, zipfile.ZIP_DEFLATED)
    with BoundedZip(zip_patch(deflated, 0, "size", 150), "short.zip") as archive:
        assert "truncated or corrupt zip member" in refused(archive.read, "train.npy")
    assert "truncated or corrupt zip archive" in refused(BoundedZip, data[: len(data) // 2], "cut.zip")


# --------------------------------------------------------------------- gzip and tar.gz
def test_gzip_streams_are_bounded_and_checked_to_their_end(tmp_path):
    path = tmp_path / "t.gz"
    path.write_bytes(deflated_zeros("gzip"))
    with address_space_bound(BOUND):
        assert "its compression ratio is" in refused(gunzip, path)
    good = gzip.compress(b"pixels" * 100)
    path.write_bytes(good)
    assert gunzip(path) == b"pixels" * 100
    path.write_bytes(good[:-8] + struct.pack("<I", 1) + good[-4:])  # a wrong CRC in the trailer
    assert "truncated or corrupt gzip file" in refused(gunzip, path)


def tar_gz(entries: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        for name, data in entries.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def test_tar_members_in_one_bounded_pass(tmp_path):
    path = tmp_path / "a.tar.gz"
    entries = {f"d/{k}": bytes([k]) * (k + 1) for k in range(5)}
    path.write_bytes(gzip.compress(tar_gz(entries)))
    assert tar_members(path, ["d/1", "d/3", "d/9"], max_entries=5) == {"d/1": entries["d/1"], "d/3": entries["d/3"]}
    assert "holds more than 4 entries" in refused(tar_members, path, ["d/0"], 4)
    path.write_bytes(gzip.compress(tar_with_size(tar_gz(entries), 2, 10**12)))
    with address_space_bound(BOUND):
        assert "decoded size of" in refused(tar_members, path, ["d/4"], 5)
    path.write_bytes(deflated_zeros("tar", "d/0"))
    with address_space_bound(BOUND):
        assert "its compression ratio is" in refused(tar_members, path, ["d/0"], 5)
    damaged = bytearray(gzip.compress(tar_gz(entries)))
    damaged[-5] ^= 1  # the CRC, after every wanted entry: found only by reading to the end
    path.write_bytes(bytes(damaged))
    assert "truncated or corrupt tar.gz archive" in refused(tar_members, path, ["d/0"], 5)
