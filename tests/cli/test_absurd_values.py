"""Absurd values and damaged files given to the command line: one line naming the value, exit 2, nothing changed."""

import json
import shutil
import warnings

import numpy as np
import pytest

from pixelrnn.cli import main

TINY = ["--dataset", "digits", "--arch", "pixelcnn", "--set", "model.hidden=4", "--set", "model.layers=1",
        "--set", "model.output_hidden=4", "--set", "train.eval_images=20", "-q"]
PRETRAINED = "pretrained:binarized_mnist/pixelcnn"


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    folder = tmp_path_factory.mktemp("runs") / "run"
    assert main(["train", *TINY, "--steps", "2", "--out", str(folder)]) == 0
    return folder


def refused(capsys, argv, *words):
    """The command exits 2 with one line that holds every word."""
    status = main(argv)
    err = capsys.readouterr().err.strip()
    assert status == 2, err
    assert len(err.splitlines()) == 1, err
    for word in words:
        assert word in err, err
    return err


@pytest.mark.parametrize("setting, key", [
    ("train.lr=nan", "train.lr"), ("train.lr=1e308", "train.lr"), ("train.lr=inf", "train.lr"), ("train.lr=-1", "train.lr"),
    ("train.weight_decay=-1", "train.weight_decay"), ("train.num_threads=-1", "train.num_threads"),
    ("train.seed=9223372036854775807", "train.seed"), ("train.seed=-1", "train.seed"),
    ("train.grad_clip=nan", "train.grad_clip"), ("train.grad_clip=-1", "train.grad_clip"),
    ("train.eval_images=-5", "train.eval_images"), ("train.ema_decay=nan", "train.ema_decay"),
    ("train.lr_decay=0", "train.lr_decay"), ("train.max_minutes=inf", "train.max_minutes"),
    ("train.warmup_steps=-3", "train.warmup_steps"), ("train.batch_size=0", "train.batch_size"),
    ("train.log_every=true", "train.log_every"), ("data.levels=1", "data.levels"), ("data.levels=5000", "data.levels"),
    ("model.hidden=1000000000", "hidden"),
])
def test_each_absurd_training_value_is_one_line_naming_its_key(tmp_path, capsys, setting, key):
    """Issue 24, failures 6 and 7: tracebacks, or values silently accepted (nan lr, grad_clip=nan off, eval_images=-5)."""
    refused(capsys, ["train", *TINY, "--steps", "2", "--set", setting, "--out", str(tmp_path / "run")], key)
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("text, words", [("train = 5\n", ("train",)), ('model = "x"\n', ("model",))])
def test_a_config_whose_sections_are_not_tables(tmp_path, capsys, text, words):
    """Issue 24, failure 7: a config whose train is 5 or whose model is a string gave tracebacks."""
    config = tmp_path / "bad.toml"
    config.write_text(text)
    refused(capsys, ["train", "--config", str(config), "--dataset", "digits", "--steps", "2", "--out", str(tmp_path / "r")], *words)


