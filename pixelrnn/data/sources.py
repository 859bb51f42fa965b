"""One loader per dataset source, and ``load_dataset``: images as uint8 arrays (N, C, H, W).

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
    must share one size and channel count. levels 256, or ``levels=L`` (``data.levels``):
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

Named datasets have fixed levels; ``levels`` other than theirs is refused.

Files are found and verified by :mod:`pixelrnn.data.fetch`; their containers (gzip, tar, zip,
npz) are read within the limits by :mod:`pixelrnn.data.archives`; their formats are parsed by
:mod:`pixelrnn.data.formats`; image files are read by :func:`pixelrnn.images.read_image`.
Every image set is held to the ``image_pixels`` limit (:mod:`pixelrnn.limits`).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ..errors import DatasetError, ImageError
from ..images import IMAGE_EXTENSIONS, read_image, samples_to_values, scale_table
from ..limits import check_limit
from .archives import BoundedNpz, BoundedZip, gunzip, tar_members
from .fetch import Lookup, data_dir_from_env, default_cache_dir, verify_file
from .formats import (_read_bytes, _to_uint8, npz_key, npz_layout, parse_amat, parse_cifar_batch,
                      parse_idx_images, read_npz_member)


@dataclass(frozen=True, eq=False)
class ImageSet:
    """Images (N, C, H, W) uint8 with values in [0, levels); item i is image i as a tensor."""

    name: str
    split: str
    images: np.ndarray
    levels: int

    def __post_init__(self) -> None:
        x = self.images
        if not isinstance(x, np.ndarray) or x.ndim != 4 or x.dtype != np.uint8:
            raise DatasetError(f"{self.name}: images must be a (N, C, H, W) uint8 array")
        if not 2 <= self.levels <= 256:
            raise DatasetError(f"{self.name}: levels must be in 2..256, got {self.levels}")
        check_limit("image_pixels", x.shape[2] * x.shape[3], f"{self.name}: an image of {x.shape[2]}x{x.shape[3]}",
                    DatasetError)
        if x.size and int(x.max()) >= self.levels:
            raise DatasetError(f"{self.name}: value {int(x.max())} >= levels {self.levels}")
        if not (x.flags.c_contiguous and x.flags.writeable):
            object.__setattr__(self, "images", np.array(x, order="C"))

    @property
    def channels(self) -> int:
        return self.images.shape[1]

    @property
    def height(self) -> int:
        return self.images.shape[2]

    @property
    def width(self) -> int:
        return self.images.shape[3]

    def __len__(self) -> int:
        return self.images.shape[0]

    def __getitem__(self, index: int) -> torch.Tensor:
        """Image ``index`` as an int64 tensor (C, H, W): a map-style dataset for ``DataLoader``."""
        return torch.from_numpy(self.images[index].astype(np.int64))


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
_FOLDER_SPLITS = ("all", "train", "valid", "test")
_NPZ_SPLITS = ("train", "valid", "test", "train_full", "all")


def _valid_tail(x: np.ndarray, split: str, fraction: int) -> np.ndarray:
    """train/valid/train_full of a training array whose last 1/fraction is validation."""
    cut = len(x) - len(x) // fraction
    return {"train": x[:cut], "valid": x[cut:], "train_full": x}[split]


def _load_binarized_mnist(ctx: Lookup, split: str) -> tuple[np.ndarray, int]:
    path = ctx.fetch(f"binarized_mnist_{split}.amat")
    return parse_amat(_read_bytes(path), str(path)), 2


def _load_mnist(ctx: Lookup, split: str) -> tuple[np.ndarray, int]:
    fname = "t10k-images-idx3-ubyte.gz" if split == "test" else "train-images-idx3-ubyte.gz"
    path = ctx.fetch(fname)
    x = parse_idx_images(gunzip(path), str(path))
    return (x if split == "test" else _valid_tail(x, split, 6)), 256


def _load_cifar10(ctx: Lookup, split: str) -> tuple[np.ndarray, int]:
    names = ["test_batch"] if split == "test" else [f"data_batch_{i}" for i in range(1, 6)]
    folder = next((d / "cifar-10-batches-py" for d in ctx.dirs()
                   if (d / "cifar-10-batches-py").is_dir()), None)
    parts = []
    if folder is not None:
        for n in names:
            p = folder / n
            if not p.is_file():
                raise DatasetError(f"cifar10: {p} is missing from the extracted folder")
            parts.append(parse_cifar_batch(_read_bytes(verify_file(p, ctx.verify)), str(p)))
    else:
        if ctx.find("cifar-10-python.tar.gz") is None and not ctx.download:
            raise ctx.missing("cifar-10-python.tar.gz",
                              "cifar-10-python.tar.gz (or its folder cifar-10-batches-py/)")
        archive = ctx.fetch("cifar-10-python.tar.gz")
        # The official archive holds 9 entries: the folder, 6 batches, batches.meta, readme.html.
        found = tar_members(archive, [f"cifar-10-batches-py/{n}" for n in names], max_entries=64)
        for n in names:
            if f"cifar-10-batches-py/{n}" not in found:
                raise DatasetError(f"{archive}: has no cifar-10-batches-py/{n}")
            parts.append(parse_cifar_batch(found[f"cifar-10-batches-py/{n}"], f"{archive}:{n}"))
    x = np.concatenate(parts)
    return (x if split == "test" else _valid_tail(x, split, 10)), 256


def _load_cifar10_subset(ctx: Lookup, split: str) -> tuple[np.ndarray, int]:
    path = ctx.find("cifar10_subset.npz")
    if path is None:
        raise ctx.missing("cifar10_subset.npz", "cifar10/cifar10_subset.npz (a local-only file)")
    verify_file(path, ctx.verify)
    key = "test_x" if split == "test" else "train_x"
    with BoundedNpz(path, str(path)) as archive:
        x = archive[key]
    if x.ndim != 4 or x.shape[3] != 3:
        raise DatasetError(f"{path}: {key} has shape {x.shape}, expected (N, 32, 32, 3)")
    x = _to_uint8(x, str(path)).transpose(0, 3, 1, 2)
    return (x if split == "test" else _valid_tail(x, split, 10)), 256




def _load_imagenet(ctx: Lookup, split: str, size: int) -> tuple[np.ndarray, int]:
    part = "train" if split == "train" else "val"
    members = ([f"train_data_batch_{i}.npz" for i in range(1, 11)] if part == "train"
               else ["val_data.npz"])
    zip_name = f"Imagenet{size}_{part}_npz.zip"
    found = [ctx.find(m) for m in members]
    if all(found):
        return np.concatenate([read_npz_member(verify_file(p, ctx.verify), str(p), size)
                               for p in found]), 256
    if any(found):
        raise DatasetError(f"imagenet{size}: {members[found.index(None)]} is missing next to "
                           f"{next(p for p in found if p)}")
    if ctx.find(zip_name) is None and not ctx.download:
        raise ctx.missing(zip_name, f"{zip_name} (or the npz files it holds)")
    archive = ctx.fetch(zip_name)
    parts = []
    with BoundedZip(archive, str(archive)) as zf:  # a zip of npz files: each member is read, then opened
        by_base = {Path(n).name: n for n in zf.names()}
        for m in members:
            if m not in by_base:
                raise DatasetError(f"{archive}: has no {m}")
            parts.append(read_npz_member(zf.read(by_base[m]), f"{archive}:{m}", size))
    return np.concatenate(parts), 256


def _load_digits(ctx: Lookup, split: str) -> tuple[np.ndarray, int]:
    try:
        from sklearn.datasets import load_digits
    except ImportError as e:
        raise DatasetError('digits needs scikit-learn: pip install "pixelrnn[digits]" (or scikit-learn)') from e
    x = load_digits().images.astype(np.uint8)[:, None]
    r = np.arange(len(x)) % 5
    mask = {"test": r == 0, "valid": r == 1, "train": r >= 2}[split]
    return x[mask], 17


def _read_folder_image(path: Path) -> np.ndarray:
    try:
        return read_image(path).samples
    except ImageError as error:
        raise DatasetError(str(error)) from None


def _load_folder(path: Path, name: str, split: str, levels: int | None) -> tuple[np.ndarray, int]:
    if not path.is_dir():
        raise DatasetError(f"{name}: {path} is not a directory")
    files = sorted((p for p in path.rglob("*") if p.suffix.lower() in IMAGE_EXTENSIONS and p.is_file()),
                   key=lambda p: p.relative_to(path).as_posix())
    if not files:
        raise DatasetError(f"{name}: no PNG/JPEG/BMP/GIF/TIFF/WEBP/PNM images under {path}")
    arrays = [_read_folder_image(files[0])]
    for f in files[1:]:
        a = _read_folder_image(f)
        if a.shape != arrays[0].shape:
            (c0, h0, w0), (c, h, w) = arrays[0].shape, a.shape
            raise DatasetError(f"{name}: {f} is {w}x{h} with {c} channel(s), expected {w0}x{h0} "
                               f"with {c0} like {files[0].name}; all images must match")
        arrays.append(a)
    x = np.stack(arrays)
    if levels is None:
        levels = 256
    else:  # one mapping for every image of the folder
        mapped = samples_to_values(x, levels)
        if mapped is None:
            bad = next((f"{f} has values in [{int(a.min())}, {int(a.max())}]" for f, a in zip(files, arrays)
                        if samples_to_values(a, levels) is None), "its images mix raw and 8-bit scaled values")
            raise DatasetError(f"{name}: {bad}, which do not fit data.levels={levels}: values must be 0..{levels - 1} "
                               f"or all their 8-bit scaling ({', '.join(map(str, scale_table(levels)[:3]))}, ..., 255)")
        x = mapped[0]
    r = np.arange(len(x)) % 10
    return {"all": x, "test": x[r == 0], "valid": x[r == 1], "train": x[r >= 2]}[split], levels




def _carve_valid(splits: dict) -> dict:
    """A file's splits with ``valid`` carved from ``train`` when the file has none (module docstring)."""
    if "train" not in splits or "valid" in splits:
        return splits
    carved = {**splits, "train_full": splits.get("train_full", splits["train"])}
    for split in ("train", "valid"):
        carved[split] = _valid_tail(splits["train"], split, 10)
    return {split: carved[split] for split in _NPZ_SPLITS if split in carved}


