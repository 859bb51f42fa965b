"""Image files as the codec codes them, and written back exactly as they were read.

Images and PNG values
---------------------
A model codes integers in ``[0, levels)``. An image file (mode ``1``, ``L`` or ``RGB``) maps its
8-bit samples p to model values in one of two ways, stored per image:

- ``scaled``: v = round(p (K-1) / 255), accepted only when p == round(255 v / (K-1)) for every
  sample (the mapping of :func:`pixelrnn.images.to_uint8`): a binary model reads {0, 255} as
  {0, 1}; an 8-bit model reads p as p;
- ``raw``: v = p, for files whose samples are already model values (e.g. a binary image stored
  as L with values {0, 1}); used when ``scaled`` does not apply.

Decompression writes each PNG back in the mode it was read in, with exactly the samples read:
mode ``1`` files come back as mode ``1``, L as L, RGB as RGB (a grey file coded by a colour
model, or a colour file with equal channels coded by a grey model, is converted for the model
and back). Dataset images are model values: they are written with ``scaled`` for 2-level data
(0/1 -> 0/255) and ``raw`` otherwise.

Above 256 levels
----------------
A model of 257..4096 levels codes integer codes, never a scaling of 8-bit samples: every file is
read ``raw``, its samples the values. A 16-bit grey PNG (Pillow mode ``I;16``) gives all 16 bits
(each below ``levels``) and is written back as one; an 8-bit file is written back in its mode.
Dataset images of one channel are written as 16-bit grey PNGs. A PNG cannot hold 16-bit colour
here, so colour codes of more than 256 values go to an npz (:func:`save_npz`).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Sequence

import numpy as np

from ..errors import CompressionError
from ..images import fit_channels, read_image, samples_to_values, values_to_samples
from ..utils import atomic_write
from .container import MODE_CODES, CodedImage, check_name, value_dtype, wide_values


def _check_png(image: CodedImage) -> None:
    """Refuse, before anything is written, an 8-bit mode for values above 255 (codes of a model of more than 256 levels)."""
    if image.mode != "I;16" and image.values.dtype != np.uint8 and image.values.size and int(image.values.max()) > 255:
        raise CompressionError(f"{image.name}: value {int(image.values.max())} does not fit an 8-bit {image.mode} PNG "
                               "(16-bit PNGs here are grey); decompress to an npz instead (-o FILE.npz)")


def values_to_png(image: CodedImage, levels: int):
    """The PIL image that decompression writes for ``image``: its mode, its exact samples."""
    from PIL import Image

    _check_png(image)
    samples = values_to_samples(image.values, levels, image.mapping)
    if image.mode == "I;16":
        return Image.fromarray(np.ascontiguousarray(samples[0], dtype=np.uint16))  # uint16: Pillow's mode I;16
    samples = samples.astype(np.uint8)  # codes of more than 256 levels read from an 8-bit file: below 256 (_check_png)
    if image.mode == "RGB":
        pixels = samples.transpose(1, 2, 0) if samples.shape[0] == 3 else np.repeat(samples[0][..., None], 3, axis=2)
        return Image.fromarray(np.ascontiguousarray(pixels), mode="RGB")
    grey = np.ascontiguousarray(samples[0])
    if image.mode == "1":
        # Samples are 0/255 here (a mode 1 file read as L); thresholding without dithering keeps them exactly.
        return Image.fromarray(grey, mode="L").convert("1", dither=Image.Dither.NONE)
    return Image.fromarray(grey, mode="L")


def image_from_file(path: str | os.PathLike, channels: int, levels: int, name: str | None = None) -> CodedImage:
    """Read a mode 1, L or RGB image file as model values, by an exact mapping (module docstring)."""
    path = Path(path)
    wide = wide_values(levels)
    image = read_image(path, wide=wide)
    if image.frames != 1:
        raise CompressionError(f"{path}: has {image.frames} frames; only single images can be restored exactly")
    if image.mode not in MODE_CODES or (image.mode == "I;16" and not wide):
        raise CompressionError(f"{path}: mode {image.mode} cannot be restored exactly; convert it to 1, L or RGB first")
    if wide:
        return _codes_from_file(path, image, channels, levels, name)
    # An RGB file with equal channels is coded once by a grey model and written back as RGB;
    # a grey file coded by a colour model is written back as grey.
    samples = fit_channels(image.samples, channels, path)
    mapped = samples_to_values(samples, levels)
    if mapped is None:
        raise CompressionError(f"{path}: values in [{int(samples.min())}, {int(samples.max())}] cannot be coded exactly by a "
                               f"{levels}-level model (needs 0..{levels - 1} or their 8-bit scaling)")
    values, mapping = mapped
    return CodedImage(name or path.stem + ".png", np.ascontiguousarray(values), image.mode, mapping)


def _codes_from_file(path: Path, image, channels: int, levels: int, name: str | None) -> CodedImage:
    """A file of codes for a model of more than 256 levels: its samples are the values (module docstring)."""
    samples = fit_channels(image.samples, channels, path)
    if samples.size and int(samples.max()) >= levels:
        raise CompressionError(f"{path}: values in [{int(samples.min())}, {int(samples.max())}] cannot be coded exactly by a "
                               f"{levels}-level model (needs 0..{levels - 1})")
    return CodedImage(name or path.stem + ".png", np.ascontiguousarray(samples, dtype=np.uint16), image.mode, "raw")


def images_from_array(values: np.ndarray, levels: int) -> list[CodedImage]:
    """Dataset images (N, C, H, W) of model values, named 00000.png, ...; 2-level data is written as 0/255,
    grey codes of more than 256 levels as 16-bit PNGs."""
    values = np.asarray(values)
    if values.ndim != 4 or values.shape[1] not in (1, 3):
        raise CompressionError(f"expected images (N, C, H, W) with 1 or 3 channels; got shape {values.shape}")
    if values.size and (int(values.min()) < 0 or int(values.max()) >= levels):  # before a cast could wrap them
        raise CompressionError(f"values in [{int(values.min())}, {int(values.max())}] are outside the model's [0, {levels})")
    mode = ("I;16" if wide_values(levels) else "L") if values.shape[1] == 1 else "RGB"
    mapping = "scaled" if levels == 2 else "raw"
    digits = max(5, len(str(len(values) - 1)))
    dtype = value_dtype(levels)
    return [CodedImage(f"{index:0{digits}d}.png", np.ascontiguousarray(image, dtype=dtype), mode, mapping)
            for index, image in enumerate(values)]


def image_path(folder: str | os.PathLike, image: CodedImage, class_names: Sequence[str] | None = None) -> Path:
    """Where :func:`save_images` writes ``image``: folder/name, or folder/<its class's name>/name with ``class_names``.

    The sub-folders are those a ``folder:`` dataset reads its labels from, so a labelled folder
    compressed and decompressed this way is the same folder again.
    """
    name = check_name(image.name)
    if class_names is None:
        return Path(folder) / name
    if image.label is None:
        raise CompressionError(f"{name} carries no class; class sub-folders need a file written by a class-conditional model")
    sub_folder = str(class_names[image.label]) if class_names else str(image.label)
    if not sub_folder or sub_folder in (".", "..") or any(ch in sub_folder for ch in "/\\") or any(ord(ch) < 32 for ch in sub_folder):
        raise CompressionError(f"class name {sub_folder[:80]!r} cannot be a folder name")
    return Path(folder) / sub_folder / name


def save_images(images: Sequence[CodedImage], levels: int, folder: str | os.PathLike,
                class_names: Sequence[str] | None = None) -> list[Path]:
    """Write each image as folder/name (PNG), atomically; with ``class_names``, into its class's sub-folder (:func:`image_path`)."""
    paths = [image_path(folder, image, class_names) for image in images]  # every name checked before anything is written
    for image in images:
        _check_png(image)
    written = []
    for image, path in zip(images, paths):
        path.parent.mkdir(parents=True, exist_ok=True)
        picture = values_to_png(image, levels)
        atomic_write(path, lambda temp: picture.save(temp, format="PNG"))
        written.append(path)
    return written


def save_npz(images: Sequence[CodedImage], levels: int, path: str | os.PathLike) -> Path:
    """Write the images as one npz, atomically: ``images`` (N, C, H, W), uint8 or uint16 above 256 levels, and ``labels``
    (N,) when they carry classes. The keys of ``pixelrnn sample``'s npz: ``npz:PATH`` reads it back as a dataset."""
    shapes = {image.values.shape for image in images}
    if len(shapes) != 1:
        raise CompressionError(f"an npz holds images of one size; these have {len(shapes)} sizes ("
                               f"{', '.join('x'.join(map(str, shape[1:])) for shape in sorted(shapes)[:3])}); write PNGs instead")
    arrays = {"images": np.stack([image.values for image in images]).astype(value_dtype(levels))}
    if images[0].label is not None:
        arrays["labels"] = np.array([image.label for image in images], dtype=np.int64)

    def write(temp):
        with open(temp, "wb") as handle:  # a file object: numpy would append ".npz" to a temp name
            np.savez_compressed(handle, **arrays)

    atomic_write(path, write)
    return Path(path)
