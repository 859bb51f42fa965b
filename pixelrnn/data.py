"""Image datasets for the PixelRNN / PixelCNN models, as uint8 arrays (N, C, H, W).

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
    must share one size and channel count. levels 256. Splits: ``all``, ``test`` = index
    % 10 == 0, ``train`` = the rest.
``npz:PATH``  A .npz with one integer array per split under the key ``<split>``,
    ``<split>_x`` or ``x_<split>`` (split in train/valid/test/train_full/all). Layouts: 3-D
    is NHW (one channel); 4-D is NCHW if axis 1 has size 1 or 3, else NHWC if axis 3 has
    size 1 or 3 (so NCHW wins when both qualify). ``levels`` is the key ``levels`` if
    present, else 256 if any value of any split exceeds 1, else 2.

File lookup
-----------
Files are searched under a primary root: the ``data_dir`` argument, else the environment
variable ``PIXELRNN_DATA_DIR``; then under the cache dir (``cache_dir`` argument, else
``PIXELRNN_CACHE_DIR``, else ``$XDG_CACHE_HOME/pixelrnn`` or ``~/.cache/pixelrnn``). In a
root, ``root/<dataset>/`` (a few aliases, e.g. ``root/MNIST/raw``) and ``root/`` itself are
tried. ``download=True`` fetches missing files into ``<cache>/<dataset>/`` (temporary file,
checksum check, then ``os.replace``); without it a missing file is a :class:`DatasetError`.

Checksum rule (``verify``)
--------------------------
Canonical files have a known size and checksum. ``verify=None`` (default) checks every
file found under a canonical name whose size is known: a different size is reported as
truncated/corrupt without hashing; an equal size has its checksum verified (results are
cached in memory per (path, size, mtime)). Files with no known checksum are accepted.
``verify=True`` does the same but refuses files whose checksum is unknown. ``verify=False``
checks nothing (use it for hand-made or test files under canonical names); parsing still
validates formats, so truncated or corrupt files always raise a DatasetError.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import pickle
import tarfile
import tempfile
import urllib.request
import warnings
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable

import numpy as np

__all__ = [
    "DATASETS", "DatasetError", "ImageSet", "data_dir_from_env", "dataset_splits",
    "default_cache_dir", "load_dataset",
]


class DatasetError(Exception):
    """A dataset cannot be found, verified or parsed (the message is one line)."""


@dataclass(frozen=True, eq=False)
class ImageSet:
    """Images (N, C, H, W) uint8 with values in [0, levels)."""

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


# ----------------------------------------------------------------------------- registry

@dataclass(frozen=True)
class RemoteFile:
    """A canonical file: where to get it and how to check it (None = unknown)."""

    url: str
    size: int | None = None
    sha256: str | None = None
    md5: str | None = None


_BMNIST_URL = "http://www.cs.toronto.edu/~larocheh/public/datasets/binarized_mnist/"
_MNIST_URL = "https://ossci-datasets.s3.amazonaws.com/mnist/"
_IMAGENET_URL = "https://image-net.org/data/downsample/"

FILES: dict[str, RemoteFile] = {
    "binarized_mnist_train.amat": RemoteFile(
        _BMNIST_URL + "binarized_mnist_train.amat", 78_400_000,
        "ad693b29f94c14277b095f5238ddefbbdaaae0939789dd2f4f0205278cee3e4d"),
    "binarized_mnist_valid.amat": RemoteFile(
        _BMNIST_URL + "binarized_mnist_valid.amat", 15_680_000,
        "1de3d397c40fe8eeb33dafd4099a1f665ec01e96d9be234aaeeac8a34930e2e2"),
    "binarized_mnist_test.amat": RemoteFile(
        _BMNIST_URL + "binarized_mnist_test.amat", 15_680_000,
        "e6687bfea3f820c174f33b7865140b2a2dd2930ef786f35d45795fc193b5ab2c"),
    "train-images-idx3-ubyte.gz": RemoteFile(
        _MNIST_URL + "train-images-idx3-ubyte.gz", 9_912_422,
        "440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609",
        "f68b3c2dcbeaaa9fbdd348bbdeb94873"),
    "t10k-images-idx3-ubyte.gz": RemoteFile(
        _MNIST_URL + "t10k-images-idx3-ubyte.gz", 1_648_877,
        "8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6",
        "9fb629c4189551a2d022fa330f9573f3"),
    "cifar-10-python.tar.gz": RemoteFile(
        "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz", 170_498_071,
        md5="c58f30108f718f92721af3b95e74349a"),
    **{f"Imagenet{s}_{part}_npz.zip": RemoteFile(f"{_IMAGENET_URL}Imagenet{s}_{part}_npz.zip")
       for s in (32, 64) for part in ("train", "val")},
}

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
_FOLDER_SPLITS = ("all", "train", "test")
_NPZ_SPLITS = ("train", "valid", "test", "train_full", "all")

# Sub-folders of a root searched for each dataset ("" = the root itself).
_SUBDIRS: dict[str, tuple[str, ...]] = {
    "binarized_mnist": ("binarized_mnist", ""),
    "mnist": ("mnist", "MNIST/raw", ""),
    "cifar10": ("cifar10", ""),
    "cifar10_subset": ("cifar10", "cifar10_subset", ""),
    **{f"imagenet{s}": (f"imagenet{s}", f"Imagenet{s}_train_npz", f"Imagenet{s}_val_npz", "")
       for s in (32, 64)},
}


# ----------------------------------------------------------------------------- paths

def data_dir_from_env() -> Path | None:
    """The directory named by ``PIXELRNN_DATA_DIR``, or None when unset or empty."""
    value = os.environ.get("PIXELRNN_DATA_DIR", "").strip()
    return Path(value).expanduser() if value else None


def default_cache_dir(cache_dir: str | os.PathLike | None = None) -> Path:
    """``cache_dir``, else ``PIXELRNN_CACHE_DIR``, else the XDG/home cache + ``pixelrnn``."""
    if cache_dir is not None:
        return Path(cache_dir).expanduser()
    if os.environ.get("PIXELRNN_CACHE_DIR"):
        return Path(os.environ["PIXELRNN_CACHE_DIR"]).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg) if xdg else Path.home() / ".cache") / "pixelrnn"


@dataclass(frozen=True)
class _Ctx:
    """Where to look and what to do for one load_dataset call."""

    name: str
    roots: tuple[Path, ...]
    cache: Path
    download: bool
    verify: bool | None

    def dirs(self, subdirs: Iterable[str] | None = None) -> list[Path]:
        subs = _SUBDIRS.get(self.name, ("",)) if subdirs is None else subdirs
        out: list[Path] = []
        for root in (*self.roots, self.cache):
            for sub in subs:
                d = root / sub if sub else root
                if d not in out:
                    out.append(d)
        return out

    def find(self, filename: str, subdirs: Iterable[str] | None = None) -> Path | None:
        for d in self.dirs(subdirs):
            if (d / filename).is_file():
                return d / filename
        return None

    def missing(self, filename: str, what: str | None = None) -> DatasetError:
        where = ", ".join(str(d) for d in self.dirs())
        remote = FILES.get(filename)
        hint = (f"get it from {remote.url}: pass --download (download=True) or --data-dir"
                if remote else "it cannot be downloaded: pass --data-dir")
        what = what or filename
        return DatasetError(f"{self.name}: {what} not found (looked in {where}); {hint}")

    def fetch(self, filename: str) -> Path:
        """The verified local path of a canonical file, downloading it if allowed."""
        path = self.find(filename)
        if path is None:
            if not self.download or filename not in FILES:
                raise self.missing(filename)
            path = _download(FILES[filename], self.cache / self.name / filename)
        return verify_file(path, self.verify)


# ----------------------------------------------------------------------------- checksums

_DIGESTS: dict[tuple[str, int, int, str], str] = {}


def _digest(path: Path, algo: str) -> str:
    st = path.stat()
    key = (str(path.resolve()), st.st_size, st.st_mtime_ns, algo)
    if key not in _DIGESTS:
        h = hashlib.new(algo)
        with open(path, "rb") as f:
            for chunk in iter(lambda: f.read(1 << 22), b""):
                h.update(chunk)
        _DIGESTS[key] = h.hexdigest()
    return _DIGESTS[key]


def verify_file(path: Path, verify: bool | None = None) -> Path:
    """Check ``path`` against its canonical size and checksum (see the module docstring)."""
    if verify is False:
        return path
    remote = FILES.get(path.name)
    if remote is None or remote.size is None or not (remote.sha256 or remote.md5):
        if verify:
            raise DatasetError(f"{path}: no checksum is known for this file, so it cannot be "
                               "verified; load it with verify=False (or the default None)")
        return path
    size = path.stat().st_size
    if size != remote.size:
        raise DatasetError(f"{path}: truncated or corrupt: expected {remote.size} bytes, found "
                           f"{size}; delete it and fetch {remote.url} again (or verify=False)")
    algo, expected = ("sha256", remote.sha256) if remote.sha256 else ("md5", remote.md5)
    actual = _digest(path, algo)
    if actual != expected:
        raise DatasetError(f"{path}: {algo} mismatch: expected {expected}, got {actual}; "
                           f"delete it and fetch {remote.url} again")
    return path


def _download(remote: RemoteFile, dest: Path) -> Path:
    """Fetch ``remote`` to ``dest`` atomically, checking size and checksum on the way."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    try:
        from tqdm import tqdm
    except ImportError:  # pragma: no cover - tqdm is optional
        tqdm = None
    fd, tmp_name = tempfile.mkstemp(prefix=dest.name + ".", suffix=".part", dir=dest.parent)
    tmp = Path(tmp_name)
    sha, md5 = hashlib.sha256(), hashlib.md5()
    try:
        with os.fdopen(fd, "wb") as out, urllib.request.urlopen(remote.url, timeout=60) as resp:
            total = int(resp.headers.get("Content-Length") or 0) or None
            bar = tqdm(total=total, unit="B", unit_scale=True, desc=dest.name, leave=False) \
                if tqdm is not None else None
            for chunk in iter(lambda: resp.read(1 << 20), b""):
                out.write(chunk)
                sha.update(chunk)
                md5.update(chunk)
                if bar is not None:
                    bar.update(len(chunk))
            if bar is not None:
                bar.close()
        size = tmp.stat().st_size
        if remote.size is not None and size != remote.size:
            raise DatasetError(f"download of {remote.url} is incomplete: expected "
                               f"{remote.size} bytes, got {size}")
        for algo, expected, h in (("sha256", remote.sha256, sha), ("md5", remote.md5, md5)):
            if expected and h.hexdigest() != expected:
                raise DatasetError(f"download of {remote.url}: {algo} mismatch: expected "
                                   f"{expected}, got {h.hexdigest()}")
        if not (remote.sha256 or remote.md5):
            warnings.warn(f"no checksum is known for {remote.url}; the downloaded file "
                          f"{dest} is not verified", stacklevel=3)
        os.replace(tmp, dest)
        st = dest.stat()  # remember the digests so the first load does not hash again
        for algo, h in (("sha256", sha), ("md5", md5)):
            _DIGESTS[(str(dest.resolve()), st.st_size, st.st_mtime_ns, algo)] = h.hexdigest()
    except OSError as e:  # URLError is an OSError
        raise DatasetError(f"download of {remote.url} failed: {e}") from e
    finally:
        tmp.unlink(missing_ok=True)
    return dest


