"""Lossless image compression with a trained PixelRNN/PixelCNN and a range coder.

The paper (section 5.1) reads the negative log-likelihood in bits/dim as the size that a
compression scheme built on the model would reach, up to a small arithmetic-coding overhead.
This module is that scheme: every sub-pixel, in raster order (row, column, R then G then B),
is entropy-coded with the model's conditional p(x_i | x_<i) by the range coder of
``constriction`` (``constriction.stream.queue.RangeEncoder`` / ``RangeDecoder``).

Bit-exact probabilities on both sides
-------------------------------------
The decoder only knows x_<i, so it must rebuild every conditional exactly as the encoder saw
it: one differing bit in one quantised probability desynchronises the range coder and garbles
everything after it. So both sides

- compute the logits with the same code path: the exact incremental engine of
  :mod:`pixelrnn.incremental` (the encoder teacher-forces it with the known values; it never
  uses the batched forward pass, whose sums are grouped differently);
- code the images in the same fixed chunks (images of one size, ``batch_size`` of them at a
  time, both stored in the header): the engine's matrix products see the same shapes;
- run the model on the CPU in the same dtype (stored) with one torch thread (a reduction's
  order can depend on the thread count);
- turn the logits into integer frequencies with :func:`quantise`, which this module owns:
  softmax in float64, ``floor(p * (2^24 - K))`` per symbol, the remainder to the most likely
  symbol. ``constriction``'s categorical model (``perfect=False``) adds one to each weight,
  so the coder's model is exactly ``(w_k + 1) / 2^24``: every symbol stays codable and no
  float arithmetic of ``constriction`` is involved (all values are integers below 2^24).

That makes a file decode bit for bit on the machine type and torch build that wrote it. Another
CPU instruction set or torch version may compute a logit differently in its last bit; the header
records torch's version, the device and the CPU capability, and decoding warns when they differ
(the pixel checksum then tells whether the decode was right; it never returns wrong pixels).

The container format is documented byte by byte in ``docs/compression.md`` and in
:func:`build_container` / :func:`read_container`. Every field of a file is checked against the
file's size and fixed limits before anything is allocated from it; a bad file raises
:class:`CompressionError` (a one-line message).

Images and PNG values
---------------------
A model codes integers in ``[0, levels)``. An image file (mode ``1``, ``L`` or ``RGB``) maps its
8-bit samples p to model values in one of two ways, stored per image:

- ``scaled``: v = round(p (K-1) / 255), accepted only when p == round(255 v / (K-1)) for every
  sample (the mapping of :func:`pixelrnn.generate.to_uint8`): a binary model reads {0, 255} as
  {0, 1}; an 8-bit model reads p as p;
- ``raw``: v = p, for files whose samples are already model values (e.g. a binary image stored
  as L with values {0, 1}); used when ``scaled`` does not apply.

Decompression writes each PNG back in the mode it was read in, with exactly the samples read:
mode ``1`` files come back as mode ``1``, L as L, RGB as RGB (a grey file coded by a colour
model, or a colour file with equal channels coded by a grey model, is converted for the model
and back). Dataset images are model values: they are written with ``scaled`` for 2-level data
(0/1 -> 0/255) and ``raw`` otherwise.

Command line: :func:`add_compress_parser` / :func:`add_decompress_parser` build
``pixelrnn compress`` and ``pixelrnn decompress``.
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import hashlib
import math
import os
import platform
import struct
import sys
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable, Sequence

import numpy as np
import torch

from .errors import UserError
from .evaluation import nll_per_image
from .generate import to_uint8

# --------------------------------------------------------------------- constants of format 1
MAGIC = b"PXRNNCMP"
VERSION = 1
PRECISION = 24  # bits of the range coder's probabilities (constriction's RangeEncoder: 24)
DTYPES = {1: torch.float32, 2: torch.float64}
DTYPE_CODES = {dtype: code for code, dtype in DTYPES.items()}
MODES = {1: "1", 2: "L", 3: "RGB"}
MODE_CODES = {mode: code for code, mode in MODES.items()}
MAPPINGS = {0: "raw", 1: "scaled"}
MAPPING_CODES = {name: code for code, name in MAPPINGS.items()}

DEFAULT_BATCH_SIZE = 256
# A chunk holds at most this many pixels (but at least one image): the engines cache every layer
# over the whole chunk, so big images are coded a few at a time. Stored in the header.
CHUNK_PIXELS = 1 << 20

# Sane limits, checked on both sides, so that no header field can size an absurd allocation.
MAX_BATCH = 4096
MAX_SIDE = 16384
MAX_IMAGE_PIXELS = 1 << 24
MAX_CHUNK_PIXELS = 1 << 24
MAX_IMAGES = 1 << 21
MAX_NAME_DIGITS = 20
MAX_HEADER = 64 << 20
MAX_ENVIRONMENT = 1024
MAX_NAME = 255
DIGEST = 32

_PREFIX = struct.Struct("<8sHI")  # magic, version, header body length
_FIXED = struct.Struct("<32sBBIIBHH")  # fingerprint, dtype, precision, batch, chunk pixels, channels, levels, env length
_COUNTS = struct.Struct("<Q32sII")  # payload length, pixel digest, image count, run count
_RUN = struct.Struct("<IHHBB")  # images in the run, height, width, mode, mapping
NAMES_NUMBERED, NAMES_LISTED = 0, 1
IMAGE_EXTENSIONS = (".png", ".bmp", ".gif", ".jpg", ".jpeg", ".tif", ".tiff", ".webp", ".ppm", ".pgm", ".pbm")


class CompressionError(Exception):
    """A file that cannot be decoded (or images that cannot be coded); the message is one line."""


class EnvironmentWarning(UserWarning):
    """The file was written by another torch build or machine type; decoding may fail (never silently)."""


@dataclass(frozen=True, eq=False)
class CodedImage:
    """One image as the model codes it, and how to write it back.

    name: the file name decompression writes (``something.png``).
    values: (C, H, W) uint8 model values in [0, levels).
    mode: the PNG mode to write back: ``"1"``, ``"L"`` or ``"RGB"``.
    mapping: ``"scaled"`` or ``"raw"``, how a model value becomes an 8-bit sample (module docstring).
    """

    name: str
    values: np.ndarray
    mode: str
    mapping: str


@dataclass(frozen=True)
class Container:
    """The parsed header of a compressed file (see :func:`read_container`)."""

    fingerprint: bytes
    dtype: torch.dtype
    precision: int
    batch_size: int
    chunk_pixels: int
    channels: int
    levels: int
    environment: dict[str, str]
    pixel_digest: bytes
    shapes: tuple[tuple[int, int], ...]  # (height, width) per image
    modes: tuple[str, ...]
    mappings: tuple[str, ...]
    names: tuple[str, ...]
    payload: bytes
    header_bytes: int  # everything but the payload

    @property
    def subpixels(self) -> int:
        return sum(self.channels * h * w for h, w in self.shapes)


# --------------------------------------------------------------------- model checks and identity
def _check_model(model) -> None:
    from .config import ModelConfig
    from .incremental import ENGINES

    config = getattr(model, "config", None)
    if not isinstance(config, ModelConfig) or config.arch not in ENGINES:
        raise CompressionError("compression needs a single-scale network (pixelcnn, row_lstm or diagonal_bilstm)")
    if config.condition_channels:
        raise CompressionError("compression needs an unconditional network; this one takes a condition map")
    if config.levels > 256 or config.channels > 255:
        raise CompressionError(f"compression codes at most 256 levels and 255 channels; the model has {config.levels} and {config.channels}")


def model_fingerprint(model) -> bytes:
    """sha256 identifying a model: its config JSON, then every state tensor in sorted key order.

    For each tensor: ``\\0 key \\0 dtype \\0 shape \\0`` (UTF-8), then its bytes in C order as
    stored in memory (little-endian on every machine torch supports). Parameters and buffers
    both count, so any weight change, any config change gives another fingerprint.
    """
    digest = hashlib.sha256(b"pixelrnn-model\0")
    digest.update(model.config.to_json().encode())
    for key, tensor in sorted(model.state_dict().items()):
        tensor = tensor.detach().to("cpu").contiguous()
        digest.update(f"\0{key}\0{tensor.dtype}\0{tuple(tensor.shape)}\0".encode())
        digest.update(tensor.reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.digest()


def environment() -> dict[str, str]:
    """What the probabilities depend on besides the model and the file: recorded, compared on decode."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        coder = version("constriction")
    except PackageNotFoundError:  # pragma: no cover - the import of constriction fails first
        coder = "unknown"
    return {
        "torch": torch.__version__,
        "device": "cpu",
        "isa": torch.backends.cpu.get_cpu_capability(),
        "machine": platform.machine() or "unknown",
        "constriction": coder,
    }


