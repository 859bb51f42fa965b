"""The compressed file format (version 2, 3 for class-conditional models, 4 above 256 levels; version 1 still read).

Version 2 adds the coding model's arithmetic to version 1: ``integer`` (the integer coding model
of :mod:`.integer_model`, its fixed-point parameters in the header; decodes on any machine) or
``float32`` / ``float64`` (version 1's float model; decodes on the platform that wrote it).
Version 3 is version 2 plus each image's class, the side information of a class-conditional
model; an unconditional model writes version 2, byte for byte as before.
Version 4 is written by every model of 257 to 4096 levels (codes of a large codebook), with or
without classes: version 3's layout with the class count always present (0: no classes follow),
its values 16 bits wide (the pixel digest hashes them as little-endian u16) and one more mode,
a 16-bit grey PNG. Models of up to 256 levels write versions 2 and 3 exactly as before, so the
width of a value is implied by the version (and by ``levels``).

Every field of a file is checked against the file's size and fixed limits before anything is
allocated from it; a bad file raises :class:`DamagedFileError` with a one-line message. The
format is documented byte by byte in ``docs/compression.md`` and in :func:`build_container`.
"""

from __future__ import annotations

import hashlib
import struct
from dataclasses import dataclass
from typing import Sequence

import numpy as np
import torch

from ..errors import CompressionError, DamagedFileError
from .fixed_point import PRECISION, FixedPoint


MAGIC = b"PXRNNCMP"
VERSION = 2  # written by unconditional models
CONDITIONAL_VERSION = 3  # written by class-conditional models: version 2 and the images' classes
WIDE_VERSION = 4  # written by models of more than 256 levels: 16-bit values, the class count always present
MAX_LEVELS = 4096  # the most levels a file codes: the data's limit (codes of a codebook of up to 4096 entries)
ARITHMETICS = {1: "float32", 2: "float64", 3: "integer"}  # codes 1 and 2 are version 1's dtype codes
ARITHMETIC_CODES = {name: code for code, name in ARITHMETICS.items()}
FLOAT_DTYPES = {"float32": torch.float32, "float64": torch.float64}
MODES = {1: "1", 2: "L", 3: "RGB", 4: "I;16"}  # 4: a 16-bit grey PNG, version 4 only
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
# fingerprint, arithmetic (version 1: dtype), precision, batch, chunk pixels, channels, levels[, fixed point], env length
_FIXED = {1: struct.Struct("<32sBBIIBHH"), 2: struct.Struct(f"<32sBBIIBH{FixedPoint.LAYOUT.size}sH")}
_FIXED[CONDITIONAL_VERSION] = _FIXED[WIDE_VERSION] = _FIXED[2]
_CLASS = struct.Struct("<H")  # versions 3 and 4: the class count, then each image's class
_COUNTS = struct.Struct("<Q32sII")  # payload length, pixel digest, image count, run count
_RUN = struct.Struct("<IHHBB")  # images in the run, height, width, mode, mapping
NAMES_NUMBERED, NAMES_LISTED = 0, 1
_NO_FIXED_POINT = bytes(FixedPoint.LAYOUT.size)  # a float file's fixed-point parameters


def wide_values(levels: int) -> bool:
    """Whether a model's values need more than a byte (above 256 levels): the one test of version 4's width."""
    return levels > 256


def value_dtype(levels: int) -> np.dtype:
    """How a model's values are held and hashed: uint8 up to 256 levels, little-endian uint16 above (version 4)."""
    return np.dtype("<u2" if wide_values(levels) else np.uint8)


def format_version(levels: int, classes: int) -> int:
    """The version a model of ``levels`` values and ``classes`` classes writes."""
    return WIDE_VERSION if wide_values(levels) else CONDITIONAL_VERSION if classes else VERSION


