"""Fetch and verify dataset files: where they are looked for, where they are downloaded to, checksums.

File lookup
-----------
Files are searched under a primary root: the ``data_dir`` argument, else the environment
variable ``PIXELRNN_DATA_DIR``; then under the cache dir (``cache_dir`` argument, else
``PIXELRNN_CACHE_DIR``, else ``$XDG_CACHE_HOME/pixelrnn`` or ``~/.cache/pixelrnn``). In a
root, ``root/<dataset>/`` (a few aliases, e.g. ``root/MNIST/raw``) and ``root/`` itself are
tried. ``download=True`` fetches missing files into ``<cache>/<dataset>/`` (temporary file,
checksum check, then rename); without it a missing file is a :class:`DatasetError`.

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

import hashlib
import os
import urllib.request
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

from ..errors import DatasetError
from ..utils import atomic_write


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
    "train-labels-idx1-ubyte.gz": RemoteFile(
        _MNIST_URL + "train-labels-idx1-ubyte.gz", 28_881,
        "3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c",
        "d53e105ee54ea40749a09fcbcd1e9432"),
    "t10k-labels-idx1-ubyte.gz": RemoteFile(
        _MNIST_URL + "t10k-labels-idx1-ubyte.gz", 4_542,
        "f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6",
        "ec29112dd5afa0611ce80d1b7f02629c"),
    "cifar-10-python.tar.gz": RemoteFile(
        "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz", 170_498_071,
        md5="c58f30108f718f92721af3b95e74349a"),
    **{f"Imagenet{s}_{part}_npz.zip": RemoteFile(f"{_IMAGENET_URL}Imagenet{s}_{part}_npz.zip")
       for s in (32, 64) for part in ("train", "val")},
}


# Sub-folders of a root searched for each dataset ("" = the root itself).
_SUBDIRS: dict[str, tuple[str, ...]] = {
    "binarized_mnist": ("binarized_mnist", ""),
    "mnist": ("mnist", "MNIST/raw", ""),
    "cifar10": ("cifar10", ""),
    "cifar10_subset": ("cifar10", "cifar10_subset", ""),
    **{f"imagenet{s}": (f"imagenet{s}", f"Imagenet{s}_train_npz", f"Imagenet{s}_val_npz", "")
       for s in (32, 64)},
}


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
class Lookup:
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
    from tqdm import tqdm

    sha, md5 = hashlib.sha256(), hashlib.md5()

    def write(temp: str) -> None:
        with open(temp, "wb") as out, urllib.request.urlopen(remote.url, timeout=60) as resp:
            total = int(resp.headers.get("Content-Length") or 0) or None
            with tqdm(total=total, unit="B", unit_scale=True, desc=dest.name, leave=False) as bar:
                for chunk in iter(lambda: resp.read(1 << 20), b""):
                    out.write(chunk)
                    sha.update(chunk)
                    md5.update(chunk)
                    bar.update(len(chunk))
        size = os.path.getsize(temp)
        if remote.size is not None and size != remote.size:
            raise DatasetError(f"download of {remote.url} is incomplete: expected "
                               f"{remote.size} bytes, got {size}")
        for algo, expected, h in (("sha256", remote.sha256, sha), ("md5", remote.md5, md5)):
            if expected and h.hexdigest() != expected:
                raise DatasetError(f"download of {remote.url}: {algo} mismatch: expected "
                                   f"{expected}, got {h.hexdigest()}")

    try:
        atomic_write(dest, write)
    except OSError as e:  # URLError is an OSError
        raise DatasetError(f"download of {remote.url} failed: {e}") from e
    if not (remote.sha256 or remote.md5):
        warnings.warn(f"no checksum is known for {remote.url}; the downloaded file "
                      f"{dest} is not verified", stacklevel=3)
    st = dest.stat()  # remember the digests so the first load does not hash again
    for algo, h in (("sha256", sha), ("md5", md5)):
        _DIGESTS[(str(dest.resolve()), st.st_size, st.st_mtime_ns, algo)] = h.hexdigest()
    return dest
