"""The paper's datasets (pixelrnn.data.sources) on tiny fixtures written in the official formats, plus real data.

The real-data tests run only when PIXELRNN_DATA_DIR points at a folder holding
binarized_mnist/*.amat, mnist/*.gz and cifar10/cifar10_subset.npz.
"""

from __future__ import annotations

import gzip
import io
import os
import pickle
import tempfile
import time
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from dataset_files import (FAST, _private_cache, cifar_batch, idx_bytes, one_line_error, rand_u8,  # noqa: F401  (the fixture applies here)
                           write_amat, write_cifar, write_idx_gz)
from pixelrnn import data as D
from pixelrnn.data import DATASETS, DatasetError, ImageSet, data_dir_from_env, load_dataset


# ----------------------------------------------------------------------------- ImageSet, names

def test_imageset_properties_and_validation():
    s = ImageSet("x", "train", np.zeros((2, 3, 4, 5), np.uint8), 2)
    assert (len(s), s.channels, s.height, s.width) == (2, 3, 4, 5)
    ro = np.zeros((1, 1, 2, 2), np.uint8)
    ro.flags.writeable = False
    assert ImageSet("x", "train", ro, 2).images.flags.writeable
    with pytest.raises(DatasetError):
        ImageSet("x", "train", np.zeros((2, 4, 5), np.uint8), 2)
    with pytest.raises(DatasetError):
        ImageSet("x", "train", np.full((1, 1, 2, 2), 2, np.uint8), 2)


def test_imageset_feeds_a_dataloader():
    from torch.utils.data import DataLoader

    images = np.random.default_rng(0).integers(0, 4, (10, 1, 3, 2), dtype=np.uint8)
    s = ImageSet("x", "train", images, 4)
    assert s[3].dtype == torch.int64 and torch.equal(s[3], torch.from_numpy(images[3]).long())
    batches = list(DataLoader(s, batch_size=4, shuffle=False))
    assert [tuple(b.shape) for b in batches] == [(4, 1, 3, 2), (4, 1, 3, 2), (2, 1, 3, 2)]
    assert torch.equal(torch.cat(batches), torch.from_numpy(images).long())


def test_unknown_dataset_and_split(tmp_path):
    with pytest.raises(DatasetError) as e:
        load_dataset("cifar100")
    msg = one_line_error(e)
    assert all(name in msg for name in DATASETS) and "folder:PATH" in msg
    with pytest.raises(DatasetError) as e:
        load_dataset("binarized_mnist", "validation", data_dir=tmp_path)
    msg = one_line_error(e)
    assert "'validation'" in msg and "train, valid, test" in msg
    with pytest.raises(DatasetError, match="accepted: all, train, valid, test"):
        load_dataset(f"folder:{tmp_path}", "validation")
    assert D.dataset_splits("imagenet32") == ("train", "test")


# ----------------------------------------------------------------------------- binarized MNIST

@FAST
@given(x=arrays(np.uint8, st.tuples(st.integers(1, 4), st.just(28), st.just(28)),
                elements=st.integers(0, 1)),
       split=st.sampled_from(["train", "valid", "test"]), crlf=st.booleans())
def test_amat_round_trip(x, split, crlf):
    with tempfile.TemporaryDirectory() as d:
        write_amat(Path(d) / "binarized_mnist" / f"binarized_mnist_{split}.amat", x,
                   "\r\n" if crlf else "\n")
        s = load_dataset("binarized_mnist", split, data_dir=d, verify=False)
    assert s.images.shape == (len(x), 1, 28, 28) and s.levels == 2
    assert np.array_equal(s.images[:, 0], x)  # row-major 28x28


@pytest.mark.parametrize("damage", ["short_line", "bad_value", "glued", "empty"])
def test_amat_corrupt(tmp_path, damage):
    path = tmp_path / "binarized_mnist_test.amat"
    lines = [" ".join(["0"] * 784)] * 3
    if damage == "short_line":
        lines[1] = lines[1][:-2]
    elif damage == "bad_value":
        lines[2] = "2" + lines[2][1:]
    elif damage == "glued":
        lines[0] = "01" + lines[0][3:]
    path.write_text("" if damage == "empty" else "\n".join(lines) + "\n")
    with pytest.raises(DatasetError) as e:
        load_dataset("binarized_mnist", "test", data_dir=tmp_path, verify=False)
    assert str(path) in one_line_error(e)