@dataclass(frozen=True, eq=False)
class CodedImage:
    """One image as the model codes it, and how to write it back.

    name: the file name decompression writes (``something.png``).
    values: (C, H, W) model values in [0, levels): uint8, or uint16 above 256 levels.
    mode: the PNG mode to write back: ``"1"``, ``"L"``, ``"RGB"`` or ``"I;16"`` (16-bit grey, above 256 levels).
    mapping: ``"scaled"`` or ``"raw"``, how a model value becomes an 8-bit sample (module docstring).
    label: the image's class, coded as side information by a class-conditional model (None otherwise).
    """

    name: str
    values: np.ndarray
    mode: str
    mapping: str
    label: int | None = None


@dataclass(frozen=True)
class Container:
    """The parsed header of a compressed file (see :func:`read_container`)."""

    fingerprint: bytes
    arithmetic: str  # "integer", "float32" or "float64"
    fixed_point: FixedPoint | None  # the integer coding model's parameters; None for float
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
    version: int = VERSION
    classes: int = 0  # versions 3 and 4: the model's class count
    labels: tuple[int, ...] | None = None  # versions 3 and 4: each image's class

    @property
    def dtype(self) -> torch.dtype | None:
        """The float model's dtype while coding; None for the integer coding model."""
        return FLOAT_DTYPES.get(self.arithmetic)

    @property
    def subpixels(self) -> int:
        return sum(self.channels * h * w for h, w in self.shapes)


def environment_text(values: dict[str, str]) -> bytes:
    return ";".join(f"{key}={value}" for key, value in values.items()).encode()


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


