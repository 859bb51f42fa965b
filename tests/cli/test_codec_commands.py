"""compress with data that does not fit the model, and one data lookup for evaluate, complete and compress."""

import json
import stat

import numpy as np
import pytest
import torch
from PIL import Image

from pixelrnn import build_model, save_model
from pixelrnn.cli import main

pytestmark = pytest.mark.usefixtures("one_thread")


def tiny_model(levels):
    torch.manual_seed(0)
    return build_model("pixelcnn", channels=1, levels=levels, hidden=2, layers=1, output_hidden=2)


def test_compress_warns_when_files_are_not_what_the_model_was_trained_on(tmp_path, capsys):
    save_model(tiny_model(17), tmp_path / "digits.safetensors", {"image_size": "8x8", "dataset": "digits"})
    rng = np.random.default_rng(0)
    for name in ("a", "b"):
        Image.fromarray(rng.integers(0, 2, (28, 28)).astype(bool)).save(tmp_path / f"{name}.png")  # 1-bit, 28x28
    assert main(["compress", str(tmp_path / "digits.safetensors"), str(tmp_path / "a.png"), str(tmp_path / "b.png"),
                 "-o", str(tmp_path / "x.pxr"), "-q"]) == 0
    err = capsys.readouterr().err
    assert "warning: 2 of 2 image(s) are not 8x8, the size the model was trained on (digits); e.g." in err and "is 28x28" in err
    assert "warning: 2 image(s) are 1-bit" in err and "the model has 17 levels (digits)" in err
    # images of the trained size and levels: no word
    Image.fromarray(rng.integers(0, 17, (8, 8)).astype(np.uint8), mode="L").save(tmp_path / "fit.png")
    assert main(["compress", str(tmp_path / "digits.safetensors"), str(tmp_path / "fit.png"), "-o", str(tmp_path / "y.pxr"), "-q"]) == 0
    assert "warning" not in capsys.readouterr().err


@pytest.fixture
def run_with_a_data_dir(tmp_path):
    """A run folder whose config names its data directory, and a dataset found only there."""
    data_dir, run = tmp_path / "data", tmp_path / "run"
    data_dir.mkdir()
    run.mkdir()
    rng = np.random.default_rng(1)
    np.savez(data_dir / "set.npz", train=rng.integers(0, 2, (10, 1, 4, 3), dtype=np.uint8),
             test=rng.integers(0, 2, (3, 1, 4, 3), dtype=np.uint8))
    save_model(tiny_model(2), run / "best.safetensors", {"image_size": "4x3", "dataset": "npz:set.npz"})
    (run / "config.json").write_text(json.dumps({"data": {"dataset": "npz:set.npz", "data_dir": str(data_dir)}}))
    return run, tmp_path


def test_evaluate_complete_and_compress_find_data_where_the_run_did(run_with_a_data_dir, monkeypatch, umask):
    run, tmp_path = run_with_a_data_dir
    umask(0o027)
    monkeypatch.chdir(tmp_path)  # npz:set.npz is not here, only in the run's data directory
    monkeypatch.delenv("PIXELRNN_DATA_DIR", raising=False)
    dataset = ["--dataset", "npz:set.npz", "--split", "test"]
    assert main(["evaluate", str(run), *dataset, "-q", "--json", str(tmp_path / "e.json")]) == 0
    assert main(["complete", str(run), *dataset, "--index", "2", "--keep-rows", "2", "-k", "2", "-q", "--seed", "0"]) == 0
    assert (run / "completions-001.png").exists()
    assert main(["compress", str(run), *dataset, "-o", str(tmp_path / "set.pxr"), "-q"]) == 0
    assert json.loads((tmp_path / "e.json").read_text())["test"]["images"] == 3
    written = [tmp_path / "e.json", run / "completions-001.png", run / "completions-001.npz", tmp_path / "set.pxr"]
    assert {path.name: stat.S_IMODE(path.stat().st_mode) for path in written} == {path.name: 0o640 for path in written}  # the umask's
    # the three take --download alike, and refuse data of another size alike
    np.savez(tmp_path / "data" / "wide.npz", test=np.zeros((2, 1, 4, 5), np.uint8))
    wide = ["--dataset", "npz:wide.npz", "--download"]
    for command in (["evaluate", str(run), *wide], ["complete", str(run), *wide, "--keep-rows", "1"],
                    ["compress", str(run), *wide, "-o", str(tmp_path / "w.pxr")]):
        assert main(command) == 2, command


