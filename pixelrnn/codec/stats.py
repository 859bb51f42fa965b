"""How close a compressed file comes to the model's NLL (section 5.1: the NLL as a code length)."""

from __future__ import annotations

from typing import Sequence

import numpy as np

from ..evaluation import nll_per_image
from ..utils import nats_to_bits
from .container import CodedImage, read_container


def model_nll_bits(model, images: Sequence[CodedImage], batch_size: int = 64) -> float:
    """The model's total NLL of the images in bits (``model.nll``, batched full forward pass; given each image's label for a
    class-conditional model)."""
    by_shape: dict[tuple, list[CodedImage]] = {}
    for image in images:
        by_shape.setdefault(image.values.shape, []).append(image)
    conditional = bool(model.config.classes)
    nats = sum(float(nll_per_image(model, np.stack([image.values for image in group]), batch_size=batch_size,
                                   labels=np.array([image.label for image in group]) if conditional else None).sum())
               for group in by_shape.values())
    return nats_to_bits(nats)


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