# ----------------------------------------------------------------------------- MNIST

@FAST
@given(x=arrays(np.uint8, st.tuples(st.integers(1, 5), st.integers(1, 6), st.integers(1, 6))))
def test_idx_round_trip(x):
    with tempfile.TemporaryDirectory() as d:
        write_idx_gz(Path(d) / "mnist" / "t10k-images-idx3-ubyte.gz", x)
        s = load_dataset("mnist", "test", data_dir=d, verify=False)
    assert s.levels == 256 and np.array_equal(s.images[:, 0], x)


def test_mnist_train_valid_split(tmp_path):
    x = rand_u8(np.random.default_rng(0), (60000, 1, 2))
    write_idx_gz(tmp_path / "MNIST" / "raw" / "train-images-idx3-ubyte.gz", x)
    got = {s: load_dataset("mnist", s, data_dir=tmp_path, verify=False).images[:, 0]
           for s in ("train", "valid", "train_full")}
    assert len(got["train"]) == 50000 and len(got["valid"]) == 10000
    assert np.array_equal(got["train"], x[:50000]) and np.array_equal(got["valid"], x[50000:])
    assert np.array_equal(got["train_full"], x)


@pytest.mark.parametrize("damage", ["truncated_gz", "not_gz", "bad_magic", "short_pixels"])
def test_idx_corrupt(tmp_path, damage):
    path = tmp_path / "t10k-images-idx3-ubyte.gz"
    good = idx_bytes(np.zeros((4, 5, 5), np.uint8))
    raw = {"truncated_gz": gzip.compress(good)[:-12], "not_gz": good,
           "bad_magic": gzip.compress(b"\x00\x00\x08\x01" + good[4:]),
           "short_pixels": gzip.compress(good[:-3])}[damage]
    path.write_bytes(raw)
    with pytest.raises(DatasetError) as e:
        load_dataset("mnist", "test", data_dir=tmp_path, verify=False)
    assert str(path) in one_line_error(e)


# ----------------------------------------------------------------------------- CIFAR-10

def _cifar_fixture(root: Path, archive: bool, n: int = 4, protocol: int = 2):
    rng = np.random.default_rng(n)
    xs = {f"data_batch_{i}": rand_u8(rng, (n, 3, 32, 32)) for i in range(1, 6)}
    xs["test_batch"] = rand_u8(rng, (n + 1, 3, 32, 32))
    write_cifar(root / "cifar10", {k: cifar_batch(v, protocol) for k, v in xs.items()}, archive)
    return np.concatenate([xs[f"data_batch_{i}"] for i in range(1, 6)]), xs["test_batch"]


@pytest.mark.parametrize("archive", [False, True])
@pytest.mark.parametrize("protocol", [2, 5, "numpy1"])
def test_cifar_round_trip_and_splits(tmp_path, archive, protocol):
    train, test = _cifar_fixture(tmp_path, archive, protocol=protocol)
    got = {s: load_dataset("cifar10", s, data_dir=tmp_path, verify=False).images
           for s in ("train", "valid", "test", "train_full")}
    assert np.array_equal(got["train_full"], train) and np.array_equal(got["test"], test)
    assert np.array_equal(got["train"], train[:18]) and np.array_equal(got["valid"], train[18:])
    assert got["test"].shape[1:] == (3, 32, 32)


def test_cifar_chw_order(tmp_path):
    x = np.zeros((1, 3, 32, 32), np.uint8)
    x[0, 0], x[0, 1], x[0, 2] = 10, 20, 30  # R, G, B planes
    x[0, 1, 0, 5] = 99  # G at row 0, column 5: offset 1024 + 5 in the row
    row = x.reshape(1, 3072)
    assert row[0, 1024 + 5] == 99
    write_cifar(tmp_path, {"test_batch": cifar_batch(x)}, archive=False)
    assert np.array_equal(load_dataset("cifar10", "test", data_dir=tmp_path).images, x)


class _Evil:
    def __init__(self, func, *args):
        self.func, self.args = func, args

    def __reduce__(self):
        return self.func, self.args