def _load_npz(path: Path, name: str, split: str, wanted_levels: int | None) -> tuple[np.ndarray, int]:
    with BoundedNpz(path, f"{name}: {path}") as f:
        arrays = _carve_valid({s: f[k] for s in _NPZ_SPLITS if (k := npz_key(f.files, s))})
        stored_levels = f["levels"] if "levels" in f else None
    if stored_levels is not None and stored_levels.size != 1:
        raise DatasetError(f"{name}: 'levels' holds {stored_levels.size} values; it is one integer in 2..256")
    levels = wanted_levels or (None if stored_levels is None else int(stored_levels.reshape(())))
    if split not in arrays:
        accepted = ", ".join(arrays) or "none"
        raise DatasetError(f"{name}: unknown split {split!r}; accepted: {accepted}"
                           " (keys <split>, <split>_x or x_<split>)")
    for s, a in arrays.items():
        arrays[s] = _to_uint8(a, f"{path}[{s}]")
    if levels is None:
        levels = 256 if any(a.size and a.max() > 1 for a in arrays.values()) else 2
    return npz_layout(arrays[split], f"{path}[{split}]"), levels


def dataset_splits(name: str) -> tuple[str, ...]:
    """The split names ``load_dataset(name, ...)`` accepts (npz files are opened to see)."""
    if name in _SPLITS:
        return _SPLITS[name]
    if name.startswith("folder:"):
        return _FOLDER_SPLITS
    if name.startswith("npz:"):
        path = Path(name[4:]).expanduser()
        if not path.is_file():
            raise DatasetError(f"{name}: file {path} not found")
        with BoundedNpz(path, name) as f:
            return tuple(_carve_valid({s: () for s in _NPZ_SPLITS if npz_key(f.files, s)}))
    raise DatasetError(f"unknown dataset {name!r}; choose one of {', '.join(DATASETS)}, "
                       "folder:PATH or npz:PATH")


