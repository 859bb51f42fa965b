"""Lossless compression with a model and a range coder (pixelrnn.codec): the coder.

Round trips on many small random and structured images for every architecture, 1 and 3
channels, 2 and 256 levels, in the integer coding model and the float one (random-init models:
losslessness does not need training); thread counts and the caller's model left alone; size
against the model's NLL and against the coding model's own code length; the compress /
decompress commands on image files and datasets. With PIXELRNN_DATA_DIR set, a round trip over
thousands of binarized-MNIST test images. The file format is tests/codec/test_container.py.
"""

import argparse
import math
import os

import numpy as np
import pytest
import torch
from PIL import Image

from codec_cases import image_set, same_images, tiny
from pixelrnn import save_model
from pixelrnn import codec as compression
from pixelrnn.cli.codec import add_compress_parser, add_decompress_parser
from pixelrnn.codec import (CodedImage, chunks, coding_model, compress, compression_stats, decompress, quantise, read_container,
                            samples_to_values)
from pixelrnn.codec.container import PRECISION
from pixelrnn.sampling import sample

pytest.importorskip("constriction")


pytestmark = pytest.mark.usefixtures("one_thread")


# --------------------------------------------------------------------- probabilities
def test_quantise_gives_exact_integer_weights():
    torch.manual_seed(0)
    for levels in (2, 3, 256):
        logits = torch.randn(50, levels) * 30
        logits[0] = 0.0
        logits[1, 0] = 1e4  # one symbol takes (almost) everything
        logits[2, 0] = float("nan")
        logits[3, 1] = float("inf")
        weights = quantise(logits)
        assert weights.dtype == np.float64 and weights.shape == (50, levels)
        assert (weights >= 0).all() and (weights == np.floor(weights)).all()
        assert (weights.sum(1) == (1 << PRECISION) - levels).all()
        assert np.array_equal(weights, quantise(logits.clone()))
        assert np.array_equal(weights[2], weights[0]) and np.array_equal(weights[3], weights[0])  # broken rows: uniform
        probs = torch.softmax(logits[4:].double(), 1).numpy()
        # Each weight is within one unit of p * 2^24, plus the remainder (< K units) on the most likely symbol.
        assert np.abs((weights[4:] + 1) / (1 << PRECISION) - probs).max() <= (levels + 1) / (1 << PRECISION)


def test_range_coder_codes_exactly_the_quantised_model():
    constriction = pytest.importorskip("constriction")
    rng = np.random.default_rng(1)
    for levels in (2, 256):
        logits = torch.from_numpy(rng.normal(size=(4000, levels)) * 3)
        weights = quantise(logits)
        probs = (weights + 1) / (1 << PRECISION)
        symbols = np.array([rng.choice(levels, p=p / p.sum()) for p in probs], dtype=np.int32)
        encoder = constriction.stream.queue.RangeEncoder()
        family = constriction.stream.model.Categorical(perfect=False)
        for start in range(0, len(symbols), 100):
            encoder.encode(symbols[start : start + 100], family, weights[start : start + 100])
        ideal = compression.code_lengths(weights, symbols).sum()
        assert ideal <= encoder.num_bits() <= ideal + 64  # the coder adds only its final word(s)
        decoder = constriction.stream.queue.RangeDecoder(encoder.get_compressed())
        assert np.array_equal(decoder.decode(family, weights), symbols)


def test_chunks_group_by_size_and_respect_the_pixel_budget():
    shapes = [(2, 2), (3, 3), (2, 2), (2, 2), (3, 3), (2, 2), (2, 2)]
    assert chunks(shapes, 2, 1 << 20) == [[0, 2], [3, 5], [6], [1, 4]]
    assert chunks(shapes, 8, 9) == [[0, 2], [3, 5], [6], [1], [4]]  # 9 pixels: two 2x2 images, one 3x3
    assert chunks([(100, 100)], 8, 9) == [[0]]  # a big image still forms a chunk of one


