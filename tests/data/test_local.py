"""The user's own data (pixelrnn.data.local): image folders and npz files."""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import assume, given
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from PIL import Image

from dataset_files import FAST, _private_cache, one_line_error, rand_u8  # noqa: F401  (the fixture applies here)
from pixelrnn import data as D
from pixelrnn.data import DatasetError, load_dataset


def test_folder_modes_order_and_splits(tmp_path):
    rng = np.random.default_rng(3)
    grey = [rand_u8(rng, (5, 4)) for _ in range(12)]
    for i, g in enumerate(grey):  # nested, sorted by relative path
        sub = tmp_path / ("a" if i < 6 else "b")
        sub.mkdir(exist_ok=True)
        Image.fromarray(g).save(sub / f"{i:02d}.png")
    s = load_dataset(f"folder:{tmp_path}", "all")
    assert s.images.shape == (12, 1, 5, 4) and s.levels == 256
    assert np.array_equal(s.images[:, 0], np.stack(grey))
    # index % 10: 0 -> test, 1 -> valid, the rest -> train; every image in exactly one split
    splits = {split: load_dataset(f"folder:{tmp_path}", split).images[:, 0] for split in ("train", "valid", "test")}
    assert np.array_equal(splits["test"], np.stack([grey[0], grey[10]]))
    assert np.array_equal(splits["valid"], np.stack([grey[1], grey[11]]))
    assert np.array_equal(splits["train"], np.stack(grey[2:10]))

    rgb_dir = tmp_path / "rgb"
    rgba = rand_u8(rng, (3, 2, 4))
    rgb_dir.mkdir()
    Image.fromarray(rgba, "RGBA").save(rgb_dir / "x.png")
    Image.fromarray(rgba[..., :3], "RGB").save(rgb_dir / "y.bmp")
    got = load_dataset(f"folder:{rgb_dir}", "all").images
    assert got.shape == (2, 3, 3, 2) and np.array_equal(got[0], rgba[..., :3].transpose(2, 0, 1))
    assert np.array_equal(got[1], got[0])  # alpha dropped

    pal_dir = tmp_path / "pal"
    pal_dir.mkdir()
    Image.fromarray(grey[0]).convert("P").save(pal_dir / "p.gif")
    assert np.array_equal(load_dataset(f"folder:{pal_dir}", "all").images[0, 0], grey[0])


def test_folder_errors(tmp_path):
    Image.new("L", (4, 4)).save(tmp_path / "a.png")
    Image.new("L", (5, 4)).save(tmp_path / "b.png")
    Image.new("L", (6, 4)).save(tmp_path / "c.png")
    with pytest.raises(DatasetError) as e:
        load_dataset(f"folder:{tmp_path}", "all")
    msg = one_line_error(e)
    assert "b.png" in msg and "5x4" in msg and "expected 4x4" in msg and "c.png" not in msg and "data.size" in msg
    (tmp_path / "b.png").unlink()
    (tmp_path / "c.png").unlink()
    Image.new("RGB", (4, 4), (10, 20, 30)).save(tmp_path / "d.png")
    mixed = load_dataset(f"folder:{tmp_path}", "all").images  # a grey file among colour ones is repeated to colour
    assert mixed.shape == (2, 3, 4, 4) and (mixed[0] == 0).all() and list(mixed[1, :, 0, 0]) == [10, 20, 30]
    with pytest.raises(DatasetError, match="data.channels=2"):
        load_dataset(f"folder:{tmp_path}", "all", channels=2)
    (tmp_path / "empty").mkdir()
    with pytest.raises(DatasetError, match="no PNG"):
        load_dataset(f"folder:{tmp_path / 'empty'}")
    with pytest.raises(DatasetError, match="not a directory"):
        load_dataset(f"folder:{tmp_path / 'nope'}")


