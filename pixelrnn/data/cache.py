"""The prepared cache: each stored array of a dataset as one uint8 .npy file that processes memory-map.

Read into memory, ImageNet 64x64 takes 15.7 GB in every process that trains on it. A prepared
array is written once, streamed part by part from the official files
(:mod:`pixelrnn.data.parts`), and then memory-mapped read-only by every process: the processes
of a machine share one copy in the page cache, and each touches only the images it reads. This
serves section 5's datasets at the scale of Table 6; the paper itself says nothing of data
loading.

Files, under ``<cache dir>/prepared/<dataset>/`` (the cache dir of :mod:`pixelrnn.data.fetch`)::

    <stored>.npy    uint8 (N, C, H, W): a 128-byte .npy header, then the images
    <stored>.labels.npy  int64 (N,): the class of each image, where the source has labels (a second array)
    <stored>.json   its record: shape, levels, size, time and sha256 of the images; the number,
                    total size and sha256 of the source files, and a digest of their paths,
                    sizes and times
    <stored>.lock   locked (flock) by the process that checks or builds the array

Building, under the lock: the parts go to a temporary file in the same folder, each checked
against the levels, behind a progress bar; the file is flushed to disk and renamed, then the
record is written. Memory: one part. An error, an interruption or a full disk removes the
temporary file (a full disk's message says how many bytes the array needs); one left by a
process killed outright is removed by the next build.

Checking, at every load, under the lock: the record, the source files' paths, sizes and times,
the array's size, header and time. When only times differ (a copied folder, a touched file), the
sha256 decides. A cache that is stale, truncated or edited is rebuilt, with a warning that says
why. Concurrent processes wait for one another at the lock, so only one builds.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import io
import json
import os
import shutil
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import numpy as np
from tqdm import tqdm

from ..errors import DatasetError, DiskFullError
from ..utils import atomic_write, regular_file
from .labels import plan_labels
from .parts import Plan

try:
    import fcntl
except ImportError:  # not POSIX: no lock; the rename still keeps half-written arrays out of sight
    fcntl = None

FORMAT = 1
"""Version of the layout and record; a record of another version is rebuilt."""
HEADER_BYTES = 128
"""numpy pads an .npy header to a multiple of 64 bytes; any image array's header takes 128."""


@dataclass(frozen=True)
class CacheFiles:
    array: Path
    record: Path
    lock: Path
    labels: Path

    @classmethod
    def of(cls, plan: Plan, root: Path) -> "CacheFiles":
        folder = Path(root) / "prepared" / plan.key
        return cls(*(folder / f"{plan.stored}.{suffix}" for suffix in ("npy", "json", "lock", "labels.npy")))


def prepared_array(plan: Plan, root: str | os.PathLike, *, progress: bool = True) -> tuple[np.memmap, int]:
    """The stored array of ``plan``, memory-mapped read-only from the cache under ``root``, and its levels.

    It is built first when absent, and rebuilt (with a warning) when stale or damaged.
    """
    return prepared_arrays(plan, root, progress=progress)[:2]


def prepared_arrays(plan: Plan, root: str | os.PathLike, *, progress: bool = True) -> tuple[np.memmap, int, np.ndarray | None]:
    """As :func:`prepared_array`, with the labels of the stored array (int64 (N,), None where the source has none)."""
    files = CacheFiles.of(plan, Path(root))
    try:
        files.array.parent.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise DatasetError(f"cannot create the cache folder {files.array.parent}: {error.strerror or error}; "
                           "set PIXELRNN_CACHE_DIR to a writable folder, or load with cache=False") from None
    with _exclusive(files.lock):
        record = _read_record(files.record)
        reason = "it was never built" if record is None else _checked_staleness(record, files, plan)
        if reason:
            if record is not None:
                warnings.warn(f"{files.array}: {reason}; preparing it again", stacklevel=3)
            _remove_leftovers(files)
            record = _build(files, plan, progress)
        labels = np.load(files.labels, allow_pickle=False) if record.get("labels") else None
        return np.load(files.array, mmap_mode="r"), record["levels"], labels


@contextlib.contextmanager
def _exclusive(path: Path) -> Iterator[None]:
    """Hold the lock file ``path``; a folder where it cannot be created is used without a lock."""
    try:
        handle = open(path, "a+b")
    except OSError:  # a read-only cache can still be read; building there fails with its own message
        yield
        return
    with handle:  # closing the file releases the lock
        if fcntl is not None:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
        yield


