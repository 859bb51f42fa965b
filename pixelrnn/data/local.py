"""The user's own datasets: ``folder:PATH`` (image files) and ``npz:PATH`` (arrays), as plans.

Their splits and layouts are documented in :mod:`pixelrnn.data.sources`. A folder is decoded one
image at a time and each of its splits is stored on its own, so that no split is a copy of
another's rows; an npz split is read a few MB of rows at a time. Their prepared arrays live in
the cache under the file's name and a digest of its full path.
"""

from __future__ import annotations

import hashlib
import zipfile
from pathlib import Path
from typing import Iterator

import numpy as np

from ..errors import DatasetError, ImageError
from ..images import IMAGE_EXTENSIONS, read_image
from .formats import _to_uint8, npz_key, npz_layout
from .parts import Plan, npz_array

FOLDER_SPLITS = ("all", "train", "test")
NPZ_SPLITS = ("train", "valid", "test", "train_full", "all")


def local_key(kind: str, path: Path) -> str:
    """The cache folder of a user's folder or npz: its name, made unique by a digest of its path."""
    resolved = str(path.resolve())
    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in path.name)[:40]
    return f"{kind}-{safe}-{hashlib.sha256(resolved.encode()).hexdigest()[:16]}"


def _read_folder_image(path: Path) -> np.ndarray:
    try:
        return read_image(path).samples
    except ImageError as error:
        raise DatasetError(str(error)) from None


FOLDER_GROUP = 256
"""Images of a folder decoded and written together."""


def _folder_images(files: list[Path], chosen: list[Path], name: str) -> Iterator[np.ndarray]:
    """The chosen files decoded one by one, checked against the folder's first image."""
    first = _read_folder_image(files[0])
    group: list[np.ndarray] = []
    for f in chosen:
        a = first if f == files[0] else _read_folder_image(f)
        if a.shape != first.shape:
            (c0, h0, w0), (c, h, w) = first.shape, a.shape
            raise DatasetError(f"{name}: {f} is {w}x{h} with {c} channel(s), expected {w0}x{h0} "
                               f"with {c0} like {files[0].name}; all images must match")
        group.append(a)
        if len(group) == FOLDER_GROUP:
            yield np.stack(group)
            group = []
    if group:
        yield np.stack(group)


def plan_folder(path: Path, name: str, split: str) -> Plan:
    if not path.is_dir():
        raise DatasetError(f"{name}: {path} is not a directory")
    files = sorted((p for p in path.rglob("*") if p.suffix.lower() in IMAGE_EXTENSIONS and p.is_file()),
                   key=lambda p: p.relative_to(path).as_posix())
    if not files:
        raise DatasetError(f"{name}: no PNG/JPEG/BMP/GIF/TIFF/WEBP/PNM images under {path}")
    # Each split is stored on its own, so that no split is a copy of another's rows.
    keep = {"all": lambda i: True, "test": lambda i: i % 10 == 0, "train": lambda i: i % 10 != 0}[split]
    chosen = [f for i, f in enumerate(files) if keep(i)]
    return Plan(name, split, local_key("folder", path), split, tuple(files),
                lambda: _folder_images(files, chosen, name), 256)


def _npz_split_rows(path: Path, key: str, source: str) -> Iterator[np.ndarray]:
    with npz_array(path, key, source) as x:
        for chunk in x.chunks():
            yield npz_layout(_to_uint8(chunk, source), source)


def plan_npz(path: Path, name: str, split: str) -> Plan:
    try:
        with np.load(path, allow_pickle=False) as f:
            keys = {s: k for s in NPZ_SPLITS if (k := npz_key(f.files, s))}
            levels = int(f["levels"]) if "levels" in f.files else None
    except (OSError, ValueError, zipfile.BadZipFile, EOFError, TypeError) as e:
        raise DatasetError(f"{name}: cannot read {path} as npz: {e}") from e
    if split not in keys:
        accepted = ", ".join(keys) or "none"
        raise DatasetError(f"{name}: unknown split {split!r}; accepted: {accepted}"
                           " (keys <split>, <split>_x or x_<split>)")

    def any_split_above_one() -> int:
        """256 if any value of any split exceeds 1, else 2 (each split read a chunk at a time)."""
        for s, k in keys.items():
            if any(chunk.size and chunk.max() > 1 for chunk in _npz_split_rows(path, k, f"{path}[{s}]")):
                return 256
        return 2
    return Plan(name, split, local_key("npz", path), split, (path,),
                lambda: _npz_split_rows(path, keys[split], f"{path}[{split}]"),
                levels if levels is not None else any_split_above_one)
