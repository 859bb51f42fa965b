"""Images outside the model: the one mapping between model values and 8-bit samples, image files, grids.

Model values and 8-bit samples
------------------------------
A model codes integers in ``[0, levels)``; files and screens hold 8-bit samples. One mapping
serves every command (``sample``, ``complete --image``, ``compress``, ``folder:`` datasets):

- writing: value v -> round(255 v / (levels - 1)) (:func:`to_uint8`): binary images become
  black (0) and white (255); 8-bit images are unchanged;
- reading (:func:`model_values`), the first that applies:
  ``scaled``: the inverse of the above, when every sample is exactly the image of a value
  (a binary model reads {0, 255} as {0, 1}; an 8-bit model reads p as p);
  ``raw``: v = p, when every sample is already a value (a binary image stored as L {0, 1});
  ``binned``: v = p * levels // 256 (equal bins), for other images; lossy, so a lossless
  codec refuses it (:func:`samples_to_values` returns None).

Image files
-----------
:func:`read_image` reads any file Pillow opens as (C, H, W) uint8 samples: grey-like images
(modes 1, L, LA, 16-bit grey, grey palettes) with one channel, everything else RGB (alpha
dropped); 16-bit samples keep their high byte (all 16 bits with ``wide=True``, for codes of
more than 256 levels); multi-frame files give their first frame.

Files are written to a temporary name and renamed (:func:`pixelrnn.utils.atomic_write`).
"""

from __future__ import annotations

import math
import os
import warnings
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np
import torch

from .archives import BoundedNpz
from .errors import ImageError, PixelRNNError, one_line
from .limits import check_limit
from .utils import atomic_write, regular_file

IMAGE_EXTENSIONS = (".png", ".bmp", ".gif", ".jpg", ".jpeg", ".tif", ".tiff", ".webp", ".ppm", ".pgm", ".pbm")
GRID_PADDING = 2
GROUP_GAP = 3 * GRID_PADDING  # between tiles that belong apart: a completion's source and result, multi-scale pairs
PADDING_VALUE = 128  # mid grey between tiles
MIN_TILE = 96  # a saved grid is enlarged (nearest neighbour) until a tile is at least this many pixels across
UNKNOWN_DARK, UNKNOWN_LIGHT = 96, 160  # checkerboard marking the sub-pixels to be completed


# --------------------------------------------------------------------- values <-> 8-bit samples
def to_uint8(images: torch.Tensor | np.ndarray, levels: int) -> np.ndarray:
    """Integer images in [0, levels) to uint8 in [0, 255]: value v -> round(255 v / (levels - 1))."""
    if levels < 2:
        raise ValueError(f"levels must be >= 2; got {levels}")
    array = images.detach().cpu().numpy() if isinstance(images, torch.Tensor) else np.asarray(images)
    if array.size and (array.min() < 0 or array.max() >= levels):
        raise ValueError(f"values must lie in [0, {levels}); got min {array.min()}, max {array.max()}")
    return np.rint(array.astype(np.float64) * (255.0 / (levels - 1))).astype(np.uint8)


def scale_table(levels: int) -> np.ndarray:
    """The 8-bit sample of each model value under ``scaled`` (:func:`to_uint8`)."""
    return to_uint8(np.arange(levels), levels)


def samples_to_values(samples: np.ndarray, levels: int) -> tuple[np.ndarray, str] | None:
    """8-bit samples -> (model values, mapping) by an exact mapping, ``scaled`` or ``raw``; None if neither fits."""
    inverse = np.full(256, -1, dtype=np.int16)
    inverse[scale_table(levels)] = np.arange(levels)
    scaled = inverse[samples]
    if (scaled >= 0).all():
        return scaled.astype(np.uint8), "scaled"
    if samples.size == 0 or int(samples.max()) < levels:
        return samples.astype(np.uint8), "raw"
    return None


