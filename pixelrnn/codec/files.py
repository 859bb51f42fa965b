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
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Sequence

import numpy as np

from ..errors import CompressionError
from ..images import fit_channels, read_image, samples_to_values, values_to_samples
from ..utils import atomic_write
from .container import MODE_CODES, CodedImage, check_name


def values_to_png(image: CodedImage, levels: int):
    """The PIL image that decompression writes for ``image``: its mode, its exact samples."""
    from PIL import Image

    samples = values_to_samples(image.values, levels, image.mapping)
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
    image = read_image(path)
    if image.frames != 1:
        raise CompressionError(f"{path}: has {image.frames} frames; only single images can be restored exactly")
    if image.mode not in MODE_CODES:
        raise CompressionError(f"{path}: mode {image.mode} cannot be restored exactly; convert it to 1, L or RGB first")
    # An RGB file with equal channels is coded once by a grey model and written back as RGB;
    # a grey file coded by a colour model is written back as grey.
    samples = fit_channels(image.samples, channels, path)
    mapped = samples_to_values(samples, levels)
    if mapped is None:
        raise CompressionError(f"{path}: values in [{int(samples.min())}, {int(samples.max())}] cannot be coded exactly by a "
                               f"{levels}-level model (needs 0..{levels - 1} or their 8-bit scaling)")
    values, mapping = mapped
    return CodedImage(name or path.stem + ".png", np.ascontiguousarray(values), image.mode, mapping)


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
    written = []
    for image, path in zip(images, paths):
        path.parent.mkdir(parents=True, exist_ok=True)
        picture = values_to_png(image, levels)
        atomic_write(path, lambda temp: picture.save(temp, format="PNG"))
        written.append(path)
    return written
