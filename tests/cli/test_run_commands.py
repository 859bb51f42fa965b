"""check, show, plot and --png-dir on a run folder, and the frictions of daily use that a command shows."""

import json

import numpy as np
import pytest
import torch
from PIL import Image

import pixelrnn
from pixelrnn import build_model, save_pretrained
from pixelrnn.cli import build_parser, main
from pixelrnn.cli.train import LARGE_SPLIT
from pixelrnn.layers import masked_conv
from pixelrnn.training.run_config import build_run_config, describe_config, shipped_configs

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """A tiny run: 40 binary 6x5 images, a one-layer PixelCNN, 6 steps, EMA weights, two validations."""
    folder = tmp_path_factory.mktemp("data")
    images = (np.random.default_rng(0).integers(0, 2, (40, 6, 5)) * 255).astype(np.uint8)
    np.savez(folder / "bw.npz", train=images)
    out = folder / "run"
    assert main(["train", "--dataset", f"npz:{folder / 'bw.npz'}", "--arch", "pixelcnn", "--set", "model.hidden=4",
                 "--set", "model.layers=1", "--set", "data.levels=2", "--set", "train.ema_decay=0.9", "--set", "train.eval_every=3",
                 "--set", "train.log_every=2", "--set", "train.batch_size=4", "--steps", "6", "--out", str(out), "-q"]) == 0
    return out


def test_check_passes_a_run_and_exits_1_on_a_leak(run, capsys, monkeypatch, tmp_path):
    assert main(["check", str(run), "--height", "5", "--width", "4", "--json", str(tmp_path / "report.json")]) == 0
    out = capsys.readouterr().out
    assert "no leak" in out and "exact Jacobian" in out
    assert json.loads((tmp_path / "report.json").read_text())["ok"] is True
    original = masked_conv.build_mask  # the model is rebuilt on loading: with mask A as B, every pixel sees itself
    monkeypatch.setattr(masked_conv, "build_mask", lambda kind, *rest: original("B", *rest))
    assert main(["check", str(run), "--height", "4", "--width", "4"]) == 1
    assert "leak: output (0, 0, 0) depends on input (0, 0, 0)" in capsys.readouterr().out


def test_show_summarises_a_run(run, capsys):
    assert main(["show", str(run)]) == 0
    out = capsys.readouterr().out
    assert "dataset: npz:" in out and "model: pixelcnn, 1 layers, h = 4" in out and "steps: 6 of 6" in out
    assert "best validation:" in out and "at step" in out and "images/s" in out and "EMA 0.9" in out
    assert "last 5 lines of metrics.jsonl" in out and "levels 2" in out
    assert main(["show", str(run / "config.json")]) == 2 and "is not a run folder" in capsys.readouterr().err


def test_plot_draws_the_learning_curve_of_a_run_folder(run, tmp_path, capsys):
    """Friction 14: the curve had no command and plot_training_curve failed with IsADirectoryError on a run folder."""
    pytest.importorskip("matplotlib")
    out = tmp_path / "curve.png"
    assert main(["plot", str(run), "-o", str(out)]) == 0
    with Image.open(out) as image:
        assert image.format == "PNG" and image.size[0] > 300
    assert main(["plot", str(run), "-o", str(out)]) == 2 and "--force" in capsys.readouterr().err
    assert pixelrnn.figures.plot_training_curve(run, tmp_path / "again.png").exists()


def test_png_dir_writes_one_png_per_image(run, tmp_path, capsys):
    folder = tmp_path / "pngs"
    assert main(["sample", str(run), "-n", "3", "--seed", "0", "--out", str(tmp_path / "s.png"), "--png-dir", str(folder), "-q"]) == 0
    names = sorted(p.name for p in folder.iterdir())
    assert names == ["0000.png", "0001.png", "0002.png"]
    values = np.load(tmp_path / "s.npz")["images"]
    with Image.open(folder / "0001.png") as image:
        assert np.array_equal(np.asarray(image), values[1, 0] * 255)
    assert main(["complete", str(run), "--npz", str(tmp_path / "s.npz"), "--index", "0", "--keep-rows", "2", "-k", "2",
                 "--out", str(tmp_path / "c.png"), "--png-dir", str(folder), "-q"]) == 0
    assert {"0000-00.png", "0000-01.png"} <= {p.name for p in folder.iterdir()}
    assert main(["sample", str(run), "-n", "1", "--out", str(tmp_path / "t.png"), "--png-dir", str(folder), "-q"]) == 2
    assert "already holds 0000.png" in capsys.readouterr().err


