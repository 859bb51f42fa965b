"""Bounded reading of the containers datasets come in: gzip streams, tar and zip archives, npz arrays.

No section of the paper: these are the library's guards for files made by others. Each
reader compares what a container declares with the bytes it holds, and with the limits of
:mod:`pixelrnn.limits`, before allocating:

- gzip streams (and the tar inside one) are decoded in chunks, and refused as soon as they
  pass the decoded size or compression ratio limits (a bomb never reaches memory);
- a zip member's declared size is checked against the limits, a stored member's against the
  bytes the archive holds, and members whose data overlap (one stream decoded many times)
  are refused;
- an ``.npy`` member's header (shape and dtype, read with ``numpy.lib.format``) must describe
  exactly the bytes that follow it, with an integer dtype, before the array is made.

Every failure, whatever the standard library or numpy raised, is one :class:`DatasetError` line.
"""

from __future__ import annotations

import contextlib
import gzip
import io
import math
import struct
import tarfile
import zipfile
import zlib
from pathlib import Path
from typing import Iterable

import numpy as np

from .errors import DatasetError, PixelRNNError, one_line
from .limits import check_decoded_size
from .utils import regular_file

CHUNK = 1 << 20
LOCAL_HEADER = 30  # bytes of a zip local file header before its name: a lower bound of its size
NPY_VERSIONS = ((1, 0), (2, 0), (3, 0))
# What the standard library and numpy raise on damaged containers (besides their own types).
DAMAGED = (OSError, EOFError, ValueError, KeyError, IndexError, TypeError, OverflowError, RuntimeError,
           NotImplementedError, struct.error, zlib.error, zipfile.BadZipFile, zipfile.LargeZipFile, tarfile.TarError)


@contextlib.contextmanager
def damaged_as(what: str, kind: str):
    """Turn any error of a damaged ``kind`` of file into one DatasetError line naming ``what``."""
    try:
        yield
    except PixelRNNError:
        raise
    except MemoryError:
        raise DatasetError(f"{what}: not enough memory to read it") from None
    except DAMAGED as error:
        raise DatasetError(f"{what}: truncated or corrupt {kind} ({one_line(error)})") from None


class DecodedStream:
    """A decoding stream (gzip, a zip member) that refuses to go past the limits, chunk by chunk."""

    def __init__(self, stream, compressed: int, what: str):
        self.stream, self.compressed, self.what, self.decoded = stream, compressed, what, 0

    def read(self, size: int = -1) -> bytes:
        data = self.stream.read(CHUNK if size is None or size < 0 else min(size, CHUNK))
        self.decoded += len(data)
        check_decoded_size(self.decoded, self.compressed, self.what, DatasetError)
        return data

    def read_all(self) -> bytes:
        chunks = []
        while chunk := self.read():
            chunks.append(chunk)
        return b"".join(chunks)


def gunzip(path: Path) -> bytes:
    """The decoded bytes of a gzip file, within the limits (read to the end: its CRC is checked)."""
    regular_file(path)
    with damaged_as(str(path), "gzip file"), gzip.open(path, "rb") as stream:
        return DecodedStream(stream, path.stat().st_size, str(path)).read_all()


def tar_members(path: Path, names: Iterable[str], max_entries: int) -> dict[str, bytes]:
    """The named regular files of a gzipped tar, in one pass over at most ``max_entries`` entries.

    The tar is read as a stream (each header once, no seeking) from a gzip stream bounded by
    the limits, so neither an entry's data nor a long-name or pax header can decode past them,
    and read to its end, so that gzip checks its CRC. Declared entry sizes are checked as they come.
    """
    regular_file(path)
    wanted, found, declared = set(names), {}, 0
    compressed = path.stat().st_size
    with damaged_as(str(path), "tar.gz archive"), gzip.open(path, "rb") as unzipped:
        stream = DecodedStream(unzipped, compressed, str(path))
        with tarfile.open(fileobj=stream, mode="r|") as tar:
            for count, member in enumerate(tar, 1):
                if count > max_entries:
                    raise DatasetError(f"{path}: holds more than {max_entries} entries; not the expected archive")
                declared += max(member.size, 0)
                check_decoded_size(declared, compressed, f"{path} (its entries up to {member.name})", DatasetError)
                if member.name in wanted and member.isfile():
                    found[member.name] = tar.extractfile(member).read()
        while stream.read():
            pass
    return found