def _environment_text(values: dict[str, str]) -> bytes:
    return ";".join(f"{key}={value}" for key, value in values.items()).encode()


def _constriction():
    try:
        import constriction
    except ImportError:
        raise CompressionError("compression needs the constriction package: pip install constriction==0.5.0") from None
    return constriction


# --------------------------------------------------------------------- probabilities
def quantise(logits: torch.Tensor) -> np.ndarray:
    """(N, K) logits -> (N, K) float64 integer weights w >= 0 with sum exactly 2^24 - K.

    The coder's model is (w_k + 1) / 2^24 (``constriction`` adds the one). Softmax in float64,
    ``floor(p * (2^24 - K))``, the remainder (< K) added to the first most likely symbol. A row
    with a non-finite probability (a broken model: NaN or infinite logits) becomes uniform, the
    same on both sides. After the softmax everything is exact integer arithmetic in float64
    (values below 2^24): elementwise or sums of integers, whose order cannot change the result.
    """
    levels = logits.shape[-1]
    free = float((1 << PRECISION) - levels)
    probs = torch.softmax(logits.to(torch.float64), dim=-1).numpy()  # a fresh tensor: writable, ours
    weights = np.floor(probs * free)
    remainder = free - weights.sum(axis=1)
    if not np.isfinite(remainder).all():  # cheap test on (N,) instead of (N, K)
        broken = ~np.isfinite(remainder)
        probs[broken] = 1.0 / levels
        weights[broken] = np.floor(probs[broken] * free)
        remainder = free - weights.sum(axis=1)
    weights[np.arange(len(weights)), probs.argmax(axis=1)] += remainder
    return weights


def code_lengths(weights: np.ndarray, symbols: np.ndarray) -> np.ndarray:
    """Ideal bits of ``symbols`` (N,) under the quantised model of ``weights`` (N, K)."""
    chosen = weights[np.arange(len(symbols)), symbols] + 1.0
    return PRECISION - np.log2(chosen)


