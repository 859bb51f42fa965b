"""The class of each image, from every source that has one (tiny fixtures in the official formats), through the cache."""

from __future__ import annotations

import gzip
import io
import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from dataset_files import _private_cache, cifar_batch, one_line_error, rand_u8, write_amat, write_cifar, write_idx_gz  # noqa: F401
from pixelrnn.data import DatasetError, ImageSet, load_dataset
from pixelrnn.data.labels import CIFAR10_NAMES, DIGIT_NAMES, parse_idx_labels


REAL_DATA = os.environ.get("PIXELRNN_DATA_DIR")  # read before the fixture below hides it from the tiny-file tests


@pytest.fixture(autouse=True)
def _no_data_dir(monkeypatch):
    monkeypatch.delenv("PIXELRNN_DATA_DIR", raising=False)


def both(name, split, root, **options):
    """The split read directly and through the prepared cache: the labels must agree."""
    direct = load_dataset(name, split, data_dir=root, verify=False, cache=False, **options)
    cached = load_dataset(name, split, data_dir=root, verify=False, progress=False, **options)
    assert (direct.labels is None) == (cached.labels is None)
    if direct.labels is not None:
        assert direct.labels.dtype == cached.labels.dtype == np.int64 and np.array_equal(direct.labels, cached.labels), split
        assert len(direct.labels) == len(direct) and direct.class_names == cached.class_names
    return cached


def write_idx1_gz(path: Path, labels: np.ndarray) -> Path:
    path.write_bytes(gzip.compress(bytes([0, 0, 8, 1]) + len(labels).to_bytes(4, "big") + labels.astype(np.uint8).tobytes()))
    return path


def test_mnist_labels_come_from_the_idx1_files_and_follow_the_splits(tmp_path):
    rng = np.random.default_rng(0)
    write_idx_gz(tmp_path / "mnist" / "train-images-idx3-ubyte.gz", rand_u8(rng, (12, 4, 5)))
    write_idx_gz(tmp_path / "mnist" / "t10k-images-idx3-ubyte.gz", rand_u8(rng, (3, 4, 5)))
    train_labels, test_labels = np.arange(12) % 10, np.array([7, 2, 1])
    write_idx1_gz(tmp_path / "mnist" / "train-labels-idx1-ubyte.gz", train_labels)
    write_idx1_gz(tmp_path / "mnist" / "t10k-labels-idx1-ubyte.gz", test_labels)
    assert both("mnist", "train", tmp_path).labels.tolist() == train_labels[:10].tolist()
    assert both("mnist", "valid", tmp_path).labels.tolist() == train_labels[10:].tolist()
    test = both("mnist", "test", tmp_path)
    assert test.labels.tolist() == [7, 2, 1] and test.class_names == DIGIT_NAMES and test.classes == 10
    (tmp_path / "mnist" / "t10k-labels-idx1-ubyte.gz").unlink()  # the label files are optional: no file, no labels
    assert load_dataset("mnist", "test", data_dir=tmp_path, verify=False, progress=False).labels is None


def test_a_foreign_or_short_label_file_is_one_line_error(tmp_path):
    with pytest.raises(DatasetError) as e:
        parse_idx_labels(b"\x00\x00\x08\x03" + bytes(8), "x")
    assert "IDX1" in one_line_error(e)
    rng = np.random.default_rng(0)
    write_idx_gz(tmp_path / "mnist" / "t10k-images-idx3-ubyte.gz", rand_u8(rng, (3, 4, 5)))
    write_idx1_gz(tmp_path / "mnist" / "t10k-labels-idx1-ubyte.gz", np.array([1, 2]))
    with pytest.raises(DatasetError) as e:
        load_dataset("mnist", "test", data_dir=tmp_path, verify=False, progress=False)
    assert "2 labels for 3 images" in one_line_error(e)


@pytest.mark.parametrize("archive", [False, True], ids=["folder", "archive"])
def test_cifar10_labels_come_from_each_batch(tmp_path, archive):
    rng = np.random.default_rng(1)
    batches = {f"data_batch_{i}": cifar_batch(rand_u8(rng, (3, 3, 32, 32))) for i in range(1, 6)}
    batches["test_batch"] = cifar_batch(rand_u8(rng, (4, 3, 32, 32)))
    write_cifar(tmp_path, batches, archive)
    full = both("cifar10", "train_full", tmp_path)
    assert full.labels.tolist() == [0, 1, 2] * 5 and full.class_names == CIFAR10_NAMES
    assert both("cifar10", "test", tmp_path).labels.tolist() == [0, 1, 2, 3]
    assert both("cifar10", "valid", tmp_path).labels.tolist() == [2]  # the last tenth of the 15 training images


