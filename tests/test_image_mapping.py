"""One mapping from 8-bit image files to model values, whichever command reads the file.

The same files (modes 1, L with {0, 1}, L with {0, 255}, 8-bit L, RGB, 16-bit grey) go through
``complete --image``, ``compress`` and a ``folder:`` dataset; every entry point that accepts a
file gives the same model values, and those that cannot take it exactly say so.
"""

import numpy as np
import pytest
from PIL import Image

from pixelrnn import build_model, save_model
from pixelrnn.cli import main
from pixelrnn.codec import decompress
from pixelrnn.data import load_dataset
from pixelrnn.images import load_samples_npz

pytestmark = pytest.mark.usefixtures("one_thread")

HEIGHT, WIDTH = 3, 4


def files(folder):
    """name -> (file path, its samples (C, H, W) as a reader should see them)."""
    rng = np.random.default_rng(0)
    bits = rng.integers(0, 2, size=(HEIGHT, WIDTH)).astype(np.uint8)
    bits[0, :2] = (0, 1)  # both values present in every binary file
    grey = rng.integers(0, 256, size=(HEIGHT, WIDTH), dtype=np.uint8)
    grey[0, :2] = (3, 200)  # neither binary nor {0, 255}
    rgb = rng.integers(0, 256, size=(HEIGHT, WIDTH, 3), dtype=np.uint8)
    deep = rng.integers(0, 1 << 16, size=(HEIGHT, WIDTH)).astype(np.uint16)
    made = {
        "one_bit": (Image.fromarray(bits.astype(bool)), bits * 255),
        "raw_binary": (Image.fromarray(bits, mode="L"), bits),
        "scaled_binary": (Image.fromarray(bits * 255, mode="L"), bits * 255),
        "grey": (Image.fromarray(grey, mode="L"), grey),
        "colour": (Image.fromarray(rgb, mode="RGB"), rgb.transpose(2, 0, 1)),
        "sixteen_bit": (Image.fromarray(deep), (deep >> 8).astype(np.uint8)),
    }
    out = {}
    for name, (image, samples) in made.items():
        (folder / name).mkdir()
        path = folder / name / f"{name}.png"
        image.save(path)
        out[name] = (path, samples if samples.ndim == 3 else samples[None])
    return out


def through_complete(checkpoint, path, tmp_path):
    """Model values as ``pixelrnn complete --image`` reads them (all rows kept: the completion is the input)."""
    out = tmp_path / f"completed_{path.stem}.png"
    code = main(["complete", str(checkpoint), "--image", str(path), "--keep-rows", str(HEIGHT), "-k", "1", "--out", str(out),
                 "-q", "--device", "cpu", "--seed", "0"])
    return load_samples_npz(out.with_suffix(".npz"))[0].numpy() if code == 0 else None


def through_compress(model, checkpoint, path, tmp_path):
    """Model values as ``pixelrnn compress`` codes them, or None when it refuses the file."""
    out = tmp_path / f"{path.stem}.pxr"
    if main(["compress", str(checkpoint), str(path), "-o", str(out), "-q"]) != 0:
        return None
    return decompress(model, out.read_bytes())[0].values


def through_folder_dataset(path):
    return load_dataset(f"folder:{path.parent}", "all").images[0]


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    folder = tmp_path_factory.mktemp("models")
    made = {}
    for channels, levels in ((1, 2), (1, 256), (3, 256)):
        model = build_model("pixelcnn", channels=channels, levels=levels, hidden=3, layers=1, output_hidden=3)
        made[channels, levels] = model, save_model(model, folder / f"c{channels}_l{levels}.safetensors",
                                                   {"image_size": f"{HEIGHT}x{WIDTH}"})
    return made


@pytest.mark.parametrize("name", ["one_bit", "raw_binary", "scaled_binary", "grey", "colour", "sixteen_bit"])
def test_every_entry_point_reads_a_256_level_file_alike(tmp_path, models, name, capsys):
    path, samples = files(tmp_path)[name]
    model, checkpoint = models[samples.shape[0], 256]
    expected = samples  # 256 levels: the samples are the values
    assert np.array_equal(through_folder_dataset(path), expected)
    assert np.array_equal(through_complete(checkpoint, path, tmp_path), expected)
    coded = through_compress(model, checkpoint, path, tmp_path)
    if name == "sixteen_bit":  # 16 bits cannot be written back exactly: refused, with the reason
        assert coded is None and "mode I;16 cannot be restored exactly" in capsys.readouterr().err
    else:
        assert np.array_equal(coded, expected)


@pytest.mark.parametrize("name,expected", [
    ("one_bit", "bits"), ("raw_binary", "bits"), ("scaled_binary", "bits"), ("grey", "binned"), ("sixteen_bit", "binned"),
])
def test_a_binary_model_reads_every_file_alike(tmp_path, models, name, expected, capsys):
    path, samples = files(tmp_path)[name]
    model, checkpoint = models[1, 2]
    values = samples // 255 if name in ("one_bit", "scaled_binary") else samples
    if expected == "binned":
        values = samples.astype(np.int64) * 2 // 256  # no exact mapping: equal bins
    completed = through_complete(checkpoint, path, tmp_path)
    assert np.array_equal(completed, values)
    coded = through_compress(model, checkpoint, path, tmp_path)
    if expected == "bits":
        assert set(np.unique(values)) == {0, 1} and np.array_equal(coded, values)
    else:  # lossy for the codec: refused with the reason
        assert coded is None and "cannot" in capsys.readouterr().err
