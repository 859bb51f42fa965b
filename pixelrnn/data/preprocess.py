"""Preprocessing of a dataset's images, the same for every kind of dataset (``[data]`` of a run's configuration).

- ``channels = 1 | 3`` (0: the dataset's own): a grey image repeated to RGB; a colour image made
  grey (one of its channels when they are equal, else Pillow's ITU-R 601-2 luma, L = R 299/1000 +
  G 587/1000 + B 114/1000). A folder of mixed grey and colour files without ``channels`` is read
  as colour, its grey files repeated.
- ``size = [H, W]`` with ``resize = "crop" | "fit"``, through Pillow: ``crop`` scales the image
  until it covers H x W, aspect ratio kept, then cuts the middle; ``fit`` scales it to exactly
  H x W (the aspect ratio changes). Resampling is nearest neighbour under ``mapping = "exact"``
  (values stay values) and Lanczos under ``quantise``.
- ``levels = L`` with ``mapping``: ``exact`` reads 8-bit samples by the one exact mapping of
  :mod:`pixelrnn.images` (every sample the 8-bit scaling of a value, e.g. 0/255 -> 0/1 for
  L = 2; else every sample already below L), or fails naming the file; ``quantise`` bins a
  source of S levels (256 for 8-bit images) into L: v -> floor(v L / S).

Channels and size come first, then the levels. Every value is checked here, with a one-line
error naming the key and what it accepts.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import DatasetError

MAPPINGS = ("exact", "quantise")
RESIZES = ("crop", "fit")


MAX_LEVELS = 4096
"""The most values a sub-pixel may take: codes of a codebook of up to 4096 entries (stored as uint16 above 256)."""


def storage_dtype(levels: int) -> np.dtype:
    """uint8 for up to 256 levels, uint16 above."""
    return np.dtype(np.uint8 if levels <= 256 else np.uint16)


@dataclass(frozen=True)
class Preprocessing:
    levels: int | None = None
    mapping: str = "exact"
    size: tuple[int, int] | None = None
    resize: str = "crop"
    channels: int | None = None

    def __post_init__(self) -> None:
        if self.levels is not None and (not isinstance(self.levels, int) or not 2 <= self.levels <= MAX_LEVELS):
            raise DatasetError(f"data.levels={self.levels!r} must lie in 2..{MAX_LEVELS} (0: the dataset's own; above 256: "
                               "integer codes from an npz, stored as uint16)")
        if self.mapping not in MAPPINGS:
            raise DatasetError(f"data.mapping={self.mapping!r}; choose one of {', '.join(MAPPINGS)}")
        if self.resize not in RESIZES:
            raise DatasetError(f"data.resize={self.resize!r}; choose one of {', '.join(RESIZES)}")
        if self.channels is not None and self.channels not in (1, 3):
            raise DatasetError(f"data.channels={self.channels!r}; choose 1 (grey) or 3 (colour), or 0 for the dataset's own")
        if self.size is not None:
            size = tuple(self.size)
            if len(size) != 2 or not all(isinstance(v, int) and not isinstance(v, bool) and v >= 1 for v in size):
                raise DatasetError(f"data.size={list(size)!r} must be [height, width], two whole numbers >= 1")
            object.__setattr__(self, "size", size)

    @classmethod
    def of(cls, levels=None, mapping="exact", size=None, resize="crop", channels=None) -> "Preprocessing":
        """From a run's ``[data]`` values, where 0 and [] mean "the dataset's own"."""
        return cls(levels or None, mapping, tuple(size) if size else None, resize, channels or None)

    @property
    def reshapes(self) -> bool:
        """Whether images change shape (channels or size)."""
        return self.size is not None or self.channels is not None

    def tag(self) -> str:
        """A name for the prepared array of these settings (the levels, the mapping, the shape)."""
        parts = [] if self.levels is None else [f"{self.levels}{self.mapping}"]
        if self.size is not None:
            parts.append(f"{self.size[0]}x{self.size[1]}{self.resize}")
        if self.channels is not None:
            parts.append(f"c{self.channels}")
        return "-".join(parts)

    # ------------------------------------------------------------------ shape
    def image(self, samples: np.ndarray, channels: int | None = None) -> np.ndarray:
        """One image (C, H, W) uint8 with the asked channels (``channels`` overrides) and size."""
        wanted = self.channels if channels is None else channels
        if wanted is not None and samples.shape[0] != wanted:
            samples = to_channels(samples, wanted)
        if self.size is not None and samples.shape[1:] != self.size:
            samples = resized(samples, self.size, self.resize, nearest=self.mapping == "exact")
        return samples

    def array(self, images: np.ndarray) -> np.ndarray:
        """Images (N, C, H, W) with the asked channels and size (a new array; the input as it is when nothing changes)."""
        if not self.reshapes:
            return images
        shaped = [self.image(np.asarray(image)) for image in images]
        if not shaped:
            return images
        return np.ascontiguousarray(np.stack(shaped))

    # ------------------------------------------------------------------ values
    def quantised(self, images: np.ndarray, source_levels: int) -> np.ndarray:
        """floor(v L / S) of values of a source of S levels."""
        return (np.minimum(images.astype(np.int64), source_levels - 1) * self.levels // source_levels).astype(storage_dtype(self.levels))


def to_channels(samples: np.ndarray, channels: int) -> np.ndarray:
    """(C, H, W) samples with ``channels`` channels: grey repeated to colour; colour to grey (equal channels, else luma)."""
    if samples.shape[0] == channels:
        return samples
    if channels == 3:
        return np.repeat(samples[:1], 3, axis=0)
    if (samples == samples[:1]).all():
        return np.ascontiguousarray(samples[:1])
    from PIL import Image

    return np.asarray(Image.fromarray(np.ascontiguousarray(samples.transpose(1, 2, 0)), "RGB").convert("L"))[None]


def resized(samples: np.ndarray, size: tuple[int, int], how: str, *, nearest: bool) -> np.ndarray:
    """(C, H, W) samples scaled to ``size`` = (H, W) by ``crop`` or ``fit`` (module docstring)."""
    from PIL import Image, ImageOps

    height, width = size
    method = Image.Resampling.NEAREST if nearest else Image.Resampling.LANCZOS
    planes = []
    for plane in samples:  # one channel at a time: every mode resamples an "L" image alike
        image = Image.fromarray(np.ascontiguousarray(plane), "L")
        image = ImageOps.fit(image, (width, height), method) if how == "crop" else image.resize((width, height), method)
        planes.append(np.asarray(image))
    return np.stack(planes)


__all__ = ["MAPPINGS", "Preprocessing", "RESIZES", "resized", "to_channels"]
