"""The user's own datasets: ``folder:PATH`` (image files) and ``npz:PATH`` (arrays), as plans.

Their splits and layouts are documented in :mod:`pixelrnn.data.sources`. A folder is decoded one
image at a time and each of its splits is stored on its own, so that no split is a copy of
another's rows; an npz split is read a few MB of rows at a time. Their prepared arrays live in
the cache under the file's name and a digest of its full path.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Iterator

import numpy as np

from ..errors import DatasetError, ImageError
from ..images import IMAGE_EXTENSIONS, read_image, samples_to_values, scale_table
from ..archives import BoundedNpz
from ..utils import regular_file
from .formats import _to_uint8, npz_key, npz_layout
from .labels import folder_classes, folder_labels, npz_label_key, npz_labels
from .parts import Plan, every_row, npz_array
from .preprocess import MAX_LEVELS, Preprocessing, storage_dtype

FOLDER_SPLITS = ("all", "train", "valid", "test")
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


GREY_MODES = ("1", "L", "LA", "La", "I;16", "I;16L", "I;16B", "I;16N")


def _folder_channels(files: list[Path]) -> int:
    """3 if any file of the folder is colour (its grey files are then repeated), else 1; from the headers where they say."""
    from PIL import Image

    for f in files:
        try:
            with Image.open(f) as image:
                mode = image.mode
        except Exception:  # noqa: BLE001 - the file is read (and refused, one line) with the others
            continue
        if mode not in GREY_MODES and (mode not in ("P", "PA") or _read_folder_image(f).shape[0] == 3):
            return 3
    return 1


def _folder_mapping(files: list[Path], prep: Preprocessing, channels: int, name: str) -> str:
    """The one mapping that fits every image of the folder for ``prep.levels`` values: ``scaled`` if
    every sample is the 8-bit scaling of a value, else ``raw`` (:mod:`pixelrnn.images`)."""
    levels = prep.levels
    table = scale_table(levels)
    all_scaled = all_raw = True
    for f in files:
        samples = prep.image(_read_folder_image(f), channels)
        scaled, raw = bool(np.isin(samples, table).all()), samples.size == 0 or int(samples.max()) < levels
        if not (scaled or raw):
            _misfit(name, f"{f} has values in [{int(samples.min())}, {int(samples.max())}]", levels)
        all_scaled, all_raw = all_scaled and scaled, all_raw and raw
    if not (all_scaled or all_raw):
        _misfit(name, "its images mix raw and 8-bit scaled values", levels)
    return "scaled" if all_scaled else "raw"


def _misfit(name: str, what: str, levels: int):
    raise DatasetError(f"{name}: {what}, which do not fit data.levels={levels} with data.mapping=exact: values must be 0..{levels - 1} "
                       f"or all their 8-bit scaling ({', '.join(map(str, scale_table(levels)[:3]))}, ..., 255); "
                       f"data.mapping = \"quantise\" bins them (v * {levels} // 256)")


def _folder_images(files: list[Path], chosen: list[Path], name: str, prep: Preprocessing, channels: int,
                   mapping: str | None) -> Iterator[np.ndarray]:
    """The chosen files decoded one by one, shaped by ``prep``, checked against the folder's first image, as model values."""
    first = prep.image(_read_folder_image(files[0]), channels)
    group: list[np.ndarray] = []

    def values(batch: np.ndarray) -> np.ndarray:
        if mapping != "scaled":
            return batch
        return samples_to_values(batch, prep.levels)[0]  # every sample is scaled: the folder's mapping says so

    for f in chosen:
        a = first if f == files[0] else prep.image(_read_folder_image(f), channels)
        if a.shape != first.shape:
            (c0, h0, w0), (c, h, w) = first.shape, a.shape
            raise DatasetError(f"{name}: {f} is {w}x{h} with {c} channel(s), expected {w0}x{h0} "
                               f"with {c0} like {files[0].name}; all images must match, or set data.size = [H, W] "
                               "(and data.resize = \"crop\" or \"fit\") to resize them")
        group.append(a)
        if len(group) == FOLDER_GROUP:
            yield values(np.stack(group))
            group = []
    if group:
        yield values(np.stack(group))