def test_cifar10_subset_labels_are_train_y_and_test_y(tmp_path):
    rng = np.random.default_rng(2)
    (tmp_path / "cifar10").mkdir()
    np.savez(tmp_path / "cifar10" / "cifar10_subset.npz", train_x=rand_u8(rng, (20, 32, 32, 3)), train_y=np.arange(20, dtype=np.uint8) % 10,
             test_x=rand_u8(rng, (4, 32, 32, 3)), test_y=np.array([3, 8, 8, 0], np.uint8))
    assert both("cifar10_subset", "train", tmp_path).labels.tolist() == (np.arange(18) % 10).tolist()
    assert both("cifar10_subset", "valid", tmp_path).labels.tolist() == [8, 9]
    test = both("cifar10_subset", "test", tmp_path)
    assert test.labels.tolist() == [3, 8, 8, 0] and test.class_names[3] == "cat"


def imagenet_member(x: np.ndarray, labels: np.ndarray | None) -> bytes:
    buffer = io.BytesIO()
    np.savez(buffer, data=x.reshape(len(x), -1), **({} if labels is None else {"labels": labels}))
    return buffer.getvalue()


def test_imagenet_labels_are_made_zero_based(tmp_path):
    rng = np.random.default_rng(3)
    (tmp_path / "imagenet32").mkdir()
    for i in range(1, 11):
        (tmp_path / "imagenet32" / f"train_data_batch_{i}.npz").write_bytes(imagenet_member(rand_u8(rng, (2, 3, 32, 32)), np.array([i, 1000])))
    (tmp_path / "imagenet32" / "val_data.npz").write_bytes(imagenet_member(rand_u8(rng, (3, 3, 32, 32)), None))
    train = both("imagenet32", "train", tmp_path)
    assert train.labels.tolist() == [v for i in range(1, 11) for v in (i - 1, 999)] and train.class_names == ()
    assert both("imagenet32", "test", tmp_path).labels is None  # a member without labels: none for its split


def test_digits_labels_are_sklearn_targets():
    from sklearn.datasets import load_digits

    test = load_dataset("digits", "test")
    assert np.array_equal(test.labels, load_digits().target[::5]) and test.class_names == DIGIT_NAMES


def save_png(path: Path, value: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full((4, 3), value, np.uint8)).save(path)


def test_folder_labels_are_sorted_sub_folders_as_image_folder(tmp_path):
    for cls, count in (("zebra", 3), ("ant", 2), ("moth", 1)):
        for i in range(count):
            save_png(tmp_path / "pics" / cls / "deep" / f"{i}.png", 10 * i)
    pictures = both(f"folder:{tmp_path / 'pics'}", "all", tmp_path)
    assert pictures.class_names == ("ant", "moth", "zebra")
    assert pictures.labels.tolist() == [0, 0, 1, 2, 2, 2]  # files sorted by path; classes numbered in sorted order
    try:
        from torchvision.datasets import ImageFolder
    except ImportError:
        pass
    else:
        folder = ImageFolder(str(tmp_path / "pics"))
        assert tuple(folder.classes) == pictures.class_names and [t for _, t in folder.samples] == pictures.labels.tolist()
    train = both(f"folder:{tmp_path / 'pics'}", "test", tmp_path)
    assert train.labels.tolist() == [0]
    save_png(tmp_path / "pics" / "loose.png", 0)  # an image outside any sub-folder: the folder has no classes
    assert both(f"folder:{tmp_path / 'pics'}", "all", tmp_path).labels is None