class BoundedZip:
    """A zip archive whose members are checked against the bytes present and the limits before reading."""

    def __init__(self, file: Path | bytes, what: str):
        self.what = what
        if not isinstance(file, bytes):
            regular_file(file)
        with damaged_as(what, "zip archive"):
            self.size = len(file) if isinstance(file, bytes) else file.stat().st_size
            self.zip = zipfile.ZipFile(io.BytesIO(file) if isinstance(file, bytes) else file)
            self.infos = {info.filename: info for info in self.zip.infolist()}
        try:
            self._check_layout()
        except DatasetError:
            self.zip.close()
            raise

    def _check_layout(self) -> None:
        """Each member's data lies inside the archive and after the previous member's."""
        ordered = sorted(self.infos.values(), key=lambda info: info.header_offset)
        for info, following in zip(ordered, ordered[1:] + [None]):
            end = info.header_offset + LOCAL_HEADER + info.compress_size
            bound = following.header_offset if following is not None else self.size
            if end > bound:
                where = "overlaps the next member" if following is not None else "runs past the end of the archive"
                raise DatasetError(f"{self.what}: member {info.filename} ({info.compress_size:,} bytes) {where}")

    def names(self) -> list[str]:
        return list(self.infos)

    def _checked(self, name: str):
        """The member's info, once its flags, method and declared sizes are within the limits."""
        info = self.infos[name]
        what = f"{self.what}:{name}"
        if info.flag_bits & 0x1:
            raise DatasetError(f"{what}: member is encrypted")
        if info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
            raise DatasetError(f"{what}: compression method {info.compress_type} is not read (stored or deflate only)")
        if info.compress_type == zipfile.ZIP_STORED and info.file_size != info.compress_size:
            raise DatasetError(f"{what}: stored member declares {info.file_size:,} bytes but holds {info.compress_size:,}")
        check_decoded_size(info.file_size, info.compress_size, what, DatasetError)
        return info, what

    def read(self, name: str) -> bytes:
        info, what = self._checked(name)
        with damaged_as(what, "zip member"), self.zip.open(info) as stream:
            data = DecodedStream(stream, info.compress_size, what).read_all()
        if len(data) != info.file_size:
            raise DatasetError(f"{what}: declares {info.file_size:,} bytes, decodes to {len(data):,}")
        return data

    @contextlib.contextmanager
    def open(self, name: str):
        """The member as a stream, for readers that take it a chunk at a time (checked as :meth:`read`)."""
        info, what = self._checked(name)
        with damaged_as(what, "zip member"), self.zip.open(info) as stream:
            yield stream

    def close(self) -> None:
        self.zip.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def parse_npy(data: bytes, what: str) -> np.ndarray:
    """An integer array from ``.npy`` bytes whose header describes exactly the bytes that follow it."""
    stream = io.BytesIO(data)
    with damaged_as(what, "npy array"):
        version = np.lib.format.read_magic(stream)
        if version not in NPY_VERSIONS:
            raise DatasetError(f"{what}: npy format version {version} is not one of {NPY_VERSIONS}")
        read_header = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
        shape, fortran_order, dtype = read_header(stream)
    if dtype.kind not in "biu" or dtype.itemsize == 0:
        raise DatasetError(f"{what}: expected integer pixels, found dtype {dtype}")
    if any(size < 0 for size in shape):
        raise DatasetError(f"{what}: its header declares the shape {shape}")
    count = math.prod(shape)
    present = len(data) - stream.tell()
    if count * dtype.itemsize != present:
        raise DatasetError(f"{what}: its header declares {shape} of {dtype} = {count * dtype.itemsize:,} bytes, "
                           f"the file holds {present:,}")
    array = np.frombuffer(data, dtype=dtype, count=count, offset=stream.tell())
    return array.reshape(shape, order="F" if fortran_order else "C")  # (the header's shape)


class BoundedNpz(BoundedZip):
    """An ``.npz`` archive: ``files`` names its arrays, ``npz[name]`` reads one (integer dtypes only)."""

    @property
    def files(self) -> list[str]:
        return [name[: -len(".npy")] for name in self.infos if name.endswith(".npy")]

    def __contains__(self, key: str) -> bool:
        return f"{key}.npy" in self.infos

    def __getitem__(self, key: str) -> np.ndarray:
        if key not in self:
            raise DatasetError(f"{self.what}: has no array {key!r} (it has {', '.join(self.files) or 'none'})")
        return parse_npy(self.read(f"{key}.npy"), f"{self.what}[{key}]")
