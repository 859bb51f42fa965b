"""Priors over discrete codes: levels up to 4096, stored as uint16, trained, sampled, evaluated and compressed bit for bit."""

import numpy as np
import pytest

from pixelrnn.cli import main
from pixelrnn.codec import compress, decompress, images_from_array, read_container
from pixelrnn.data import DatasetError, load_dataset
from pixelrnn.training import load_model_from

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture
def codes(tmp_path, monkeypatch):
    monkeypatch.setenv("PIXELRNN_CACHE_DIR", str(tmp_path / "cache"))
    rng = np.random.default_rng(0)
    values = rng.integers(0, 512, (60, 4, 4))
    values[:, 0, 0] = 511
    path = tmp_path / "codes.npz"
    np.savez(path, train=values, train_labels=np.arange(60) % 3, test=values[:9], test_labels=np.arange(9) % 3)
    return path, values


def test_codes_above_256_levels_are_uint16_through_the_cache(codes):
    path, values = codes
    train = load_dataset(f"npz:{path}", "train_full", levels=512, progress=False)
    assert isinstance(train.images, np.memmap) and train.images.dtype == np.uint16
    assert np.array_equal(train.images[:, 0], values) and train.levels == 512 and train.labels.tolist() == (np.arange(60) % 3).tolist()
    direct = load_dataset(f"npz:{path}", "train_full", levels=512, cache=False)
    assert np.array_equal(direct.images, train.images)
    with pytest.raises(DatasetError, match="codes must lie in 0..255 for data.levels=256|pixel values must lie in 0..255"):
        load_dataset(f"npz:{path}", "test", levels=256, progress=False)
    with pytest.raises(DatasetError, match="must lie in 2..4096"):
        load_dataset(f"npz:{path}", "test", levels=5000, progress=False)


def test_a_class_conditional_prior_over_512_codes_trains_samples_and_evaluates(codes, tmp_path, capsys):
    path, values = codes
    run = tmp_path / "prior"
    assert main(["train", "--dataset", f"npz:{path}", "--arch", "pixelcnn", "--set", "data.levels=512", "--set", "model.classes=auto",
                 "--set", "model.hidden=4", "--set", "model.layers=1", "--set", "model.output_hidden=8", "--set", "train.batch_size=8",
                 "--steps", "3", "--out", str(run), "-q", "--device", "cpu"]) == 0
    assert "512 levels, conditioned on 3 classes" in capsys.readouterr().out
    assert main(["sample", str(run), "--per-class", "2", "--out", str(tmp_path / "s.png"), "--seed", "0", "-q"]) == 0
    drawn = np.load(tmp_path / "s.npz")["images"]
    assert drawn.shape == (6, 1, 4, 4) and drawn.max() < 512
    assert main(["evaluate", str(run), "-q"]) == 0
    assert "test: conditional" in capsys.readouterr().out
    assert main(["compress", str(run), "--dataset", f"npz:{path}", "--split", "test", "-o", str(tmp_path / "c.pxr"), "-q"]) == 0
    container = read_container((tmp_path / "c.pxr").read_bytes())
    assert (container.version, container.levels, container.classes, container.arithmetic) == (4, 512, 3, "integer")
    assert main(["decompress", str(run), str(tmp_path / "c.pxr"), "-o", str(tmp_path / "back.npz"), "-q"]) == 0
    with np.load(tmp_path / "back.npz") as back:
        assert back["images"].dtype == np.uint16 and np.array_equal(back["images"][:, 0], values[:9])
        assert back["labels"].tolist() == (np.arange(9) % 3).tolist()


def test_an_unconditional_prior_over_512_codes_trains_samples_and_compresses_bit_for_bit(tmp_path, monkeypatch):
    monkeypatch.setenv("PIXELRNN_CACHE_DIR", str(tmp_path / "cache"))
    values = np.random.default_rng(1).integers(0, 512, (40, 1, 3, 4))  # (N, 1, H, W) codes
    values[0, 0, 0, 0], values[1, 0, 2, 3] = 511, 300
    np.savez(tmp_path / "codes.npz", train=values, test=values[:5])
    run = tmp_path / "prior"
    assert main(["train", "--dataset", f"npz:{tmp_path / 'codes.npz'}", "--arch", "row_lstm", "--set", "data.levels=512",
                 "--set", "model.hidden=3", "--set", "model.layers=1", "--set", "model.output_hidden=4", "--set", "train.batch_size=8",
                 "--steps", "2", "--out", str(run), "-q", "--device", "cpu"]) == 0
    assert main(["sample", str(run), "-n", "2", "--out", str(tmp_path / "s.png"), "--seed", "0", "-q"]) == 0
    drawn = np.load(tmp_path / "s.npz")["images"]
    model = load_model_from(str(run), "cpu")
    images = images_from_array(np.concatenate([values[:5], drawn]), 512)
    data = compress(model, images, batch_size=4)
    assert read_container(data).version == 4 and read_container(data).classes == 0
    decoded = decompress(model, data)
    assert all(image.values.dtype == np.uint16 and np.array_equal(image.values, expected)
               for image, expected in zip(decoded, np.concatenate([values[:5], drawn])))