def test_quiet_silences_the_preparation_bar(run, capsys, monkeypatch):
    """Friction 1: -q did not silence the "preparing" bar of evaluate, complete --dataset and compress --dataset."""
    monkeypatch.setattr("sys.stderr.isatty", lambda: True, raising=False)
    monkeypatch.setenv("PIXELRNN_CACHE_DIR", str(run.parent / "fresh-cache"))  # the split is prepared again
    assert main(["evaluate", str(run), "--split", "valid", "-q"]) == 0
    assert "preparing" not in capsys.readouterr().err


def test_validation_says_it_scores_the_ema_weights(run, tmp_path, capsys):
    """Friction 4: short runs validated far worse than they trained, and nothing said why."""
    out = tmp_path / "again"
    assert main(["train", "--config", str(run / "config.json"), "--steps", "3", "--set", "train.eval_every=3",
                 "--out", str(out)]) == 0
    captured = capsys.readouterr()
    assert "EMA" in captured.out and "EMA weights" in captured.err


def test_a_changed_learning_rate_on_resume_is_said_and_recorded(run, tmp_path, capsys):
    """Friction 6: a learning rate changed on resume was applied silently; config.json kept the old one."""
    import shutil

    copy = tmp_path / "copy"
    shutil.copytree(run, copy)
    assert main(["train", "--resume", str(copy), "--steps", "8", "--set", "train.lr=0.0005", "-q"]) == 0
    assert "train.lr = 0.0005 (was 0.001)" in capsys.readouterr().out
    assert json.loads((copy / "config.json").read_text())["train"]["lr"] == 0.0005


def test_small_colour_networks_get_a_small_output_stack():
    """Friction 5: colour models defaulted to output_hidden = 1024 (1.85M parameters for a 4-wide PixelCNN)."""
    config = build_run_config(None, ["model.arch='pixelcnn'", "model.hidden=4", "model.layers=1"])
    small = config.model_config(3, 256)
    assert small.output_hidden == 32
    model = pixelrnn.model_from_config(small)
    assert sum(p.numel() for p in model.parameters()) < 100_000
    assert build_run_config("cifar10_pixelcnn").model_config(3, 256).output_hidden == 1024  # the paper's networks keep theirs
    # build_model follows the same rule (one statement of it: pixelrnn.config.default_output_hidden)
    assert pixelrnn.build_model("pixelcnn", channels=3, levels=256, hidden=4, layers=1).config.output_hidden == 32
    assert pixelrnn.build_model("row_lstm", channels=3, levels=256, hidden=128, layers=1).config.output_hidden == 1024
    assert pixelrnn.build_model("row_lstm", channels=1, levels=2, hidden=128, layers=1).config.output_hidden == 32


def test_one_loader_for_every_place_a_model_can_be(run, tmp_path):
    """Friction 7: load_model(run) said "does not exist", from_pretrained(run) "not a pixelrnn configuration"."""
    reference = pixelrnn.load_model_from(run)
    x = torch.randint(0, 2, (2, 1, 6, 5))
    for loaded in (pixelrnn.load_model(run), pixelrnn.from_pretrained(run), pixelrnn.load_model(run / "best.safetensors")):
        assert torch.equal(loaded(x), reference(x))
    with pytest.raises(pixelrnn.CheckpointError, match="does not exist"):
        pixelrnn.load_model(tmp_path / "nothing")


def test_load_dataset_is_importable_from_the_package():
    """Friction 9: the README's `from pixelrnn import load_dataset` failed."""
    from pixelrnn import load_dataset

    assert load_dataset("digits", "test").images.shape[1:] == (1, 8, 8)


def test_evaluate_says_how_many_images_it_scores(run, capsys, monkeypatch):
    """Friction 12: evaluate --train scored 50,000 images for 7 minutes without a word; the README now names --limit."""
    monkeypatch.setattr("pixelrnn.cli.train.LARGE_SPLIT", 5)
    assert main(["evaluate", str(run), "--split", "valid", "--train"]) == 0
    assert "(--limit N scores the first N)" in capsys.readouterr().err
    readme = (pixelrnn.__path__[0] + "/../README.md")
    assert "--limit" in open(readme).read().split("## Sample, complete, compress")[0]
    assert LARGE_SPLIT == 10_000