def plan_folder(path: Path, name: str, split: str, prep: Preprocessing | None = None) -> Plan:
    """The plan of a folder split; ``prep`` shapes every image and, under ``exact``, maps its levels."""
    prep = prep or Preprocessing()
    if not path.is_dir():
        raise DatasetError(f"{name}: {path} is not a directory")
    files = sorted((p for p in path.rglob("*") if p.suffix.lower() in IMAGE_EXTENSIONS and (p.is_file() or p.is_symlink())),
                   key=lambda p: p.relative_to(path).as_posix())
    if not files:
        raise DatasetError(f"{name}: no PNG/JPEG/BMP/GIF/TIFF/WEBP/PNM images under {path}")
    for f in files:  # a link into /proc or /dev would be read forever, or fail midway
        regular_file(f, name)
    # Each split is stored on its own, so that no split is a copy of another's rows.
    keep = {"all": lambda i: True, "test": lambda i: i % 10 == 0, "valid": lambda i: i % 10 == 1,
            "train": lambda i: i % 10 >= 2}[split]
    chosen = [f for i, f in enumerate(files) if keep(i)]
    channels = prep.channels or _folder_channels(files)
    # One mapping for every image of the folder, whichever split is read (the settings name the cache's array).
    exact = prep.levels is not None and prep.mapping == "exact"
    mapping = _folder_mapping(files, prep, channels, name) if exact else None
    shape = f"{prep.size[0]}x{prep.size[1]}{prep.resize}-{'nearest' if prep.mapping == 'exact' else 'lanczos'}" if prep.size else ""
    tag = "-".join(part for part in (f"c{channels}", shape, f"{prep.levels}{mapping}" if exact else "") if part)
    # Classes: the sub-folders in sorted order (torchvision's ImageFolder), when every image lies in one.
    classes = folder_classes([f.relative_to(path) for f in files])
    labels = (lambda: folder_labels([f.relative_to(path) for f in chosen], classes)) if classes else None
    return Plan(name, split, local_key("folder", path), f"{split}-{tag}", tuple(files),
                lambda: _folder_images(files, chosen, name, prep, channels, mapping), prep.levels if exact else 256,
                every_row, labels, classes)


def _npz_split_rows(path: Path, key: str, source: str, levels: int | None = None) -> Iterator[np.ndarray]:
    """The rows of an npz split as uint8, or as uint16 codes when ``levels`` is above 256 (each value checked below it)."""
    with npz_array(path, key, source) as x:
        for chunk in x.chunks():
            if levels is None or levels <= 256:
                yield npz_layout(_to_uint8(chunk, source), source)
                continue
            if chunk.size and (int(chunk.min()) < 0 or int(chunk.max()) >= levels):
                raise DatasetError(f"{source}: codes must lie in 0..{levels - 1} for data.levels={levels}; found "
                                   f"{int(chunk.min())}..{int(chunk.max())}")
            yield npz_layout(chunk.astype(storage_dtype(levels)), source)


def carved_splits(present: set[str]) -> tuple[str, ...]:
    """The splits of an npz holding arrays for ``present``: a file with ``train`` but no ``valid``
    gets ``valid`` (the last tenth of ``train``), ``train`` (the rest) and ``train_full`` (all of it)."""
    if "train" in present and "valid" not in present:
        present = present | {"valid", "train_full"}
    return tuple(split for split in NPZ_SPLITS if split in present)


def _carved_rows(split: str):
    """Rows of the stored ``train`` array for a carved split (as for CIFAR-10: the last tenth is ``valid``)."""
    def rows(count: int) -> slice:
        cut = count - count // 10
        return {"train": slice(0, cut), "valid": slice(cut, count), "train_full": slice(0, count)}[split]
    return rows