def _local_path(spec: str, roots: tuple[Path, ...]) -> Path:
    p = Path(spec).expanduser()
    if not p.exists() and not p.is_absolute():
        p = next((r / spec for r in roots if (r / spec).exists()), p)
    return p


def load_dataset(name: str, split: str = "train", *, data_dir: str | os.PathLike | None = None,
                 download: bool = False, cache_dir: str | os.PathLike | None = None,
                 verify: bool | None = None, levels: int | None = None) -> ImageSet:
    """Load one split of a dataset as an :class:`ImageSet` (see the module docstring).

    ``levels``: the values per sub-pixel of a ``folder:`` or ``npz:`` dataset (None: its own).
    """
    if levels is not None and not 2 <= levels <= 256:
        raise DatasetError(f"data.levels={levels} must lie in 2..256")
    try:
        return _load_dataset(name, split, data_dir, download, cache_dir, verify, levels)
    except MemoryError:  # the files were within the limits, the machine was not
        raise DatasetError(f"{name}: not enough memory to load split {split!r}") from None


def _load_dataset(name: str, split: str, data_dir, download: bool, cache_dir, verify: bool | None,
                  levels: int | None) -> ImageSet:
    root = Path(data_dir).expanduser() if data_dir is not None else data_dir_from_env()
    if root is not None and not root.is_dir():
        source = "data_dir" if data_dir is not None else "PIXELRNN_DATA_DIR"
        raise DatasetError(f"data directory {root} (from {source}) does not exist")
    roots = (root,) if root is not None else ()
    if name.startswith(_PREFIXES):
        kind, spec = name.split(":", 1)
        path = _local_path(spec, roots)
        if kind == "folder":
            if split not in _FOLDER_SPLITS:
                raise DatasetError(f"unknown split {split!r} for {name}; accepted: "
                                   f"{', '.join(_FOLDER_SPLITS)}")
            images, levels = _load_folder(path, name, split, levels)
        else:
            if not path.is_file():
                raise DatasetError(f"{name}: file {path} not found")
            images, levels = _load_npz(path, name, split, levels)
    else:
        accepted = dataset_splits(name)  # raises for unknown names
        if split not in accepted:
            raise DatasetError(f"unknown split {split!r} for {name}; "
                               f"accepted: {', '.join(accepted)}")
        ctx = Lookup(name, roots, default_cache_dir(cache_dir), download, verify)
        wanted = levels
        if name.startswith("imagenet"):
            images, levels = _load_imagenet(ctx, split, int(name[len("imagenet"):]))
        else:
            loader = {"binarized_mnist": _load_binarized_mnist, "mnist": _load_mnist,
                      "cifar10": _load_cifar10, "cifar10_subset": _load_cifar10_subset,
                      "digits": _load_digits}[name]
            images, levels = loader(ctx, split)
        if wanted is not None and wanted != levels:
            raise DatasetError(f"{name} has {levels} levels; data.levels={wanted} applies to folder: and npz: datasets only")
    if len(images) == 0:
        raise DatasetError(f"{name}: split {split!r} is empty")
    return ImageSet(name, split, images, levels)