def test_npz_labels_beside_each_split_and_the_carved_valid(tmp_path):
    rng = np.random.default_rng(4)
    path = tmp_path / "mine.npz"
    np.savez(path, x_train=rand_u8(rng, (20, 4, 4), 2), y_train=np.arange(20) % 4, test=rand_u8(rng, (3, 4, 4), 2),
             test_labels=np.array([3, 2, 1]))
    assert both(f"npz:{path}", "train", tmp_path).labels.tolist() == (np.arange(18) % 4).tolist()
    assert both(f"npz:{path}", "valid", tmp_path).labels.tolist() == [2, 3]
    assert both(f"npz:{path}", "test", tmp_path).labels.tolist() == [3, 2, 1]
    bad = tmp_path / "bad.npz"
    np.savez(bad, train=rand_u8(rng, (5, 4, 4), 2), train_labels=np.array([0, 1]))
    with pytest.raises(DatasetError) as e:
        load_dataset(f"npz:{bad}", "train_full", progress=False)
    assert "2 labels for 5 images" in one_line_error(e)


def test_binarized_mnist_has_no_labels(tmp_path):
    write_amat(tmp_path / "binarized_mnist" / "binarized_mnist_test.amat", rand_u8(np.random.default_rng(5), (3, 28, 28), 2))
    s = both("binarized_mnist", "test", tmp_path)
    assert s.labels is None and s.classes == 0


def test_the_cache_keeps_labels_as_a_second_array_and_rebuilds_when_they_change(tmp_path):
    rng = np.random.default_rng(6)
    path = tmp_path / "mine.npz"
    np.savez(path, train=rand_u8(rng, (10, 1, 4, 4), 4), train_labels=np.arange(10) % 5, levels=np.array(4))
    first = load_dataset(f"npz:{path}", "train_full", progress=False)
    label_files = list((Path(os.environ["PIXELRNN_CACHE_DIR"]) / "prepared").rglob("*.labels.npy"))
    assert len(label_files) == 1 and np.array_equal(np.load(label_files[0]), np.arange(10) % 5)
    assert np.array_equal(first.labels, np.arange(10) % 5)
    np.save(label_files[0], np.zeros(10, np.int64))  # the cached labels edited: detected and prepared again
    with pytest.warns(UserWarning, match="labels"):
        again = load_dataset(f"npz:{path}", "train_full", progress=False)
    assert np.array_equal(again.labels, np.arange(10) % 5)


def test_imageset_checks_its_labels():
    images = np.zeros((3, 1, 2, 2), np.uint8)
    assert ImageSet("x", "train", images, 2, labels=[0, 2, 1]).classes == 3
    for labels, message in (([0, 1], "2 labels for 3 images"), ([0, -1, 1], "negative"), ([[0, 1, 2]], "1-D")):
        with pytest.raises(DatasetError) as e:
            ImageSet("x", "train", images, 2, labels=labels)
        assert message in one_line_error(e)


def test_imagenet_labels_from_the_zip_archive(tmp_path):
    import zipfile

    rng = np.random.default_rng(7)
    with zipfile.ZipFile(tmp_path / "Imagenet32_train_npz.zip", "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for i in range(1, 11):
            archive.writestr(f"Imagenet32_train_npz/train_data_batch_{i}.npz", imagenet_member(rand_u8(rng, (1, 3, 32, 32)), np.array([i])))
    assert both("imagenet32", "train", tmp_path).labels.tolist() == list(range(10))


@pytest.mark.skipif(not REAL_DATA or not (Path(REAL_DATA or ".") / "mnist" / "t10k-labels-idx1-ubyte.gz").is_file(),
                    reason="needs PIXELRNN_DATA_DIR with mnist/*.gz and cifar10/cifar10_subset.npz (real data)")
def test_real_mnist_and_cifar10_subset_label_counts():
    mnist = load_dataset("mnist", "test", data_dir=REAL_DATA, progress=False)
    assert np.bincount(mnist.labels).tolist() == [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]
    assert mnist.labels[:4].tolist() == [7, 2, 1, 0]
    full = load_dataset("mnist", "train_full", data_dir=REAL_DATA, progress=False)
    assert np.bincount(full.labels).tolist() == [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]
    cifar = load_dataset("cifar10_subset", "test", data_dir=REAL_DATA, progress=False)
    assert np.bincount(cifar.labels).tolist() == [103, 89, 100, 103, 90, 86, 112, 102, 106, 109]
    assert cifar.labels[:10].tolist() == [3, 8, 8, 0, 6, 6, 1, 6, 3, 1] and cifar.class_names[3] == "cat"