def _npz_mapping(path: Path, keys: dict[str, str], levels: int, name: str) -> str:
    """The one exact mapping of every split of an npz to ``levels`` values: ``raw`` (the array holds values) if every
    value is below ``levels``, else ``scaled`` if every value is the 8-bit scaling of one (0/255 -> 0/1 for 2 levels)."""
    table = scale_table(levels)
    all_raw = all_scaled = True
    low, high = 255, 0
    for s, k in keys.items():
        for chunk in _npz_split_rows(path, k, f"{path}[{s}]"):
            if chunk.size:
                low, high = min(low, int(chunk.min())), max(high, int(chunk.max()))
                all_raw = all_raw and int(chunk.max()) < levels
                all_scaled = all_scaled and bool(np.isin(chunk, table).all())
    if all_raw:
        return "raw"
    if all_scaled:
        return "scaled"
    _misfit(name, f"{path} has values in [{low}, {high}]", levels)


def _mapped_rows(rows: Iterator[np.ndarray], levels: int, mapping: str) -> Iterator[np.ndarray]:
    for chunk in rows:
        yield samples_to_values(chunk, levels)[0] if mapping == "scaled" else chunk


def plan_npz(path: Path, name: str, split: str, prep: Preprocessing | None = None) -> Plan:
    """The plan of an npz split; under ``exact``, ``prep.levels`` maps the values exactly (channels and size: after loading)."""
    prep = prep or Preprocessing()
    regular_file(path, name)
    with BoundedNpz(path, f"{name}: {path}") as f:
        keys = {s: k for s in NPZ_SPLITS if (k := npz_key(f.files, s))}
        stored_levels = f["levels"] if "levels" in f else None
        found = sorted(f.files)
    if stored_levels is not None and stored_levels.size != 1:
        raise DatasetError(f"{name}: 'levels' holds {stored_levels.size} values; it is one integer in 2..{MAX_LEVELS}")
    if split not in carved_splits(set(keys)):
        accepted = ", ".join(carved_splits(set(keys))) or "none"
        raise DatasetError(f"{name}: unknown split {split!r}; accepted: {accepted} (keys <split>, <split>_x, x_<split>, "
                           f"or images as written by `pixelrnn sample`; the file holds {', '.join(found) or 'no array'})")
    stored, rows = split, every_row
    carved = "train" in keys and "valid" not in keys
    if carved and (split in ("train", "valid") or split not in keys):  # train_full too, unless the file has one
        stored, rows = "train", _carved_rows(split)
    levels = prep.levels if prep.mapping == "exact" else None
    mapping = None
    if levels is not None:  # the levels and mapping name the prepared array: its values were checked against them
        mapping = _npz_mapping(path, keys, levels, name) if levels <= 256 else "raw"  # above 256: integer codes, as they are
        stored_name = f"{stored}-{levels}-{mapping}"
    else:
        stored_name = stored
        if stored_levels is not None:
            levels = int(stored_levels.reshape(()))
            if not 2 <= levels <= MAX_LEVELS:
                raise DatasetError(f"{name}: 'levels' is {levels}; it must lie in 2..{MAX_LEVELS}")

    def any_split_above_one() -> int:
        """256 if any value of any split exceeds 1, else 2 (each split read a chunk at a time)."""
        for s, k in keys.items():
            if any(chunk.size and chunk.max() > 1 for chunk in _npz_split_rows(path, k, f"{path}[{s}]")):
                return 256
        return 2
    label_key = npz_label_key(found, "images" if keys[stored] == "images" else stored)
    labels = None if label_key is None else (lambda: npz_labels(path, label_key, f"{name}: {path}"))
    return Plan(name, split, local_key("npz", path), stored_name, (path,),
                lambda: _mapped_rows(_npz_split_rows(path, keys[stored], f"{path}[{stored}]", levels), prep.levels, mapping),
                levels if levels is not None else any_split_above_one, rows, labels)
