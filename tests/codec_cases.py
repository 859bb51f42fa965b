"""Helpers for the codec's tests: tiny models, the images a compressor meets, surgery on files."""

import hashlib
import struct

import numpy as np
import torch
from hypothesis import strategies as st

from pixelrnn import build_model
from pixelrnn.codec import CodedImage, FixedPoint, integer_model

#: A fixed-point format with short tables and activations, whose clamps and table ends are reached often.
SMALL = FixedPoint(activation_bits=10, clamp_bits=3, table_bits=5, table_range=3, exp_bits=18, max_weight_bits=20, min_weight_bits=4)

#: The integer-model property tests' cases: random networks of each kind, images and formats.
INTEGER_CASES = dict(
    arch=st.sampled_from(["pixelcnn", "row_lstm", "diagonal_bilstm"]), channels=st.sampled_from([1, 3]),
    levels=st.sampled_from([2, 3, 256]), height=st.integers(1, 5), width=st.integers(1, 5), seed=st.integers(0, 2**31 - 1),
    residual=st.booleans(), skip=st.booleans(), gain=st.sampled_from([1.0, 25.0]), fixed=st.sampled_from([FixedPoint(), SMALL]),
)


def tiny(arch, channels, levels, seed=0, **options):
    """A random two-layer network (losslessness and exactness do not need training)."""
    torch.manual_seed(seed)
    return build_model(arch, channels=channels, levels=levels, hidden=max(4, channels), layers=2,
                       output_hidden=max(8, channels), **options).eval()


def integer_case(arch, channels, levels, height, width, count, seed, residual, skip, gain, fixed):
    """(integer model, images (count, C, H, W)) of a random two-layer network whose weights are scaled by ``gain``.

    Large weights drive activations into the clamps and the tables' ends.
    """
    torch.manual_seed(seed)
    network = build_model(arch, channels=channels, levels=levels, hidden=channels + 2, layers=2, output_hidden=channels + 4,
                          residual=residual, skip=skip).eval()
    with torch.no_grad():
        for parameter in network.parameters():
            parameter.mul_(gain)
    images = np.random.default_rng(seed).integers(0, levels, size=(count, channels, height, width))
    return integer_model(network, fixed), images


def teacher_forced_logits(engine, images, levels):
    """Every sub-pixel's logits from an incremental engine, teacher-forced: (N, C, K, H, W)."""
    count, channels, height, width = images.shape
    engine.reset(count, height, width)
    result = np.zeros((count, channels, levels, height, width))
    for i in range(height):
        for j in range(width):
            for c in range(channels):
                result[:, c, :, i, j] = engine.logits(i, j, c)
                engine.advance(i, j, c, images[:, c, i, j])
    return result


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


ENVIRONMENT_AT = 14 + 52  # formats 2 and 3: the prefix (14 bytes) and 52 bytes of fixed fields, then u16 E and E bytes of environment


def environment_bytes(data: bytes) -> bytes:
    (length,) = struct.unpack_from("<H", data, ENVIRONMENT_AT)
    return data[ENVIRONMENT_AT + 2 : ENVIRONMENT_AT + 2 + length]


def with_environment(data: bytes, environment: bytes) -> bytes:
    """``data`` with the header's environment record replaced, body length and header sha256 redone (formats 2, 3 and 4)."""
    body_length = struct.unpack_from("<I", data, 10)[0]
    head = data[: 14 + body_length]
    rest = head[ENVIRONMENT_AT + 2 + len(environment_bytes(data)) :]
    head = head[:ENVIRONMENT_AT] + struct.pack("<H", len(environment)) + environment + rest
    head = head[:10] + struct.pack("<I", len(head) - 14) + head[14:]
    return head + hashlib.sha256(head).digest() + data[14 + body_length + 32 :]
