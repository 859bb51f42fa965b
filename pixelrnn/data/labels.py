"""The class of each image, where a source has one: parsers and the label readers of every plan.

Labels are int64 (N,) arrays in [0, K), one per image of a plan's stored array, cut into splits
by the same rows as the images; the prepared cache keeps them beside the images as a second
array (:mod:`pixelrnn.data.cache`). Sources:

- ``mnist``: the IDX1 label files (``train-labels-idx1-ubyte.gz``, ``t10k-labels-idx1-ubyte.gz``),
  when present next to the image files (downloaded with them); class names ``"0"`` ... ``"9"``;
- ``cifar10``: each batch's ``labels`` list; ``cifar10_subset``: ``train_y`` / ``test_y``; class
  names airplane ... truck;
- ``imagenet32``/``imagenet64``: each npz's ``labels`` (1..1000 in the files, 0..999 here);
- ``digits``: scikit-learn's ``target``; class names ``"0"`` ... ``"9"``;
- ``folder:``: the sub-folder each image lies in, numbered in sorted order as torchvision's
  ``ImageFolder`` does (only when every image lies in a sub-folder); the names are the classes';
- ``npz:``: ``<split>_labels``, ``y_<split>`` or ``<split>_y`` beside the split's images
  (``labels`` beside ``images``).

Binarized MNIST has none: its files hold no labels, and its rows are not in MNIST's order.
"""

from __future__ import annotations

import zipfile
from pathlib import Path
from typing import IO, Iterable

import numpy as np

from ..errors import DatasetError
from .parts import Plan, npz_array

DIGIT_NAMES = tuple(str(digit) for digit in range(10))
CIFAR10_NAMES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
MNIST_LABEL_FILES = {"train-images-idx3-ubyte.gz": "train-labels-idx1-ubyte.gz",
                     "t10k-images-idx3-ubyte.gz": "t10k-labels-idx1-ubyte.gz"}


def checked_labels(labels, count: int | None, source: str) -> np.ndarray:
    """``labels`` as a C-contiguous int64 (N,) array of non-negative classes, ``count`` long (one-line errors)."""
    labels = np.asarray(labels)
    if labels.ndim != 1 or labels.dtype.kind not in "biu" or labels.dtype == np.bool_:
        raise DatasetError(f"{source}: labels must be a 1-D integer array; got {labels.dtype} of shape {labels.shape}")
    if count is not None and len(labels) != count:
        raise DatasetError(f"{source}: {len(labels)} labels for {count} images; there must be one label per image")
    if labels.size and int(labels.min()) < 0:
        raise DatasetError(f"{source}: label {int(labels.min())} is negative; classes are numbered from 0")
    return np.ascontiguousarray(labels, dtype=np.int64)


def plan_labels(plan: Plan, count: int) -> np.ndarray | None:
    """The labels of a plan's stored array of ``count`` images, int64, or None where the source has none."""
    found = None if plan.labels is None else plan.labels()
    return None if found is None else checked_labels(found, count, plan.name)


def parse_idx_labels(raw: bytes, source: str = "<idx>") -> np.ndarray:
    """Parse an uncompressed IDX1 ubyte label file into int64 (N,)."""
    if len(raw) < 8 or raw[:4] != b"\x00\x00\x08\x01":
        raise DatasetError(f"{source}: not an IDX1 unsigned-byte label file (magic {raw[:4].hex() or 'missing'}, expected 00000801)")
    count = int.from_bytes(raw[4:8], "big")
    if len(raw) - 8 != count:
        raise DatasetError(f"{source}: IDX header says {count} labels, found {len(raw) - 8} bytes (truncated or corrupt)")
    return np.frombuffer(raw, dtype=np.uint8, offset=8).astype(np.int64)


def npz_label_key(keys: Iterable[str], split: str) -> str | None:
    """The labels of ``split`` in an npz: ``<split>_labels``, ``y_<split>`` or ``<split>_y`` (``labels`` beside ``images``)."""
    keys = list(keys)
    candidates = ("labels",) if split == "images" else (f"{split}_labels", f"y_{split}", f"{split}_y")
    return next((key for key in candidates if key in keys), None)


def npz_labels(npz: Path | IO[bytes], key: str, source: str) -> np.ndarray:
    """The whole integer array ``key`` of an npz (a path or a seekable binary file)."""
    with npz_array(npz, key, source) as rows:
        chunks = list(rows.chunks())
    return checked_labels(np.concatenate(chunks) if chunks else np.zeros(0, np.int64), None, f"{source}[{key}]")


def npz_has(npz: Path | IO[bytes], key: str) -> bool:
    try:
        with zipfile.ZipFile(npz) as archive:
            return f"{key}.npy" in archive.namelist()
    except (OSError, zipfile.BadZipFile):
        return False


def imagenet_labels(parts: Iterable[tuple[Path | IO[bytes], str]]) -> np.ndarray | None:
    """The labels of downsampled ImageNet members, 0-based (the files number the classes 1..1000); None if any lacks them."""
    found = []
    for npz, source in parts:
        if not npz_has(npz, "labels"):
            return None
        if hasattr(npz, "seek"):
            npz.seek(0)
        labels = npz_labels(npz, "labels", source)
        if labels.size and int(labels.min()) < 1:
            raise DatasetError(f"{source}: label {int(labels.min())}; downsampled ImageNet numbers its classes from 1")
        found.append(labels - 1)
    return np.concatenate(found) if found else None


def folder_classes(relative: list[Path]) -> tuple[str, ...]:
    """The classes of a folder's images (paths relative to it): the sorted sub-folders, if every image lies in one."""
    if not relative or any(len(path.parts) < 2 for path in relative):
        return ()
    return tuple(sorted({path.parts[0] for path in relative}))


def folder_labels(relative: list[Path], classes: tuple[str, ...]) -> np.ndarray:
    index = {name: number for number, name in enumerate(classes)}
    return np.array([index[path.parts[0]] for path in relative], dtype=np.int64)