def _read_record(path: Path) -> dict | None:
    try:
        record = json.loads(path.read_text())
    except (OSError, ValueError, RecursionError):
        return None
    return record if isinstance(record, dict) else None


def _write_record(path: Path, record: dict) -> None:
    atomic_write(path, lambda temp: Path(temp).write_text(json.dumps(record, indent=1) + "\n"))


def _listing(sources: tuple[Path, ...]) -> dict:
    """The number and total size of the source files, and a digest of their paths, sizes and times."""
    digest, total = hashlib.sha256(), 0
    for path in sources:
        regular_file(path)  # never hash /proc/self/pagemap behind a link
        status = path.stat()
        total += status.st_size
        digest.update(f"{path.absolute()}\0{status.st_size}\0{status.st_mtime_ns}\n".encode())
    return {"files": len(sources), "bytes": total, "listing": digest.hexdigest()}


def _file_sha256(paths, offset: int = 0) -> str:
    """sha256 of the files' contents in order (each from ``offset``), read 4 MB at a time."""
    digest = hashlib.sha256()
    for path in paths:
        with open(path, "rb") as handle:
            handle.seek(offset)
            for block in iter(lambda: handle.read(1 << 22), b""):
                digest.update(block)
    return digest.hexdigest()


def _header(path: Path) -> tuple:
    """(offset of the data, shape, dtype, column-major) of an .npy file; None if unreadable."""
    try:
        with open(path, "rb") as handle:
            if np.lib.format.read_magic(handle) != (1, 0):
                return None
            shape, fortran_order, dtype = np.lib.format.read_array_header_1_0(handle)
            return handle.tell(), list(shape), str(dtype), fortran_order
    except (OSError, ValueError):
        return None


def _checked_staleness(record: dict, files: CacheFiles, plan: Plan) -> str | None:
    """:func:`_staleness`, with a record whose fields are missing or of the wrong type (edited) called damaged."""
    try:
        return _staleness(record, files, plan)
    except (KeyError, TypeError, ValueError, AttributeError, RecursionError):
        return "its record is damaged (a field is missing or not what it should be)"


def _staleness(record: dict, files: CacheFiles, plan: Plan) -> str | None:
    """Why the cache cannot be used as it is, or None (refreshing the record's times if only they moved)."""
    if (record.get("format"), record.get("dataset"), record.get("stored")) != (FORMAT, plan.name, plan.stored):
        return "its record is from another version or another dataset"
    refreshed = dict(record)
    listing = _listing(plan.sources)
    if listing["listing"] != record["sources"]["listing"]:
        same_sizes = (listing["files"], listing["bytes"]) == (record["sources"]["files"], record["sources"]["bytes"])
        if not same_sizes or _file_sha256(plan.sources) != record["sources"]["sha256"]:
            return "its source files changed"
        refreshed["sources"] = {**record["sources"], **listing}
    try:
        status = files.array.stat()
    except FileNotFoundError:
        return "the array file is missing"
    if plan.labels is not None and "labels" not in record:
        return "it was prepared without the labels"
    if record.get("labels") and _labels_digest(files.labels) != record["labels"]["sha256"]:
        return "its labels file is missing or was changed"
    if status.st_size != record["bytes"]:
        return f"it holds {status.st_size:,} bytes, not the {record['bytes']:,} it was written with (truncated or damaged)"
    if _header(files.array) != (HEADER_BYTES, record["shape"], record.get("dtype", "uint8"), False):
        return "its header is damaged"
    if status.st_mtime_ns != record["mtime_ns"]:
        if _file_sha256([files.array], HEADER_BYTES) != record["sha256"]:
            return "its images were changed after it was written"
        refreshed["mtime_ns"] = status.st_mtime_ns
    if refreshed != record:
        _write_record(files.record, refreshed)
    return None


def _remove_leftovers(files: CacheFiles) -> None:
    """Temporary files of builds that were killed outright (no build runs: the lock is held)."""
    for path in (files.array, files.record, files.labels):
        for leftover in path.parent.glob(f".{path.name}.*.tmp"):
            leftover.unlink(missing_ok=True)


def _labels_digest(path: Path) -> str | None:
    try:
        return _file_sha256([path])
    except OSError:
        return None