# --------------------------------------------------------------------- round trips
ROUND_TRIPS = [("pixelcnn", 1, 2), ("row_lstm", 3, 256), ("diagonal_bilstm", 1, 256), ("pixelcnn", 3, 2)]


@pytest.mark.parametrize("arch,channels,levels", ROUND_TRIPS)
def test_round_trip_is_bit_exact(arch, channels, levels):
    model = tiny(arch, channels, levels)
    shapes = [(4, 4), (3, 5), (1, 1), (5, 2)] if channels == 1 else [(3, 3), (2, 4), (1, 1), (4, 1)]
    images = image_set(channels, levels, 220, shapes, seed=len(arch) + channels)
    data = compress(model, images, batch_size=24)
    container = read_container(data)
    assert (container.arithmetic, container.batch_size) == ("integer", 24)
    assert same_images(decompress(model, data), images)


@pytest.mark.parametrize("arch,channels,levels", [("row_lstm", 3, 256), ("diagonal_bilstm", 1, 2)])
def test_float_round_trip_is_bit_exact_on_this_machine(arch, channels, levels):
    model = tiny(arch, channels, levels, seed=1)
    images = image_set(channels, levels, 40, [(3, 4), (2, 2)], seed=3)
    data = compress(model, images, batch_size=16, arithmetic="float32")
    assert read_container(data).arithmetic == "float32"
    assert same_images(decompress(model, data), images)


def test_float64_and_the_thread_count_do_not_change_the_float_round_trip(monkeypatch):
    model = tiny("row_lstm", 1, 256, seed=3)
    images = image_set(1, 256, 30, [(4, 5)], names="listed")
    data = compress(model, images, batch_size=7, arithmetic="float64")
    assert read_container(data).dtype == torch.float64
    threads_while_coding = set()
    quantise = coding_model.quantise

    def recording_quantise(logits):
        threads_while_coding.add(torch.get_num_threads())
        return quantise(logits)

    monkeypatch.setattr(coding_model, "quantise", recording_quantise)
    torch.set_num_threads(2)
    try:
        assert same_images(decompress(model, data), images)
        assert compress(model, images, batch_size=7, arithmetic="float64") == data
        assert threads_while_coding == {1}  # the float model codes on one thread, whatever the caller set
        assert torch.get_num_threads() == 2  # and restores the caller's setting
    finally:
        torch.set_num_threads(1)
    assert compress(model, images, batch_size=7, arithmetic="float32") != data  # float32 is another (equally valid) code


def test_the_integer_file_does_not_depend_on_thread_counts():
    model = tiny("diagonal_bilstm", 3, 4, seed=2)
    images = image_set(3, 4, 20, [(3, 5)], seed=4)
    data = compress(model, images, batch_size=8)
    torch.set_num_threads(2)
    try:
        assert compress(model, images, batch_size=8, threads=2) == data
        assert same_images(decompress(model, data, threads=2), images)
    finally:
        torch.set_num_threads(1)


@pytest.mark.parametrize("arithmetic", ["integer", "float64"])
def test_training_mode_and_dtype_of_the_callers_model_are_left_alone(arithmetic):
    model = tiny("pixelcnn", 1, 2).train()
    images = image_set(1, 2, 10, [(3, 3)])
    data = compress(model, images, arithmetic=arithmetic)
    assert model.training and model.dtype == torch.float32
    assert same_images(decompress(model, data), images)


# --------------------------------------------------------------------- size against the NLL
def sharpened(arch, channels, levels, factor, seed=0):
    """A random model with confident conditionals (tiny probabilities: the quantisation's hard case)."""
    model = tiny(arch, channels, levels, seed=seed)
    last = model.output_stack.convs[-1]
    with torch.no_grad():
        last.weight.mul_(factor)
        last.bias.mul_(factor)
    return model


