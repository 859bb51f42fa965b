"""The sample and complete commands (pixelrnn.cli.generate)."""

import argparse

import numpy as np
import pytest
import torch
from PIL import Image

from pixelrnn import build_model, save_model
from pixelrnn.cli import generate
from pixelrnn.images import GRID_PADDING, GROUP_GAP, load_image, load_samples_npz, save_samples_npz

from pictures import read_png, tile_at


pytestmark = pytest.mark.usefixtures("one_thread")


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
    run([ "sample", str(run_dir), "-n", "6", "--out", str(out), "--seed", "3", "-q", "--device", "cpu", "--scale", "1"])
    images = load_samples_npz(tmp_path / "samples.npz")
    assert images.shape == (6, 1, 5, 4) and set(images.unique().tolist()) <= {0, 1}
    mode, grid = read_png(out)
    assert mode == "L" and grid.shape == (GRID_PADDING + 2 * (5 + GRID_PADDING), GRID_PADDING + 3 * (4 + GRID_PADDING))
    assert np.array_equal(tile_at(grid, 1, 2, 5, 4), images[5, 0].numpy() * 255)
    # The same seed gives the same images, and the naive path draws the very same ones.
    run(["sample", str(run_dir), "-n", "6", "--out", str(tmp_path / "again.png"), "--seed", "3", "-q", "--naive", "--device", "cpu"])
    assert torch.equal(load_samples_npz(tmp_path / "again.npz"), images)
    # By default the grid is enlarged by nearest neighbour: 5x4 tiles 20 times, to 100x80 pixels.
    _, enlarged = read_png(tmp_path / "again.png")
    assert enlarged.shape == (20 * grid.shape[0], 20 * grid.shape[1]) and np.array_equal(enlarged[::20, ::20], grid)


def test_outputs_never_replace_a_file_unasked(tmp_path, checkpoint, monkeypatch):
    from pixelrnn.cli import UserError

    _, bare = checkpoint
    monkeypatch.chdir(tmp_path)  # a checkpoint outside a run folder: new names in the current folder
    sample = ["sample", str(bare), "-n", "1", "--height", "2", "--width", "3", "-q", "--device", "cpu"]
    run(sample + ["--seed", "1"])
    run(sample + ["--seed", "2"])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["samples-001.npz", "samples-001.png", "samples-002.npz", "samples-002.png"]
    first = load_samples_npz(tmp_path / "samples-001.npz")
    (tmp_path / "mine.npz").write_bytes(b"keep")
    with pytest.raises(UserError, match="mine.npz already exists; pass --force"):
        run(sample + ["--out", str(tmp_path / "mine.png")])
    assert (tmp_path / "mine.npz").read_bytes() == b"keep" and not (tmp_path / "mine.png").exists()
    run(sample + ["--seed", "1", "--out", str(tmp_path / "mine.png"), "--force"])
    assert torch.equal(load_samples_npz(tmp_path / "mine.npz"), first)
    with pytest.raises(UserError, match="--scale"):
        run(sample + ["--scale", "0"])


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
    source = load_image(tmp_path / "digit.png", channels=1, levels=2)
    assert torch.equal(source[0, 0, 0], torch.tensor([0, 0, 1, 1]))  # v * levels // 256
    out = tmp_path / "completions.png"
    run(["complete", str(run_dir), "--image", str(tmp_path / "digit.png"), "--keep-rows", "2", "-k", "3",
         "--out", str(out), "--seed", "5", "-q", "--device", "cpu", "--scale", "1"])
    completions = load_samples_npz(tmp_path / "completions.npz")
    assert completions.shape == (3, 1, 5, 4)
    assert torch.equal(completions[:, :, :2], source[:, :, :2].expand(3, -1, -1, -1))
    _, grid = read_png(out)
    # source | 3 completions | original, the completions set apart by wider gaps
    assert grid.shape == (GRID_PADDING + 5 + GRID_PADDING, GRID_PADDING + 5 * 4 + 2 * GRID_PADDING + 2 * GROUP_GAP + GRID_PADDING)
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


def test_bars_show_on_a_terminal_only(tmp_path, checkpoint, capsys, monkeypatch):
    """Where stderr is a log file, no bar (a stream of carriage returns); the result line still prints."""
    run_dir, _ = checkpoint
    run(["sample", str(run_dir), "-n", "2", "--out", str(tmp_path / "log.png"), "--device", "cpu"])
    logged = capsys.readouterr()
    assert "\r" not in logged.err and "wrote" in logged.out
    monkeypatch.setattr("sys.stderr.isatty", lambda: True)
    run(["sample", str(run_dir), "-n", "2", "--out", str(tmp_path / "terminal.png"), "--device", "cpu"])
    assert "\r" in capsys.readouterr().err
