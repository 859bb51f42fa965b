"""The prepared cache: equal to a direct load, rebuilt when stale or damaged, safe to race and to interrupt."""

from __future__ import annotations

import errno
import os
import signal
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from pixelrnn.data import DatasetError, load_dataset
from pixelrnn.data import cache as cache_module

from test_sources import _cifar_fixture, _imagenet_npz, rand_u8, write_amat, write_idx_gz

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(autouse=True)
def _cache_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("PIXELRNN_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.delenv("PIXELRNN_DATA_DIR", raising=False)
    return tmp_path / "cache"


# ----------------------------------------------------------------------------- one fixture per kind

def binarized_mnist(root: Path, rng) -> tuple[str, tuple[str, ...]]:
    for split, n in (("train", 5), ("valid", 2), ("test", 3)):
        write_amat(root / "binarized_mnist" / f"binarized_mnist_{split}.amat", rand_u8(rng, (n, 28, 28), 2))
    return "binarized_mnist", ("train", "valid", "test")


def mnist(root: Path, rng) -> tuple[str, tuple[str, ...]]:
    write_idx_gz(root / "mnist" / "train-images-idx3-ubyte.gz", rand_u8(rng, (13, 4, 5)))
    write_idx_gz(root / "mnist" / "t10k-images-idx3-ubyte.gz", rand_u8(rng, (3, 4, 5)))
    return "mnist", ("train", "valid", "train_full", "test")


def cifar10_archive(root: Path, rng) -> tuple[str, tuple[str, ...]]:
    _cifar_fixture(root, archive=True, n=3)
    return "cifar10", ("train", "valid", "train_full", "test")


def cifar10_folder(root: Path, rng) -> tuple[str, tuple[str, ...]]:
    _cifar_fixture(root, archive=False, n=3)
    return "cifar10", ("train", "valid", "train_full", "test")


def cifar10_subset(root: Path, rng) -> tuple[str, tuple[str, ...]]:
    (root / "cifar10").mkdir(parents=True)
    np.savez(root / "cifar10" / "cifar10_subset.npz", train_x=rand_u8(rng, (20, 32, 32, 3)), test_x=rand_u8(rng, (4, 32, 32, 3)))
    return "cifar10_subset", ("train", "valid", "train_full", "test")


def imagenet_zip(root: Path, rng) -> tuple[str, tuple[str, ...]]:
    root.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(root / "Imagenet32_train_npz.zip", "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for i in range(1, 11):
            zf.writestr(f"Imagenet32_train_npz/train_data_batch_{i}.npz", _imagenet_npz(rand_u8(rng, (i % 3 + 1, 3, 32, 32))))
    with zipfile.ZipFile(root / "Imagenet32_val_npz.zip", "w") as zf:
        zf.writestr("val_data.npz", _imagenet_npz(rand_u8(rng, (2, 3, 32, 32))))
    return "imagenet32", ("train", "test")


def imagenet_npz(root: Path, rng) -> tuple[str, tuple[str, ...]]:
    (root / "imagenet64").mkdir(parents=True)
    for i in range(1, 11):
        (root / "imagenet64" / f"train_data_batch_{i}.npz").write_bytes(_imagenet_npz(rand_u8(rng, (2, 3, 64, 64))))
    (root / "imagenet64" / "val_data.npz").write_bytes(_imagenet_npz(rand_u8(rng, (3, 3, 64, 64))))
    return "imagenet64", ("train", "test")


def folder(root: Path, rng) -> tuple[str, tuple[str, ...]]:
    for i in range(23):
        sub = root / "pictures" / ("a" if i < 11 else "b")
        sub.mkdir(parents=True, exist_ok=True)
        Image.fromarray(rand_u8(rng, (5, 4, 3))).save(sub / f"{i:02d}.png")
    return f"folder:{root / 'pictures'}", ("all", "train", "test")


def npz(root: Path, rng) -> tuple[str, tuple[str, ...]]:
    root.mkdir(parents=True, exist_ok=True)
    np.savez(root / "mine.npz", x_train=rng.integers(0, 2, (9, 6, 5, 3), dtype=np.int16), test=rand_u8(rng, (4, 6, 5)))
    return f"npz:{root / 'mine.npz'}", ("train", "test")


KINDS = [binarized_mnist, mnist, cifar10_archive, cifar10_folder, cifar10_subset, imagenet_zip, imagenet_npz, folder, npz]


@pytest.mark.parametrize("kind", KINDS, ids=lambda kind: kind.__name__)
def test_the_cache_equals_a_direct_load_bit_for_bit(tmp_path, kind):
    name, splits = kind(tmp_path / "data", np.random.default_rng(0))
    for split in splits:
        direct = load_dataset(name, split, data_dir=tmp_path / "data", verify=False, cache=False)
        cached = load_dataset(name, split, data_dir=tmp_path / "data", verify=False, progress=False)
        assert isinstance(cached.images, np.memmap) and not cached.images.flags.writeable
        assert type(direct.images) is np.ndarray
        assert cached.images.dtype == direct.images.dtype and cached.images.shape == direct.images.shape, split
        assert np.array_equal(cached.images, direct.images), split
        assert cached.levels == direct.levels
    arrays = sorted(p.name for p in (tmp_path / "cache" / "prepared").rglob("*.npy"))
    assert arrays and not list((tmp_path / "cache").rglob("*.tmp"))


def test_digits_stay_in_memory_behind_the_same_interface(tmp_path):
    pytest.importorskip("sklearn")
    digits = load_dataset("digits", "valid")
    assert type(digits.images) is np.ndarray and digits.images.flags.writeable and digits.levels == 17
    assert not (tmp_path / "cache").exists()


def test_it_lives_under_the_cache_dir_and_is_reused(tmp_path):
    name, _ = mnist(tmp_path / "data", np.random.default_rng(1))
    first = load_dataset(name, "valid", data_dir=tmp_path / "data", verify=False, progress=False)
    array = tmp_path / "cache" / "prepared" / "mnist" / "train_full.npy"
    assert Path(first.images.filename) == array and len(first.images) == 2  # valid: the last sixth of 13
    before = array.stat().st_ino, array.stat().st_mtime_ns
    again = load_dataset(name, "train", data_dir=tmp_path / "data", verify=False, progress=False)
    assert (array.stat().st_ino, array.stat().st_mtime_ns) == before  # one stored array for train, valid, train_full
    assert np.shares_memory(again.images, np.load(array, mmap_mode="r")) or Path(again.images.filename) == array
    other = load_dataset(name, "test", data_dir=tmp_path / "data", verify=False, progress=False, cache_dir=tmp_path / "elsewhere")
    assert Path(other.images.filename).parent == tmp_path / "elsewhere" / "prepared" / "mnist"


def load_imagenet(tmp_path, **options):
    return load_dataset("imagenet64", "train", data_dir=tmp_path / "data", progress=False, **options)


@pytest.mark.parametrize("damage", ["truncated", "grown", "edited", "header", "deleted", "record"])
def test_a_damaged_cache_is_detected_and_rebuilt_with_a_message(tmp_path, damage):
    imagenet_npz(tmp_path / "data", np.random.default_rng(2))
    expected = load_imagenet(tmp_path, cache=False).images
    array = Path(load_imagenet(tmp_path).images.filename)
    raw = bytearray(array.read_bytes())
    if damage == "truncated":
        array.write_bytes(raw[:-100])
    elif damage == "grown":
        array.write_bytes(raw + b"\0")
    elif damage == "edited":  # same size, one pixel changed
        raw[-1] ^= 1
        array.write_bytes(raw)
    elif damage == "header":
        array.write_bytes(raw.replace(b"'shape': (20,", b"'shape': (21,"))
    elif damage == "deleted":
        array.unlink()
    else:
        array.with_suffix(".json").write_text("{not json")
    reason = {"truncated": "truncated", "grown": "truncated", "edited": "changed after", "header": "header", "deleted": "missing"}
    if damage in reason:
        with pytest.warns(UserWarning, match=reason[damage]):
            rebuilt = load_imagenet(tmp_path).images
    else:  # no record to trust: built again without a word
        rebuilt = load_imagenet(tmp_path).images
    assert np.array_equal(rebuilt, expected) and array.stat().st_size == len(raw)


def test_touched_or_moved_files_are_checked_by_content_not_rebuilt(tmp_path, recwarn):
    imagenet_npz(tmp_path / "data", np.random.default_rng(3))
    array = Path(load_imagenet(tmp_path).images.filename)
    inode = array.stat().st_ino
    os.utime(array, ns=(1, 1))  # the array touched, its bytes unchanged
    for source in (tmp_path / "data" / "imagenet64").iterdir():
        os.utime(source, ns=(2, 2))
    load_imagenet(tmp_path)
    (tmp_path / "data").rename(tmp_path / "moved")
    moved = load_dataset("imagenet64", "train", data_dir=tmp_path / "moved", progress=False)
    assert array.stat().st_ino == inode and not recwarn.list
    assert np.array_equal(moved.images, load_dataset("imagenet64", "train", data_dir=tmp_path / "moved", cache=False).images)


def test_changed_sources_are_prepared_again(tmp_path):
    imagenet_npz(tmp_path / "data", np.random.default_rng(4))
    load_imagenet(tmp_path)
    replacement = np.full((5, 3, 64, 64), 7, np.uint8)
    (tmp_path / "data" / "imagenet64" / "train_data_batch_3.npz").write_bytes(_imagenet_npz(replacement))
    with pytest.warns(UserWarning, match="source files changed"):
        images = load_imagenet(tmp_path).images
    assert len(images) == 23 and (images[4:9] == 7).all()


RACER = """
import os, sys, time
import numpy as np
from pixelrnn.data import cache, load_dataset

data, out, go = sys.argv[1], sys.argv[2], sys.argv[3]
build = cache._build
def slow_build(files, plan, progress):  # leaves a mark, and time for the other process to try as well
    open(os.path.join(out, f"built-{os.getpid()}"), "w").close()
    time.sleep(1.0)
    return build(files, plan, progress)
cache._build = slow_build
while not os.path.exists(go):
    time.sleep(0.01)
images = load_dataset("imagenet64", "train", data_dir=data, progress=False).images
np.save(os.path.join(out, f"read-{os.getpid()}.npy"), np.asarray(images))
"""


def child_env(cache_dir: Path) -> dict:
    return {**os.environ, "PIXELRNN_CACHE_DIR": str(cache_dir), "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}


def test_two_racing_processes_build_it_once_and_both_read_the_right_data(tmp_path):
    imagenet_npz(tmp_path / "data", np.random.default_rng(5))
    expected = load_imagenet(tmp_path, cache=False).images
    (tmp_path / "out").mkdir()
    racers = [subprocess.Popen([sys.executable, "-c", RACER, str(tmp_path / "data"), str(tmp_path / "out"), str(tmp_path / "go")],
                               env=child_env(tmp_path / "cache"), stderr=subprocess.PIPE, text=True) for _ in range(2)]
    time.sleep(0.5)
    (tmp_path / "go").touch()  # both are waiting: they start together
    for racer in racers:
        assert racer.wait(timeout=300) == 0, racer.stderr.read()[-3000:]
    outputs = sorted((tmp_path / "out").iterdir())
    assert len([p for p in outputs if p.name.startswith("built-")]) == 1
    reads = [np.load(p) for p in outputs if p.name.startswith("read-")]
    assert len(reads) == 2 and all(np.array_equal(r, expected) for r in reads)


class InterruptingBar:
    """A progress bar that stops the conversion after its ``after``-th part."""

    def __init__(self, *args, after=3, error=KeyboardInterrupt, **kwargs):
        self.after, self.error, self.parts = after, error, 0

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

    def update(self, count):
        self.parts += 1
        if self.parts == self.after:
            raise self.error()


def leftovers(cache_dir: Path) -> list[str]:
    return sorted(p.name for p in cache_dir.rglob("*") if p.is_file() and not p.name.endswith(".lock"))


def test_an_interrupted_conversion_leaves_no_cache(tmp_path, monkeypatch):
    imagenet_npz(tmp_path / "data", np.random.default_rng(6))
    monkeypatch.setattr(cache_module, "tqdm", InterruptingBar)
    with pytest.raises(KeyboardInterrupt):
        load_imagenet(tmp_path)
    assert leftovers(tmp_path / "cache") == []
    monkeypatch.undo()
    assert np.array_equal(load_imagenet(tmp_path, cache_dir=tmp_path / "cache").images, load_imagenet(tmp_path, cache=False).images)


def test_a_corrupt_member_in_the_middle_names_the_member_and_leaves_nothing(tmp_path):
    imagenet_zip(tmp_path / "data", np.random.default_rng(7))
    archive = tmp_path / "data" / "Imagenet32_train_npz.zip"
    with zipfile.ZipFile(archive) as zf:
        members = {info.filename: zf.read(info) for info in zf.infolist()}
    members["Imagenet32_train_npz/train_data_batch_6.npz"] = b"PK\x03\x04 not an npz"
    with zipfile.ZipFile(archive, "w") as zf:
        for name, raw in members.items():
            zf.writestr(name, raw)
    with pytest.raises(DatasetError) as error:
        load_dataset("imagenet32", "train", data_dir=tmp_path / "data", progress=False)
    assert "train_data_batch_6.npz" in str(error.value) and "\n" not in str(error.value)
    assert leftovers(tmp_path / "cache") == []
    del members["Imagenet32_train_npz/train_data_batch_9.npz"]
    with zipfile.ZipFile(archive, "w") as zf:
        for name, raw in members.items():
            zf.writestr(name, raw)
    with pytest.raises(DatasetError, match="has no train_data_batch_9.npz"):  # found missing before any member is read
        load_dataset("imagenet32", "train", data_dir=tmp_path / "data", progress=False)


KILLED = """
import os, sys, time
from pixelrnn.data import cache, load_dataset

class StallingBar:  # the second part written: say so, then hang until killed
    def __init__(self, *args, **kwargs): self.parts = 0
    def __enter__(self): return self
    def __exit__(self, *exc): return False
    def update(self, count):
        self.parts += 1
        if self.parts == 2:
            open(sys.argv[2], "w").close()
            time.sleep(600)
cache.tqdm = StallingBar
load_dataset("imagenet64", "train", data_dir=sys.argv[1])
"""


def test_a_killed_conversion_leaves_no_cache_and_the_next_load_cleans_up(tmp_path):
    imagenet_npz(tmp_path / "data", np.random.default_rng(8))
    child = subprocess.Popen([sys.executable, "-c", KILLED, str(tmp_path / "data"), str(tmp_path / "stalled")],
                             env=child_env(tmp_path / "cache"), stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 300
    while not (tmp_path / "stalled").exists():
        assert child.poll() is None, child.stderr.read()[-3000:]
        assert time.monotonic() < deadline
        time.sleep(0.05)
    child.send_signal(signal.SIGKILL)
    child.wait()
    left = leftovers(tmp_path / "cache")
    assert len(left) == 1 and left[0].startswith(".train.npy.") and left[0].endswith(".tmp")  # half-written, never under the name
    assert np.array_equal(load_imagenet(tmp_path).images, load_imagenet(tmp_path, cache=False).images)
    assert leftovers(tmp_path / "cache") == ["train.json", "train.labels.npy", "train.npy"]  # the fixture has labels


class FullDisk:
    """A file that accepts ``room`` bytes, then fails as a full disk does."""

    def __init__(self, path, mode, room):
        self.handle, self.room = open(path, mode), room

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.handle.close()
        return False

    def write(self, data):
        self.room -= memoryview(data).nbytes
        if self.room < 0:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return self.handle.write(data)

    def __getattr__(self, name):
        return getattr(self.handle, name)


def test_a_full_disk_removes_the_temporary_file_and_says_how_much_is_needed(tmp_path, monkeypatch):
    imagenet_npz(tmp_path / "data", np.random.default_rng(9))
    real_open = open

    def cramped_open(path, mode="r", *args, **kwargs):
        return FullDisk(path, mode, 60_000) if mode == "wb" else real_open(path, mode, *args, **kwargs)

    monkeypatch.setattr(cache_module, "open", cramped_open, raising=False)
    with pytest.raises(DatasetError) as error:
        load_imagenet(tmp_path)
    message = str(error.value)
    assert "disk is full" in message and f"{128 + 20 * 3 * 64 * 64:,} bytes" in message and "free" in message
    assert "\n" not in message and leftovers(tmp_path / "cache") == []
