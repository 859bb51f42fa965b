"""Compress and decompress: every sub-pixel range-coded with the model's conditional, in raster order.

Every sub-pixel, in raster order (row, column, R then G then B), is entropy-coded with the
model's conditional p(x_i | x_<i) by the range coder of ``constriction``
(``constriction.stream.queue.RangeEncoder`` / ``RangeDecoder``). Encoder and decoder share one
raster loop (:func:`_raster`) over one coding model (:mod:`.coding_model`: the integer coding
model by default, or the float model), whose incremental engine both run.
"""

from __future__ import annotations

import hashlib
import warnings
from typing import Callable, Iterable, Sequence

import numpy as np

from ..errors import CompressionError, DamagedFileError, PlatformError, WrongModelError
from ..limits import check_limit
from .coding_model import check_model, chunks, code_lengths, coding_for, environment, model_fingerprint
from .container import (CHUNK_PIXELS, DEFAULT_BATCH_SIZE, MAPPING_CODES, MAX_BATCH, MAX_IMAGE_PIXELS, MAX_IMAGES, MAX_SIDE,
                        MODE_CODES, CodedImage, build_container, check_name, read_container, value_dtype, wide_values)
from .fixed_point import FixedPoint


class EnvironmentWarning(UserWarning):
    """A float-arithmetic file was written by another torch build or machine type; decoding may fail (never silently)."""


def _constriction():
    try:
        import constriction
    except ImportError:
        raise CompressionError("compression needs the constriction package: pip install constriction==0.5.0") from None
    return constriction


def _raster(coding, channels: int, height: int, width: int, code_step: Callable[[np.ndarray, int, int, int], np.ndarray]) -> None:
    """Visit every sub-pixel of a chunk in raster order: the coding model's frequencies -> coder -> engine."""
    for i in range(height):
        for j in range(width):
            for c in range(channels):
                values = code_step(coding.weights(i, j, c), i, j, c)  # (b,) int64 numpy: the sub-pixel's true values
                coding.advance(i, j, c, values)


def _pixel_digest(values: Iterable[np.ndarray], levels: int) -> bytes:
    """sha256 of the values, one byte each up to 256 levels, little-endian u16 above (format version 4)."""
    digest = hashlib.sha256()
    dtype = value_dtype(levels)
    for array in values:
        digest.update(np.ascontiguousarray(array, dtype=dtype).tobytes())
    return digest.digest()


def _progress_bar(total: int, progress: bool, description: str):
    from tqdm.auto import tqdm

    return tqdm(total=total, unit="img", desc=description, disable=not progress, leave=False)


def _check_images(images: Sequence[CodedImage], channels: int, levels: int) -> None:
    if not images:
        raise CompressionError("nothing to compress: no images")
    if len(images) > MAX_IMAGES:
        raise CompressionError(f"at most {MAX_IMAGES} images per file; got {len(images)}")
    seen: dict[str, str] = {}
    # Above 256 levels 8-bit values (codes read from an 8-bit file) are as welcome as 16-bit ones.
    dtypes, wanted = ((np.uint8, np.uint16), "uint16 (or uint8)") if wide_values(levels) else ((np.uint8,), "uint8")
    for image in images:
        values = image.values
        if not isinstance(values, np.ndarray) or values.dtype not in dtypes or values.ndim != 3 or values.shape[0] != channels:
            raise CompressionError(f"{image.name}: values must be a ({channels}, H, W) {wanted} array")
        height, width = values.shape[1:]
        if not (1 <= height <= MAX_SIDE and 1 <= width <= MAX_SIDE and height * width <= MAX_IMAGE_PIXELS):
            raise CompressionError(f"{image.name}: {width}x{height} is outside the limits (sides 1..{MAX_SIDE}, at most {MAX_IMAGE_PIXELS} pixels)")
        if values.size and int(values.max()) >= levels:
            raise CompressionError(f"{image.name}: value {int(values.max())} is outside the model's [0, {levels})")
        if image.mode not in MODE_CODES or image.mapping not in MAPPING_CODES:
            raise CompressionError(f"{image.name}: mode must be one of {', '.join(MODE_CODES)} and mapping raw or scaled")
        if image.mode == "I;16" and not wide_values(levels):
            raise CompressionError(f"{image.name}: mode I;16 (16-bit grey) is for models of more than 256 levels; this one has "
                                   f"{levels}: use 1, L or RGB")
        check_name(image.name)
        key = image.name.casefold()  # case-insensitive file systems would merge these
        if key in seen:
            raise CompressionError(f"two images would both decompress to {image.name!r} (and {seen[key]!r})")
        seen[key] = image.name