def test_folder_levels_map_8_bit_samples_exactly(tmp_path):
    rng = np.random.default_rng(4)
    binary = [rng.integers(0, 2, (4, 3), dtype=np.uint8) for _ in range(3)]
    for i, b in enumerate(binary):
        Image.fromarray(b * 255).convert("1").save(tmp_path / f"{i}.png")  # 1-bit files
    assert load_dataset(f"folder:{tmp_path}", "all").levels == 256  # without data.levels: 8-bit
    two = load_dataset(f"folder:{tmp_path}", "all", levels=2)
    assert two.levels == 2 and np.array_equal(two.images[:, 0], np.stack(binary))
    Image.fromarray(np.full((4, 3), 128, np.uint8)).save(tmp_path / "3.png")
    with pytest.raises(DatasetError) as e:
        load_dataset(f"folder:{tmp_path}", "all", levels=2)
    msg = one_line_error(e)
    assert "3.png" in msg and "[128, 128]" in msg and "data.levels=2" in msg and "0..1" in msg
    with pytest.raises(DatasetError, match='digits has 17 levels; to read it with data.levels=4, set data.mapping = "quantise"'):
        load_dataset("digits", "train", levels=4)


def test_npz_without_valid_gets_the_last_tenth_of_train(tmp_path):
    x = np.arange(20 * 4, dtype=np.uint8).reshape(20, 1, 2, 2) % 3
    np.savez(tmp_path / "a.npz", train=x, test=x[:2])
    name = f"npz:{tmp_path / 'a.npz'}"
    assert D.dataset_splits(name) == ("train", "valid", "test", "train_full")
    assert np.array_equal(load_dataset(name, "valid").images, x[18:])
    assert np.array_equal(load_dataset(name, "train").images, x[:18])
    assert np.array_equal(load_dataset(name, "train_full").images, x)
    assert load_dataset(name, "train", levels=3).levels == 3
    with pytest.raises(DatasetError, match="do not fit data.levels=2"):
        load_dataset(name, "train", levels=2)  # values up to 2 do not fit two levels


@FAST
@given(x=arrays(np.uint8, st.tuples(st.integers(1, 3), st.sampled_from([1, 3]),
                                    st.integers(2, 5), st.integers(2, 5))),
       layout=st.sampled_from(["NCHW", "NHWC", "NHW"]))
def test_npz_layouts_round_trip(x, layout):
    if layout == "NHW":
        x = x[:, :1]
    assume(layout != "NHWC" or x.shape[2] not in (1, 3))  # else ambiguous: read as NCHW
    stored = {"NCHW": x, "NHWC": x.transpose(0, 2, 3, 1), "NHW": x[:, 0]}[layout]
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "a.npz"
        np.savez(path, train=stored, test=stored[:1])
        s = load_dataset(f"npz:{path}", "train")
    assert np.array_equal(s.images, x)
    assert s.levels == (256 if x.max() > 1 else 2)


def test_npz_keys_levels_and_errors(tmp_path):
    x = np.array([[[0, 1], [1, 0]]], np.int64)
    np.savez(tmp_path / "b.npz", x_train=x, valid_x=x + 1)
    assert load_dataset(f"npz:{tmp_path / 'b.npz'}", "train").levels == 256  # valid has 2
    np.savez(tmp_path / "c.npz", train=x, levels=np.array(5))
    assert load_dataset(f"npz:{tmp_path / 'c.npz'}", "train").levels == 5
    np.savez(tmp_path / "d.npz", train=x)
    s = load_dataset("npz:d.npz", "train", data_dir=tmp_path)  # relative to data_dir
    assert s.levels == 2 and s.images.dtype == np.uint8
    with pytest.raises(DatasetError, match="accepted: train, valid, train_full"):
        load_dataset(f"npz:{tmp_path / 'd.npz'}", "test")
    np.savez(tmp_path / "e.npz", train=x.astype(np.float32))
    with pytest.raises(DatasetError, match="integer"):
        load_dataset(f"npz:{tmp_path / 'e.npz'}", "train")
    amb = np.arange(2 * 3 * 5 * 3, dtype=np.uint8).reshape(2, 3, 5, 3)
    np.savez(tmp_path / "amb.npz", train=amb)  # axes 1 and 3 both qualify: NCHW wins
    assert np.array_equal(load_dataset(f"npz:{tmp_path / 'amb.npz'}", "train").images, amb)
    np.savez(tmp_path / "f.npz", train=np.zeros((2, 4, 4, 4), np.uint8))
    with pytest.raises(DatasetError, match="1 or 3 channels"):
        load_dataset(f"npz:{tmp_path / 'f.npz'}", "train")
    with pytest.raises(DatasetError, match="not found"):
        load_dataset(f"npz:{tmp_path / 'g.npz'}", "train")