@pytest.mark.parametrize("archive", [False, True])
@pytest.mark.parametrize("how", ["os.system", "builtins.exec"])
def test_malicious_pickle_is_refused(tmp_path, archive, how):
    marker = tmp_path / "pwned"
    evil = (_Evil(os.system, f"touch '{marker}'") if how == "os.system"
            else _Evil(exec, f"open({str(marker)!r}, 'w').close()"))
    payload = pickle.dumps({b"data": evil, b"labels": [0]}, protocol=2)
    write_cifar(tmp_path, {"test_batch": payload}, archive)
    with pytest.raises(DatasetError) as e:
        load_dataset("cifar10", "test", data_dir=tmp_path, verify=False)
    assert "not allowed" in one_line_error(e)
    assert not marker.exists()


def test_restricted_unpickler_limits_allowed_globals():
    import codecs

    for obj in (_Evil(codecs.encode, "x", "rot13"), _Evil(getattr, 0, "real"),
                {b"data": np.array([1, "a"], dtype=object)}):
        with pytest.raises(DatasetError):
            D.parse_cifar_batch(pickle.dumps(obj, protocol=2), "batch")


def test_cifar_missing_and_incomplete(tmp_path):
    with pytest.raises(DatasetError) as e:
        load_dataset("cifar10", "test", data_dir=tmp_path)
    msg = one_line_error(e)
    assert "cifar-10-python.tar.gz" in msg and "cifar-10-batches-py" in msg and "kriz" in msg
    write_cifar(tmp_path, {"test_batch": cifar_batch(np.zeros((1, 3, 32, 32), np.uint8))}, True)
    with pytest.raises(DatasetError, match="data_batch_1"):
        load_dataset("cifar10", "train", data_dir=tmp_path, verify=False)
    (tmp_path / "cifar-10-python.tar.gz").write_bytes(b"\x1f\x8b garbage")
    with pytest.raises(DatasetError, match="corrupt"):
        load_dataset("cifar10", "test", data_dir=tmp_path, verify=False)
    with pytest.raises(DatasetError, match="expected 170498071 bytes"):
        load_dataset("cifar10", "test", data_dir=tmp_path)


def test_cifar10_subset(tmp_path):
    rng = np.random.default_rng(1)
    train, test = rand_u8(rng, (50, 32, 32, 3)), rand_u8(rng, (7, 32, 32, 3))
    (tmp_path / "cifar10").mkdir()
    np.savez(tmp_path / "cifar10" / "cifar10_subset.npz", train_x=train, test_x=test)
    got = {s: load_dataset("cifar10_subset", s, data_dir=tmp_path).images
           for s in ("train", "valid", "test", "train_full")}
    chw = train.transpose(0, 3, 1, 2)
    assert np.array_equal(got["train"], chw[:45]) and np.array_equal(got["valid"], chw[45:])
    assert np.array_equal(got["train_full"], chw)
    assert np.array_equal(got["test"], test.transpose(0, 3, 1, 2))
    (tmp_path / "empty").mkdir()
    with pytest.raises(DatasetError) as e:
        load_dataset("cifar10_subset", data_dir=tmp_path / "empty", download=True)
    assert "local-only" in one_line_error(e) and "cannot be downloaded" in str(e.value)


# ----------------------------------------------------------------------------- ImageNet

