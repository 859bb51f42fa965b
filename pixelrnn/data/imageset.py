"""An image set: images (N, C, H, W) uint8 with values in [0, levels), and the class of each image where known."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

from ..errors import DatasetError
from ..limits import check_limit
from .labels import checked_labels
from .preprocess import MAX_LEVELS, storage_dtype


@dataclass(frozen=True, eq=False)
class ImageSet:
    """Images (N, C, H, W) uint8 with values in [0, levels) (uint16 above 256 levels); ``labels`` int64 (N,) in [0, classes) or None;
    ``class_names`` the source's name of each class (empty where it names none)."""

    name: str
    split: str
    images: np.ndarray
    levels: int
    values_checked: bool = field(default=False, kw_only=True, repr=False)
    """Every value is known to lie below ``levels`` (a prepared cache checked them when it wrote them)."""
    labels: np.ndarray | None = field(default=None, kw_only=True, repr=False)
    class_names: tuple[str, ...] = field(default=(), kw_only=True)

    def __post_init__(self) -> None:
        x = self.images
        if not 2 <= self.levels <= MAX_LEVELS:
            raise DatasetError(f"{self.name}: levels must be in 2..{MAX_LEVELS}, got {self.levels}")
        if not isinstance(x, np.ndarray) or x.ndim != 4 or x.dtype not in (np.uint8, storage_dtype(self.levels)):
            raise DatasetError(f"{self.name}: images must be a (N, C, H, W) {storage_dtype(self.levels)} array")
        check_limit("image_pixels", x.shape[2] * x.shape[3], f"{self.name}: an image of {x.shape[2]}x{x.shape[3]}",
                    DatasetError)
        if x.size and not self.values_checked and int(x.max()) >= self.levels:
            raise DatasetError(f"{self.name}: value {int(x.max())} >= levels {self.levels}")
        if self.labels is not None:
            labels = checked_labels(self.labels, x.shape[0], self.name)
            if self.class_names and labels.size and int(labels.max()) >= len(self.class_names):
                raise DatasetError(f"{self.name}: label {int(labels.max())} for {len(self.class_names)} named classes")
            object.__setattr__(self, "labels", labels)
        object.__setattr__(self, "class_names", tuple(self.class_names))
        # A memory map is read in place, however large; any other array is held as a C-contiguous, writable copy.
        if not isinstance(x, np.memmap) and not (x.flags.c_contiguous and x.flags.writeable):
            object.__setattr__(self, "images", np.array(x, order="C"))

    @property
    def channels(self) -> int:
        return self.images.shape[1]

    @property
    def height(self) -> int:
        return self.images.shape[2]

    @property
    def width(self) -> int:
        return self.images.shape[3]

    @property
    def classes(self) -> int:
        """The number of classes: the named ones, else the largest label + 1; 0 without labels."""
        if self.labels is None:
            return 0
        return len(self.class_names) or (int(self.labels.max()) + 1 if len(self.labels) else 0)

    def __len__(self) -> int:
        return self.images.shape[0]

    def __getitem__(self, index: int) -> torch.Tensor:
        """Image ``index`` as an int64 tensor (C, H, W): a map-style dataset for ``DataLoader``."""
        return torch.from_numpy(self.images[index].astype(np.int64))