def model_values(samples: np.ndarray, levels: int) -> tuple[np.ndarray, str]:
    """8-bit samples -> (model values, mapping): an exact mapping where one fits, else ``binned``."""
    exact = samples_to_values(samples, levels)
    if exact is not None:
        return exact
    return (samples.astype(np.int64) * levels // 256).astype(np.uint8), "binned"


def values_to_samples(values: np.ndarray, levels: int, mapping: str) -> np.ndarray:
    """The 8-bit samples of model values read with an exact ``mapping`` (``scaled`` or ``raw``)."""
    return scale_table(levels)[values] if mapping == "scaled" else values


# --------------------------------------------------------------------- files
@dataclass(frozen=True, eq=False)
class ImageFile:
    """An image file's samples (C, H, W) uint8 (uint16 for a 16-bit file read ``wide``), its mode and its frame count."""

    samples: np.ndarray
    mode: str
    frames: int


def _decode(image, path, wide: bool = False) -> tuple[np.ndarray, str, int]:
    """Samples (H, W[, C]), mode and frame count of an opened Pillow image, its size checked first."""
    with image:
        width, height = image.size
        check_limit("image_pixels", width * height, f"image {path} of {width}x{height}", ImageError)
        frames, mode = getattr(image, "n_frames", 1), image.mode
        image.seek(0)
        if mode.startswith("I;16"):
            array = np.asarray(image).astype(np.uint16)
            array = array if wide else (array >> 8).astype(np.uint8)
        elif mode in ("1", "L", "LA", "La"):
            array = np.asarray(image.convert("L"))
        else:
            array = np.asarray(image.convert("RGB"))
            if mode in ("P", "PA") and (array == array[..., :1]).all():
                array = array[..., 0]  # grey palette
    return array, mode, frames


def read_image(path: str | os.PathLike, wide: bool = False) -> ImageFile:
    """Read one image file (module docstring); an unreadable or oversized file is an :class:`ImageError`.

    ``wide``: a 16-bit grey file keeps all 16 bits of its samples (uint16) instead of their high byte.

    The size in the file's header is checked against the ``image_pixels`` limit before any
    pixel is decoded (Pillow's own decompression-bomb guard stays on above it). Pillow's
    warnings about a damaged file are not printed: the file is either read or refused.
    """
    from PIL import Image

    if isinstance(path, (str, os.PathLike)):
        regular_file(path, "image", ImageError)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            array, mode, frames = _decode(Image.open(path), path, wide)
    except PixelRNNError:
        raise
    except Exception as error:  # noqa: BLE001 - Pillow's decoders raise many types on a damaged file (OSError,
        # ValueError, TypeError, SyntaxError, DecompressionBombError were seen in fuzzing)
        raise ImageError(f"cannot read image {path}: {one_line(error)}") from None
    samples = array[None] if array.ndim == 2 else array.transpose(2, 0, 1)  # (H, W[, C]) -> (C, H, W)
    return ImageFile(np.ascontiguousarray(samples), mode, frames)


def fit_channels(samples: np.ndarray, channels: int, source) -> np.ndarray:
    """Samples (C, H, W) for a model of ``channels``: a colour file with equal channels counts as grey, grey repeats for colour."""
    if samples.shape[0] == 3 and channels == 1 and (samples == samples[:1]).all():
        return samples[:1]
    if samples.shape[0] == 1 and channels == 3:
        return np.repeat(samples, 3, axis=0)
    if samples.shape[0] != channels:
        kind = "grey" if samples.shape[0] == 1 else "colour"
        raise ImageError(f"{source} is a {kind} image; the model wants {channels} channel(s)")
    return samples


def load_image(path: str | os.PathLike, channels: int, levels: int) -> torch.Tensor:
    """One image file as a (1, C, H, W) LongTensor of model values (:func:`model_values`)."""
    samples = fit_channels(read_image(path).samples, channels, path)
    values, _ = model_values(samples, levels)
    return torch.from_numpy(values.astype(np.int64))[None]


def image_files(inputs: Sequence[str | os.PathLike]) -> list[Path]:
    """Files named, and the image files directly inside folders named (sorted by name)."""
    files = []
    for item in inputs:
        path = Path(item)
        if path.is_dir():
            found = sorted((p for p in path.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS), key=lambda p: p.name)
            if not found:
                raise ImageError(f"folder {path} holds no image files ({', '.join(IMAGE_EXTENSIONS)})")
            files.extend(found)
        elif path.is_file():
            files.append(path)
        else:
            raise ImageError(f"input {path} does not exist")
    return files


def save_png(array: np.ndarray, path: str | os.PathLike, scale: int = 1) -> Path:
    """Write a uint8 (H, W, 1 or 3) array as a PNG (grey or RGB), atomically, enlarged ``scale`` times."""
    from PIL import Image

    array = upscale(array, scale)
    image = Image.fromarray(array[..., 0] if array.shape[-1] == 1 else array, mode="L" if array.shape[-1] == 1 else "RGB")
    atomic_write(path, lambda temp: image.save(temp, format="PNG"))
    return Path(path)


def save_samples_npz(images, path: str | os.PathLike) -> Path:
    """Save (N, C, H, W) integer images under the key ``images`` (uint8 when the values fit)."""
    array = images.detach().cpu().numpy() if isinstance(images, torch.Tensor) else np.asarray(images)
    if array.ndim != 4:
        raise ValueError(f"expected images of shape (N, C, H, W); got {array.shape}")
    if array.size and array.min() >= 0 and array.max() < 256:
        array = array.astype(np.uint8)

    def write(temp):
        with open(temp, "wb") as handle:  # a file object: numpy would append ".npz" to a temp name
            np.savez_compressed(handle, images=array)

    atomic_write(path, write)
    return Path(path)


def write_samples_npz(chunks: Iterable, shape: Sequence[int], levels: int, path: str | os.PathLike) -> Path:
    """Stream (N, C, H, W) images in [0, levels), given as consecutive chunks of the first axis, into an npz, atomically.

    The file holds what :func:`save_samples_npz` writes for the whole array (key ``images``, uint8
    where levels <= 256, the .npy bytes of ``np.save``, deflated), but only one chunk is held at a
    time: the .npy header is written for the final ``shape`` first and the zip member is deflated
    as the chunks arrive. A stream that stops early (an error, Ctrl-C) or yields another number of
    images than ``shape`` says leaves no file behind, and an earlier file of that name as it was.
    """
    shape = tuple(int(side) for side in shape)
    if len(shape) != 4:
        raise ValueError(f"expected the shape (N, C, H, W); got {shape}")
    dtype = np.dtype(np.uint8 if levels <= 256 else np.int64)
    header = {"descr": np.lib.format.dtype_to_descr(dtype), "fortran_order": False, "shape": shape}

    def write(temp):
        written = 0
        with zipfile.ZipFile(temp, "w", compression=zipfile.ZIP_DEFLATED, allowZip64=True) as archive, \
                archive.open("images.npy", "w", force_zip64=True) as member:  # force_zip64: the size is not declared up front
            np.lib.format.write_array_header_1_0(member, header)
            for chunk in chunks:
                array = chunk.detach().cpu().numpy() if isinstance(chunk, torch.Tensor) else np.asarray(chunk)
                if array.shape[1:] != shape[1:] or written + len(array) > shape[0]:
                    raise ValueError(f"a chunk of shape {array.shape} does not continue images of shape {shape} after {written}")
                member.write(np.ascontiguousarray(array, dtype=dtype).tobytes())
                written += len(array)
            if written != shape[0]:
                raise ValueError(f"the chunks held {written} images; the file was declared for {shape[0]}")

    atomic_write(path, write)
    return Path(path)


def load_samples_npz(path: str | os.PathLike) -> torch.Tensor:
    """The ``images`` array of an npz written by :func:`save_samples_npz`, as a LongTensor (N, C, H, W).

    Read with the bounded reader of :mod:`pixelrnn.archives` (the file may come from anywhere):
    declared sizes are checked against the bytes present and the limits before anything is
    allocated; a bad file raises :class:`ImageError`, one line.
    """
    try:
        with BoundedNpz(Path(path), str(path)) as npz:
            array = npz["images"]
    except PixelRNNError as error:
        raise ImageError(one_line(error)) from None
    if array.ndim != 4:
        raise ImageError(f"{path}: 'images' has shape {array.shape}, expected (N, C, H, W)")
    return torch.from_numpy(array.astype(np.int64))


def load_npz_images(path: str | os.PathLike, indices: list[int], channels: int, levels: int) -> torch.Tensor:
    """Images ``indices`` of an npz's ``images`` array (N, C, H, W) of model values."""
    images = load_samples_npz(path)
    for index in indices:
        if not 0 <= index < len(images):
            raise ImageError(f"--index {index} is outside {path}, which holds {len(images)} images")
    chosen = images[indices]
    if chosen.shape[1] != channels:
        raise ImageError(f"{path} holds {chosen.shape[1]}-channel images; the model wants {channels}")
    if chosen.numel() and (int(chosen.min()) < 0 or int(chosen.max()) >= levels):
        raise ImageError(f"{path} has values in [{int(chosen.min())}, {int(chosen.max())}]; the model's are [0, {levels})")
    return chosen


# --------------------------------------------------------------------- grids
def auto_scale(height: int, width: int) -> int:
    """The smallest whole enlargement that makes a tile of ``height`` x ``width`` at least MIN_TILE across."""
    return max(1, math.ceil(MIN_TILE / max(height, width)))


def upscale(array: np.ndarray, scale: int) -> np.ndarray:
    """(H, W, C) enlarged ``scale`` times by nearest neighbour: every pixel a scale x scale block."""
    if scale < 1:
        raise ValueError(f"scale must be a whole number >= 1; got {scale}")
    return array if scale == 1 else array.repeat(scale, axis=0).repeat(scale, axis=1)


def column_lefts(columns: int, width: int, padding: int = GRID_PADDING, wide_after=()) -> list[int]:
    """Left edge of each column of tiles: ``padding`` apart, GROUP_GAP after the columns in ``wide_after``."""
    lefts, left = [], padding
    for column in range(columns):
        lefts.append(left)
        left += width + (GROUP_GAP if column in wide_after else padding)
    return lefts


def tile(rows: list[list[np.ndarray]], padding: int = GRID_PADDING, value: int = PADDING_VALUE, wide_after=()) -> np.ndarray:
    """Lay out uint8 tiles (C, H, W), all the same shape, as a (H', W', C) image, ``padding`` apart
    (GROUP_GAP after the columns in ``wide_after``)."""
    channels, height, width = rows[0][0].shape
    lefts = column_lefts(max(len(row) for row in rows), width, padding, wide_after)
    grid = np.full((padding + len(rows) * (height + padding), lefts[-1] + width + padding, channels), value, np.uint8)
    for r, row in enumerate(rows):
        for c, image in enumerate(row):
            top, left = padding + r * (height + padding), lefts[c]
            grid[top : top + height, left : left + width] = image.transpose(1, 2, 0)  # (C, H, W) -> (H, W, C)
    return grid


def grid_array(images, levels: int, nrow: int | None = None, padding: int = GRID_PADDING, group: int = 1) -> np.ndarray:
    """(N, C, H, W) integer images as one uint8 (H', W', C) grid with ``nrow`` images per row.

    ``nrow`` defaults to ceil(sqrt(N)); tile k sits at grid row k // nrow, column k % nrow.
    ``group`` > 1 sets every ``group`` columns apart (GROUP_GAP), e.g. 2 for pairs of images.
    """
    pixels = to_uint8(images, levels)
    if pixels.ndim != 4 or pixels.shape[0] == 0:
        raise ValueError(f"expected a non-empty batch of images (N, C, H, W); got shape {pixels.shape}")
    nrow = nrow or math.ceil(math.sqrt(len(pixels)))
    wide_after = {column for column in range(nrow - 1) if group > 1 and column % group == group - 1}
    return tile([list(pixels[start : start + nrow]) for start in range(0, len(pixels), nrow)], padding, wide_after=wide_after)


def save_grid(images, levels: int, path: str | os.PathLike, nrow: int | None = None, scale: int | None = None,
              group: int = 1) -> Path:
    """Save (N, C, H, W) integer images in [0, levels) as a PNG grid (values scaled to 0..255).

    ``scale``: whole enlargement by nearest neighbour; None picks :func:`auto_scale`, so that
    small images (8x8 digits, 28x28 MNIST) are comfortable to view. The npz keeps the values.
    """
    grid = grid_array(images, levels, nrow, group=group)
    return save_png(grid, path, auto_scale(*images.shape[2:]) if scale is None else scale)


def completion_grid(occluded, completions, original, *, levels: int, known=None, padding: int = GRID_PADDING) -> np.ndarray:
    """The completion figure as a uint8 (H', W', C) array, one source image per row.

    Row n: ``occluded[n]`` with its unknown sub-pixels shown as a grey checkerboard, the k
    ``completions[n]``, then ``original[n]``; the completions are set apart from the source
    and the original by a wider gap (GROUP_GAP). ``occluded`` and ``original`` are (N, C, H, W)
    integers, ``completions`` (N, k, C, H, W). ``known`` (bool, broadcastable to (N, C, H, W))
    marks the kept sub-pixels; without it, negative values of ``occluded`` mark the unknown ones.
    """
    occluded = torch.as_tensor(occluded)
    completions = torch.as_tensor(completions)
    original = torch.as_tensor(original)
    if completions.dim() != 5 or occluded.shape != original.shape or completions.shape[0] != occluded.shape[0] \
            or completions.shape[2:] != occluded.shape[1:]:
        raise ValueError(f"shapes do not match: occluded {tuple(occluded.shape)}, completions {tuple(completions.shape)} "
                         f"(expected N, k, C, H, W), original {tuple(original.shape)}")
    known = (occluded >= 0) if known is None else torch.as_tensor(known, dtype=torch.bool).expand_as(occluded)
    shown = to_uint8(torch.where(known, occluded, torch.zeros_like(occluded)), levels)
    _, _, height, width = occluded.shape
    checker = np.where((np.arange(height)[:, None] // 2 + np.arange(width)[None, :] // 2) % 2 == 0, UNKNOWN_DARK, UNKNOWN_LIGHT)
    shown = np.where(known.cpu().numpy(), shown, checker.astype(np.uint8)[None, None])
    samples, sources = to_uint8(completions, levels), to_uint8(original, levels)
    rows = [[shown[n], *samples[n], sources[n]] for n in range(len(shown))]
    return tile(rows, padding, wide_after={0, completions.shape[1]})