def test_the_three_commands_print_the_same_error_for_the_same_mistake(run_with_a_data_dir, capsys, monkeypatch):
    run, tmp_path = run_with_a_data_dir
    monkeypatch.chdir(tmp_path)
    errors = []
    for command in (["evaluate", str(run)], ["complete", str(run), "--keep-rows", "1"], ["compress", str(run), "-o", str(tmp_path / "w.pxr")]):
        assert main([*command, "--dataset", "npz:wide.npz", "-q"]) == 2
        errors.append(capsys.readouterr().err.split("error: ", 1)[1])
    assert len(set(errors)) == 1 and "wide.npz" in errors[0], errors


def test_16_bit_pngs_of_codes_round_trip_through_compress_and_decompress(tmp_path, capsys):
    """A 512-level model: 16-bit grey PNGs come back 16-bit with every bit, an 8-bit one as 8-bit; or all into one npz."""
    save_model(tiny_model(512), tmp_path / "codes.safetensors")
    rng = np.random.default_rng(0)
    wide = rng.integers(0, 512, (2, 5, 6)).astype(np.uint16)
    wide[0, 0, 0], wide[1, 4, 5] = 511, 257
    (tmp_path / "in").mkdir()
    for k, plane in enumerate(wide):
        Image.fromarray(plane).save(tmp_path / "in" / f"w{k}.png")
    narrow = rng.integers(0, 256, (5, 6)).astype(np.uint8)
    Image.fromarray(narrow, mode="L").save(tmp_path / "in" / "n.png")
    checkpoint, packed = str(tmp_path / "codes.safetensors"), str(tmp_path / "c.pxr")
    assert main(["compress", checkpoint, str(tmp_path / "in"), "-o", packed, "--stats", "-q"]) == 0
    assert "achieved" in capsys.readouterr().out  # the model's NLL of 16-bit codes, beside the code length
    assert main(["decompress", checkpoint, packed, "-o", str(tmp_path / "out"), "-q"]) == 0
    for k, plane in enumerate(wide):
        with Image.open(tmp_path / "out" / f"w{k}.png") as png:
            assert png.mode == "I;16" and np.array_equal(np.asarray(png), plane)
    with Image.open(tmp_path / "out" / "n.png") as png:
        assert png.mode == "L" and np.array_equal(np.asarray(png), narrow)
    Image.fromarray(np.full((2, 2), 512, np.uint16)).save(tmp_path / "big.png")
    capsys.readouterr()
    assert main(["compress", checkpoint, str(tmp_path / "big.png"), "-o", str(tmp_path / "d.pxr"), "-q"]) == 2
    assert "values in [512, 512] cannot be coded exactly by a 512-level model (needs 0..511)" in capsys.readouterr().err
    Image.fromarray(np.zeros((5, 6), np.uint8), mode="L").save(tmp_path / "in" / "z.png")  # three images of one size: an npz
    (tmp_path / "in" / "n.png").unlink()
    assert main(["compress", checkpoint, str(tmp_path / "in"), "-o", packed, "--force", "-q"]) == 0
    assert main(["decompress", checkpoint, packed, "-o", str(tmp_path / "back.npz"), "-q"]) == 0
    with np.load(tmp_path / "back.npz") as back:
        assert back["images"].dtype == np.uint16 and np.array_equal(back["images"][:, 0], np.concatenate([wide, np.zeros((1, 5, 6))]))
        assert "labels" not in back
    assert main(["decompress", checkpoint, packed, "-o", str(tmp_path / "back.npz"), "-q"]) == 2
    assert "back.npz already exists; pass --force to replace it" in capsys.readouterr().err
