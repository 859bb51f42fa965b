"""Parsers of the official dataset file formats; every file is treated as hostile.

``.amat`` text (binarized MNIST), IDX3 images (MNIST, optionally gzipped), the pickled CIFAR-10
python batches (through an unpickler that can only rebuild numpy arrays) and npz arrays.
Each raises :class:`DatasetError` with a one-line message for a truncated or foreign file, and
allocates only for what the file holds: an amat line is scanned as bytes, an IDX header must
account for every byte, and a pickle's declared lengths and array sizes are checked before the
unpickler allocates them (containers are bounded by :mod:`pixelrnn.archives`).
"""

from __future__ import annotations

import io
import math
import pickle
import pickletools
from pathlib import Path
from typing import Callable, Iterable

import numpy as np

from ..errors import DatasetError, one_line
from ..limits import check_limit, current_limits


def _read_bytes(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as e:
        raise DatasetError(f"{path}: cannot read: {e.strerror or e}") from e


WHITESPACE = np.frombuffer(b" \t\n\v\f\r", dtype=np.uint8)
AMAT_VALUES = 784
AMAT_CHUNK = 1 << 20  # whole lines are scanned a mebibyte at a time; no .amat line is that long


def _amat_lines(chunk: np.ndarray, first: int, source: str) -> np.ndarray:
    """The (lines, 784) values of whole ``.amat`` lines (bytes, each ending in a newline) scanned as bytes.

    Per line, the runs of non-blanks (values) and the non-blank bytes are counted; a line with
    any must have 784 of each (a run of two bytes is a value other than 0 or 1). ``first`` is the
    number of lines before the chunk, for the message.
    """
    blank = np.isin(chunk, WHITESPACE)
    begins = np.concatenate(([0], np.flatnonzero(chunk == 10)[:-1] + 1))  # every line ends in "\n": no line is empty
    value_starts = ~blank
    value_starts[1:] &= blank[:-1]
    values_per_line = np.add.reduceat(value_starts, begins, dtype=np.int64)
    bytes_per_line = np.add.reduceat(~blank, begins, dtype=np.int64)
    wrong = np.flatnonzero((bytes_per_line > 0) & (values_per_line != AMAT_VALUES))
    if wrong.size:
        raise DatasetError(f"{source}: line {first + wrong[0] + 1} has {values_per_line[wrong[0]]} values, expected "
                           f"{AMAT_VALUES} (truncated or corrupt .amat file)")
    values = chunk[~blank] - np.uint8(48)
    glued = np.flatnonzero(bytes_per_line != values_per_line)
    outside = np.flatnonzero(values > 1)
    if glued.size or outside.size:
        line = glued[0] if glued.size else np.searchsorted(np.cumsum(bytes_per_line), outside[0], side="right")
        raise DatasetError(f"{source}: line {first + line + 1} holds a value other than 0 or 1")
    return values.reshape(-1, AMAT_VALUES)


def parse_amat(raw: bytes, source: str = "<amat>") -> np.ndarray:
    """Parse binarized-MNIST ``.amat`` text into (N, 1, 28, 28) uint8 values in {0, 1}."""
    line = 2 * AMAT_VALUES  # 784 digits, 783 spaces, one newline
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
    # General path (extra blanks, blank lines, ...) that also locates errors, whole lines at a time.
    parts, lines, position = [], 0, 0
    while position < len(raw):
        end = raw.rfind(b"\n", position, position + AMAT_CHUNK) + 1
        if end <= position:
            raise DatasetError(f"{source}: line {lines + 1} is longer than {AMAT_CHUNK:,} bytes; "
                               f"an .amat line of {AMAT_VALUES} values has {line}")
        chunk = buf[position:end]
        parts.append(_amat_lines(chunk, lines, source))
        lines += int(np.count_nonzero(chunk == 10))
        position = end
    images = np.concatenate(parts) if parts else np.empty((0, AMAT_VALUES), np.uint8)
    if not len(images):
        raise DatasetError(f"{source}: empty .amat file")
    return images.reshape(-1, 1, 28, 28)


def parse_idx_images(raw: bytes, source: str = "<idx>") -> np.ndarray:
    """Parse an uncompressed IDX3 ubyte image file into (N, 1, H, W) uint8."""
    if len(raw) < 16 or raw[:4] != b"\x00\x00\x08\x03":
        raise DatasetError(f"{source}: not an IDX3 unsigned-byte image file "
                           f"(magic {raw[:4].hex() or 'missing'}, expected 00000803)")
    n, h, w = (int.from_bytes(raw[i:i + 4], "big") for i in (4, 8, 12))
    check_limit("image_pixels", h * w, f"{source}: an image of {h}x{w}", DatasetError)
    if len(raw) - 16 != n * h * w:
        raise DatasetError(f"{source}: IDX header says {n}x{h}x{w} = {n * h * w} bytes of "
                           f"pixels, found {len(raw) - 16} (truncated or corrupt)")
    return np.frombuffer(raw, dtype=np.uint8, offset=16).reshape(n, 1, h, w)


def _encode_latin1(text: str, encoding: str = "utf-8") -> bytes:
    if encoding not in ("latin1", "latin-1"):
        raise pickle.UnpicklingError(f"_codecs.encode with encoding {encoding!r}")
    return text.encode("latin1")


class _ArrayType:
    """Stands for ``numpy.ndarray`` inside a pickle: an argument of ``_reconstruct``, never an array maker."""


def _bounded_reconstruct(reconstruct: Callable) -> Callable:
    """``_reconstruct`` that builds plain arrays of at most the decoded-bytes limit (pickles ask for (0,))."""

    def build(subtype, shape, dtype):
        if subtype is not _ArrayType or not isinstance(shape, tuple) or not all(isinstance(d, int) and d >= 0 for d in shape):
            raise pickle.UnpicklingError("_reconstruct takes numpy.ndarray and a shape of sizes")
        if math.prod(shape) * np.dtype(dtype).itemsize > current_limits().decoded_bytes:
            raise pickle.UnpicklingError(f"an array of shape {shape} is over the decoded-bytes limit")
        return reconstruct(np.ndarray, shape, dtype)

    return build


def _numpy_globals() -> dict[tuple[str, str], Callable]:
    try:
        from numpy._core import multiarray, numeric
    except ImportError:  # numpy < 2
        from numpy.core import multiarray, numeric
    out: dict[tuple[str, str], Callable] = {
        ("numpy", "ndarray"): _ArrayType, ("numpy", "dtype"): np.dtype,
        ("_codecs", "encode"): _encode_latin1,
    }
    for pkg in ("numpy.core", "numpy._core"):
        out[(pkg + ".multiarray", "_reconstruct")] = _bounded_reconstruct(multiarray._reconstruct)
        out[(pkg + ".numeric", "_frombuffer")] = numeric._frombuffer  # a view of bytes present
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
    """Parse one pickled CIFAR-10 python batch into (N, 3, 32, 32) uint8, safely.

    The opcodes are walked first (``pickletools``, which allocates nothing a length field
    declares), so that every length must be backed by bytes present before unpickling.
    """
    return _cifar_batch(raw, source)[0]


def parse_cifar_labels(raw: bytes, source: str = "<cifar batch>") -> np.ndarray:
    """The ``labels`` of one pickled CIFAR-10 python batch, int64 (N,) in 0..9."""
    data, batch = _cifar_batch(raw, source)
    labels = batch.get(b"labels", batch.get("labels"))
    try:
        labels = np.asarray(labels)
    except (TypeError, ValueError):
        labels = None
    if labels is None or labels.shape != (len(data),) or labels.dtype.kind not in "iu" or (labels.size and not 0 <= labels.min() <= labels.max() <= 9):
        raise DatasetError(f"{source}: its 'labels' are not {len(data)} classes in 0..9")
    return labels.astype(np.int64)


def _cifar_batch(raw: bytes, source: str) -> tuple[np.ndarray, dict]:
    try:
        for _ in pickletools.genops(raw):
            pass
        batch = _SafeUnpickler(io.BytesIO(raw), encoding="bytes").load()
    except Exception as e:  # noqa: BLE001 - any failure of an untrusted pickle
        raise DatasetError(f"{source}: refused or unreadable CIFAR batch: {one_line(e)}") from None
    data = batch.get(b"data", batch.get("data")) if isinstance(batch, dict) else None
    if (not isinstance(data, np.ndarray) or data.dtype != np.uint8 or data.ndim != 2
            or data.shape[1] != 3072):
        raise DatasetError(f"{source}: not a CIFAR-10 batch (expected a dict whose 'data' "
                           "is an (N, 3072) uint8 array)")
    return data.reshape(-1, 3, 32, 32), batch


def _to_uint8(x: np.ndarray, source: str) -> np.ndarray:
    if x.dtype == np.uint8:
        return x
    if x.dtype.kind not in "biu":
        raise DatasetError(f"{source}: expected integer pixels, found dtype {x.dtype}")
    if x.size and (x.min() < 0 or x.max() > 255):
        raise DatasetError(f"{source}: pixel values must lie in 0..255, found "
                           f"{x.min()}..{x.max()}")
    return x.astype(np.uint8)



def npz_key(keys: Iterable[str], split: str) -> str | None:
    """The array of ``split``: ``<split>``, ``<split>_x`` or ``x_<split>``; a file of ``pixelrnn sample`` (one array,
    ``images``) is the ``train`` split (with its carved ``valid``)."""
    keys = list(keys)
    found = next((k for k in (split, f"{split}_x", f"x_{split}") if k in keys), None)
    if found is None and split == "train" and "images" in keys and not any(npz_key(keys, s) for s in ("valid", "test", "all")):
        return "images"
    return found


def npz_layout(x: np.ndarray, source: str) -> np.ndarray:
    if x.ndim == 3:
        return x[:, None]
    if x.ndim == 4 and x.shape[1] in (1, 3):
        return x
    if x.ndim == 4 and x.shape[3] in (1, 3):
        return x.transpose(0, 3, 1, 2)
    raise DatasetError(f"{source}: array of shape {x.shape} is not NHW, NCHW or NHWC "
                       "with 1 or 3 channels")
