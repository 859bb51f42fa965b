"""Preprocessing in the data config, the same for every dataset kind: levels + mapping, size + resize, channels."""

import numpy as np
import pytest
from PIL import Image

from pixelrnn import DatasetError, load_dataset
from pixelrnn.data.preprocess import Preprocessing, resized, to_channels


def write_folder(folder, images, mode="L"):
    folder.mkdir(parents=True, exist_ok=True)
    for index, image in enumerate(images):
        Image.fromarray(image, mode).save(folder / f"{index:02d}.png")


def test_black_and_white_images_read_alike_from_a_folder_and_an_npz(tmp_path):
    """Friction 2: 0/255 images that train as folder: with data.levels=2 were refused as npz: (value 255 >= levels 2)."""
    rng = np.random.default_rng(0)
    images = (rng.integers(0, 2, (12, 5, 4)) * 255).astype(np.uint8)
    write_folder(tmp_path / "bw", list(images))
    np.savez(tmp_path / "bw.npz", train=images)
    from_folder = load_dataset(f"folder:{tmp_path / 'bw'}", "all", levels=2).images
    from_npz = load_dataset(f"npz:{tmp_path / 'bw.npz'}", "train_full", levels=2).images
    assert np.array_equal(from_folder, from_npz) and np.array_equal(from_npz[:, 0], images // 255)


def test_8_bit_images_are_quantised_to_n_levels(tmp_path):
    """Friction 3: folder:gray --set data.levels=16 was refused; data.mapping = quantise bins v * L // 256."""
    grey = np.arange(12 * 4 * 4, dtype=np.int64).reshape(12, 4, 4).astype(np.uint8)
    write_folder(tmp_path / "grey", list(grey))
    with pytest.raises(DatasetError, match='data.mapping = "quantise"'):
        load_dataset(f"folder:{tmp_path / 'grey'}", "all", levels=16)
    sixteen = load_dataset(f"folder:{tmp_path / 'grey'}", "all", levels=16, mapping="quantise")
    assert sixteen.levels == 16 and np.array_equal(sixteen.images[:, 0], grey // 16)
    np.savez(tmp_path / "grey.npz", train=grey)  # an npz, and a named dataset, alike
    assert np.array_equal(load_dataset(f"npz:{tmp_path / 'grey.npz'}", "train_full", levels=16, mapping="quantise").images, sixteen.images)
    digits = load_dataset("digits", "test", levels=4, mapping="quantise")
    assert digits.levels == 4 and np.array_equal(digits.images, load_dataset("digits", "test").images.astype(np.int64) * 4 // 17)


def test_mixed_sizes_are_resized_by_crop_or_fit(tmp_path):
    """Friction 10: no resize for mixed sizes. data.size = [H, W] with data.resize = crop | fit."""
    wide = np.zeros((4, 8), np.uint8)
    wide[:, 2:6] = 255  # a white middle: crop keeps it, fit squeezes the whole width
    write_folder(tmp_path / "mixed", [wide, np.full((6, 6), 255, np.uint8)])
    with pytest.raises(DatasetError, match="data.size"):
        load_dataset(f"folder:{tmp_path / 'mixed'}", "all")
    crop = load_dataset(f"folder:{tmp_path / 'mixed'}", "all", size=(4, 4), levels=2).images
    fit = load_dataset(f"folder:{tmp_path / 'mixed'}", "all", size=(4, 4), resize="fit", levels=2).images
    assert crop.shape == fit.shape == (2, 1, 4, 4)
    assert (crop[0] == 1).all() and (crop[1] == 1).all()
    assert (fit[0, 0, :, 1:3] == 1).all() and (fit[0, 0, :, 0] == 0).all()
    assert resized(np.zeros((3, 5, 7), np.uint8), (2, 3), "fit", nearest=False).shape == (3, 2, 3)


def test_channels_grey_to_colour_and_back_for_every_kind(tmp_path):
    """Friction 10: an RGB folder with one grey file failed to train; data.channels = 1 | 3 converts."""
    colour = np.zeros((4, 4, 3), np.uint8)
    colour[..., 0] = 200
    write_folder(tmp_path / "rgb", [colour], "RGB")
    Image.fromarray(np.full((4, 4), 50, np.uint8), "L").save(tmp_path / "rgb" / "zz_grey.png")
    both = load_dataset(f"folder:{tmp_path / 'rgb'}", "all").images
    assert both.shape == (2, 3, 4, 4) and (both[1] == 50).all()
    grey = load_dataset(f"folder:{tmp_path / 'rgb'}", "all", channels=1).images
    assert grey.shape == (2, 1, 4, 4) and (grey[0] == 60).all() and (grey[1] == 50).all()  # 200 * 299 / 1000 = 59.8
    assert load_dataset("digits", "test", channels=3).images.shape[1] == 3
    assert to_channels(np.full((3, 2, 2), 7, np.uint8), 1).shape == (1, 2, 2)


def test_the_file_of_sample_is_a_dataset_and_errors_name_the_keys(tmp_path):
    """Friction 11: sample's npz (key images) was refused as npz:, and the error did not name the keys."""
    images = np.random.default_rng(1).integers(0, 2, (20, 1, 3, 3)).astype(np.uint8)
    np.savez(tmp_path / "samples.npz", images=images)
    name = f"npz:{tmp_path / 'samples.npz'}"
    assert np.array_equal(load_dataset(name, "train").images, images[:18])
    assert np.array_equal(load_dataset(name, "valid").images, images[18:])
    np.savez(tmp_path / "odd.npz", pictures=images)
    with pytest.raises(DatasetError, match="the file holds pictures"):
        load_dataset(f"npz:{tmp_path / 'odd.npz'}", "train")


def test_settings_are_checked():
    for bad, match in [(dict(levels=1), "data.levels=1"), (dict(mapping="round"), "data.mapping='round'"),
                       (dict(size=(4,)), "data.size"), (dict(resize="pad"), "data.resize='pad'"), (dict(channels=2), "data.channels=2")]:
        with pytest.raises(DatasetError, match=match.replace("[", r"\[").replace("(", r"\(")):
            Preprocessing(**bad)