def _imagenet_npz(x: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.savez(buf, data=x.reshape(len(x), -1), labels=np.arange(len(x)) % 1000 + 1)
    return buf.getvalue()


@pytest.mark.parametrize("layout", ["npz", "zip"])
def test_imagenet_round_trip(tmp_path, layout):
    rng = np.random.default_rng(2)
    batches = [rand_u8(rng, (i % 3 + 1, 3, 32, 32)) for i in range(10)]
    val = rand_u8(rng, (2, 3, 32, 32))
    files = {f"train_data_batch_{i + 1}.npz": _imagenet_npz(b) for i, b in enumerate(batches)}
    if layout == "npz":
        folder = tmp_path / "Imagenet32_train_npz"
        folder.mkdir()
        for name, raw in files.items():
            (folder / name).write_bytes(raw)
        (tmp_path / "imagenet32").mkdir()
        (tmp_path / "imagenet32" / "val_data.npz").write_bytes(_imagenet_npz(val))
    else:
        with zipfile.ZipFile(tmp_path / "Imagenet32_train_npz.zip", "w") as zf:
            for name, raw in files.items():
                zf.writestr(f"Imagenet32_train_npz/{name}", raw)
        with zipfile.ZipFile(tmp_path / "Imagenet32_val_npz.zip", "w") as zf:
            zf.writestr("val_data.npz", _imagenet_npz(val))
    assert np.array_equal(load_dataset("imagenet32", "train", data_dir=tmp_path).images,
                          np.concatenate(batches))
    assert np.array_equal(load_dataset("imagenet32", "test", data_dir=tmp_path).images, val)
    with pytest.raises(DatasetError, match="no checksum is known"):
        load_dataset("imagenet32", "test", data_dir=tmp_path, verify=True)
    (tmp_path / "imagenet64").mkdir()
    (tmp_path / "imagenet64" / "val_data.npz").write_bytes(_imagenet_npz(val))  # 32x32 data
    with pytest.raises(DatasetError, match=r"data has shape \(2, 3072\), expected \(N, 12288\)"):
        load_dataset("imagenet64", "test", data_dir=tmp_path)


def test_imagenet_missing(tmp_path):
    with pytest.raises(DatasetError) as e:
        load_dataset("imagenet64", "test", data_dir=tmp_path)
    msg = one_line_error(e)
    assert "Imagenet64_val_npz.zip" in msg and "image-net.org/data/downsample" in msg
    one = _imagenet_npz(np.zeros((1, 3, 64, 64), np.uint8))
    (tmp_path / "train_data_batch_1.npz").write_bytes(one)
    with pytest.raises(DatasetError, match="train_data_batch_2.npz is missing"):
        load_dataset("imagenet64", "train", data_dir=tmp_path)


# ----------------------------------------------------------------------------- digits

def test_digits_splits():
    pytest.importorskip("sklearn")
    got = {s: load_dataset("digits", s) for s in ("train", "valid", "test")}
    assert [len(got[s]) for s in ("train", "valid", "test")] == [1077, 360, 360]
    assert all(g.levels == 17 and g.images.shape[1:] == (1, 8, 8) for g in got.values())
    from sklearn.datasets import load_digits

    ref = load_digits().images.astype(np.uint8)
    assert np.array_equal(got["test"].images[:, 0], ref[::5])
    assert np.array_equal(got["valid"].images[:, 0], ref[1::5])
    assert got["train"].images.max() == 16


# ----------------------------------------------------------------------------- real data

real = pytest.mark.skipif(not os.environ.get("PIXELRNN_DATA_DIR"),
                          reason="real-data test: set PIXELRNN_DATA_DIR to a folder with "
                                 "binarized_mnist/*.amat, mnist/*.gz, cifar10/cifar10_subset.npz")


@real
def test_real_binarized_mnist():
    test = load_dataset("binarized_mnist", "test")  # verify=None: checks the sha256
    assert test.images.shape == (10000, 1, 28, 28) and test.levels == 2
    assert abs(test.images.mean() - 0.132512) < 1e-6
    assert len(load_dataset("binarized_mnist", "valid")) == 10000
    start = time.perf_counter()
    train = load_dataset("binarized_mnist", "train", verify=False)
    assert time.perf_counter() - start < 5.0, "parsing the 78 MB train file is too slow"
    assert train.images.shape == (50000, 1, 28, 28) and abs(train.images.mean() - 0.130562) < 1e-6


@real
def test_real_mnist_and_checksums():
    test = load_dataset("mnist", "test", verify=True)
    assert test.images.shape == (10000, 1, 28, 28) and abs(test.images.mean() - 33.791) < 1e-3
    assert [len(load_dataset("mnist", s)) for s in ("train", "valid")] == [50000, 10000]
    root = data_dir_from_env()
    for sub, name in [("mnist", "train-images-idx3-ubyte.gz"),
                      ("binarized_mnist", "binarized_mnist_train.amat")]:
        assert D.verify_file(root / sub / name, None) == root / sub / name


@real
def test_real_cifar10_subset():
    train, test = load_dataset("cifar10_subset", "train"), load_dataset("cifar10_subset", "test")
    assert train.images.shape == (4500, 3, 32, 32) and test.images.shape == (1000, 3, 32, 32)
    assert len(load_dataset("cifar10_subset", "valid")) == 500 and train.levels == 256