@pytest.mark.parametrize("arch,channels,levels,factor,arithmetic", [
    ("pixelcnn", 1, 2, 6.0, "integer"), ("pixelcnn", 3, 256, 4.0, "integer"), ("diagonal_bilstm", 1, 256, 8.0, "integer"),
    ("row_lstm", 1, 2, 6.0, "integer"), ("pixelcnn", 1, 2, 6.0, "float32")])
def test_size_is_the_model_nll_plus_a_few_bytes(arch, channels, levels, factor, arithmetic):
    model = sharpened(arch, channels, levels, factor)
    height, width = (6, 6) if channels == 1 else (4, 4)
    samples = sample(model, 96, height, width, generator=torch.Generator().manual_seed(0)).numpy().astype(np.uint8)
    images = [CodedImage(f"{k:05d}.png", values, "L" if channels == 1 else "RGB", "raw") for k, values in enumerate(samples)]
    report = {}
    data = compress(model, images, batch_size=32, arithmetic=arithmetic, report=report)
    stats = compression_stats(model, images, data)
    dims = len(images) * channels * height * width
    nll_bits = float(model.nll(torch.from_numpy(samples).long()).detach().double().sum()) / math.log(2.0)
    payload_bits = 8 * stats["payload_bytes"]
    assert stats["subpixels"] == dims
    assert stats["nll_bits_per_dim"] * dims == pytest.approx(nll_bits, rel=1e-6)
    assert stats["bits_per_dim"] * dims == pytest.approx(payload_bits)
    # The overhead is a small difference of two near-equal sizes: checked against the stats' own NLL,
    # which the line above ties to the model's (a float32 sum in other batches differs in its last bits).
    stats_nll_bits = stats["nll_bits_per_dim"] * dims
    assert stats["overhead_percent"] == pytest.approx(100 * (payload_bits - stats_nll_bits) / stats_nll_bits, rel=1e-6)
    assert stats["file_bits_per_dim"] * dims == pytest.approx(8 * len(data))
    assert nll_bits * 0.99 - 64 <= payload_bits <= nll_bits * 1.01 + 64, (payload_bits, nll_bits)
    # The coder adds at most ~1e-4 bit per symbol and its final words to the coding model's own code length.
    assert report["ideal_bits"] <= payload_bits <= report["ideal_bits"] * 1.001 + 1e-3 * dims + 64, (payload_bits, report)
    assert stats["header_bytes"] < 300  # numbered names and one size: 12 bytes of image list, the rest fixed
    assert same_images(decompress(model, data), images)


# --------------------------------------------------------------------- image files
def test_sample_mapping():
    values, mapping = samples_to_values(np.array([[0, 255]], np.uint8), 2)
    assert mapping == "scaled" and values.tolist() == [[0, 1]]
    values, mapping = samples_to_values(np.array([[0, 1]], np.uint8), 2)
    assert mapping == "raw" and values.tolist() == [[0, 1]]
    assert samples_to_values(np.array([[0, 1, 255]], np.uint8), 2) is None
    values, mapping = samples_to_values(np.arange(256, dtype=np.uint8), 256)
    assert mapping == "scaled" and np.array_equal(values, np.arange(256))
    values, mapping = samples_to_values(np.array([0, 5, 16], np.uint8), 17)
    assert mapping == "raw" and values.tolist() == [0, 5, 16]


def cli(argv):
    parser = argparse.ArgumentParser(prog="pixelrnn")
    sub = parser.add_subparsers(dest="command", required=True)
    add_compress_parser(sub)
    add_decompress_parser(sub)
    args = parser.parse_args(argv)
    args.func(args)


def pixels(path):
    with Image.open(path) as image:
        return image.mode, image.size, np.asarray(image).copy()


