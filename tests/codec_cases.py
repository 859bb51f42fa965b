"""Helpers for the codec's tests: tiny models, the images a compressor meets, surgery on files."""

import hashlib
import struct

import numpy as np
import torch

from pixelrnn import build_model
from pixelrnn.codec import CodedImage


def tiny(arch, channels, levels, seed=0, **options):
    """A random two-layer network (losslessness and exactness do not need training)."""
    torch.manual_seed(seed)
    return build_model(arch, channels=channels, levels=levels, hidden=max(4, channels), layers=2,
                       output_hidden=max(8, channels), **options).eval()


def structured(channels, height, width, levels, kind):
    """Images a compressor meets: flat, extreme, gradients, stripes, checkerboards."""
    i, j = np.meshgrid(np.arange(height), np.arange(width), indexing="ij")
    top = levels - 1
    plane = {
        "zeros": np.zeros((height, width)),
        "max": np.full((height, width), top),
        "gradient": (i + j) * top // max(1, height + width - 2),
        "stripes": (j % 2) * top,
        "checker": ((i + j) % 2) * top,
    }[kind]
    return np.repeat(plane[None], channels, axis=0).astype(np.uint8)


def image_set(channels, levels, count, shapes, seed=0, names="numbered"):
    rng = np.random.default_rng(seed)
    kinds = ("zeros", "max", "gradient", "stripes", "checker")
    images = []
    for k in range(count):
        height, width = shapes[k % len(shapes)]
        if k % 3 == 0:
            values = structured(channels, height, width, levels, kinds[(k // 3) % len(kinds)])
        else:
            values = rng.integers(0, levels, size=(channels, height, width), dtype=np.uint8)
        name = f"{k:05d}.png" if names == "numbered" else f"image-{k}.png"
        images.append(CodedImage(name, values, "L" if channels == 1 else "RGB", "raw"))
    return images


def same_images(decoded, originals):
    return len(decoded) == len(originals) and all(
        a.name == b.name and a.mode == b.mode and a.mapping == b.mapping and a.values.dtype == np.uint8
        and np.array_equal(a.values, b.values) for a, b in zip(decoded, originals))


def reseal(data):
    """Recompute both sha256 of a (mutated) file, so that the checks behind them are reached."""
    if len(data) < 14 + 64:
        return data
    body_length = struct.unpack_from("<I", data, 10)[0]
    head_end = 14 + body_length
    if head_end + 64 > len(data):
        return data
    head = data[:head_end]
    payload = data[head_end + 32 : -32]
    return head + hashlib.sha256(head).digest() + payload + hashlib.sha256(payload).digest()


def edit_header(data, start, end, replacement, version=None):
    """Replace header bytes [start, end) (offsets in the file), fix the body length (and version), reseal."""
    body_length = struct.unpack_from("<I", data, 10)[0]
    head_end = 14 + body_length
    head = data[:start] + replacement + data[end:head_end]
    head = head[:8] + struct.pack("<HI", version or struct.unpack_from("<H", data, 8)[0], len(head) - 14) + head[14:]
    return reseal(head + bytes(32) + data[head_end + 32 :])
