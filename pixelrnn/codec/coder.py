"""Compress and decompress: every sub-pixel range-coded with the model's conditional, in raster order.

Every sub-pixel, in raster order (row, column, R then G then B), is entropy-coded with the
model's conditional p(x_i | x_<i) by the range coder of ``constriction``
(``constriction.stream.queue.RangeEncoder`` / ``RangeDecoder``). Encoder and decoder share one
raster loop (:func:`_raster`) and one quantiser (:func:`pixelrnn.codec.coding_model.quantise`),
and both run the incremental engine of :mod:`pixelrnn.sampling`.
"""

from __future__ import annotations

import hashlib
import warnings
from typing import Callable, Iterable, Sequence

import numpy as np
import torch

from ..errors import CompressionError
from ..sampling import make_engine
from .coding_model import (check_model, chunks, coding_model, environment, model_fingerprint, one_thread, quantise)
from .container import (CHUNK_PIXELS, DEFAULT_BATCH_SIZE, DTYPE_CODES, MAPPING_CODES, MAX_BATCH, MAX_IMAGE_PIXELS, MAX_IMAGES,
                        MAX_SIDE, MODE_CODES, CodedImage, build_container, check_name, read_container)


class EnvironmentWarning(UserWarning):
    """The file was written by another torch build or machine type; decoding may fail (never silently)."""


def _constriction():
    try:
        import constriction
    except ImportError:
        raise CompressionError("compression needs the constriction package: pip install constriction==0.5.0") from None
    return constriction


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
    check_model(model)
    constriction = _constriction()
    config = model.config
    if dtype not in DTYPE_CODES:
        raise CompressionError(f"dtype must be torch.float32 or torch.float64; got {dtype}")
    if not 1 <= batch_size <= MAX_BATCH:
        raise CompressionError(f"batch size must lie in 1..{MAX_BATCH}; got {batch_size}")
    images = list(images)
    _check_images(images, config.channels, config.levels)
    fingerprint = model_fingerprint(model)
    coder_model = coding_model(model, dtype)
    family = constriction.stream.model.Categorical(perfect=False)
    encoder = constriction.stream.queue.RangeEncoder()
    shapes = [image.values.shape[1:] for image in images]
    bar = _progress_bar(len(images), progress, "compress")
    try:
        with torch.no_grad(), one_thread():
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
    check_model(model)
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
    words = np.frombuffer(container.payload, dtype="<u4").astype(np.uint32)
    decoder = constriction.stream.queue.RangeDecoder(words)
    family = constriction.stream.model.Categorical(perfect=False)
    coder_model = coding_model(model, container.dtype)
    decoded: list[np.ndarray | None] = [None] * len(container.shapes)
    bar = _progress_bar(len(container.shapes), progress, "decompress")
    try:
        with torch.no_grad(), one_thread():
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