def build_container(*, fingerprint: bytes, arithmetic: str, fixed_point: FixedPoint | None, batch_size: int, chunk_pixels: int,
                    channels: int, levels: int, environment: dict[str, str], pixel_digest: bytes, images: Sequence[CodedImage],
                    payload: bytes, classes: int = 0) -> bytes:
    """Assemble format 2 (all integers little-endian; ``docs/compression.md`` has the table)::

        magic "PXRNNCMP" | u16 version | u32 body length N | body (N bytes)
        | sha256(all bytes before it) | payload | sha256(payload)

    body: 32-byte fingerprint (of the coding model) | u8 arithmetic (1 float32, 2 float64,
    3 integer) | u8 precision (24) | u32 batch size | u32 chunk pixels | u8 channels | u16 levels
    | 7 bytes fixed-point parameters (integer; zeros for float) | u16 E | E bytes environment
    | u64 payload length | 32-byte sha256 of the decoded values | u32 image count | u32 run count R
    | R runs: u32 images, u16 height, u16 width, u8 mode (1 "1", 2 "L", 3 "RGB"), u8 mapping
    (0 raw, 1 scaled) | u8 naming: 0 numbered (then u8 digits D: image k is named f"{k:0D}.png")
    or 1 listed (then per image u8 length L, L bytes UTF-8).

    Version 3 (``classes`` > 0, a class-conditional model) appends u16 classes K and per image a
    u16 class in [0, K). Version 1 is version 2 without the fixed-point bytes, its arithmetic byte
    a dtype (1, 2).

    Version 4 (``levels`` 257..4096, with or without classes) is version 3 whose u16 K is always
    there: K = 0 for an unconditional model, and then no per-image classes follow. Its pixel
    digest is the sha256 of the values as little-endian u16 (versions 1-3: as bytes), and a run's
    mode may be 4, a 16-bit grey PNG ("I;16").
    """
    parameters = fixed_point.to_bytes() if arithmetic == "integer" else _NO_FIXED_POINT
    env = environment_text(environment)[:MAX_ENVIRONMENT]
    runs = _runs(images)
    body = [_FIXED[VERSION].pack(fingerprint, ARITHMETIC_CODES[arithmetic], PRECISION, batch_size, chunk_pixels, channels, levels,
                                 parameters, len(env)), env,
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
    version = format_version(levels, classes)
    if classes or version == WIDE_VERSION:
        body.append(_CLASS.pack(classes) + b"".join(_CLASS.pack(image.label) for image in images if classes))
    body_bytes = b"".join(body)
    head = _PREFIX.pack(MAGIC, version, len(body_bytes)) + body_bytes
    return b"".join([head, hashlib.sha256(head).digest(), payload, hashlib.sha256(payload).digest()])


class _Reader:
    """Bounded reads from the header body: running past its end is a DamagedFileError."""

    def __init__(self, data: bytes):
        self.data, self.offset = data, 0

    def take(self, size: int) -> bytes:
        if size > len(self.data) - self.offset:
            raise DamagedFileError("corrupted header: a field runs past the header's end")
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
    """Parse and check a compressed file (version 1, 2, 3 or 4) without a model.

    Checks, in order: size and magic, version, header length against the file, the header's
    sha256, each field against fixed limits and the remaining header bytes (counts are bounded
    by the bytes that would describe them), the total size, then the payload's sha256. A defect
    raises DamagedFileError; a version this pixelrnn does not know, CompressionError.
    """
    if data[: len(MAGIC)] != MAGIC[: len(data)] or not data:
        raise DamagedFileError("not a pixelrnn compressed file (wrong magic bytes)" if data else "empty file")
    if len(data) < _PREFIX.size:
        raise DamagedFileError(f"truncated file ({len(data)} bytes)")
    magic, version, body_length = _PREFIX.unpack_from(data)
    if version not in _FIXED:
        raise CompressionError(f"unsupported format version {version} (this pixelrnn reads versions {', '.join(map(str, _FIXED))})")
    if body_length > MAX_HEADER or _PREFIX.size + body_length + 2 * DIGEST > len(data):
        raise DamagedFileError(f"truncated or corrupted file: header of {body_length} bytes in a {len(data)}-byte file")
    head_end = _PREFIX.size + body_length
    if hashlib.sha256(data[:head_end]).digest() != data[head_end : head_end + DIGEST]:
        raise DamagedFileError("corrupted header (sha256 mismatch)")
    reader = _Reader(data[_PREFIX.size : head_end])
    fields = reader.unpack(_FIXED[version])
    fingerprint, arithmetic_code, precision, batch_size, chunk_pixels, channels, levels, env_length = fields[:7] + fields[-1:]
    arithmetic = ARITHMETICS.get(arithmetic_code) if version > 1 or arithmetic_code in (1, 2) else None
    if arithmetic is None:
        raise DamagedFileError(f"corrupted header: unknown arithmetic code {arithmetic_code}")
    fixed_point = _fixed_point(fields[7]) if arithmetic == "integer" else None
    if precision != PRECISION:
        raise CompressionError(f"unsupported coder precision {precision} bits (this pixelrnn codes with {PRECISION})")
    if not 1 <= batch_size <= MAX_BATCH or not 1 <= chunk_pixels <= MAX_CHUNK_PIXELS:
        raise DamagedFileError(f"corrupted header: batch size {batch_size} or chunk size {chunk_pixels} outside the limits")
    low, high = (257, MAX_LEVELS) if version == WIDE_VERSION else (2, 256)
    if channels < 1 or not low <= levels <= high:
        raise DamagedFileError(f"corrupted header: {channels} channels, {levels} levels (format version {version} codes "
                               f"{low}..{high} levels)")
    if env_length > MAX_ENVIRONMENT:
        raise DamagedFileError(f"corrupted header: environment of {env_length} bytes")
    try:
        env_text = reader.take(env_length).decode()
    except UnicodeDecodeError:
        raise DamagedFileError("corrupted header: environment is not UTF-8") from None
    env = dict(item.partition("=")[::2] for item in env_text.split(";") if item)
    payload_length, pixel_digest, count, run_count = reader.unpack(_COUNTS)
    if not 1 <= count <= MAX_IMAGES or not 1 <= run_count <= count or run_count * _RUN.size > reader.left:
        raise DamagedFileError(f"corrupted header: {count} images in {run_count} runs cannot be described by {reader.left} header bytes")
    shapes, modes, mappings = [], [], []
    for _ in range(run_count):
        length, height, width, mode, mapping = reader.unpack(_RUN)
        if not 1 <= length <= count - len(shapes):
            raise DamagedFileError(f"corrupted header: a run of {length} images where {count - len(shapes)} remain")
        if not (1 <= height <= MAX_SIDE and 1 <= width <= MAX_SIDE and height * width <= MAX_IMAGE_PIXELS):
            raise DamagedFileError(f"corrupted header: image size {width}x{height} outside the limits")
        if mode not in MODES or mapping not in MAPPINGS or (MODES[mode] == "I;16" and version != WIDE_VERSION):
            raise DamagedFileError(f"corrupted header: mode code {mode}, mapping code {mapping}")
        shapes.extend([(height, width)] * length)
        modes.extend([MODES[mode]] * length)
        mappings.extend([MAPPINGS[mapping]] * length)
    if len(shapes) != count:
        raise DamagedFileError(f"corrupted header: the runs describe {len(shapes)} images, not {count}")
    (naming,) = reader.take(1)
    if naming == NAMES_NUMBERED:
        (digits,) = reader.take(1)
        if not 1 <= digits <= MAX_NAME_DIGITS:
            raise DamagedFileError(f"corrupted header: names of {digits} digits")
        names = [f"{index:0{digits}d}.png" for index in range(count)]
    elif naming == NAMES_LISTED:
        if count * 2 > reader.left:
            raise DamagedFileError(f"corrupted header: {count} names cannot fit in {reader.left} bytes")
        names = []
        for _ in range(count):
            (length,) = reader.take(1)
            try:
                names.append(check_name(reader.take(length).decode()))
            except UnicodeDecodeError:
                raise DamagedFileError("corrupted header: an image name is not UTF-8") from None
            except CompressionError as error:  # an unsafe name in a file: damage (or a crafted file)
                raise DamagedFileError(f"corrupted header: {error}") from None
    else:
        raise DamagedFileError(f"corrupted header: unknown naming code {naming}")
    classes, labels = _labels(reader, count, version == WIDE_VERSION) if version >= CONDITIONAL_VERSION else (0, None)
    if reader.left:
        raise DamagedFileError(f"corrupted header: {reader.left} unexplained bytes after the image list")
    if len({name.casefold() for name in names}) != len(names):
        raise DamagedFileError("corrupted header: two images have the same name")
    if payload_length % 4:
        raise DamagedFileError(f"corrupted header: payload length {payload_length} is not whole 32-bit words")
    expected = head_end + DIGEST + payload_length + DIGEST
    if len(data) != expected:
        what = "truncated" if len(data) < expected else "has trailing bytes"
        raise DamagedFileError(f"file {what}: {len(data)} bytes, the header says {expected}")
    payload = data[head_end + DIGEST : head_end + DIGEST + payload_length]
    if hashlib.sha256(payload).digest() != data[expected - DIGEST :]:
        raise DamagedFileError("corrupted payload (sha256 mismatch)")
    return Container(fingerprint, arithmetic, fixed_point, precision, batch_size, chunk_pixels, channels, levels, env, pixel_digest,
                     tuple(shapes), tuple(modes), tuple(mappings), tuple(names), payload, expected - payload_length, version,
                     classes, labels)


def _labels(reader: _Reader, count: int, optional: bool) -> tuple[int, tuple[int, ...] | None]:
    """The class count and each image's class, checked against it (``optional``, version 4: a count of 0, no classes)."""
    if optional:
        (classes,) = reader.unpack(_CLASS)
        if not classes:
            return 0, None
        reader.offset -= _CLASS.size
    if (count + 1) * _CLASS.size > reader.left:
        raise DamagedFileError(f"corrupted header: {count} classes cannot fit in {reader.left} bytes")
    (classes,) = reader.unpack(_CLASS)
    labels = struct.unpack(f"<{count}H", reader.take(count * _CLASS.size))
    if not classes:
        raise DamagedFileError("corrupted header: a class-conditional file of a model with 0 classes")
    if max(labels) >= classes:
        raise DamagedFileError(f"corrupted header: class {max(labels)} of a model with {classes} classes")
    return classes, labels


def _fixed_point(parameters: bytes) -> FixedPoint:
    """The header's fixed-point parameters, each checked against its limits (they size the tables)."""
    try:
        return FixedPoint.from_bytes(parameters)
    except CompressionError as error:
        raise DamagedFileError(f"corrupted header: {error}") from None