# ----------------------------------------------------------------------------- parsers

def _read_bytes(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as e:
        raise DatasetError(f"{path}: cannot read: {e.strerror or e}") from e


def parse_amat(raw: bytes, source: str = "<amat>") -> np.ndarray:
    """Parse binarized-MNIST ``.amat`` text into (N, 1, 28, 28) uint8 values in {0, 1}."""
    npix, line = 784, 2 * 784  # 784 digits, 783 spaces, one newline
    if b"\r" in raw:
        raw = raw.replace(b"\r", b"")
    if raw and not raw.endswith(b"\n"):
        raw += b"\n"
    buf = np.frombuffer(raw, dtype=np.uint8)
    if buf.size and buf.size % line == 0:  # fast path for the canonical layout
        rows = buf.reshape(-1, line)
        digits = rows[:, 0::2] - np.uint8(48)
        if ((rows[:, 1:-1:2] == 32).all() and (rows[:, -1] == 10).all()
                and (digits <= 1).all()):
            return digits.reshape(-1, 1, 28, 28)
    # General path (extra blanks, blank lines, ...) that also locates errors.
    lines = [ln for ln in raw.split(b"\n") if ln.strip()]
    if not lines:
        raise DatasetError(f"{source}: empty .amat file")
    out = np.empty((len(lines), npix), dtype=np.uint8)
    for i, ln in enumerate(lines):
        tokens = ln.split()
        if len(tokens) != npix:
            raise DatasetError(f"{source}: line {i + 1} has {len(tokens)} values, expected "
                               f"{npix} (truncated or corrupt .amat file)")
        vals = np.frombuffer(b"".join(tokens), dtype=np.uint8) - np.uint8(48)
        if len(vals) != npix or (vals > 1).any():
            raise DatasetError(f"{source}: line {i + 1} holds a value other than 0 or 1")
        out[i] = vals
    return out.reshape(-1, 1, 28, 28)


def parse_idx_images(raw: bytes, source: str = "<idx>") -> np.ndarray:
    """Parse an uncompressed IDX3 ubyte image file into (N, 1, H, W) uint8."""
    if len(raw) < 16 or raw[:4] != b"\x00\x00\x08\x03":
        raise DatasetError(f"{source}: not an IDX3 unsigned-byte image file "
                           f"(magic {raw[:4].hex() or 'missing'}, expected 00000803)")
    n, h, w = (int.from_bytes(raw[i:i + 4], "big") for i in (4, 8, 12))
    if len(raw) - 16 != n * h * w:
        raise DatasetError(f"{source}: IDX header says {n}x{h}x{w} = {n * h * w} bytes of "
                           f"pixels, found {len(raw) - 16} (truncated or corrupt)")
    return np.frombuffer(raw, dtype=np.uint8, offset=16).reshape(n, 1, h, w)


def _gunzip(path: Path) -> bytes:
    try:
        with gzip.open(path, "rb") as f:
            return f.read()
    except (OSError, EOFError, zlib.error) as e:
        raise DatasetError(f"{path}: not a valid gzip file (truncated or corrupt): {e}") from e


def _encode_latin1(text: str, encoding: str = "utf-8") -> bytes:
    if encoding not in ("latin1", "latin-1"):
        raise pickle.UnpicklingError(f"_codecs.encode with encoding {encoding!r}")
    return text.encode("latin1")


def _numpy_globals() -> dict[tuple[str, str], Callable]:
    try:
        from numpy._core import multiarray, numeric
    except ImportError:  # numpy < 2
        from numpy.core import multiarray, numeric
    out: dict[tuple[str, str], Callable] = {
        ("numpy", "ndarray"): np.ndarray, ("numpy", "dtype"): np.dtype,
        ("_codecs", "encode"): _encode_latin1,
    }
    for pkg in ("numpy.core", "numpy._core"):
        out[(pkg + ".multiarray", "_reconstruct")] = multiarray._reconstruct
        out[(pkg + ".numeric", "_frombuffer")] = numeric._frombuffer
    return out


class _SafeUnpickler(pickle.Unpickler):
    """Unpickler that can only rebuild numpy arrays (what a CIFAR batch contains)."""

    _allowed = _numpy_globals()

    def find_class(self, module: str, name: str):
        try:
            return self._allowed[(module, name)]
        except KeyError:
            raise pickle.UnpicklingError(f"global {module}.{name} is not allowed") from None


def parse_cifar_batch(raw: bytes, source: str = "<cifar batch>") -> np.ndarray:
    """Parse one pickled CIFAR-10 python batch into (N, 3, 32, 32) uint8, safely."""
    try:
        batch = _SafeUnpickler(io.BytesIO(raw), encoding="bytes").load()
    except Exception as e:  # noqa: BLE001 - any failure of an untrusted pickle
        raise DatasetError(f"{source}: refused or unreadable CIFAR batch: {e}") from e
    data = batch.get(b"data", batch.get("data")) if isinstance(batch, dict) else None
    if (not isinstance(data, np.ndarray) or data.dtype != np.uint8 or data.ndim != 2
            or data.shape[1] != 3072):
        raise DatasetError(f"{source}: not a CIFAR-10 batch (expected a dict whose 'data' "
                           "is an (N, 3072) uint8 array)")
    return data.reshape(-1, 3, 32, 32)


def _to_uint8(x: np.ndarray, source: str) -> np.ndarray:
    if x.dtype == np.uint8:
        return x
    if x.dtype.kind not in "biu":
        raise DatasetError(f"{source}: expected integer pixels, found dtype {x.dtype}")
    if x.size and (x.min() < 0 or x.max() > 255):
        raise DatasetError(f"{source}: pixel values must lie in 0..255, found "
                           f"{x.min()}..{x.max()}")
    return x.astype(np.uint8)


# ----------------------------------------------------------------------------- loaders

def _valid_tail(x: np.ndarray, split: str, fraction: int) -> np.ndarray:
    """train/valid/train_full of a training array whose last 1/fraction is validation."""
    cut = len(x) - len(x) // fraction
    return {"train": x[:cut], "valid": x[cut:], "train_full": x}[split]


def _load_binarized_mnist(ctx: _Ctx, split: str) -> tuple[np.ndarray, int]:
    path = ctx.fetch(f"binarized_mnist_{split}.amat")
    return parse_amat(_read_bytes(path), str(path)), 2


def _load_mnist(ctx: _Ctx, split: str) -> tuple[np.ndarray, int]:
    fname = "t10k-images-idx3-ubyte.gz" if split == "test" else "train-images-idx3-ubyte.gz"
    path = ctx.fetch(fname)
    x = parse_idx_images(_gunzip(path), str(path))
    return (x if split == "test" else _valid_tail(x, split, 6)), 256


def _load_cifar10(ctx: _Ctx, split: str) -> tuple[np.ndarray, int]:
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
        try:
            with tarfile.open(archive, "r:gz") as tar:
                for n in names:
                    try:
                        member = tar.extractfile(f"cifar-10-batches-py/{n}")
                    except KeyError:
                        member = None
                    if member is None:
                        raise DatasetError(f"{archive}: has no cifar-10-batches-py/{n}")
                    parts.append(parse_cifar_batch(member.read(), f"{archive}:{n}"))
        except (tarfile.TarError, OSError, EOFError, zlib.error) as e:
            raise DatasetError(f"{archive}: truncated or corrupt archive: {e}") from e
    x = np.concatenate(parts)
    return (x if split == "test" else _valid_tail(x, split, 10)), 256


def _load_cifar10_subset(ctx: _Ctx, split: str) -> tuple[np.ndarray, int]:
    path = ctx.find("cifar10_subset.npz")
    if path is None:
        raise ctx.missing("cifar10_subset.npz", "cifar10/cifar10_subset.npz (a local-only file)")
    verify_file(path, ctx.verify)
    key = "test_x" if split == "test" else "train_x"
    try:
        with np.load(path, allow_pickle=False) as f:
            x = f[key]
    except (OSError, ValueError, KeyError, zipfile.BadZipFile, EOFError) as e:
        raise DatasetError(f"{path}: unreadable npz or missing key {key!r}: {e}") from e
    if x.ndim != 4 or x.shape[3] != 3:
        raise DatasetError(f"{path}: {key} has shape {x.shape}, expected (N, 32, 32, 3)")
    x = _to_uint8(x, str(path)).transpose(0, 3, 1, 2)
    return (x if split == "test" else _valid_tail(x, split, 10)), 256


def _read_npz_member(data: bytes | Path, source: str, size: int) -> np.ndarray:
    try:
        with np.load(io.BytesIO(data) if isinstance(data, bytes) else data,
                     allow_pickle=False) as f:
            x = f["data"]
    except (OSError, ValueError, KeyError, zipfile.BadZipFile, EOFError) as e:
        raise DatasetError(f"{source}: unreadable npz or no 'data' array: {e}") from e
    if x.ndim != 2 or x.shape[1] != 3 * size * size:
        raise DatasetError(f"{source}: data has shape {x.shape}, expected (N, {3 * size * size})")
    return _to_uint8(x, source).reshape(-1, 3, size, size)


def _load_imagenet(ctx: _Ctx, split: str, size: int) -> tuple[np.ndarray, int]:
    part = "train" if split == "train" else "val"
    members = ([f"train_data_batch_{i}.npz" for i in range(1, 11)] if part == "train"
               else ["val_data.npz"])
    zip_name = f"Imagenet{size}_{part}_npz.zip"
    found = [ctx.find(m) for m in members]
    if all(found):
        return np.concatenate([_read_npz_member(verify_file(p, ctx.verify), str(p), size)
                               for p in found]), 256
    if any(found):
        raise DatasetError(f"imagenet{size}: {members[found.index(None)]} is missing next to "
                           f"{next(p for p in found if p)}")
    if ctx.find(zip_name) is None and not ctx.download:
        raise ctx.missing(zip_name, f"{zip_name} (or the npz files it holds)")
    archive = ctx.fetch(zip_name)
    parts = []
    try:
        with zipfile.ZipFile(archive) as zf:
            by_base = {Path(n).name: n for n in zf.namelist()}
            for m in members:
                if m not in by_base:
                    raise DatasetError(f"{archive}: has no {m}")
                parts.append(_read_npz_member(zf.read(by_base[m]), f"{archive}:{m}", size))
    except (zipfile.BadZipFile, OSError, EOFError, zlib.error) as e:
        raise DatasetError(f"{archive}: truncated or corrupt zip archive: {e}") from e
    return np.concatenate(parts), 256


def _load_digits(ctx: _Ctx, split: str) -> tuple[np.ndarray, int]:
    try:
        from sklearn.datasets import load_digits
    except ImportError as e:
        raise DatasetError("digits needs scikit-learn: pip install scikit-learn") from e
    x = load_digits().images.astype(np.uint8)[:, None]
    r = np.arange(len(x)) % 5
    mask = {"test": r == 0, "valid": r == 1, "train": r >= 2}[split]
    return x[mask], 17


_IMAGE_EXTS = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp"}


def read_image(path: str | os.PathLike) -> np.ndarray:
    """One image file as (C, H, W) uint8, grey-like images with C = 1, others RGB."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as img:
            img.seek(0)
            mode = img.mode
            if mode.startswith("I;16"):
                a = (np.asarray(img).astype(np.uint16) >> 8).astype(np.uint8)
            elif mode in ("1", "L", "LA", "La"):
                a = np.asarray(img.convert("L"))
            else:
                a = np.asarray(img.convert("RGB"))
                if mode in ("P", "PA") and (a == a[..., :1]).all():
                    a = a[..., 0]  # grey palette
    except (OSError, UnidentifiedImageError, ValueError) as e:
        raise DatasetError(f"{path}: cannot read image: {e}") from e
    return a[None] if a.ndim == 2 else a.transpose(2, 0, 1)


def _load_folder(path: Path, name: str, split: str) -> tuple[np.ndarray, int]:
    if not path.is_dir():
        raise DatasetError(f"{name}: {path} is not a directory")
    files = sorted((p for p in path.rglob("*") if p.suffix.lower() in _IMAGE_EXTS and p.is_file()),
                   key=lambda p: p.relative_to(path).as_posix())
    if not files:
        raise DatasetError(f"{name}: no PNG/JPEG/BMP/GIF/WEBP images under {path}")
    arrays = [read_image(files[0])]
    for f in files[1:]:
        a = read_image(f)
        if a.shape != arrays[0].shape:
            (c0, h0, w0), (c, h, w) = arrays[0].shape, a.shape
            raise DatasetError(f"{name}: {f} is {w}x{h} with {c} channel(s), expected {w0}x{h0} "
                               f"with {c0} like {files[0].name}; all images must match")
        arrays.append(a)
    x = np.stack(arrays)
    r = np.arange(len(x)) % 10
    return {"all": x, "test": x[r == 0], "train": x[r != 0]}[split], 256


def _npz_key(keys: Iterable[str], split: str) -> str | None:
    return next((k for k in (split, f"{split}_x", f"x_{split}") if k in keys), None)


def _npz_layout(x: np.ndarray, source: str) -> np.ndarray:
    if x.ndim == 3:
        return x[:, None]
    if x.ndim == 4 and x.shape[1] in (1, 3):
        return x
    if x.ndim == 4 and x.shape[3] in (1, 3):
        return x.transpose(0, 3, 1, 2)
    raise DatasetError(f"{source}: array of shape {x.shape} is not NHW, NCHW or NHWC "
                       "with 1 or 3 channels")


def _load_npz(path: Path, name: str, split: str) -> tuple[np.ndarray, int]:
    try:
        with np.load(path, allow_pickle=False) as f:
            arrays = {s: f[k] for s in _NPZ_SPLITS if (k := _npz_key(f.files, s))}
            levels = int(f["levels"]) if "levels" in f.files else None
    except (OSError, ValueError, zipfile.BadZipFile, EOFError, TypeError) as e:
        raise DatasetError(f"{name}: cannot read {path} as npz: {e}") from e
    if split not in arrays:
        accepted = ", ".join(arrays) or "none"
        raise DatasetError(f"{name}: unknown split {split!r}; accepted: {accepted}"
                           " (keys <split>, <split>_x or x_<split>)")
    for s, a in arrays.items():
        arrays[s] = _to_uint8(a, f"{path}[{s}]")
    if levels is None:
        levels = 256 if any(a.size and a.max() > 1 for a in arrays.values()) else 2
    return _npz_layout(arrays[split], f"{path}[{split}]"), levels


# ----------------------------------------------------------------------------- public

def dataset_splits(name: str) -> tuple[str, ...]:
    """The split names ``load_dataset(name, ...)`` accepts (npz files are opened to see)."""
    if name in _SPLITS:
        return _SPLITS[name]
    if name.startswith("folder:"):
        return _FOLDER_SPLITS
    if name.startswith("npz:"):
        try:
            with np.load(Path(name[4:]).expanduser(), allow_pickle=False) as f:
                return tuple(s for s in _NPZ_SPLITS if _npz_key(f.files, s))
        except (OSError, ValueError, zipfile.BadZipFile) as e:
            raise DatasetError(f"{name}: cannot read npz: {e}") from e
    raise DatasetError(f"unknown dataset {name!r}; choose one of {', '.join(DATASETS)}, "
                       "folder:PATH or npz:PATH")


def _local_path(spec: str, roots: tuple[Path, ...]) -> Path:
    p = Path(spec).expanduser()
    if not p.exists() and not p.is_absolute():
        p = next((r / spec for r in roots if (r / spec).exists()), p)
    return p


def load_dataset(name: str, split: str = "train", *, data_dir: str | os.PathLike | None = None,
                 download: bool = False, cache_dir: str | os.PathLike | None = None,
                 verify: bool | None = None) -> ImageSet:
    """Load one split of a dataset as an :class:`ImageSet` (see the module docstring)."""
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
            images, levels = _load_folder(path, name, split)
        else:
            if not path.is_file():
                raise DatasetError(f"{name}: file {path} not found")
            images, levels = _load_npz(path, name, split)
    else:
        accepted = dataset_splits(name)  # raises for unknown names
        if split not in accepted:
            raise DatasetError(f"unknown split {split!r} for {name}; "
                               f"accepted: {', '.join(accepted)}")
        ctx = _Ctx(name, roots, default_cache_dir(cache_dir), download, verify)
        if name.startswith("imagenet"):
            images, levels = _load_imagenet(ctx, split, int(name[len("imagenet"):]))
        else:
            loader = {"binarized_mnist": _load_binarized_mnist, "mnist": _load_mnist,
                      "cifar10": _load_cifar10, "cifar10_subset": _load_cifar10_subset,
                      "digits": _load_digits}[name]
            images, levels = loader(ctx, split)
    if len(images) == 0:
        raise DatasetError(f"{name}: split {split!r} is empty")
    return ImageSet(name, split, images, levels)