def test_cli_binary_model_restores_files_bit_for_bit(tmp_path, capsys):
    model = tiny("pixelcnn", 1, 2)
    checkpoint = save_model(model, tmp_path / "run" / "best.safetensors", {"image_size": "6x5"})
    rng = np.random.default_rng(0)
    folder = tmp_path / "in"
    folder.mkdir()
    bits = rng.integers(0, 2, size=(6, 5)).astype(bool)
    Image.fromarray(bits).save(folder / "b_one_bit.png")  # mode "1"
    Image.fromarray((bits * 255).astype(np.uint8), mode="L").save(folder / "c_grey.png")  # L {0, 255}
    Image.fromarray(bits.astype(np.uint8), mode="L").save(folder / "d_raw.png")  # L {0, 1}
    rgb = np.repeat((bits * 255).astype(np.uint8)[..., None], 3, axis=2)
    Image.fromarray(rgb, mode="RGB").save(folder / "e_rgb.bmp")  # grey content in an RGB file
    single = tmp_path / "a_other.png"
    Image.fromarray((rng.integers(0, 2, size=(3, 7)) * 255).astype(np.uint8), mode="L").save(single)
    out = tmp_path / "images.pxrnn"
    cli(["compress", str(tmp_path / "run"), str(single), str(folder), "-o", str(out), "--stats", "-q", "--batch-size", "2"])
    printed = capsys.readouterr().out
    assert "bits/dim" in printed and "model NLL" in printed and "overhead" in printed
    restored = tmp_path / "out"
    cli(["decompress", str(checkpoint), str(out), "-o", str(restored), "-q"])
    sources = [single, folder / "b_one_bit.png", folder / "c_grey.png", folder / "d_raw.png", folder / "e_rgb.bmp"]
    assert sorted(p.name for p in restored.iterdir()) == sorted(p.stem + ".png" for p in sources)
    for source in sources:
        mode, size, array = pixels(source)
        assert pixels(restored / (source.stem + ".png"))[0] == mode
        assert pixels(restored / (source.stem + ".png"))[1] == size
        assert np.array_equal(pixels(restored / (source.stem + ".png"))[2], array)
    assert [i.mapping for i in decompress(model, out.read_bytes())] == ["scaled", "scaled", "scaled", "raw", "scaled"]


def test_cli_colour_model_and_dataset_inputs(tmp_path):
    model = tiny("diagonal_bilstm", 3, 256)
    save_model(model, tmp_path / "model.safetensors")
    rng = np.random.default_rng(1)
    folder = tmp_path / "in"
    folder.mkdir()
    Image.fromarray(rng.integers(0, 256, size=(4, 3, 3), dtype=np.uint8), mode="RGB").save(folder / "colour.png")
    Image.fromarray(rng.integers(0, 256, size=(2, 5), dtype=np.uint8), mode="L").save(folder / "grey.png")
    for arithmetic in ("integer", "float32"):
        cli(["compress", str(tmp_path / "model.safetensors"), str(folder), "-o", str(tmp_path / "x.bin"), "-q", "--force", "--arithmetic", arithmetic])
        assert read_container((tmp_path / "x.bin").read_bytes()).arithmetic == arithmetic
        cli(["decompress", str(tmp_path / "model.safetensors"), str(tmp_path / "x.bin"), "-o", str(tmp_path / arithmetic), "-q"])
        for name in ("colour.png", "grey.png"):
            assert all(np.array_equal(a, b) if isinstance(a, np.ndarray) else a == b
                       for a, b in zip(pixels(folder / name), pixels(tmp_path / arithmetic / name)))
    # Datasets: model values, 2-level data written as 0/255, other levels as the raw value.
    binary = tiny("pixelcnn", 1, 2)
    save_model(binary, tmp_path / "binary.safetensors")
    data = rng.integers(0, 2, size=(12, 1, 4, 4), dtype=np.uint8)
    np.savez(tmp_path / "set.npz", test=data, levels=2)
    cli(["compress", str(tmp_path / "binary.safetensors"), "--dataset", f"npz:{tmp_path / 'set.npz'}", "--split", "test",
         "--limit", "10", "-o", str(tmp_path / "set.bin"), "-q"])
    cli(["decompress", str(tmp_path / "binary.safetensors"), str(tmp_path / "set.bin"), "-o", str(tmp_path / "set"), "-q"])
    written = sorted((tmp_path / "set").iterdir())
    assert [p.name for p in written] == [f"{k:05d}.png" for k in range(10)]
    for k, path in enumerate(written):
        mode, _, array = pixels(path)
        assert mode == "L" and np.array_equal(array, data[k, 0] * 255)
    assert read_container((tmp_path / "set.bin").read_bytes()).header_bytes < 300


