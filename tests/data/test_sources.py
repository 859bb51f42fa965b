"""Tests of pixelrnn.data on tiny fixtures written in the official formats, plus real data.

The real-data tests run only when PIXELRNN_DATA_DIR points at a folder holding
binarized_mnist/*.amat, mnist/*.gz and cifar10/cifar10_subset.npz.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import pickle
import tarfile
import tempfile
import time
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from PIL import Image

from pixelrnn import data as D
from pixelrnn.data import fetch
from pixelrnn.data import DATASETS, DatasetError, ImageSet, data_dir_from_env, load_dataset

FAST = settings(max_examples=15, deadline=None)


@pytest.fixture(autouse=True)
def _private_cache(tmp_path_factory, monkeypatch):
    """Never read or write the user's real cache dir."""
    monkeypatch.setenv("PIXELRNN_CACHE_DIR", str(tmp_path_factory.mktemp("cache")))


def one_line_error(excinfo) -> str:
    msg = str(excinfo.value)
    assert msg and "\n" not in msg
    return msg


# ----------------------------------------------------------------------------- writers

def write_amat(path: Path, x: np.ndarray, newline: str = "\n") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    rows = x.reshape(len(x), -1)
    path.write_text("".join(" ".join(map(str, r)) + newline for r in rows), newline="")
    return path


def idx_bytes(x: np.ndarray) -> bytes:
    header = bytes([0, 0, 8, x.ndim]) + b"".join(d.to_bytes(4, "big") for d in x.shape)
    return header + np.ascontiguousarray(x, dtype=np.uint8).tobytes()


def write_idx_gz(path: Path, x: np.ndarray) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(gzip.compress(idx_bytes(x)))
    return path


def cifar_batch(x: np.ndarray, protocol: int | str = 2) -> bytes:
    """A pickled batch shaped like the official one; x is (N, 3, 32, 32).

    protocol "numpy1" names the array globals as numpy 1.x did (numpy.core.multiarray),
    which is what the official files, written by Python 2 and numpy 1, contain.
    """
    n = len(x)
    batch = {b"batch_label": b"training batch 1 of 5", b"labels": [i % 10 for i in range(n)],
             b"data": x.reshape(n, 3072).copy(),
             b"filenames": [b"img_%d.png" % i for i in range(n)]}
    if protocol == "numpy1":
        raw = pickle.dumps(batch, protocol=2)  # GLOBAL opcodes are newline-terminated text
        assert b"numpy._core.multiarray\n" in raw
        return raw.replace(b"numpy._core.multiarray\n", b"numpy.core.multiarray\n")
    return pickle.dumps(batch, protocol=protocol)


def write_cifar(root: Path, batches: dict[str, bytes], archive: bool) -> None:
    if archive:
        root.mkdir(parents=True, exist_ok=True)
        with tarfile.open(root / "cifar-10-python.tar.gz", "w:gz") as tar:
            for name, raw in batches.items():
                info = tarfile.TarInfo(f"cifar-10-batches-py/{name}")
                info.size = len(raw)
                tar.addfile(info, io.BytesIO(raw))
    else:
        folder = root / "cifar-10-batches-py"
        folder.mkdir(parents=True, exist_ok=True)
        for name, raw in batches.items():
            (folder / name).write_bytes(raw)


def rand_u8(rng, shape, high=256):
    return rng.integers(0, high, size=shape, dtype=np.uint8)


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


# ----------------------------------------------------------------------------- folders

def test_folder_modes_order_and_splits(tmp_path):
    rng = np.random.default_rng(3)
    grey = [rand_u8(rng, (5, 4)) for _ in range(12)]
    for i, g in enumerate(grey):  # nested, sorted by relative path
        sub = tmp_path / ("a" if i < 6 else "b")
        sub.mkdir(exist_ok=True)
        Image.fromarray(g).save(sub / f"{i:02d}.png")
    s = load_dataset(f"folder:{tmp_path}", "all")
    assert s.images.shape == (12, 1, 5, 4) and s.levels == 256
    assert np.array_equal(s.images[:, 0], np.stack(grey))
    # index % 10: 0 -> test, 1 -> valid, the rest -> train; every image in exactly one split
    splits = {split: load_dataset(f"folder:{tmp_path}", split).images[:, 0] for split in ("train", "valid", "test")}
    assert np.array_equal(splits["test"], np.stack([grey[0], grey[10]]))
    assert np.array_equal(splits["valid"], np.stack([grey[1], grey[11]]))
    assert np.array_equal(splits["train"], np.stack(grey[2:10]))

    rgb_dir = tmp_path / "rgb"
    rgba = rand_u8(rng, (3, 2, 4))
    rgb_dir.mkdir()
    Image.fromarray(rgba, "RGBA").save(rgb_dir / "x.png")
    Image.fromarray(rgba[..., :3], "RGB").save(rgb_dir / "y.bmp")
    got = load_dataset(f"folder:{rgb_dir}", "all").images
    assert got.shape == (2, 3, 3, 2) and np.array_equal(got[0], rgba[..., :3].transpose(2, 0, 1))
    assert np.array_equal(got[1], got[0])  # alpha dropped

    pal_dir = tmp_path / "pal"
    pal_dir.mkdir()
    Image.fromarray(grey[0]).convert("P").save(pal_dir / "p.gif")
    assert np.array_equal(load_dataset(f"folder:{pal_dir}", "all").images[0, 0], grey[0])


