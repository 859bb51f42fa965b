"""Codes of 257..4096 levels (format version 4): 16-bit values through the coding models, the coder, the file and PNGs."""

import dataclasses
import hashlib
import re
import struct

import numpy as np
import pytest
import torch
from PIL import Image

from codec_cases import reseal, tiny
from pixelrnn import build_model, native
from pixelrnn.codec import (CodedImage, CompressionError, DamagedFileError, WrongModelError, compress, decompress, image_from_file,
                            images_from_array, read_container, save_images, save_npz)
from pixelrnn.codec.fixed_point import PRECISION, FixedPoint, integer_frequencies, tables

pytest.importorskip("constriction")
pytestmark = pytest.mark.usefixtures("one_thread")

HEADER_SHA = "corrupted header (sha256 mismatch)"
PAYLOAD_SHA = "corrupted payload (sha256 mismatch)"


def codes(channels, levels, count=3, height=3, width=4, seed=0):
    """Random codes with both ends of the codebook and values above 255 (a uint8 path would wrap them)."""
    values = np.random.default_rng(seed).integers(0, levels, (count, channels, height, width)).astype(np.uint16)
    values[0, 0, 0, 0], values[-1, -1, -1, -1], values[0, -1, 1, 1] = levels - 1, 0, 256
    return values


def same(decoded, values):
    return len(decoded) == len(values) and all(
        image.values.dtype == np.uint16 and np.array_equal(image.values, expected) for image, expected in zip(decoded, values))


@pytest.mark.parametrize("arch,channels,levels,arithmetic", [
    ("pixelcnn", 1, 512, "integer"), ("row_lstm", 3, 512, "integer"), ("diagonal_bilstm", 1, 4096, "integer"),
    ("row_lstm", 1, 257, "integer"), ("pixelcnn", 1, 4096, "float64"), ("diagonal_bilstm", 3, 300, "float32"),
])
def test_codes_above_256_levels_round_trip_bit_for_bit(arch, channels, levels, arithmetic):
    model = tiny(arch, channels, levels, seed=3)
    values = codes(channels, levels)
    data = compress(model, images_from_array(values, levels), batch_size=2, arithmetic=arithmetic)
    container = read_container(data)
    assert (container.version, container.levels, container.classes, container.labels) == (4, levels, 0, None)
    assert container.modes == (("I;16",) if channels == 1 else ("RGB",)) * len(values)
    assert container.pixel_digest == hashlib.sha256(values.astype("<u2").tobytes()).digest()
    assert same(decompress(model, data), values)


def test_the_native_and_the_numpy_engine_write_the_same_wide_file():
    model = tiny("row_lstm", 1, 1024, seed=5)
    images = images_from_array(codes(1, 1024, count=4), 1024)
    native_file = compress(model, images, batch_size=3)
    with native.disabled():
        assert compress(model, images, batch_size=3) == native_file
        assert same(decompress(model, native_file), [image.values for image in images])


@pytest.mark.parametrize("levels", [512, 4096])
def test_frequencies_of_thousands_of_symbols_are_exact(levels):
    """Every symbol keeps a frequency, the row sums to 2^24 - K exactly, ties and rows past the table's end included."""
    exp_table = tables(FixedPoint()).exp
    rng = np.random.default_rng(levels)
    logits = np.concatenate([np.zeros((1, levels), np.int64), rng.integers(-(1 << 20), 1 << 20, (3, levels)),
                             rng.integers(-3, 4, (3, levels))])
    weights = integer_frequencies(logits, exp_table)
    assert (weights >= 0).all() and (weights == np.floor(weights)).all()
    assert (weights.sum(axis=1) == (1 << PRECISION) - levels).all()
    assert weights[0].max() - weights[0].min() <= levels  # a uniform row stays uniform but for the remainder


def test_a_class_conditional_model_codes_wide_codes_with_their_classes():
    torch.manual_seed(0)
    model = build_model("pixelcnn", channels=1, levels=600, hidden=4, layers=2, output_hidden=8, classes=3).eval()
    with torch.no_grad():
        for name, parameter in model.named_parameters():
            if "class_vectors" in name:
                parameter.normal_(0, 1.0)
    values = codes(1, 600, count=4)
    images = [dataclasses.replace(image, label=label) for image, label in zip(images_from_array(values, 600), [2, 0, 2, 1])]
    data = compress(model, images, batch_size=2)
    container = read_container(data)
    assert (container.version, container.classes, container.labels) == (4, 3, (2, 0, 2, 1))
    decoded = decompress(model, data)
    assert same(decoded, values) and [image.label for image in decoded] == [2, 0, 2, 1]
    relabelled = compress(model, [dataclasses.replace(image, label=0) for image in images], batch_size=2)
    assert read_container(relabelled).payload != container.payload  # the class changes the probabilities


