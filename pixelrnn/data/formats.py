"""Parsers of the official dataset file formats; every file is treated as hostile.

``.amat`` text (binarized MNIST), IDX3 images (MNIST, optionally gzipped), the pickled CIFAR-10
python batches (through an unpickler that can only rebuild numpy arrays) and npz arrays.
Each raises :class:`DatasetError` with a one-line message for a truncated or foreign file.
"""

from __future__ import annotations

import gzip
import io
import pickle
import zipfile
import zlib
from pathlib import Path
from typing import Callable, Iterable

import numpy as np

from ..errors import DatasetError


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


def read_npz_member(data: bytes | Path, source: str, size: int) -> np.ndarray:
    try:
        with np.load(io.BytesIO(data) if isinstance(data, bytes) else data,
                     allow_pickle=False) as f:
            x = f["data"]
    except (OSError, ValueError, KeyError, zipfile.BadZipFile, EOFError) as e:
        raise DatasetError(f"{source}: unreadable npz or no 'data' array: {e}") from e
    if x.ndim != 2 or x.shape[1] != 3 * size * size:
        raise DatasetError(f"{source}: data has shape {x.shape}, expected (N, {3 * size * size})")
    return _to_uint8(x, source).reshape(-1, 3, size, size)


def npz_key(keys: Iterable[str], split: str) -> str | None:
    return next((k for k in (split, f"{split}_x", f"x_{split}") if k in keys), None)


def npz_layout(x: np.ndarray, source: str) -> np.ndarray:
    if x.ndim == 3:
        return x[:, None]
    if x.ndim == 4 and x.shape[1] in (1, 3):
        return x
    if x.ndim == 4 and x.shape[3] in (1, 3):
        return x.transpose(0, 3, 1, 2)
    raise DatasetError(f"{source}: array of shape {x.shape} is not NHW, NCHW or NHWC "
                       "with 1 or 3 channels")