def _write_labels(files: CacheFiles, plan: Plan, count: int) -> dict | None:
    """The labels of the stored array beside it (int64 .npy, written atomically), and their record; None without labels."""
    labels = plan_labels(plan, count)
    if labels is None:
        files.labels.unlink(missing_ok=True)
        return None

    def write(temp: str) -> None:
        with open(temp, "wb") as out:
            np.save(out, labels, allow_pickle=False)
            out.flush()
            os.fsync(out.fileno())

    try:
        atomic_write(files.labels, write)
    except OSError as error:
        raise DatasetError(f"{files.labels}: cannot write the labels: {error.strerror or error}") from None
    return {"count": int(len(labels)), "classes": int(labels.max()) + 1 if len(labels) else 0,
            "sha256": _file_sha256([files.labels])}


def _npy_header(shape: tuple[int, ...], dtype: np.dtype = np.dtype(np.uint8)) -> bytes:
    buffer = io.BytesIO()
    descr = np.lib.format.dtype_to_descr(np.dtype(dtype))
    np.lib.format.write_array_header_1_0(buffer, {"descr": descr, "fortran_order": False, "shape": tuple(shape)})
    assert len(buffer.getvalue()) == HEADER_BYTES, shape
    return buffer.getvalue()


def _size(count: int) -> str:
    return f"{count / 2**30:.2f} GiB" if count >= 2**30 else f"{count / 2**20:.1f} MiB"


def _build(files: CacheFiles, plan: Plan, progress: bool) -> dict:
    """Write the stored array of ``plan`` to ``files.array`` part by part, then its record."""
    sources = {**_listing(plan.sources), "sha256": _file_sha256(plan.sources)}
    levels = plan.level_count()
    digest = hashlib.sha256()
    written = {"images": 0, "bytes": HEADER_BYTES, "shape": None, "dtype": None}
    parts = iter(plan.parts())

    def write(temp: str) -> None:
        with open(temp, "wb") as out, tqdm(desc=f"preparing {plan.name} {plan.stored}", unit=" images",
                                           disable=not progress, dynamic_ncols=True) as bar:
            out.write(bytes(HEADER_BYTES))  # the header goes in last, once the number of images is known
            for part in parts:
                part = np.ascontiguousarray(part)
                shape = written["shape"] = written["shape"] or part.shape[1:]
                written["dtype"] = written["dtype"] or part.dtype
                if part.shape[1:] != shape or part.dtype != written["dtype"]:
                    raise DatasetError(f"{plan.name}: images of shape {part.shape[1:]} follow images of shape {shape}")
                if part.size and int(part.max()) >= levels:
                    raise DatasetError(f"{plan.name}: value {int(part.max())} >= levels {levels}")
                written["bytes"] += part.nbytes  # counted first: a full disk's message needs it
                out.write(part.data)
                digest.update(part.data)
                written["images"] += len(part)
                bar.update(len(part))
            if written["shape"] is None:
                raise DatasetError(f"{plan.name}: split {plan.split!r} is empty")
            out.seek(0)
            out.write(_npy_header((written["images"], *written["shape"]), written["dtype"]))
            out.flush()
            os.fsync(out.fileno())

    try:
        atomic_write(files.array, write)
    except (OSError, DiskFullError) as error:
        if isinstance(error, OSError) and error.errno not in (errno.ENOSPC, errno.EDQUOT):
            raise DatasetError(f"{files.array}: cannot write the prepared array: {error.strerror or error}") from None
        needed = written["bytes"] + sum(part.nbytes for part in parts)  # the rest is read, not written, to count it
        free = shutil.disk_usage(files.array.parent).free
        raise DatasetError(f"{files.array}: the disk is full; the prepared array needs {_size(needed)} ({needed:,} bytes) "
                           f"and {_size(free)} are free: free some space, set PIXELRNN_CACHE_DIR to a larger disk, "
                           "or load with cache=False") from None
    labels = _write_labels(files, plan, written["images"]) if plan.labels is not None else None
    record = {"format": FORMAT, "dataset": plan.name, "stored": plan.stored,
              "shape": [written["images"], *written["shape"]], "levels": levels, "bytes": written["bytes"],
              "mtime_ns": files.array.stat().st_mtime_ns, "sha256": digest.hexdigest(), "sources": sources,
              **({"dtype": str(written["dtype"])} if written["dtype"] != np.uint8 else {}),
              **({"labels": labels} if plan.labels is not None else {})}
    _write_record(files.record, record)
    return record