def test_folder_errors(tmp_path):
    Image.new("L", (4, 4)).save(tmp_path / "a.png")
    Image.new("L", (5, 4)).save(tmp_path / "b.png")
    Image.new("L", (6, 4)).save(tmp_path / "c.png")
    with pytest.raises(DatasetError) as e:
        load_dataset(f"folder:{tmp_path}", "all")
    msg = one_line_error(e)
    assert "b.png" in msg and "5x4" in msg and "expected 4x4" in msg and "c.png" not in msg
    (tmp_path / "b.png").unlink()
    (tmp_path / "c.png").unlink()
    Image.new("RGB", (4, 4)).save(tmp_path / "d.jpg")
    with pytest.raises(DatasetError, match="3 channel"):
        load_dataset(f"folder:{tmp_path}", "all")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DatasetError, match="no PNG"):
        load_dataset(f"folder:{tmp_path / 'empty'}")
    with pytest.raises(DatasetError, match="not a directory"):
        load_dataset(f"folder:{tmp_path / 'nope'}")


def test_folder_levels_map_8_bit_samples_exactly(tmp_path):
    rng = np.random.default_rng(4)
    binary = [rng.integers(0, 2, (4, 3), dtype=np.uint8) for _ in range(3)]
    for i, b in enumerate(binary):
        Image.fromarray(b * 255).convert("1").save(tmp_path / f"{i}.png")  # 1-bit files
    assert load_dataset(f"folder:{tmp_path}", "all").levels == 256  # without data.levels: 8-bit
    two = load_dataset(f"folder:{tmp_path}", "all", levels=2)
    assert two.levels == 2 and np.array_equal(two.images[:, 0], np.stack(binary))
    Image.fromarray(np.full((4, 3), 128, np.uint8)).save(tmp_path / "3.png")
    with pytest.raises(DatasetError) as e:
        load_dataset(f"folder:{tmp_path}", "all", levels=2)
    msg = one_line_error(e)
    assert "3.png" in msg and "[128, 128]" in msg and "data.levels=2" in msg and "0..1" in msg
    with pytest.raises(DatasetError, match="data.levels=4 applies to folder: and npz: datasets only"):
        load_dataset("digits", "train", levels=4)


def test_npz_without_valid_gets_the_last_tenth_of_train(tmp_path):
    x = np.arange(20 * 4, dtype=np.uint8).reshape(20, 1, 2, 2) % 3
    np.savez(tmp_path / "a.npz", train=x, test=x[:2])
    name = f"npz:{tmp_path / 'a.npz'}"
    assert D.dataset_splits(name) == ("train", "valid", "test", "train_full")
    assert np.array_equal(load_dataset(name, "valid").images, x[18:])
    assert np.array_equal(load_dataset(name, "train").images, x[:18])
    assert np.array_equal(load_dataset(name, "train_full").images, x)
    assert load_dataset(name, "train", levels=3).levels == 3
    with pytest.raises(DatasetError, match="levels 2"):
        load_dataset(name, "train", levels=2)  # values up to 2 do not fit two levels


# ----------------------------------------------------------------------------- npz

@FAST
@given(x=arrays(np.uint8, st.tuples(st.integers(1, 3), st.sampled_from([1, 3]),
                                    st.integers(2, 5), st.integers(2, 5))),
       layout=st.sampled_from(["NCHW", "NHWC", "NHW"]))
def test_npz_layouts_round_trip(x, layout):
    if layout == "NHW":
        x = x[:, :1]
    assume(layout != "NHWC" or x.shape[2] not in (1, 3))  # else ambiguous: read as NCHW
    stored = {"NCHW": x, "NHWC": x.transpose(0, 2, 3, 1), "NHW": x[:, 0]}[layout]
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "a.npz"
        np.savez(path, train=stored, test=stored[:1])
        s = load_dataset(f"npz:{path}", "train")
    assert np.array_equal(s.images, x)
    assert s.levels == (256 if x.max() > 1 else 2)


def test_npz_keys_levels_and_errors(tmp_path):
    x = np.array([[[0, 1], [1, 0]]], np.int64)
    np.savez(tmp_path / "b.npz", x_train=x, valid_x=x + 1)
    assert load_dataset(f"npz:{tmp_path / 'b.npz'}", "train").levels == 256  # valid has 2
    np.savez(tmp_path / "c.npz", train=x, levels=np.array(5))
    assert load_dataset(f"npz:{tmp_path / 'c.npz'}", "train").levels == 5
    np.savez(tmp_path / "d.npz", train=x)
    s = load_dataset("npz:d.npz", "train", data_dir=tmp_path)  # relative to data_dir
    assert s.levels == 2 and s.images.dtype == np.uint8
    with pytest.raises(DatasetError, match="accepted: train, valid, train_full"):
        load_dataset(f"npz:{tmp_path / 'd.npz'}", "test")
    np.savez(tmp_path / "e.npz", train=x.astype(np.float32))
    with pytest.raises(DatasetError, match="integer"):
        load_dataset(f"npz:{tmp_path / 'e.npz'}", "train")
    amb = np.arange(2 * 3 * 5 * 3, dtype=np.uint8).reshape(2, 3, 5, 3)
    np.savez(tmp_path / "amb.npz", train=amb)  # axes 1 and 3 both qualify: NCHW wins
    assert np.array_equal(load_dataset(f"npz:{tmp_path / 'amb.npz'}", "train").images, amb)
    np.savez(tmp_path / "f.npz", train=np.zeros((2, 4, 4, 4), np.uint8))
    with pytest.raises(DatasetError, match="1 or 3 channels"):
        load_dataset(f"npz:{tmp_path / 'f.npz'}", "train")
    with pytest.raises(DatasetError, match="not found"):
        load_dataset(f"npz:{tmp_path / 'g.npz'}", "train")


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