def test_small_messages(tmp_path, capsys):
    """Friction 13: nan images/s, cut config lines, train --help, the checkpoint's help, a typo of a bundled name, 'exists'."""
    from pixelrnn.training.progress import TrainingProgress
    import io

    stream = io.StringIO()
    progress = TrainingProgress(10, 0, 4, stream=stream, interactive=False)
    progress.step(1, 2.0)
    assert "nan" not in stream.getvalue() and "images/s" not in stream.getvalue()
    assert describe_config(shipped_configs()["digits_demo"]).endswith("a few minutes on 2 CPU cores.")
    commands = {name: parser for name, parser in build_parser()._subparsers._group_actions[0].choices.items()}
    assert "--set data.levels" in " ".join(commands["train"].format_help().split())
    assert "pretrained:NAME" in " ".join(commands["sample"].format_help().split())
    assert main(["sample", "pretrained:binarized_mnist/pixelcn", "-n", "1"]) == 2
    err = capsys.readouterr().err
    assert "did you mean 'binarized_mnist/pixelcnn'" in err or "Hugging Face Hub" in err  # with huggingface_hub: the Hub's answer
    torch.manual_seed(0)
    folder = save_pretrained(build_model("pixelcnn", channels=1, levels=2, hidden=2, layers=1), tmp_path / "m",
                             metadata={"image_size": "3x3"})
    for name in ("s.png", "s.npz"):
        (tmp_path / name).write_bytes(b"")
    assert main(["sample", str(folder), "-n", "1", "--out", str(tmp_path / "s.png")]) == 2
    assert "s.npz already exist;" in capsys.readouterr().err


def test_compress_warns_of_grey_files_coded_by_a_colour_model(tmp_path, capsys):
    """Friction 10: compress with an RGB model coded grey files as 3 channels without a word."""
    torch.manual_seed(0)
    folder = save_pretrained(build_model("pixelcnn", channels=3, levels=256, hidden=3, layers=1, output_hidden=6), tmp_path / "m")
    Image.fromarray(np.arange(12, dtype=np.uint8).reshape(3, 4), "L").save(tmp_path / "grey.png")
    assert main(["compress", str(folder), str(tmp_path / "grey.png"), "-o", str(tmp_path / "x.pxr"), "-q"]) == 0
    assert "grey image(s)" in capsys.readouterr().err


def test_a_run_records_its_preprocessing_and_complete_and_compress_apply_it(tmp_path, capsys):
    rng = np.random.default_rng(2)
    (tmp_path / "photos").mkdir()
    for index in range(12):  # mixed sizes, grey and colour
        size = (6 + index % 3, 5 + index % 2)
        if index % 4:
            Image.fromarray(rng.integers(0, 256, (*size, 3)).astype(np.uint8), "RGB").save(tmp_path / "photos" / f"{index:02d}.png")
        else:
            Image.fromarray(rng.integers(0, 256, size).astype(np.uint8), "L").save(tmp_path / "photos" / f"{index:02d}.png")
    run = tmp_path / "run"
    assert main(["train", "--dataset", f"folder:{tmp_path / 'photos'}", "--arch", "pixelcnn", "--set", "model.hidden=3",
                 "--set", "model.layers=1", "--set", "data.levels=4", "--set", "data.mapping=quantise", "--set", "data.size=[4,4]",
                 "--set", "data.resize=fit", "--set", "data.channels=3", "--steps", "2", "--set", "train.batch_size=2",
                 "--out", str(run), "-q"]) == 0
    data = json.loads((run / "config.json").read_text())["data"]
    assert (data["levels"], data["mapping"], data["size"], data["resize"], data["channels"]) == (4, "quantise", [4, 4], "fit", 3)
    big = tmp_path / "big.png"
    Image.fromarray(np.full((9, 7), 200, np.uint8), "L").save(big)
    assert main(["complete", str(run), "--image", str(big), "--keep-rows", "2", "-k", "1", "--out", str(tmp_path / "c.png"), "-q"]) == 0
    completed = np.load(tmp_path / "c.npz")["images"]
    assert completed.shape == (1, 3, 4, 4) and (completed[0, :, :2] == 200 * 4 // 256).all()
    assert main(["compress", str(run), str(big), "-o", str(tmp_path / "x.pxr"), "-q"]) == 0
    assert "as the run preprocessed its data" in capsys.readouterr().err
    assert main(["decompress", str(run), str(tmp_path / "x.pxr"), "-o", str(tmp_path / "back"), "-q"]) == 0
    with Image.open(tmp_path / "back" / "big.png") as image:
        assert image.size == (4, 4)