def test_the_level_limit_and_the_16_bit_mode_are_checked():
    with pytest.raises(CompressionError) as caught:
        compress(tiny("pixelcnn", 1, 4097), images_from_array(codes(1, 4096), 4096))
    assert str(caught.value) == "compression codes at most 4096 levels and 255 channels; the model has 4097 and 1"
    narrow = tiny("pixelcnn", 1, 256)
    with pytest.raises(CompressionError) as caught:
        compress(narrow, [CodedImage("a.png", np.zeros((1, 2, 2), np.uint8), "I;16", "raw")])
    assert str(caught.value) == "a.png: mode I;16 (16-bit grey) is for models of more than 256 levels; this one has 256: use 1, L or RGB"
    with pytest.raises(CompressionError, match=r"a.png: values must be a \(1, H, W\) uint8 array"):
        compress(narrow, [CodedImage("a.png", np.zeros((1, 2, 2), np.uint16), "L", "raw")])
    with pytest.raises(CompressionError, match=re.escape("values in [512, 512] are outside the model's [0, 512)")):
        images_from_array(np.full((1, 1, 2, 2), 512), 512)
    wide = tiny("pixelcnn", 1, 512)
    with pytest.raises(CompressionError, match=re.escape("a.png: value 512 is outside the model's [0, 512)")):
        compress(wide, [CodedImage("a.png", np.full((1, 2, 2), 512, np.uint16), "I;16", "raw")])
    with pytest.raises(WrongModelError, match="the file codes 1 channels of 512 levels; the model has 1 and 256"):
        decompress(narrow, compress(wide, images_from_array(codes(1, 512), 512)))


def flipped(data, position):
    return data[:position] + bytes([data[position] ^ 0x01]) + data[position + 1 :]


def test_damage_to_a_version_4_file_is_named():
    model = tiny("row_lstm", 1, 512, seed=2)
    data = compress(model, images_from_array(codes(1, 512), 512), batch_size=2)
    container = read_container(data)
    head_end = container.header_bytes - 64
    for position in (14, 57, 58, head_end - 2, head_end - 1, head_end + 5):  # fingerprint, levels, class count, header digest
        with pytest.raises(DamagedFileError) as caught:
            decompress(model, flipped(data, position))
        assert str(caught.value) == HEADER_SHA, position
    for position in (head_end + 32, len(data) - 40, len(data) - 1):
        with pytest.raises(DamagedFileError) as caught:
            decompress(model, flipped(data, position))
        assert str(caught.value) == PAYLOAD_SHA, position
    resealed = reseal(flipped(data, head_end + 33))
    with pytest.raises(DamagedFileError, match="the file was altered"):
        decompress(model, resealed)
    with pytest.raises(CompressionError, match=re.escape("unsupported format version 5 (this pixelrnn reads versions 1, 2, 3, 4)")):
        decompress(model, flipped(data, 8))
    counts = 68 + struct.unpack_from("<H", data, 66)[0]  # after the environment: u64 payload length, then the pixel digest
    wrong_digest = reseal(flipped(data, counts + 8))
    assert read_container(wrong_digest).pixel_digest != container.pixel_digest  # the header still parses
    with pytest.raises(DamagedFileError) as caught:
        decompress(model, wrong_digest)
    assert str(caught.value) == "decoded pixels do not match the file's sha256: the file was altered"


def test_16_bit_pngs_and_npz_keep_every_bit(tmp_path):
    values = codes(1, 4096, count=2)
    images = images_from_array(values, 4096)
    written = save_images(images, 4096, tmp_path / "out")
    for path, expected in zip(written, values):
        with Image.open(path) as png:
            assert png.mode == "I;16" and np.array_equal(np.asarray(png), expected[0])
        read = image_from_file(path, 1, 4096)
        assert (read.mode, read.mapping, read.values.dtype) == ("I;16", "raw", np.uint16) and np.array_equal(read.values, expected)
    with pytest.raises(CompressionError) as caught:
        image_from_file(written[0], 1, 4000)
    assert str(caught.value) == f"{written[0]}: values in [{values[0].min()}, 4095] cannot be coded exactly by a 4000-level model (needs 0..3999)"
    with pytest.raises(CompressionError, match="mode I;16 cannot be restored exactly"):  # 8-bit models still refuse 16-bit files
        image_from_file(written[0], 1, 256)
    colour = images_from_array(codes(3, 512, count=2), 512)
    with pytest.raises(CompressionError, match=r"^00000.png: value 511 does not fit an 8-bit RGB PNG"):
        save_images(colour, 512, tmp_path / "colour")
    assert not (tmp_path / "colour").exists()  # refused before anything was written
    save_npz([dataclasses.replace(image, label=k) for k, image in enumerate(colour)], 512, tmp_path / "colour.npz")
    with np.load(tmp_path / "colour.npz") as arrays:
        assert arrays["images"].dtype == np.uint16 and np.array_equal(arrays["images"], np.stack([i.values for i in colour]))
        assert arrays["labels"].tolist() == [0, 1]
