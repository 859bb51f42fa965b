"""How one split is read: its files, the array it is cut from, and that array part by part (section 5).

A :class:`Plan` is made without reading any image. It names the files a split comes from, the
*stored* array the split is cut from (MNIST's ``train`` and ``valid`` are both rows of the 60,000
training images), a generator of that array in parts (one file member, or a few MB of rows, at
a time), its number of levels and the split's rows. :func:`pixelrnn.data.load_dataset` either
joins the parts in memory or writes them once into the prepared cache
(:mod:`pixelrnn.data.cache`), so no step ever holds more than one member.

:func:`npz_array` reads one array of an npz, a file or a member of a zip archive, in chunks of
rows: a 1.5 GB ImageNet member is never held whole. Python's zipfile cannot read an archive
nested in another without seeking, so a nested npz is passed over twice (once to find its
directory at the end, once for the rows); that costs time, not memory.
"""

from __future__ import annotations

import contextlib
import math
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Callable, Iterable, Iterator

import numpy as np

from ..errors import DatasetError
from ..limits import check_decoded_size

CHUNK_BYTES = 1 << 25
"""About how many bytes of rows :meth:`NpyRows.chunks` reads at a time."""


def every_row(count: int) -> slice:
    return slice(0, count)


@dataclass(frozen=True)
class Plan:
    """How one split of a dataset is read; nothing is read until :attr:`parts` is called."""

    name: str  # the dataset, as the user named it
    split: str
    key: str  # the dataset's folder in the prepared cache: a name safe on any file system
    stored: str  # the array the split is cut from, and its file name in the cache
    sources: tuple[Path, ...]  # the files it is read from, in order; () keeps it in memory
    parts: Callable[[], Iterable[np.ndarray]]  # the stored array, (n, C, H, W) uint8 at a time
    levels: int | Callable[[], int]
    rows: Callable[[int], slice | np.ndarray] = every_row  # the split's rows of N stored images
    labels: Callable[[], np.ndarray | None] | None = None  # the stored array's classes, (N,) integers (None: the files hold none)
    class_names: tuple[str, ...] = ()  # the name of each class, where the source names them

    def level_count(self) -> int:
        return self.levels() if callable(self.levels) else self.levels

    def gather(self) -> np.ndarray:
        """The stored array in memory, for datasets small enough to hold (no cache)."""
        parts = list(self.parts())
        if not parts:
            raise DatasetError(f"{self.name}: split {self.split!r} is empty")
        return parts[0] if len(parts) == 1 else np.concatenate(parts)


class NpyRows:
    """An .npy array being read from a binary stream: its shape and dtype, then its rows."""

    def __init__(self, stream: IO[bytes], source: str, size: int | None = None):
        self.stream, self.source = stream, source
        version = np.lib.format.read_magic(stream)
        readers = {(1, 0): np.lib.format.read_array_header_1_0, (2, 0): np.lib.format.read_array_header_2_0}
        if version not in readers:
            raise DatasetError(f"{source}: .npy format version {version[0]}.{version[1]} is not supported (1.0 or 2.0)")
        self.shape, self.fortran_order, self.dtype = readers[version](stream)
        if self.dtype.kind not in "biu" or self.dtype.itemsize == 0:
            raise DatasetError(f"{source}: expected integer pixels, found dtype {self.dtype}")
        if any(side < 0 for side in self.shape):
            raise DatasetError(f"{source}: its header declares the shape {self.shape}")
        if size is not None:  # the header must describe exactly the bytes that follow it, before any is read
            declared, present = math.prod(self.shape) * self.dtype.itemsize, size - stream.tell()
            if declared != present:
                raise DatasetError(f"{source}: its header declares {self.shape} of {self.dtype} = {declared:,} bytes, "
                                   f"the file holds {present:,}")

    def chunks(self, chunk_bytes: int = CHUNK_BYTES) -> Iterator[np.ndarray]:
        """The array, a block of whole rows at a time (all of it at once if stored column-major)."""
        if self.fortran_order or not self.shape:
            yield np.frombuffer(self._read(math.prod(self.shape) * self.dtype.itemsize), self.dtype).reshape(
                self.shape, order="F" if self.fortran_order else "C")
            return
        row_shape = self.shape[1:]
        row_bytes = math.prod(row_shape) * self.dtype.itemsize
        per_chunk = max(1, chunk_bytes // max(row_bytes, 1))
        for start in range(0, self.shape[0], per_chunk):
            count = min(per_chunk, self.shape[0] - start)
            yield np.frombuffer(self._read(count * row_bytes), self.dtype).reshape(count, *row_shape)

    def _read(self, size: int) -> bytes:
        raw = self.stream.read(size)
        if len(raw) != size:
            raise DatasetError(f"{self.source}: truncated: the array's header promises more bytes than it holds")
        return raw


@contextlib.contextmanager
def npz_array(npz: Path | IO[bytes], key: str, source: str) -> Iterator[NpyRows]:
    """The array ``key`` of an npz (a path or a seekable binary file), ready to be read in rows.

    Any failure to read it, while opening or while reading rows, is a one-line
    :class:`DatasetError` naming ``source``.
    """
    try:
        with zipfile.ZipFile(npz) as archive:
            info = archive.getinfo(f"{key}.npy")
            check_decoded_size(info.file_size, info.compress_size, f"{source}", DatasetError)
            with archive.open(info) as member:
                yield NpyRows(member, source, info.file_size)
    except (OSError, ValueError, KeyError, zipfile.BadZipFile, EOFError, zlib.error) as error:
        raise DatasetError(f"{source}: unreadable npz or no {key!r} array: {error}") from error