@pytest.mark.parametrize("damage", ["truncated", "nested", "list", "section"])
@pytest.mark.parametrize("command", ["evaluate", "resume"])
def test_a_damaged_run_config_is_one_line(run, tmp_path, capsys, damage, command):
    """Issue 24, failure 7: a truncated, deeply nested or list config.json gave tracebacks."""
    folder = tmp_path / "run"
    shutil.copytree(run, folder)
    text = (folder / "config.json").read_text()
    (folder / "config.json").write_text({"truncated": text[: len(text) // 2], "nested": "[" * 100_000 + "]" * 100_000,
                                         "list": "[1, 2]", "section": '{"train": 5}'}[damage])
    argv = ["evaluate", str(folder), "--limit", "2", "-q"] if command == "evaluate" else ["train", "--resume", str(folder), "-q"]
    refused(capsys, argv, "config.json")


@pytest.mark.parametrize("flags, words", [
    (["--batch-size", "0"], ("--batch-size",)), (["--batch-size", "-1"], ("--batch-size",)), (["--limit", "-5"], ("--limit",)),
])
def test_evaluate_flags(run, capsys, flags, words):
    """Issue 24: `evaluate --batch-size -1` printed "nan +- nan (0 images)"; 0 gave a traceback; --limit -5 dropped 5 images."""
    refused(capsys, ["evaluate", str(run), *flags, "-q"], *words)


@pytest.mark.parametrize("flags, words", [
    (["--scale", "100000"], ("--scale",)), (["--height", "100000"], ("--height",)), (["-n", "100000000"], ("-n",)),
    (["-n", "1024", "--scale", "256"], ("figure",)),
    (["--temperature", "nan"], ("--temperature",)), (["--nrow", "0"], ("--nrow",)),
])
def test_sample_flags(tmp_path, capsys, flags, words):
    """Issue 24, failure 7: `sample --scale 100000` and `--height 100000` gave tracebacks."""
    out = tmp_path / "s.png"
    refused(capsys, ["sample", PRETRAINED, "-n", "2", *flags, "--out", str(out), "-q"], *words)
    assert not out.exists()


def test_compress_will_not_replace_a_file_without_force(tmp_path, capsys):
    """Issue 24, failure 6: `compress -o existing.pxr` replaced the file without asking."""
    image = tmp_path / "a.png"
    from PIL import Image

    Image.fromarray((np.arange(28 * 28).reshape(28, 28) % 2 * 255).astype(np.uint8)).save(image)
    out = tmp_path / "existing.pxr"
    out.write_bytes(b"precious")
    refused(capsys, ["compress", PRETRAINED, str(image), "-o", str(out), "-q"], str(out), "--force")
    assert out.read_bytes() == b"precious"
    assert main(["compress", PRETRAINED, str(image), "-o", str(out), "--force", "-q"]) == 0
    assert out.read_bytes()[:8] == b"PXRNNCMP"
    # decompress: onto a file, and onto PNGs of the same names
    capsys.readouterr()
    refused(capsys, ["decompress", PRETRAINED, str(out), "-o", str(image), "-q"], "is a file")
    folder = tmp_path / "restored"
    assert main(["decompress", PRETRAINED, str(out), "-o", str(folder), "-q"]) == 0
    (folder / "a.png").write_bytes(b"mine")
    capsys.readouterr()
    refused(capsys, ["decompress", PRETRAINED, str(out), "-o", str(folder), "-q"], "a.png", "--force")
    assert (folder / "a.png").read_bytes() == b"mine"
    assert main(["decompress", PRETRAINED, str(out), "-o", str(folder), "--force", "-q"]) == 0
    assert (folder / "a.png").read_bytes()[:4] == b"\x89PNG"


@pytest.mark.parametrize("edit", ["no sources", "bytes x", "sources list"])
def test_an_edited_cache_record_is_rebuilt_with_a_warning(tmp_path, monkeypatch, edit):
    """Issue 24, failure 7: a cache record without `sources`, or with `bytes: "x"`, gave a traceback."""
    from pixelrnn.data import load_dataset

    monkeypatch.setenv("PIXELRNN_CACHE_DIR", str(tmp_path / "cache"))
    source = tmp_path / "tiny.npz"
    np.savez(source, train=np.random.default_rng(0).integers(0, 4, (10, 1, 3, 3), dtype=np.uint8), levels=np.array(4))
    first = load_dataset(f"npz:{source}", "train_full", progress=False)
    (record,) = (tmp_path / "cache").rglob("train.json")
    values = json.loads(record.read_text())
    if edit == "no sources":
        del values["sources"]
    elif edit == "bytes x":
        values["bytes"] = "x"
    else:
        values["sources"] = [1, 2]
    record.write_text(json.dumps(values))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        again = load_dataset(f"npz:{source}", "train_full", progress=False)
    assert any("record is damaged" in str(w.message) for w in caught)
    assert np.array_equal(np.asarray(first.images), np.asarray(again.images))