def _check_labels(images: Sequence[CodedImage], classes: int) -> list[int] | None:
    """Each image's class for a class-conditional model (one line naming an image without one); None otherwise.

    An unconditional model codes no classes: labels given with the images are not stored.
    """
    if not classes:
        return None
    for image in images:
        if isinstance(image.label, bool) or not isinstance(image.label, (int, np.integer)) or not 0 <= image.label < classes:
            raise CompressionError(f"{image.name}: a class-conditional model codes each image with its class, an integer in "
                                   f"[0, {classes}); got {image.label!r}")
    return [int(image.label) for image in images]


def compress(model, images: Sequence[CodedImage], *, batch_size: int = DEFAULT_BATCH_SIZE, arithmetic: str = "integer",
             fixed_point: FixedPoint | None = None, threads: int | None = None, progress: bool = False,
             report: dict | None = None) -> bytes:
    """Code ``images`` with ``model`` into one self-describing file (bytes).

    ``arithmetic``: ``integer`` (the integer coding model: the file decodes on any machine),
    ``float32`` or ``float64`` (the float model: the file decodes on the platform that wrote it).
    ``batch_size`` images of one size are coded at a time (stored: the decoder uses the same
    chunks). ``fixed_point``: the integer model's parameters (default :class:`FixedPoint`()).
    ``threads``: threads of the integer engine (default: torch's thread count for the native engine,
    which splits batches of 64 images or more among them; one for the numpy engine); any count
    writes the same file. ``report``, if a dict, receives
    ``ideal_bits``: the code length the coding model's frequencies give, sum of -log2 p.
    """
    constriction = _constriction()
    if not 1 <= batch_size <= MAX_BATCH:
        raise CompressionError(f"batch size must lie in 1..{MAX_BATCH}; got {batch_size}")
    coding = coding_for(model, arithmetic, fixed_point, threads)
    config = model.config
    images = list(images)
    _check_images(images, config.channels, config.levels)
    labels = _check_labels(images, config.classes)
    shapes = [image.values.shape[1:] for image in images]
    check_work(shapes, config.channels, batch_size, CHUNK_PIXELS, "these images")
    family = constriction.stream.model.Categorical(perfect=False)
    encoder = constriction.stream.queue.RangeEncoder()
    ideal_bits = 0.0
    bar = _progress_bar(len(images), progress, "compress")
    try:
        with coding.running():
            for chunk in chunks(shapes, batch_size, CHUNK_PIXELS, labels):
                height, width = shapes[chunk[0]]
                # (H, W, C, b): the b values of one sub-pixel are contiguous.
                stacked = np.stack([images[k].values for k in chunk], axis=-1).transpose(1, 2, 0, 3)
                symbols = np.ascontiguousarray(stacked, dtype=np.int32)
                feed = np.ascontiguousarray(stacked, dtype=np.int64)

                def encode(weights, i, j, c):
                    nonlocal ideal_bits
                    encoder.encode(symbols[i, j, c], family, weights)
                    if report is not None:
                        ideal_bits += float(code_lengths(weights, symbols[i, j, c]).sum())
                    return feed[i, j, c]

                coding.reset(len(chunk), height, width, None if labels is None else labels[chunk[0]])
                _raster(coding, config.channels, height, width, encode)
                bar.update(len(chunk))
    finally:
        bar.close()
    if report is not None:
        report.update(ideal_bits=ideal_bits, arithmetic=coding.arithmetic)
    payload = encoder.get_compressed().astype("<u4").tobytes()
    return build_container(
        fingerprint=coding.fingerprint, arithmetic=coding.arithmetic, fixed_point=coding.fixed_point, batch_size=batch_size,
        chunk_pixels=CHUNK_PIXELS, channels=config.channels, levels=config.levels, environment=environment(),
        pixel_digest=_pixel_digest((image.values for image in images), config.levels), images=images, payload=payload, classes=config.classes,
    )


def check_work(shapes, channels: int, batch_size: int, chunk_pixels: int, what: str) -> None:
    """The sub-pixels a file asks the coder for, in total and per chunk, within the limits
    (``file_subpixels``, ``chunk_subpixels``), before anything is allocated for them."""
    check_limit("file_subpixels", channels * sum(h * w for h, w in shapes), f"the work {what} asks for", CompressionError)
    largest = max(len(chunk) * shapes[chunk[0]][0] * shapes[chunk[0]][1] for chunk in chunks(shapes, batch_size, chunk_pixels))
    check_limit("chunk_subpixels", channels * largest, f"the largest chunk {what} asks the coder to hold at once", CompressionError)


def environment_differences(recorded: dict[str, str]) -> list[str]:
    """``key: file value != this machine's`` for every recorded key that differs here."""
    here = environment()
    return [f"{key} {recorded.get(key, '?')} (here {value})" for key, value in here.items() if recorded.get(key) != value]


