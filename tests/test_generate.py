"""Sample files, grids, figures and the sample/complete commands (pixelrnn.generate)."""

import argparse
import json

import numpy as np
import pytest
import torch
from PIL import Image

from pixelrnn import build_model, save_model
from pixelrnn import generate
from pixelrnn.generate import (GRID_PADDING, PADDING_VALUE, completion_grid, load_image_file, load_samples_npz,
                               plot_dependency_field, plot_softmax_distributions, plot_training_curve, save_grid,
                               save_samples_npz)

from dependency import earlier_mask


pytestmark = pytest.mark.usefixtures("one_thread")


def read_png(path):
    with Image.open(path) as image:
        assert image.format == "PNG"
        return image.mode, np.asarray(image)


def tile_at(grid, row, column, height, width):
    top, left = GRID_PADDING + row * (height + GRID_PADDING), GRID_PADDING + column * (width + GRID_PADDING)
    return grid[top : top + height, left : left + width]


def no_temp_files(folder):
    return not [p for p in folder.iterdir() if p.name.endswith(".tmp")]


# --------------------------------------------------------------------- grids and npz
@pytest.mark.parametrize("channels,levels", [(1, 2), (3, 256), (1, 4)])
def test_grid_png_round_trip(tmp_path, channels, levels):
    images = torch.randint(0, levels, (5, channels, 3, 4), generator=torch.Generator().manual_seed(0))
    path = save_grid(images, levels, tmp_path / "grid.png", nrow=2)
    mode, grid = read_png(path)
    assert mode == ("L" if channels == 1 else "RGB")
    # 3 rows of 2 tiles of 3x4, 2 pixels of padding around every tile
    assert grid.shape[:2] == (GRID_PADDING + 3 * (3 + GRID_PADDING), GRID_PADDING + 2 * (4 + GRID_PADDING))
    expected = np.rint(images.numpy() * (255 / (levels - 1))).astype(np.uint8)
    for k in range(5):
        tile = tile_at(grid, k // 2, k % 2, 3, 4)
        tile = tile[None] if channels == 1 else tile.transpose(2, 0, 1)
        assert np.array_equal(tile, expected[k])
    assert (grid[:GRID_PADDING] == PADDING_VALUE).all()
    assert (tile_at(grid, 2, 1, 3, 4) == PADDING_VALUE).all()  # the unused sixth tile
    if levels == 2:
        assert set(np.unique(grid)) <= {0, 255, PADDING_VALUE}  # binary: black and white
    assert no_temp_files(tmp_path)


def test_grid_rejects_values_outside_the_levels(tmp_path):
    with pytest.raises(ValueError, match=r"\[0, 2\)"):
        save_grid(torch.full((1, 1, 2, 2), 2), 2, tmp_path / "bad.png")
    assert not (tmp_path / "bad.png").exists()


def test_npz_round_trip(tmp_path):
    images = torch.randint(0, 256, (4, 3, 5, 6))
    path = save_samples_npz(images, tmp_path / "samples.npz")
    assert path == tmp_path / "samples.npz" and no_temp_files(tmp_path)
    with np.load(path) as data:
        assert data.files == ["images"] and data["images"].shape == (4, 3, 5, 6) and data["images"].dtype == np.uint8
    assert torch.equal(load_samples_npz(path), images)
    wide = torch.tensor([[[[0, 1000]]]])  # values beyond 8 bits keep a wider integer type
    assert torch.equal(load_samples_npz(save_samples_npz(wide, tmp_path / "wide.npz")), wide)
    save_samples_npz(images[:1], path)  # overwriting replaces the file
    assert load_samples_npz(path).shape == (1, 3, 5, 6)


def test_completion_grid_layout():
    original = torch.randint(0, 4, (2, 1, 4, 4), generator=torch.Generator().manual_seed(1))
    completions = torch.randint(0, 4, (2, 3, 1, 4, 4), generator=torch.Generator().manual_seed(2))
    known = torch.zeros(4, 4, dtype=torch.bool)
    known[:2] = True
    grid = completion_grid(original, completions, original, levels=4, known=known)
    assert grid.shape == (GRID_PADDING + 2 * (4 + GRID_PADDING), GRID_PADDING + 5 * (4 + GRID_PADDING), 1)
    scale = 255 // 3
    for n in range(2):
        occluded = tile_at(grid, n, 0, 4, 4)[..., 0]
        assert np.array_equal(occluded[:2], original[n, 0, :2].numpy() * scale)
        marks = set(np.unique(occluded[2:]))
        assert marks == {generate.UNKNOWN_DARK, generate.UNKNOWN_LIGHT}  # the unknown part: a grey checkerboard
        for k in range(3):
            assert np.array_equal(tile_at(grid, n, 1 + k, 4, 4)[..., 0], completions[n, k, 0].numpy() * scale)
        assert np.array_equal(tile_at(grid, n, 4, 4, 4)[..., 0], original[n, 0].numpy() * scale)
    # Negative values mark the unknown sub-pixels when no mask is given.
    marked = original.clone()
    marked[:, :, 2:] = -1
    assert np.array_equal(completion_grid(marked, completions, original, levels=4), grid)


# --------------------------------------------------------------------- figures
@pytest.fixture(scope="module")
def colour_model():
    torch.manual_seed(0)
    return build_model("row_lstm", channels=3, levels=16, hidden=6, layers=2, output_hidden=12).double()


def test_softmax_figure(tmp_path, colour_model):
    image = torch.randint(0, 16, (3, 5, 4), generator=torch.Generator().manual_seed(3))
    probs = plot_softmax_distributions(colour_model, image, [(0, 0, 0), (2, 3, 1), (1, 2)], tmp_path / "softmax.png")
    assert read_png(tmp_path / "softmax.png")[0] in ("RGB", "RGBA")
    assert probs.shape == (3, 16) and torch.allclose(probs.sum(1), torch.ones(3, dtype=probs.dtype))
    expected = torch.softmax(colour_model(image[None])[0, 2, :, 3, 1], dim=0)
    assert torch.allclose(probs[1], expected.detach())


@pytest.mark.parametrize("pixel", [(2, 1), (1, 2, 1), (0, 0, 0)])
def test_dependency_field_is_zero_on_the_future(tmp_path, colour_model, pixel):
    image = torch.randint(0, 16, (3, 4, 3), generator=torch.Generator().manual_seed(4))
    field = plot_dependency_field(colour_model, image, pixel, tmp_path / "field.png")
    read_png(tmp_path / "field.png")
    assert field.shape == (3, 4, 3)
    i, j = pixel[-2:]
    # A pixel's log-probability (all channels) may use its own earlier channels: allowed inputs are
    # those earlier than its last channel; a single channel c may use those earlier than (c, i, j).
    last = pixel[0] if len(pixel) == 3 else 2
    allowed = earlier_mask(3, 4, 3)[last, i, j]
    assert (field[~allowed] == 0).all()
    if pixel != (0, 0, 0):
        assert (field[allowed] != 0).any()  # the check has teeth: the past is reached
    else:
        assert (field == 0).all()  # the first sub-pixel depends on nothing


def test_training_curve(tmp_path):
    metrics = tmp_path / "metrics.jsonl"
    lines = [{"step": s, "split": "train", "nats": 90.0 - s, "bits_per_dim": 2.0 - s / 100} for s in range(0, 50, 5)]
    lines += [{"step": s, "split": "valid", "nats": 91.0 - s, "bits_per_dim": 2.1 - s / 100} for s in (10, 40)]
    metrics.write_text("\n".join(json.dumps(line) for line in lines) + "\n\n")
    plot_training_curve(metrics, tmp_path / "curve.png")
    assert read_png(tmp_path / "curve.png")[0] in ("RGB", "RGBA")
    metrics.write_text('{"step": 1, "split": "train", "nats": 3}\nnot json\n')
    with pytest.raises(ValueError, match="line 2"):
        plot_training_curve(metrics, tmp_path / "broken.png")
    assert not (tmp_path / "broken.png").exists()


# --------------------------------------------------------------------- commands
@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    folder = tmp_path_factory.mktemp("run")
    torch.manual_seed(1)
    model = build_model("diagonal_bilstm", channels=1, levels=2, hidden=4, layers=1, output_hidden=8)
    save_model(model, folder / "best.safetensors", metadata={"image_size": "5x4"})
    bare = folder / "bare" / "model.safetensors"
    save_model(model, bare)
    return folder, bare


def parse(argv):
    parser = argparse.ArgumentParser(prog="pixelrnn")
    sub = parser.add_subparsers(dest="command", required=True)
    generate.add_sample_parser(sub)
    generate.add_complete_parser(sub)
    return parser.parse_args(argv)


def run(argv):
    args = parse(argv)
    args.func(args)


def test_sample_command_writes_grid_and_npz(tmp_path, checkpoint):
    run_dir, _ = checkpoint
    out = tmp_path / "samples.png"
    run([ "sample", str(run_dir), "-n", "6", "--out", str(out), "--seed", "3", "-q", "--device", "cpu"])
    images = load_samples_npz(tmp_path / "samples.npz")
    assert images.shape == (6, 1, 5, 4) and set(images.unique().tolist()) <= {0, 1}
    mode, grid = read_png(out)
    assert mode == "L" and grid.shape == (GRID_PADDING + 2 * (5 + GRID_PADDING), GRID_PADDING + 3 * (4 + GRID_PADDING))
    assert np.array_equal(tile_at(grid, 1, 2, 5, 4), images[5, 0].numpy() * 255)
    # The same seed gives the same images, and the naive path draws the very same ones.
    run(["sample", str(run_dir), "-n", "6", "--out", str(tmp_path / "again.png"), "--seed", "3", "-q", "--naive", "--device", "cpu"])
    assert torch.equal(load_samples_npz(tmp_path / "again.npz"), images)


def test_sample_command_user_errors(tmp_path, checkpoint):
    from pixelrnn.cli import UserError

    run_dir, bare = checkpoint
    with pytest.raises(UserError, match="--height and --width"):
        run(["sample", str(bare), "-n", "1", "--out", str(tmp_path / "s.png"), "-q"])
    run(["sample", str(bare), "-n", "1", "--height", "2", "--width", "3", "--out", str(tmp_path / "s.png"), "-q", "--device", "cpu"])
    assert load_samples_npz(tmp_path / "s.npz").shape == (1, 1, 2, 3)
    with pytest.raises(UserError, match=".png"):
        run(["sample", str(run_dir), "--out", str(tmp_path / "s.jpg")])
    with pytest.raises(UserError, match="temperature"):
        run(["sample", str(run_dir), "--out", str(tmp_path / "s.png"), "--temperature", "0"])


def test_complete_command_keeps_the_top_rows(tmp_path, checkpoint):
    run_dir, _ = checkpoint
    picture = np.array([[0, 127, 128, 255]] * 5, dtype=np.uint8)  # 5x4 grey
    Image.fromarray(picture, mode="L").save(tmp_path / "digit.png")
    source = load_image_file(tmp_path / "digit.png", channels=1, levels=2)
    assert torch.equal(source[0, 0, 0], torch.tensor([0, 0, 1, 1]))  # v * levels // 256
    out = tmp_path / "completions.png"
    run(["complete", str(run_dir), "--image", str(tmp_path / "digit.png"), "--keep-rows", "2", "-k", "3",
         "--out", str(out), "--seed", "5", "-q", "--device", "cpu"])
    completions = load_samples_npz(tmp_path / "completions.npz")
    assert completions.shape == (3, 1, 5, 4)
    assert torch.equal(completions[:, :, :2], source[:, :, :2].expand(3, -1, -1, -1))
    _, grid = read_png(out)
    assert grid.shape == (GRID_PADDING + 5 + GRID_PADDING, GRID_PADDING + 5 * (4 + GRID_PADDING))
    # From an npz of samples, two chosen images.
    pool = torch.randint(0, 2, (4, 1, 5, 4), generator=torch.Generator().manual_seed(0))
    save_samples_npz(pool, tmp_path / "pool.npz")
    run(["complete", str(run_dir), "--npz", str(tmp_path / "pool.npz"), "--index", "3", "--index", "1",
         "--keep-rows", "1", "-k", "2", "--out", str(tmp_path / "more.png"), "-q", "--device", "cpu"])
    more = load_samples_npz(tmp_path / "more.npz")
    assert more.shape == (4, 1, 5, 4)
    assert torch.equal(more[:2, :, :1], pool[3:4, :, :1].expand(2, -1, -1, -1))  # k completions of image 3, then of image 1
    assert torch.equal(more[2:, :, :1], pool[1:2, :, :1].expand(2, -1, -1, -1))


def test_complete_command_user_errors(tmp_path, checkpoint):
    from pixelrnn.cli import UserError

    run_dir, _ = checkpoint
    Image.fromarray(np.zeros((5, 4, 3), np.uint8) + np.array([0, 50, 100], np.uint8), mode="RGB").save(tmp_path / "colour.png")
    with pytest.raises(UserError, match="colour image"):
        run(["complete", str(run_dir), "--image", str(tmp_path / "colour.png"), "--keep-rows", "1", "--out", str(tmp_path / "c.png")])
    save_samples_npz(torch.randint(0, 2, (2, 1, 5, 4)), tmp_path / "pool.npz")
    with pytest.raises(UserError, match="--index 2"):
        run(["complete", str(run_dir), "--npz", str(tmp_path / "pool.npz"), "--index", "2", "--keep-rows", "1", "--out", str(tmp_path / "c.png")])
    with pytest.raises(UserError, match="keep-rows"):
        run(["complete", str(run_dir), "--npz", str(tmp_path / "pool.npz"), "--keep-rows", "6", "--out", str(tmp_path / "c.png"), "-q"])
    save_samples_npz(torch.full((1, 1, 5, 4), 7), tmp_path / "eight.npz")
    with pytest.raises(UserError, match="values"):
        run(["complete", str(run_dir), "--npz", str(tmp_path / "eight.npz"), "--keep-rows", "1", "--out", str(tmp_path / "c.png")])
    with pytest.raises(SystemExit):  # argparse: one source is required
        parse(["complete", str(run_dir), "--keep-rows", "1"])


def test_commands_through_the_cli(tmp_path, checkpoint, capsys):
    from pixelrnn import cli

    run_dir, bare = checkpoint
    assert cli.main(["sample", str(run_dir), "-n", "2", "--out", str(tmp_path / "s.png"), "--seed", "1", "-q", "--device", "cpu"]) == 0
    assert load_samples_npz(tmp_path / "s.npz").shape == (2, 1, 5, 4)
    assert cli.main(["sample", str(bare), "--out", str(tmp_path / "s.png")]) == 2
    assert "--height and --width" in capsys.readouterr().err
    assert cli.main(["complete", str(run_dir), "--npz", str(tmp_path / "s.npz"), "--index", "1", "--keep-rows", "2", "-k", "2",
                     "--out", str(tmp_path / "c.png"), "-q", "--device", "cpu"]) == 0