@contextlib.contextmanager
def _one_thread():
    """One torch thread while coding (reduction order may depend on it); the setting restored after."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def _coding_model(model, dtype: torch.dtype):
    """The model on the CPU in ``dtype``, in eval mode: the caller's model if it already is, else a copy."""
    if model.device.type == "cpu" and model.dtype == dtype and not model.training:
        return model
    return copy.deepcopy(model).to(device="cpu", dtype=dtype).eval()


def chunks(shapes: Sequence[tuple[int, int]], batch_size: int, chunk_pixels: int) -> list[list[int]]:
    """Image indices in coding order: grouped by size (in order of first appearance), then chunked.

    Within a size group, images keep their order; a chunk holds min(batch_size,
    max(1, chunk_pixels // (H*W))) images (the last one of a group fewer). Encoder and decoder
    both derive the chunks from the header, so the engine sees the same batches.
    """
    groups: dict[tuple[int, int], list[int]] = {}
    for index, shape in enumerate(shapes):
        groups.setdefault(tuple(shape), []).append(index)
    result = []
    for (height, width), indices in groups.items():
        size = min(batch_size, max(1, chunk_pixels // (height * width)))
        result.extend(indices[start : start + size] for start in range(0, len(indices), size))
    return result


def _raster(engine, channels: int, height: int, width: int, code_step: Callable[[np.ndarray, int, int, int], np.ndarray]) -> None:
    """Visit every sub-pixel of a chunk in raster order: quantised conditional -> coder -> engine."""
    for i in range(height):
        for j in range(width):
            for c in range(channels):
                weights = quantise(engine.logits(i, j, c))
                values = code_step(weights, i, j, c)  # (b,) int64 numpy: the sub-pixel's true values
                engine.advance(i, j, c, torch.from_numpy(values))


def _pixel_digest(values: Iterable[np.ndarray]) -> bytes:
    digest = hashlib.sha256()
    for array in values:
        digest.update(np.ascontiguousarray(array, dtype=np.uint8).tobytes())
    return digest.digest()


def _progress_bar(total: int, progress: bool, description: str):
    from tqdm.auto import tqdm

    return tqdm(total=total, unit="img", desc=description, disable=not progress, leave=False)


# --------------------------------------------------------------------- encode
def _check_images(images: Sequence[CodedImage], channels: int, levels: int) -> None:
    if not images:
        raise CompressionError("nothing to compress: no images")
    if len(images) > MAX_IMAGES:
        raise CompressionError(f"at most {MAX_IMAGES} images per file; got {len(images)}")
    seen: dict[str, str] = {}
    for image in images:
        values = image.values
        if not isinstance(values, np.ndarray) or values.dtype != np.uint8 or values.ndim != 3 or values.shape[0] != channels:
            raise CompressionError(f"{image.name}: values must be a ({channels}, H, W) uint8 array")
        height, width = values.shape[1:]
        if not (1 <= height <= MAX_SIDE and 1 <= width <= MAX_SIDE and height * width <= MAX_IMAGE_PIXELS):
            raise CompressionError(f"{image.name}: {width}x{height} is outside the limits (sides 1..{MAX_SIDE}, at most {MAX_IMAGE_PIXELS} pixels)")
        if values.size and int(values.max()) >= levels:
            raise CompressionError(f"{image.name}: value {int(values.max())} is outside the model's [0, {levels})")
        if image.mode not in MODE_CODES or image.mapping not in MAPPING_CODES:
            raise CompressionError(f"{image.name}: mode must be one of {', '.join(MODE_CODES)} and mapping raw or scaled")
        check_name(image.name)
        key = image.name.casefold()  # case-insensitive file systems would merge these
        if key in seen:
            raise CompressionError(f"two images would both decompress to {image.name!r} (and {seen[key]!r})")
        seen[key] = image.name


def compress(model, images: Sequence[CodedImage], *, batch_size: int = DEFAULT_BATCH_SIZE, dtype: torch.dtype = torch.float32,
             progress: bool = False) -> bytes:
    """Code ``images`` with ``model`` into one self-describing file (bytes).

    ``batch_size`` images of one size are coded at a time (stored: the decoder uses the same
    chunks); ``dtype`` is the model's dtype while coding (float32 is faster; float64 stored too).
    """
    _check_model(model)
    constriction = _constriction()
    config = model.config
    if dtype not in DTYPE_CODES:
        raise CompressionError(f"dtype must be torch.float32 or torch.float64; got {dtype}")
    if not 1 <= batch_size <= MAX_BATCH:
        raise CompressionError(f"batch size must lie in 1..{MAX_BATCH}; got {batch_size}")
    images = list(images)
    _check_images(images, config.channels, config.levels)
    from .incremental import make_engine

    fingerprint = model_fingerprint(model)
    coder_model = _coding_model(model, dtype)
    family = constriction.stream.model.Categorical(perfect=False)
    encoder = constriction.stream.queue.RangeEncoder()
    shapes = [image.values.shape[1:] for image in images]
    bar = _progress_bar(len(images), progress, "compress")
    try:
        with torch.no_grad(), _one_thread():
            engine = make_engine(coder_model)
            for chunk in chunks(shapes, batch_size, CHUNK_PIXELS):
                height, width = shapes[chunk[0]]
                # (H, W, C, b): the b values of one sub-pixel are contiguous.
                stacked = np.stack([images[k].values for k in chunk], axis=-1).transpose(1, 2, 0, 3)
                symbols = np.ascontiguousarray(stacked, dtype=np.int32)
                feed = np.ascontiguousarray(stacked, dtype=np.int64)

                def encode(weights, i, j, c):
                    encoder.encode(symbols[i, j, c], family, weights)
                    return feed[i, j, c]

                engine.reset(len(chunk), height, width)
                _raster(engine, config.channels, height, width, encode)
                bar.update(len(chunk))
    finally:
        bar.close()
    payload = encoder.get_compressed().astype("<u4").tobytes()
    return build_container(
        fingerprint=fingerprint, dtype=dtype, batch_size=batch_size, chunk_pixels=CHUNK_PIXELS, channels=config.channels,
        levels=config.levels, environment=environment(), pixel_digest=_pixel_digest(image.values for image in images),
        images=images, payload=payload,
    )


def numbered_digits(names: Sequence[str]) -> int | None:
    """D if the names are exactly f"{k:0D}.png" for k = 0, 1, ... (stored as one byte), else None."""
    digits = len(names[0]) - len(".png") if names else 0
    if not 1 <= digits <= MAX_NAME_DIGITS:
        return None
    return digits if all(name == f"{index:0{digits}d}.png" for index, name in enumerate(names)) else None


def _runs(images: Sequence[CodedImage]) -> list[list]:
    """Consecutive images with the same (height, width, mode, mapping) as [count, height, width, mode, mapping]."""
    runs: list[list] = []
    for image in images:
        key = [*image.values.shape[1:], MODE_CODES[image.mode], MAPPING_CODES[image.mapping]]
        if runs and runs[-1][1:] == key:
            runs[-1][0] += 1
        else:
            runs.append([1, *key])
    return runs


def build_container(*, fingerprint: bytes, dtype: torch.dtype, batch_size: int, chunk_pixels: int, channels: int, levels: int,
                    environment: dict[str, str], pixel_digest: bytes, images: Sequence[CodedImage], payload: bytes) -> bytes:
    """Assemble format 1 (all integers little-endian; ``docs/compression.md`` has the table)::

        magic "PXRNNCMP" | u16 version | u32 body length N | body (N bytes)
        | sha256(all bytes before it) | payload | sha256(payload)

    body: 32-byte model fingerprint | u8 dtype (1 float32, 2 float64) | u8 precision (24)
    | u32 batch size | u32 chunk pixels | u8 channels | u16 levels | u16 E | E bytes environment
    | u64 payload length | 32-byte sha256 of the decoded values | u32 image count | u32 run count R
    | R runs: u32 images, u16 height, u16 width, u8 mode (1 "1", 2 "L", 3 "RGB"), u8 mapping
    (0 raw, 1 scaled) | u8 naming: 0 numbered (then u8 digits D: image k is named f"{k:0D}.png")
    or 1 listed (then per image u8 length L, L bytes UTF-8).
    """
    env = _environment_text(environment)[:MAX_ENVIRONMENT]
    runs = _runs(images)
    body = [_FIXED.pack(fingerprint, DTYPE_CODES[dtype], PRECISION, batch_size, chunk_pixels, channels, levels, len(env)), env,
            _COUNTS.pack(len(payload), pixel_digest, len(images), len(runs))]
    body.extend(_RUN.pack(*run) for run in runs)
    names = [image.name for image in images]
    digits = numbered_digits(names)
    if digits is not None:  # dataset-style names cost two bytes in all
        body.append(bytes([NAMES_NUMBERED, digits]))
    else:
        body.append(bytes([NAMES_LISTED]))
        for name in names:
            encoded = name.encode()
            body.append(bytes([len(encoded)]) + encoded)
    body_bytes = b"".join(body)
    head = _PREFIX.pack(MAGIC, VERSION, len(body_bytes)) + body_bytes
    return b"".join([head, hashlib.sha256(head).digest(), payload, hashlib.sha256(payload).digest()])


# --------------------------------------------------------------------- parse
class _Reader:
    """Bounded reads from the header body: running past its end is a CompressionError."""

    def __init__(self, data: bytes):
        self.data, self.offset = data, 0

    def take(self, size: int) -> bytes:
        if size > len(self.data) - self.offset:
            raise CompressionError("corrupted header: a field runs past the header's end")
        part = self.data[self.offset : self.offset + size]
        self.offset += size
        return part

    def unpack(self, layout: struct.Struct) -> tuple:
        return layout.unpack(self.take(layout.size))

    @property
    def left(self) -> int:
        return len(self.data) - self.offset


def check_name(name: str) -> str:
    """A plain file name ending in .png: no folders, no '..', no control characters, <= 255 bytes."""
    try:
        encoded = name.encode()
    except UnicodeEncodeError:  # an undecodable file name from the file system
        raise CompressionError(f"image name {name[:80]!r} is not valid UTF-8; rename the file") from None
    if (not name or len(encoded) > MAX_NAME or name in (".", "..") or any(ch in name for ch in "/\\")
            or any(ord(ch) < 32 or ord(ch) == 127 for ch in name) or not name.lower().endswith(".png")):
        raise CompressionError(f"unsafe or invalid image name {name[:80]!r} (a plain file name ending in .png is required)")
    return name


def read_container(data: bytes) -> Container:
    """Parse and check a compressed file without a model; CompressionError for any defect.

    Checks, in order: size and magic, version, header length against the file, the header's
    sha256, each field against fixed limits and the remaining header bytes (counts are bounded
    by the bytes that would describe them), the total size, then the payload's sha256.
    """
    if data[: len(MAGIC)] != MAGIC[: len(data)] or not data:
        raise CompressionError("not a pixelrnn compressed file (wrong magic bytes)" if data else "empty file")
    if len(data) < _PREFIX.size:
        raise CompressionError(f"truncated file ({len(data)} bytes)")
    magic, version, body_length = _PREFIX.unpack_from(data)
    if version != VERSION:
        raise CompressionError(f"unsupported format version {version} (this pixelrnn reads version {VERSION})")
    if body_length > MAX_HEADER or _PREFIX.size + body_length + 2 * DIGEST > len(data):
        raise CompressionError(f"truncated or corrupted file: header of {body_length} bytes in a {len(data)}-byte file")
    head_end = _PREFIX.size + body_length
    if hashlib.sha256(data[:head_end]).digest() != data[head_end : head_end + DIGEST]:
        raise CompressionError("corrupted header (sha256 mismatch)")
    reader = _Reader(data[_PREFIX.size : head_end])
    fingerprint, dtype_code, precision, batch_size, chunk_pixels, channels, levels, env_length = reader.unpack(_FIXED)
    if dtype_code not in DTYPES:
        raise CompressionError(f"corrupted header: unknown dtype code {dtype_code}")
    if precision != PRECISION:
        raise CompressionError(f"unsupported coder precision {precision} bits (this pixelrnn codes with {PRECISION})")
    if not 1 <= batch_size <= MAX_BATCH or not 1 <= chunk_pixels <= MAX_CHUNK_PIXELS:
        raise CompressionError(f"corrupted header: batch size {batch_size} or chunk size {chunk_pixels} outside the limits")
    if channels < 1 or not 2 <= levels <= 256:
        raise CompressionError(f"corrupted header: {channels} channels, {levels} levels")
    if env_length > MAX_ENVIRONMENT:
        raise CompressionError(f"corrupted header: environment of {env_length} bytes")
    try:
        env_text = reader.take(env_length).decode()
    except UnicodeDecodeError:
        raise CompressionError("corrupted header: environment is not UTF-8") from None
    env = dict(item.partition("=")[::2] for item in env_text.split(";") if item)
    payload_length, pixel_digest, count, run_count = reader.unpack(_COUNTS)
    if not 1 <= count <= MAX_IMAGES or not 1 <= run_count <= count or run_count * _RUN.size > reader.left:
        raise CompressionError(f"corrupted header: {count} images in {run_count} runs cannot be described by {reader.left} header bytes")
    shapes, modes, mappings = [], [], []
    for _ in range(run_count):
        length, height, width, mode, mapping = reader.unpack(_RUN)
        if not 1 <= length <= count - len(shapes):
            raise CompressionError(f"corrupted header: a run of {length} images where {count - len(shapes)} remain")
        if not (1 <= height <= MAX_SIDE and 1 <= width <= MAX_SIDE and height * width <= MAX_IMAGE_PIXELS):
            raise CompressionError(f"corrupted header: image size {width}x{height} outside the limits")
        if mode not in MODES or mapping not in MAPPINGS:
            raise CompressionError(f"corrupted header: mode code {mode}, mapping code {mapping}")
        shapes.extend([(height, width)] * length)
        modes.extend([MODES[mode]] * length)
        mappings.extend([MAPPINGS[mapping]] * length)
    if len(shapes) != count:
        raise CompressionError(f"corrupted header: the runs describe {len(shapes)} images, not {count}")
    (naming,) = reader.take(1)
    if naming == NAMES_NUMBERED:
        (digits,) = reader.take(1)
        if not 1 <= digits <= MAX_NAME_DIGITS:
            raise CompressionError(f"corrupted header: names of {digits} digits")
        names = [f"{index:0{digits}d}.png" for index in range(count)]
    elif naming == NAMES_LISTED:
        if count * 2 > reader.left:
            raise CompressionError(f"corrupted header: {count} names cannot fit in {reader.left} bytes")
        names = []
        for _ in range(count):
            (length,) = reader.take(1)
            try:
                names.append(check_name(reader.take(length).decode()))
            except UnicodeDecodeError:
                raise CompressionError("corrupted header: an image name is not UTF-8") from None
    else:
        raise CompressionError(f"corrupted header: unknown naming code {naming}")
    if reader.left:
        raise CompressionError(f"corrupted header: {reader.left} unexplained bytes after the image list")
    if len({name.casefold() for name in names}) != len(names):
        raise CompressionError("corrupted header: two images have the same name")
    if payload_length % 4:
        raise CompressionError(f"corrupted header: payload length {payload_length} is not whole 32-bit words")
    expected = head_end + DIGEST + payload_length + DIGEST
    if len(data) != expected:
        what = "truncated" if len(data) < expected else "has trailing bytes"
        raise CompressionError(f"file {what}: {len(data)} bytes, the header says {expected}")
    payload = data[head_end + DIGEST : head_end + DIGEST + payload_length]
    if hashlib.sha256(payload).digest() != data[expected - DIGEST :]:
        raise CompressionError("corrupted payload (sha256 mismatch)")
    return Container(fingerprint, DTYPES[dtype_code], precision, batch_size, chunk_pixels, channels, levels, env, pixel_digest,
                     tuple(shapes), tuple(modes), tuple(mappings), tuple(names), payload, expected - payload_length)


# --------------------------------------------------------------------- decode
def environment_differences(recorded: dict[str, str]) -> list[str]:
    """``key: file value != this machine's`` for every recorded key that differs here."""
    here = environment()
    return [f"{key} {recorded.get(key, '?')} (here {value})" for key, value in here.items() if recorded.get(key) != value]


def decompress(model, data: bytes, *, max_subpixels: int | None = None, progress: bool = False) -> list[CodedImage]:
    """Decode a file written by :func:`compress` with the same model; the images in input order.

    Raises CompressionError for a damaged file, another model, or a decode whose pixels do not
    match the stored sha256. Warns (:class:`EnvironmentWarning`) when the file was written by
    another torch build or machine type. ``max_subpixels`` refuses files that claim more.
    """
    _check_model(model)
    container = read_container(data)
    config = model.config
    if container.fingerprint != model_fingerprint(model):
        raise CompressionError(f"the file was compressed with another model (fingerprint {container.fingerprint.hex()[:16]}..., "
                               f"this model's is {model_fingerprint(model).hex()[:16]}...)")
    if (container.channels, container.levels) != (config.channels, config.levels):
        raise CompressionError(f"the file codes {container.channels} channels of {container.levels} levels; "
                               f"the model has {config.channels} and {config.levels}")
    if max_subpixels is not None and container.subpixels > max_subpixels:
        raise CompressionError(f"the file holds {container.subpixels} sub-pixels, more than the limit of {max_subpixels}")
    differences = environment_differences(container.environment)
    if differences:
        warnings.warn("the file was written with " + ", ".join(differences) + "; the decode may not reproduce the "
                      "probabilities exactly (the pixel checksum will tell)", EnvironmentWarning, stacklevel=2)
    constriction = _constriction()
    from .incremental import make_engine

    words = np.frombuffer(container.payload, dtype="<u4").astype(np.uint32)
    decoder = constriction.stream.queue.RangeDecoder(words)
    family = constriction.stream.model.Categorical(perfect=False)
    coder_model = _coding_model(model, container.dtype)
    decoded: list[np.ndarray | None] = [None] * len(container.shapes)
    bar = _progress_bar(len(container.shapes), progress, "decompress")
    try:
        with torch.no_grad(), _one_thread():
            engine = make_engine(coder_model)
            for chunk in chunks(container.shapes, container.batch_size, container.chunk_pixels):
                height, width = container.shapes[chunk[0]]
                out = np.empty((height, width, config.channels, len(chunk)), dtype=np.int64)

                def decode(weights, i, j, c):
                    try:
                        symbols = decoder.decode(family, weights)
                    except (KeyboardInterrupt, SystemExit):
                        raise
                    except BaseException as error:  # constriction raises AssertionError (or a Rust panic) on bad data
                        raise CompressionError(f"corrupted payload: the range decoder failed ({str(error).splitlines()[0] if str(error) else type(error).__name__})") from None
                    out[i, j, c] = symbols
                    return out[i, j, c]

                engine.reset(len(chunk), height, width)
                _raster(engine, config.channels, height, width, decode)
                values = out.transpose(3, 2, 0, 1).astype(np.uint8)  # (b, C, H, W)
                for position, index in enumerate(chunk):
                    decoded[index] = np.ascontiguousarray(values[position])
                bar.update(len(chunk))
    finally:
        bar.close()
    if _pixel_digest(decoded) != container.pixel_digest:
        raise CompressionError("decoded pixels do not match the file's sha256: the file was altered, or it was written on "
                               "another machine type / torch build (" + (", ".join(differences) or "no difference recorded") + ")")
    return [CodedImage(name, values, mode, mapping)
            for name, values, mode, mapping in zip(container.names, decoded, container.modes, container.mappings)]


# --------------------------------------------------------------------- images <-> PNG samples
def _scale_table(levels: int) -> np.ndarray:
    """8-bit sample of each model value under ``scaled``: the mapping of ``generate.to_uint8``."""
    return to_uint8(np.arange(levels), levels)


def samples_to_values(samples: np.ndarray, levels: int) -> tuple[np.ndarray, str] | None:
    """8-bit samples -> (model values, mapping), ``scaled`` if exact, else ``raw``; None if neither fits."""
    table = _scale_table(levels)
    inverse = np.full(256, -1, dtype=np.int16)
    inverse[table] = np.arange(levels)
    scaled = inverse[samples]
    if (scaled >= 0).all():
        return scaled.astype(np.uint8), "scaled"
    if samples.size == 0 or int(samples.max()) < levels:
        return samples.astype(np.uint8), "raw"
    return None


def values_to_png(image: CodedImage, levels: int):
    """The PIL image that decompression writes for ``image``: its mode, its exact samples."""
    from PIL import Image

    samples = _scale_table(levels)[image.values] if image.mapping == "scaled" else image.values
    if image.mode == "RGB":
        pixels = samples.transpose(1, 2, 0) if samples.shape[0] == 3 else np.repeat(samples[0][..., None], 3, axis=2)
        return Image.fromarray(np.ascontiguousarray(pixels), mode="RGB")
    grey = np.ascontiguousarray(samples[0])
    if image.mode == "1":
        # Samples are 0/255 here (a mode 1 file read as L); thresholding without dithering keeps them exactly.
        return Image.fromarray(grey, mode="L").convert("1", dither=Image.Dither.NONE)
    return Image.fromarray(grey, mode="L")


def image_from_file(path: str | os.PathLike, channels: int, levels: int, name: str | None = None) -> CodedImage:
    """Read a mode 1, L or RGB image file as model values (module docstring for the mapping)."""
    from PIL import Image, UnidentifiedImageError

    path = Path(path)
    try:
        with Image.open(path) as image:
            frames = getattr(image, "n_frames", 1)
            mode = image.mode
            if frames != 1:
                raise CompressionError(f"{path}: has {frames} frames; only single images can be restored exactly")
            if mode not in MODE_CODES:
                raise CompressionError(f"{path}: mode {mode} cannot be restored exactly; convert it to 1, L or RGB first")
            pixels = np.asarray(image.convert("L") if mode == "1" else image)
    except (OSError, UnidentifiedImageError, ValueError, Image.DecompressionBombError) as error:
        raise CompressionError(f"cannot read image {path}: {str(error).splitlines()[0] if str(error) else type(error).__name__}") from None
    samples = pixels[None] if pixels.ndim == 2 else pixels.transpose(2, 0, 1)  # (C, H, W)
    if samples.shape[0] == 3 and channels == 1:
        if not (samples == samples[:1]).all():
            raise CompressionError(f"{path}: a colour image; the model codes grey images (1 channel)")
        samples = samples[:1]  # equal channels: coded once, written back as RGB
    elif samples.shape[0] == 1 and channels == 3:
        samples = np.repeat(samples, 3, axis=0)  # grey for a colour model: written back as grey
    elif samples.shape[0] != channels:
        raise CompressionError(f"{path}: {samples.shape[0]} channels; the model codes {channels}")
    mapped = samples_to_values(samples, levels)
    if mapped is None:
        raise CompressionError(f"{path}: values in [{int(samples.min())}, {int(samples.max())}] cannot be coded exactly by a "
                               f"{levels}-level model (needs 0..{levels - 1} or their 8-bit scaling)")
    values, mapping = mapped
    return CodedImage(name or path.stem + ".png", np.ascontiguousarray(values), mode, mapping)


def image_files(inputs: Sequence[str | os.PathLike]) -> list[Path]:
    """Files named, and the image files directly inside folders named (sorted by name)."""
    files = []
    for item in inputs:
        path = Path(item)
        if path.is_dir():
            found = sorted((p for p in path.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS), key=lambda p: p.name)
            if not found:
                raise CompressionError(f"folder {path} holds no image files ({', '.join(IMAGE_EXTENSIONS)})")
            files.extend(found)
        elif path.is_file():
            files.append(path)
        else:
            raise CompressionError(f"input {path} does not exist")
    return files


def images_from_array(values: np.ndarray, levels: int) -> list[CodedImage]:
    """Dataset images (N, C, H, W) of model values, named 00000.png, ...; 2-level data is written as 0/255."""
    values = np.asarray(values)
    if values.ndim != 4 or values.shape[1] not in (1, 3):
        raise CompressionError(f"expected images (N, C, H, W) with 1 or 3 channels; got shape {values.shape}")
    mode = "L" if values.shape[1] == 1 else "RGB"
    mapping = "scaled" if levels == 2 else "raw"
    digits = max(5, len(str(len(values) - 1)))
    return [CodedImage(f"{index:0{digits}d}.png", np.ascontiguousarray(image, dtype=np.uint8), mode, mapping)
            for index, image in enumerate(values)]


def save_images(images: Sequence[CodedImage], levels: int, folder: str | os.PathLike) -> list[Path]:
    """Write each image as folder/name (PNG), atomically."""
    from .checkpoint import atomic_write

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for image in images:
        path = folder / check_name(image.name)
        picture = values_to_png(image, levels)
        atomic_write(path, lambda temp: picture.save(temp, format="PNG"))
        written.append(path)
    return written


# --------------------------------------------------------------------- statistics
def model_nll_bits(model, images: Sequence[CodedImage], batch_size: int = 64) -> float:
    """The model's total NLL of the images in bits (``model.nll``, batched full forward pass)."""
    by_shape: dict[tuple, list[np.ndarray]] = {}
    for image in images:
        by_shape.setdefault(image.values.shape, []).append(image.values)
    nats = sum(float(nll_per_image(model, np.stack(group), batch_size=batch_size).sum()) for group in by_shape.values())
    return nats / math.log(2.0)


def compression_stats(model, images: Sequence[CodedImage], data: bytes) -> dict:
    """Achieved bits/dim (payload only, and the whole file) against the model's NLL in bits/dim."""
    container = read_container(data)
    dims = container.subpixels
    nll_bits = model_nll_bits(model, images)
    payload_bits = 8 * len(container.payload)
    return {
        "images": len(images), "subpixels": dims, "file_bytes": len(data), "payload_bytes": len(container.payload),
        "header_bytes": container.header_bytes,
        "bits_per_dim": payload_bits / dims, "file_bits_per_dim": 8 * len(data) / dims, "nll_bits_per_dim": nll_bits / dims,
        "overhead_percent": 100.0 * (payload_bits - nll_bits) / nll_bits if nll_bits > 0 else float("nan"),
        "file_overhead_percent": 100.0 * (8 * len(data) - nll_bits) / nll_bits if nll_bits > 0 else float("nan"),
    }


# --------------------------------------------------------------------- command line
def add_compress_parser(subparsers) -> argparse.ArgumentParser:
    """``pixelrnn compress RUN_DIR_OR_CHECKPOINT INPUT... -o FILE`` (or ``--dataset NAME --split SPLIT``)."""
    from .cli import add_dataset_split_arguments

    parser = subparsers.add_parser(
        "compress", help="losslessly compress images with a trained model",
        description="Entropy-code images with the model's conditionals (range coding). Inputs are image files "
                    "(mode 1, L or RGB) and folders of them, or a dataset split. See docs/compression.md.")
    parser.add_argument("checkpoint", metavar="RUN_DIR_OR_CHECKPOINT")
    parser.add_argument("inputs", nargs="*", metavar="INPUT", help="image files, or folders (their image files, sorted by name)")
    parser.add_argument("-o", "--out", required=True, help="compressed file to write")
    parser.add_argument("--dataset", help="compress a dataset split instead of files (name as for `pixelrnn train`)")
    add_dataset_split_arguments(parser)
    parser.add_argument("--limit", type=int, default=0, help="with --dataset: only the first N images")
    parser.add_argument("--batch-size", type=int, default=DEFAULT_BATCH_SIZE, help=f"images coded at once (default {DEFAULT_BATCH_SIZE}; stored in the file)")
    parser.add_argument("--dtype", choices=("float32", "float64"), default="float32", help="model dtype while coding (default float32)")
    parser.add_argument("--stats", action="store_true", help="print achieved bits/dim, the model's NLL and the overhead")
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    parser.set_defaults(func=cmd_compress)
    return parser


def add_decompress_parser(subparsers) -> argparse.ArgumentParser:
    """``pixelrnn decompress RUN_DIR_OR_CHECKPOINT FILE -o DIR``"""
    parser = subparsers.add_parser(
        "decompress", help="restore images compressed by `pixelrnn compress`",
        description="Decode a file written by `pixelrnn compress` with the same model; writes one PNG per image into DIR.")
    parser.add_argument("checkpoint", metavar="RUN_DIR_OR_CHECKPOINT")
    parser.add_argument("file", metavar="FILE")
    parser.add_argument("-o", "--out", required=True, metavar="DIR", help="folder for the PNGs (created; same names are overwritten)")
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    parser.set_defaults(func=cmd_decompress)
    return parser


def _load_model(path):
    from .checkpoint import load_model_from

    return load_model_from(path, "cpu")


def _inputs(args: argparse.Namespace, model) -> list[CodedImage]:
    config = model.config
    if args.dataset:
        if args.inputs:
            raise UserError("give image files/folders or --dataset, not both")
        if args.limit < 0:
            raise UserError(f"--limit must be >= 0; got {args.limit}")
        from .cli import load_split_for

        image_set = load_split_for(model, args.dataset, args.split, args.data_dir)
        chosen = image_set.images[: args.limit] if args.limit else image_set.images
        return images_from_array(chosen, image_set.levels)
    if args.limit or args.data_dir:
        raise UserError("--limit and --data-dir go with --dataset")
    if not args.inputs:
        raise UserError("nothing to compress: give image files or folders, or --dataset NAME")
    return [image_from_file(path, config.channels, config.levels) for path in image_files(args.inputs)]


def cmd_compress(args: argparse.Namespace) -> None:
    from .checkpoint import atomic_write

    if not 1 <= args.batch_size <= MAX_BATCH:
        raise UserError(f"--batch-size must lie in 1..{MAX_BATCH}; got {args.batch_size}")
    try:
        model = _load_model(args.checkpoint)
        _check_model(model)  # before reading the inputs, which may be a whole dataset
        images = _inputs(args, model)
        start = time.perf_counter()
        data = compress(model, images, batch_size=args.batch_size, dtype=getattr(torch, args.dtype), progress=not args.quiet)
        seconds = time.perf_counter() - start
    except CompressionError as error:
        raise UserError(str(error)) from None
    atomic_write(args.out, lambda temp: Path(temp).write_bytes(data))
    dims = sum(image.values.size for image in images)
    print(f"compressed {len(images)} image(s), {dims:,} sub-pixels, into {args.out}: {len(data):,} bytes, "
          f"{8 * len(data) / dims:.4f} bits/dim ({len(images) / seconds:.1f} images/s)")
    if args.stats:
        stats = compression_stats(model, images, data)
        print(f"achieved {stats['bits_per_dim']:.5f} bits/dim (payload {stats['payload_bytes']:,} bytes; "
              f"whole file {stats['file_bits_per_dim']:.5f} with the {stats['header_bytes']:,}-byte header)")
        print(f"model NLL {stats['nll_bits_per_dim']:.5f} bits/dim; overhead {stats['overhead_percent']:+.3f} % "
              f"(whole file {stats['file_overhead_percent']:+.3f} %)")


def cmd_decompress(args: argparse.Namespace) -> None:
    path = Path(args.file)
    if not path.is_file():
        raise UserError(f"compressed file {path} does not exist")
    try:
        data = path.read_bytes()
        model = _load_model(args.checkpoint)
        start = time.perf_counter()
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", EnvironmentWarning)
            try:
                images = decompress(model, data, progress=not args.quiet)
            finally:
                for warning in caught:
                    print(f"pixelrnn decompress: warning: {warning.message}", file=sys.stderr)
        seconds = time.perf_counter() - start
    except CompressionError as error:
        raise UserError(f"{path}: {error}") from None
    save_images(images, model.config.levels, args.out)
    print(f"restored {len(images)} image(s) into {args.out} ({len(images) / seconds:.1f} images/s)")