def _coding_of_file(model, container, threads: int | None):
    """The coding model that wrote ``container``, built from ``model``; WrongModelError if it cannot be."""
    config = model.config
    if (container.channels, container.levels) != (config.channels, config.levels):
        raise WrongModelError(f"the file codes {container.channels} channels of {container.levels} levels; "
                              f"the model has {config.channels} and {config.levels}")
    if container.arithmetic != "integer":
        if container.fingerprint != model_fingerprint(model):
            raise WrongModelError(f"the file was compressed with another model (fingerprint {container.fingerprint.hex()[:16]}..., "
                                  f"this model's is {model_fingerprint(model).hex()[:16]}...)")
        return coding_for(model, container.arithmetic)
    try:
        coding = coding_for(model, "integer", container.fixed_point, threads)
    except CompressionError as error:
        raise WrongModelError(f"the file was compressed with another model: this one has no integer coding model with the "
                              f"file's parameters ({error})") from None
    if container.fingerprint != coding.fingerprint:
        raise WrongModelError(f"the file was compressed with another model (coding model fingerprint {container.fingerprint.hex()[:16]}..., "
                              f"this model's is {coding.fingerprint.hex()[:16]}...)")
    return coding


def decompress(model, data: bytes, *, max_subpixels: int | None = None, threads: int | None = None,
               progress: bool = False) -> list[CodedImage]:
    """Decode a file written by :func:`compress` with the same model; the images in input order.

    Raises, by cause: DamagedFileError (truncated, altered, not a compressed file), WrongModelError
    (another model), PlatformError (a float-arithmetic file that did not decode on this platform;
    an integer file decodes on any). A float file written by another torch build or machine type
    first warns (:class:`EnvironmentWarning`). ``max_subpixels`` refuses files that claim more.
    """
    check_model(model)
    container = read_container(data)
    if max_subpixels is not None and container.subpixels > max_subpixels:
        raise CompressionError(f"the file holds {container.subpixels} sub-pixels, more than the limit of {max_subpixels}")
    check_work(container.shapes, container.channels, container.batch_size, container.chunk_pixels, "the file")
    coding = _coding_of_file(model, container, threads)
    if container.classes != model.config.classes:
        raise WrongModelError(f"the file was written by a model with {container.classes} classes; this one has {model.config.classes}")
    differences = [] if container.arithmetic == "integer" else environment_differences(container.environment)
    if differences:
        warnings.warn(f"the file was written in {container.arithmetic} arithmetic with " + ", ".join(differences) + "; the decode "
                      "may not reproduce the probabilities exactly (the pixel checksum will tell)", EnvironmentWarning, stacklevel=2)

    def failure(what: str) -> CompressionError:
        if differences:
            return PlatformError(f"{what}: the file uses {container.arithmetic} arithmetic and was written with "
                                 f"{', '.join(differences)}; decode it there, or compress with the integer coding model")
        return DamagedFileError(f"{what}: the file was altered")

    constriction = _constriction()
    decoder = constriction.stream.queue.RangeDecoder(np.frombuffer(container.payload, dtype="<u4").astype(np.uint32))
    family = constriction.stream.model.Categorical(perfect=False)
    channels = model.config.channels
    decoded: list[np.ndarray | None] = [None] * len(container.shapes)
    bar = _progress_bar(len(container.shapes), progress, "decompress")
    try:
        with coding.running():
            for chunk in chunks(container.shapes, container.batch_size, container.chunk_pixels, container.labels):
                height, width = container.shapes[chunk[0]]
                out = np.empty((height, width, channels, len(chunk)), dtype=np.int64)

                def decode(weights, i, j, c):
                    try:
                        symbols = decoder.decode(family, weights)
                    except (KeyboardInterrupt, SystemExit):
                        raise
                    except BaseException as error:  # constriction raises AssertionError (or a Rust panic) on bad data
                        detail = str(error).splitlines()[0] if str(error) else type(error).__name__
                        raise failure(f"corrupted payload: the range decoder failed ({detail})") from None
                    out[i, j, c] = symbols
                    return out[i, j, c]

                coding.reset(len(chunk), height, width, None if container.labels is None else container.labels[chunk[0]])
                _raster(coding, channels, height, width, decode)
                values = out.transpose(3, 2, 0, 1).astype(value_dtype(container.levels))  # (b, C, H, W)
                for position, index in enumerate(chunk):
                    decoded[index] = np.ascontiguousarray(values[position])
                bar.update(len(chunk))
    finally:
        bar.close()
    if _pixel_digest(decoded, container.levels) != container.pixel_digest:
        raise failure("decoded pixels do not match the file's sha256")
    labels = container.labels or [None] * len(decoded)
    return [CodedImage(name, values, mode, mapping, label)
            for name, values, mode, mapping, label in zip(container.names, decoded, container.modes, container.mappings, labels)]