def test_cli_user_errors(tmp_path):
    from pixelrnn.cli import UserError

    model = tiny("pixelcnn", 1, 2)
    save_model(model, tmp_path / "m.safetensors")
    save_model(tiny("pixelcnn", 1, 2, seed=4), tmp_path / "other.safetensors")
    ckpt = str(tmp_path / "m.safetensors")
    rgba = tmp_path / "rgba.png"
    Image.new("RGBA", (3, 3)).save(rgba)
    palette = tmp_path / "palette.png"
    Image.new("P", (3, 3)).save(palette)
    grey7 = tmp_path / "grey7.png"
    Image.fromarray(np.full((3, 3), 7, np.uint8), mode="L").save(grey7)
    colour = tmp_path / "colour.png"
    Image.fromarray(np.arange(27, dtype=np.uint8).reshape(3, 3, 3), mode="RGB").save(colour)
    twins = tmp_path / "twins"
    twins.mkdir()
    Image.new("L", (2, 2)).save(twins / "a.png")
    Image.new("L", (2, 2)).save(twins / "a.bmp")
    (tmp_path / "empty").mkdir()
    cases = [
        ([str(rgba)], "mode RGBA"), ([str(palette)], "mode P"), ([str(grey7)], "cannot be coded exactly"),
        ([str(colour)], "colour image"), ([str(twins)], "both decompress"), ([str(tmp_path / "missing.png")], "does not exist"),
        ([str(tmp_path / "empty")], "no image files"), ([], "nothing to compress"),
    ]
    for inputs, message in cases:
        with pytest.raises(UserError, match=message):
            cli(["compress", ckpt, *inputs, "-o", str(tmp_path / "x.bin"), "-q"])
    assert not (tmp_path / "x.bin").exists()
    with pytest.raises(UserError, match="batch-size"):
        cli(["compress", ckpt, str(twins / "a.png"), "-o", str(tmp_path / "x.bin"), "--batch-size", "0"])
    cli(["compress", ckpt, str(twins / "a.png"), "-o", str(tmp_path / "x.bin"), "-q"])
    with pytest.raises(UserError, match="another model"):
        cli(["decompress", str(tmp_path / "other.safetensors"), str(tmp_path / "x.bin"), "-o", str(tmp_path / "out"), "-q"])
    (tmp_path / "bad.bin").write_bytes((tmp_path / "x.bin").read_bytes()[:-3])
    with pytest.raises(UserError, match="truncated"):
        cli(["decompress", ckpt, str(tmp_path / "bad.bin"), "-o", str(tmp_path / "out"), "-q"])
    assert not (tmp_path / "out").exists()


# --------------------------------------------------------------------- real data
@pytest.mark.slow
def test_binarized_mnist_round_trip():
    data_dir = os.environ.get("PIXELRNN_DATA_DIR")
    if not data_dir:
        pytest.skip("set PIXELRNN_DATA_DIR to a folder with binarized_mnist/*.amat for the real-data round trip")
    from pixelrnn.data import load_dataset

    test_set = load_dataset("binarized_mnist", "test", data_dir=data_dir)
    model = tiny("pixelcnn", 1, 2, seed=2)
    images = compression.images_from_array(test_set.images[:3000], 2)
    data = compress(model, images, batch_size=1000)
    assert same_images(decompress(model, data), images)
    stats = compression_stats(model, images, data)
    assert abs(stats["overhead_percent"]) < 0.5, stats
