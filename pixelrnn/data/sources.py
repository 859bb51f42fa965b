"""One plan per dataset source, and ``load_dataset``: images as uint8 arrays (N, C, H, W).

Every loader returns an :class:`ImageSet` whose ``images`` are C-contiguous, writable
``uint8`` arrays with values in ``[0, levels)``.

Datasets (``load_dataset(name, split)``)
----------------------------------------
``binarized_mnist``  The FIXED binarization of MNIST (Larochelle & Murray 2011, after
    Salakhutdinov & Murray 2008) that the PixelRNN paper evaluates on, not a fresh
    stochastic binarization. Files ``binarized_mnist_{train,valid,test}.amat``: text, one
    image per line, 784 values ``0``/``1`` separated by single spaces, row-major 28x28.
    Splits train/valid/test = 50000/10000/10000. levels 2, shape (1, 28, 28).
``mnist``  The four original IDX files (only the two image files are read). Splits:
    ``train`` = first 50000 of the 60000 training images, ``valid`` = the last 10000
    (in general: the last sixth of the training file), ``train_full`` = all 60000,
    ``test`` = t10k (10000). levels 256, shape (1, 28, 28).
``cifar10``  The official python release, ``cifar-10-python.tar.gz`` or its extracted
    ``cifar-10-batches-py/`` folder. Row r of a batch's ``data`` is 3x32x32 in CHW order.
    ``train_full`` = data_batch_1..5 (50000), ``train`` = its first 45000, ``valid`` = its
    last 5000 (in general the last tenth), ``test`` = test_batch. levels 256.
    The pickled batches are read by a restricted unpickler that only admits the numpy
    array reconstruction globals; any other global (``os.system``, ...) is refused.
``cifar10_subset``  Local only (never downloaded): ``cifar10/cifar10_subset.npz`` with
    ``train_x`` (5000, 32, 32, 3) and ``test_x`` (1000, 32, 32, 3), HWC. ``train`` = first
    4500, ``valid`` = last 500 (the last tenth), ``train_full`` = all, ``test`` = test_x.
``imagenet32``, ``imagenet64``  Downsampled ImageNet of Chrabaszcz et al. 2017
    (``Imagenet{32,64}_{train,val}_npz.zip``, or the extracted ``train_data_batch_1..10.npz``
    and ``val_data.npz``; key ``data`` is (N, 3*s*s) in CHW order). Splits ``train`` and
    ``test`` = the official validation set (the PixelRNN paper reports validation NLL).
    No checksums are known for these files. (The paper's own release,
    image-net.org/small/train_32x32.tar, is a different file set and is not supported.)
``digits``  scikit-learn's bundled UCI 8x8 digits (offline): 1797 images, values 0..16,
    levels 17, shape (1, 8, 8). ``test`` = index % 5 == 0, ``valid`` = index % 5 == 1,
    ``train`` = the rest.
``folder:PATH``  PNG/JPEG/BMP/GIF/WEBP files under PATH (recursive, sorted by relative
    path; GIFs give their first frame). Grey-like images (L, 1, LA, 16-bit grey, grey
    palettes) become 1 channel, everything else RGB with 3 (alpha is dropped). All images
    must share one size (else ``size``) and channel count (a folder with any colour file is read as
    colour, its grey files repeated). levels 256, or ``levels=L`` (``data.levels``):
    8-bit samples become values by the one exact mapping of :mod:`pixelrnn.images`
    (``scaled``: 0/255 -> 0/1 for L = 2; else ``raw``), or the load fails naming the file.
    Splits: ``all``, ``test`` = index % 10 == 0, ``valid`` = index % 10 == 1, ``train`` = the
    rest.
``npz:PATH``  A .npz with one integer array per split under the key ``<split>``,
    ``<split>_x`` or ``x_<split>`` (split in train/valid/test/train_full/all). Layouts: 3-D
    is NHW (one channel); 4-D is NCHW if axis 1 has size 1 or 3, else NHWC if axis 3 has
    size 1 or 3 (so NCHW wins when both qualify). ``levels`` is the key ``levels`` if
    present, else 256 if any value of any split exceeds 1, else 2; ``levels=L`` sets it
    (every value must lie below L). A file with ``train`` but no ``valid`` gets one carved
    deterministically: ``valid`` = the last tenth of ``train``, ``train`` = the rest,
    ``train_full`` = all of it (as for CIFAR-10).

Labels: ``ImageSet.labels`` is the class of each image (int64 (N,)) where the source has one, and
``ImageSet.class_names`` their names; the sources are listed in :mod:`pixelrnn.data.labels`
(binarized MNIST has none).

Named datasets have fixed levels; ``levels`` other than theirs needs ``mapping="quantise"``.
Every kind takes the same preprocessing (:mod:`pixelrnn.data.preprocess`): ``levels`` with
``mapping``, ``size`` with ``resize``, ``channels``. An npz read with ``levels`` under ``exact``
maps like a folder: values already below ``levels`` are kept, else their 8-bit scaling is
inverted (0/255 -> 0/1 for 2 levels). The array ``images`` of ``pixelrnn sample``'s npz is the
``train`` split (with the carved ``valid``).

Files are found and verified by :mod:`pixelrnn.data.fetch`; their containers (gzip, tar, zip,
npz) are read within the limits by :mod:`pixelrnn.archives`; their formats are parsed by
:mod:`pixelrnn.data.formats`; image files are read by :func:`pixelrnn.images.read_image`.
Every image set is held to the ``image_pixels`` limit (:mod:`pixelrnn.limits`).
A split is prepared once as a memory-mapped array in the cache (:mod:`pixelrnn.data.cache`);
the plans of ``folder:`` and ``npz:`` are in :mod:`pixelrnn.data.local`.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import IO, Iterator

import numpy as np

from ..errors import DatasetError
from ..archives import BoundedNpz, BoundedZip, gunzip, tar_members
from .cache import prepared_arrays
from .fetch import Lookup, data_dir_from_env, default_cache_dir, verify_file
from .formats import _read_bytes, _to_uint8, npz_key, parse_amat, parse_cifar_batch, parse_cifar_labels, parse_idx_images
from .local import FOLDER_SPLITS, NPZ_SPLITS, carved_splits, plan_folder, plan_npz
from .parts import Plan, every_row, npz_array
from .imageset import ImageSet
from .labels import (CIFAR10_NAMES, DIGIT_NAMES, MNIST_LABEL_FILES, imagenet_labels, npz_label_key, npz_labels, plan_labels,
                     parse_idx_labels)
from .preprocess import Preprocessing


_SPLITS: dict[str, tuple[str, ...]] = {
    "binarized_mnist": ("train", "valid", "test"),
    "mnist": ("train", "valid", "test", "train_full"),
    "cifar10": ("train", "valid", "test", "train_full"),
    "cifar10_subset": ("train", "valid", "test", "train_full"),
    "imagenet32": ("train", "test"),
    "imagenet64": ("train", "test"),
    "digits": ("train", "valid", "test"),
}
DATASETS: tuple[str, ...] = tuple(_SPLITS)
"""Fixed dataset names; ``folder:PATH`` and ``npz:PATH`` are accepted as well."""
_PREFIXES = ("folder:", "npz:")


def _split_rows(split: str, fraction: int):
    """The rows of train/valid/train_full in a training array whose last 1/fraction is validation."""
    if split == "test":
        return every_row

    def rows(count: int) -> slice:
        cut = count - count // fraction
        return {"train": slice(0, cut), "valid": slice(cut, count), "train_full": slice(0, count)}[split]
    return rows


def _plan_binarized_mnist(ctx: Lookup, split: str) -> Plan:
    path = ctx.fetch(f"binarized_mnist_{split}.amat")
    return Plan(ctx.name, split, ctx.name, split, (path,), lambda: [parse_amat(_read_bytes(path), str(path))], 2)


def _plan_mnist(ctx: Lookup, split: str) -> Plan:
    stored = "test" if split == "test" else "train_full"
    image_file = "t10k-images-idx3-ubyte.gz" if split == "test" else "train-images-idx3-ubyte.gz"
    path = ctx.fetch(image_file)
    label_file = MNIST_LABEL_FILES[image_file]  # optional: without it the split has no labels
    label_path = ctx.fetch(label_file) if ctx.find(label_file) is not None or ctx.download else None
    labels = None if label_path is None else (lambda: parse_idx_labels(gunzip(label_path), str(label_path)))
    return Plan(ctx.name, split, ctx.name, stored, (path,) + ((label_path,) if label_path else ()),
                lambda: [parse_idx_images(gunzip(path), str(path))], 256, _split_rows(split, 6), labels,
                DIGIT_NAMES if labels else ())


def _cifar_archive_batches(archive: Path, names: list[str], parse=parse_cifar_batch) -> Iterator[np.ndarray]:
    # The official archive holds 9 entries: the folder, 6 batches, batches.meta, readme.html.
    found = tar_members(archive, [f"cifar-10-batches-py/{n}" for n in names], max_entries=64)
    for n in names:
        if f"cifar-10-batches-py/{n}" not in found:
            raise DatasetError(f"{archive}: has no cifar-10-batches-py/{n}")
        yield parse(found[f"cifar-10-batches-py/{n}"], f"{archive}:{n}")


def _plan_cifar10(ctx: Lookup, split: str) -> Plan:
    stored = "test" if split == "test" else "train_full"
    names = ["test_batch"] if split == "test" else [f"data_batch_{i}" for i in range(1, 6)]
    folder = next((d / "cifar-10-batches-py" for d in ctx.dirs()
                   if (d / "cifar-10-batches-py").is_dir()), None)
    if folder is not None:
        paths = tuple(folder / n for n in names)
        for p in paths:
            if not p.is_file():
                raise DatasetError(f"cifar10: {p} is missing from the extracted folder")
            verify_file(p, ctx.verify)
        parts = lambda: (parse_cifar_batch(_read_bytes(p), str(p)) for p in paths)
        labels = lambda: np.concatenate([parse_cifar_labels(_read_bytes(p), str(p)) for p in paths])
    else:
        if ctx.find("cifar-10-python.tar.gz") is None and not ctx.download:
            raise ctx.missing("cifar-10-python.tar.gz",
                              "cifar-10-python.tar.gz (or its folder cifar-10-batches-py/)")
        paths = (ctx.fetch("cifar-10-python.tar.gz"),)
        parts = lambda: _cifar_archive_batches(paths[0], names)
        labels = lambda: np.concatenate(list(_cifar_archive_batches(paths[0], names, parse_cifar_labels)))
    return Plan(ctx.name, split, ctx.name, stored, paths, parts, 256, _split_rows(split, 10), labels, CIFAR10_NAMES)


def _cifar10_subset_rows(path: Path, key: str) -> Iterator[np.ndarray]:
    with npz_array(path, key, str(path)) as x:
        if len(x.shape) != 4 or x.shape[3] != 3:
            raise DatasetError(f"{path}: {key} has shape {x.shape}, expected (N, 32, 32, 3)")
        for chunk in x.chunks():
            yield _to_uint8(chunk, str(path)).transpose(0, 3, 1, 2)


def _plan_cifar10_subset(ctx: Lookup, split: str) -> Plan:
    path = ctx.find("cifar10_subset.npz")
    if path is None:
        raise ctx.missing("cifar10_subset.npz", "cifar10/cifar10_subset.npz (a local-only file)")
    verify_file(path, ctx.verify)
    stored = "test" if split == "test" else "train_full"
    key = "test_x" if split == "test" else "train_x"
    with BoundedNpz(path, str(path)) as f:
        label_key = npz_label_key(f.files, stored.split("_")[0])
    labels = None if label_key is None else (lambda: npz_labels(path, label_key, str(path)))
    return Plan(ctx.name, split, ctx.name, stored, (path,), lambda: _cifar10_subset_rows(path, key), 256,
                _split_rows(split, 10), labels, CIFAR10_NAMES if labels else ())


def _imagenet_member(npz: Path | IO[bytes], source: str, size: int) -> Iterator[np.ndarray]:
    with npz_array(npz, "data", source) as data:
        if len(data.shape) != 2 or data.shape[1] != 3 * size * size:
            raise DatasetError(f"{source}: data has shape {data.shape}, expected (N, {3 * size * size})")
        for chunk in data.chunks():
            yield _to_uint8(chunk, source).reshape(-1, 3, size, size)  # row r is 3 x size x size in CHW order


def _imagenet_archive(archive: Path, names: list[str], size: int) -> Iterator[np.ndarray]:
    with BoundedZip(archive, str(archive)) as zf:  # the layout and each member's sizes checked, then streamed
        for name in names:
            with zf.open(name) as member:
                yield from _imagenet_member(member, f"{archive}:{Path(name).name}", size)


def _plan_imagenet(ctx: Lookup, split: str, size: int) -> Plan:
    part = "train" if split == "train" else "val"
    members = ([f"train_data_batch_{i}.npz" for i in range(1, 11)] if part == "train"
               else ["val_data.npz"])
    zip_name = f"Imagenet{size}_{part}_npz.zip"
    found = [ctx.find(m) for m in members]
    if all(found):
        paths = tuple(verify_file(p, ctx.verify) for p in found)
        return Plan(ctx.name, split, ctx.name, split, paths,
                    lambda: (rows for p in paths for rows in _imagenet_member(p, str(p), size)), 256,
                    labels=lambda: imagenet_labels((p, str(p)) for p in paths))
    if any(found):
        raise DatasetError(f"imagenet{size}: {members[found.index(None)]} is missing next to "
                           f"{next(p for p in found if p)}")
    if ctx.find(zip_name) is None and not ctx.download:
        raise ctx.missing(zip_name, f"{zip_name} (or the npz files it holds)")
    archive = ctx.fetch(zip_name)
    with BoundedZip(archive, str(archive)) as zf:  # every member is looked for before any is read
        by_base = {Path(n).name: n for n in zf.names()}
    absent = [m for m in members if m not in by_base]
    if absent:
        raise DatasetError(f"{archive}: has no {absent[0]}")
    return Plan(ctx.name, split, ctx.name, split, (archive,),
                lambda: _imagenet_archive(archive, [by_base[m] for m in members], size), 256,
                labels=lambda: _imagenet_archive_labels(archive, [by_base[m] for m in members]))


def _imagenet_archive_labels(archive: Path, names: list[str]) -> np.ndarray | None:
    with BoundedZip(archive, str(archive)) as zf:
        found = []
        for name in names:
            with zf.open(name) as member:
                found.append(imagenet_labels([(member, f"{archive}:{Path(name).name}")]))
        return None if any(labels is None for labels in found) else np.concatenate(found)


def _plan_digits(ctx: Lookup, split: str) -> Plan:
    """Bundled with scikit-learn and tiny: kept in memory (no files, so no cache)."""
    def images() -> list[np.ndarray]:
        try:
            from sklearn.datasets import load_digits
        except ImportError as e:
            raise DatasetError('digits needs scikit-learn: pip install "pixelrnn[digits]" (or scikit-learn)') from e
        return [load_digits().images.astype(np.uint8)[:, None]]

    def labels() -> np.ndarray:
        from sklearn.datasets import load_digits

        return load_digits().target

    def rows(count: int) -> np.ndarray:
        r = np.arange(count) % 5
        return {"test": r == 0, "valid": r == 1, "train": r >= 2}[split]
    return Plan(ctx.name, split, ctx.name, "all", (), images, 17, rows, labels, DIGIT_NAMES)


def dataset_splits(name: str) -> tuple[str, ...]:
    """The split names ``load_dataset(name, ...)`` accepts (npz files are opened to see)."""
    if name in _SPLITS:
        return _SPLITS[name]
    if name.startswith("folder:"):
        return FOLDER_SPLITS
    if name.startswith("npz:"):
        path = Path(name[4:]).expanduser()
        if not path.is_file():
            raise DatasetError(f"{name}: file {path} not found")
        with BoundedNpz(path, name) as f:
            return carved_splits({s for s in NPZ_SPLITS if npz_key(f.files, s)})
    raise DatasetError(f"unknown dataset {name!r}; choose one of {', '.join(DATASETS)}, "
                       "folder:PATH or npz:PATH")


def _local_path(spec: str, roots: tuple[Path, ...]) -> Path:
    p = Path(spec).expanduser()
    if not p.exists() and not p.is_absolute():
        p = next((r / spec for r in roots if (r / spec).exists()), p)
    return p


def _plan(name: str, split: str, roots: tuple[Path, ...], cache: Path, download: bool, verify: bool | None,
          prep: Preprocessing) -> Plan:
    if name.startswith(_PREFIXES):
        kind, spec = name.split(":", 1)
        path = _local_path(spec, roots)
        if kind == "folder":
            if split not in FOLDER_SPLITS:
                raise DatasetError(f"unknown split {split!r} for {name}; accepted: "
                                   f"{', '.join(FOLDER_SPLITS)}")
            return plan_folder(path, name, split, prep)
        if not path.is_file():
            raise DatasetError(f"{name}: file {path} not found")
        return plan_npz(path, name, split, prep)
    accepted = dataset_splits(name)  # raises for unknown names
    if split not in accepted:
        raise DatasetError(f"unknown split {split!r} for {name}; "
                           f"accepted: {', '.join(accepted)}")
    ctx = Lookup(name, roots, cache, download, verify)
    if name.startswith("imagenet"):
        return _plan_imagenet(ctx, split, int(name[len("imagenet"):]))
    planner = {"binarized_mnist": _plan_binarized_mnist, "mnist": _plan_mnist, "cifar10": _plan_cifar10,
               "cifar10_subset": _plan_cifar10_subset, "digits": _plan_digits}[name]
    plan = planner(ctx, split)
    if prep.levels is not None and prep.levels != plan.levels and prep.mapping == "exact":
        raise DatasetError(f"{name} has {plan.levels} levels; to read it with data.levels={prep.levels}, set "
                           f"data.mapping = \"quantise\" (v * {prep.levels} // {plan.levels})")
    return plan


def load_dataset(name: str, split: str = "train", *, data_dir: str | os.PathLike | None = None,
                 download: bool = False, cache_dir: str | os.PathLike | None = None,
                 verify: bool | None = None, levels: int | None = None, cache: bool = True, progress: bool = True,
                 mapping: str = "exact", size: tuple[int, int] | None = None, resize: str = "crop",
                 channels: int | None = None) -> ImageSet:
    """Load one split of a dataset as an :class:`ImageSet` (see the module docstring).

    Preprocessing (:mod:`pixelrnn.data.preprocess`), the same for every dataset: ``levels`` with
    ``mapping`` (``exact`` or ``quantise``), ``size`` (H, W) with ``resize`` (``crop`` or ``fit``) and
    ``channels`` (1 or 3); None keeps the dataset's own.
    With ``cache`` (the default) a dataset read from files is prepared once in the cache dir and
    memory-mapped read-only (:mod:`pixelrnn.data.cache`); ``progress`` shows a bar while it is
    prepared. ``cache=False`` reads the files into memory each time. A folder is prepared with its
    preprocessing; other datasets are shaped and quantised in memory after loading.
    """
    prep = Preprocessing(levels, mapping, size, resize, channels)
    try:
        return _load_dataset(name, split, data_dir, download, cache_dir, verify, prep, cache, progress)
    except MemoryError:  # the files were within the limits, the machine was not
        raise DatasetError(f"{name}: not enough memory to load split {split!r}") from None


def _load_dataset(name: str, split: str, data_dir, download: bool, cache_dir, verify: bool | None, prep: Preprocessing,
                  cache: bool, progress: bool) -> ImageSet:
    root = Path(data_dir).expanduser() if data_dir is not None else data_dir_from_env()
    if root is not None and not root.is_dir():
        source = "data_dir" if data_dir is not None else "PIXELRNN_DATA_DIR"
        raise DatasetError(f"data directory {root} (from {source}) does not exist")
    cache_root = default_cache_dir(cache_dir)
    plan = _plan(name, split, (root,) if root is not None else (), cache_root, download, verify, prep)
    prepared = cache and bool(plan.sources)
    if prepared:
        stored, levels, stored_labels = prepared_arrays(plan, cache_root, progress=progress)
    else:
        stored, levels = plan.gather(), plan.level_count()
        stored_labels = plan_labels(plan, len(stored))
    rows = plan.rows(len(stored))
    images = stored[rows]
    labels = None if stored_labels is None else stored_labels[rows]
    if len(images) == 0:
        raise DatasetError(f"{name}: split {split!r} is empty")
    if not name.startswith("folder:") and prep.reshapes:  # a folder's images were shaped as they were read
        images, prepared = prep.array(images), False
    if prep.levels is not None and levels != prep.levels:  # quantise (an exact mapping was made by the plan)
        images, levels, prepared = prep.quantised(images, levels), prep.levels, False
    return ImageSet(name, split, images, levels, values_checked=prepared, labels=labels,
                    class_names=plan.class_names if labels is not None else ())
