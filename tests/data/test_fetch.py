"""Where dataset files are found and fetched (pixelrnn.data.fetch): the data folder, checksums, downloads."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest

from dataset_files import _private_cache, one_line_error, write_amat  # noqa: F401  (the fixture applies here)
from pixelrnn import data as D
from pixelrnn.data import DatasetError, data_dir_from_env, fetch, load_dataset


def test_data_dir_from_env(monkeypatch, tmp_path):
    monkeypatch.delenv("PIXELRNN_DATA_DIR", raising=False)
    assert data_dir_from_env() is None
    monkeypatch.setenv("PIXELRNN_DATA_DIR", "")
    assert data_dir_from_env() is None
    monkeypatch.setenv("PIXELRNN_DATA_DIR", str(tmp_path))
    assert data_dir_from_env() == tmp_path


def test_env_data_dir_is_used_and_missing_dir_is_reported(monkeypatch, tmp_path):
    x = np.eye(28, dtype=np.uint8)[None].repeat(3, 0)
    write_amat(tmp_path / "binarized_mnist_test.amat", x)  # directly in the root
    monkeypatch.setenv("PIXELRNN_DATA_DIR", str(tmp_path))
    assert np.array_equal(load_dataset("binarized_mnist", "test", verify=False).images[:, 0], x)
    monkeypatch.setenv("PIXELRNN_DATA_DIR", str(tmp_path / "nope"))
    with pytest.raises(DatasetError, match="PIXELRNN_DATA_DIR"):
        load_dataset("binarized_mnist", "test")


def test_truncated_canonical_file_is_reported(tmp_path):
    path = write_amat(tmp_path / "binarized_mnist" / "binarized_mnist_valid.amat",
                      np.zeros((2, 784), np.uint8))
    with pytest.raises(DatasetError) as e:
        load_dataset("binarized_mnist", "valid", data_dir=tmp_path)  # verify=None
    msg = one_line_error(e)
    assert "expected 15680000 bytes, found 3136" in msg and str(path) in msg
    assert len(load_dataset("binarized_mnist", "valid", data_dir=tmp_path, verify=False)) == 2


def test_checksum_mismatch_cache_and_unknown_checksum(tmp_path, monkeypatch):
    path = write_amat(tmp_path / "binarized_mnist_test.amat", np.ones((2, 784), np.uint8))
    sha = hashlib.sha256(path.read_bytes()).hexdigest()
    url = "http://example.invalid/binarized_mnist_test.amat"
    monkeypatch.setitem(D.FILES, path.name, D.RemoteFile(url, path.stat().st_size, "0" * 64))
    with pytest.raises(DatasetError) as e:
        load_dataset("binarized_mnist", "test", data_dir=tmp_path)
    msg = one_line_error(e)
    assert all(s in msg for s in (str(path), "0" * 64, sha, url))
    monkeypatch.setitem(D.FILES, path.name, D.RemoteFile(url, path.stat().st_size, sha))
    assert load_dataset("binarized_mnist", "test", data_dir=tmp_path).images.sum() == 2 * 784
    monkeypatch.setattr(fetch.hashlib, "new", None)  # a second load must reuse the cached digest
    assert len(load_dataset("binarized_mnist", "test", data_dir=tmp_path, verify=True)) == 2
    monkeypatch.setitem(D.FILES, path.name, D.RemoteFile(url))
    with pytest.raises(DatasetError, match="no checksum is known"):
        load_dataset("binarized_mnist", "test", data_dir=tmp_path, verify=True)


def test_missing_file_message(tmp_path):
    with pytest.raises(DatasetError) as e:
        load_dataset("binarized_mnist", "test", data_dir=tmp_path)
    msg = one_line_error(e)
    assert "binarized_mnist_test.amat" in msg and str(tmp_path) in msg and "--download" in msg
    assert D.FILES["binarized_mnist_test.amat"].url in msg and "--data-dir" in msg
    with pytest.raises(DatasetError) as e:
        load_dataset("mnist", "valid", data_dir=tmp_path)
    msg = one_line_error(e)
    assert "train-images-idx3-ubyte.gz" in msg and "ossci-datasets" in msg


def test_download_is_atomic_verified_and_idempotent(tmp_path, monkeypatch):
    monkeypatch.delenv("PIXELRNN_DATA_DIR", raising=False)
    eye = np.eye(28, dtype=np.uint8)
    src = write_amat(tmp_path / "src" / "binarized_mnist_test.amat", eye[None])
    raw = src.read_bytes()
    cache = tmp_path / "cache"
    remote = D.RemoteFile(src.as_uri(), len(raw), hashlib.sha256(raw).hexdigest())
    monkeypatch.setitem(D.FILES, src.name, remote)
    s = load_dataset("binarized_mnist", "test", download=True, cache_dir=cache)
    assert np.array_equal(s.images[0, 0], eye)
    assert (cache / "binarized_mnist" / src.name).is_file()
    # Already there and verified: no second fetch (the URL is now dead).
    dead = (tmp_path / "gone").as_uri()
    monkeypatch.setitem(D.FILES, src.name, D.RemoteFile(dead, len(raw), remote.sha256))
    assert len(load_dataset("binarized_mnist", "test", download=True, cache_dir=cache)) == 1
    # A download with the wrong checksum leaves nothing behind.
    bad = D.RemoteFile(src.as_uri(), len(raw), "f" * 64)
    monkeypatch.setitem(D.FILES, "binarized_mnist_valid.amat", bad)
    with pytest.raises(DatasetError, match="sha256 mismatch"):
        load_dataset("binarized_mnist", "valid", download=True, cache_dir=cache)
    assert sorted(p.name for p in (cache / "binarized_mnist").iterdir()) == [src.name]
    with pytest.raises(DatasetError, match="failed"):  # unreachable URL
        fetch._download(D.RemoteFile(dead), tmp_path / "c2" / "x")
    assert list((tmp_path / "c2").iterdir()) == []
