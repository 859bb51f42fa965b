"""Class-conditional networks from the command line: train on digits' labels, sample by class, evaluate, compress."""

import json

import numpy as np
import pytest
from PIL import Image

from pixelrnn.cli import main
from pixelrnn.data import load_dataset

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def digits_run(tmp_path_factory):
    """``pixelrnn train --dataset digits --arch pixelcnn --set model.classes=10 --steps 2`` (tiny)."""
    run = tmp_path_factory.mktemp("runs") / "digits"
    assert main(["train", "--dataset", "digits", "--arch", "pixelcnn", "--set", "model.classes=10", "--set", "model.hidden=4",
                 "--set", "model.layers=1", "--set", "model.output_hidden=8", "--set", "train.eval_images=40", "--set",
                 "train.batch_size=8", "--steps", "2", "--out", str(run), "-q", "--device", "cpu"]) == 0
    return run


def test_train_records_the_classes_and_their_names(digits_run):
    model = json.loads((digits_run / "config.json").read_text())["model"]
    assert model["classes"] == 10 and model["class_names"] == [str(d) for d in range(10)]


def test_sample_per_class_draws_one_grid_row_per_class(digits_run, tmp_path, capsys):
    out = tmp_path / "grid.png"
    assert main(["sample", str(digits_run), "--per-class", "2", "--out", str(out), "--seed", "0", "--scale", "1", "-q"]) == 0
    assert "2 per class, one grid row per class" in capsys.readouterr().err
    images = np.load(out.with_suffix(".npz"))["images"]
    assert images.shape == (20, 1, 8, 8)
    width, height = Image.open(out).size
    assert height > width  # 10 rows of 2 tiles


def test_sample_class_by_number_or_name_and_one_line_errors(digits_run, tmp_path, capsys):
    for cls, name in (("7", "a.png"), ("3", "b.png")):
        assert main(["sample", str(digits_run), "--class", cls, "-n", "2", "--out", str(tmp_path / name), "--seed", "0", "-q"]) == 0
    a, b = (np.load(tmp_path / name)["images"] for name in ("a.npz", "b.npz"))
    assert not np.array_equal(a, b)  # same seed, other class: other images
    capsys.readouterr()
    for bad, expected in (("12", "--class 12 is outside the model's classes; accepted: a number in 0..9"),
                          ("seven", "--class 'seven' is not a class of this model")):
        assert main(["sample", str(digits_run), "--class", bad, "-n", "1", "--out", str(tmp_path / "x.png")]) == 2
        err = capsys.readouterr().err.strip()
        assert expected in err and "\n" not in err
    assert main(["sample", str(digits_run), "--class", "1", "--per-class", "1", "--out", str(tmp_path / "y.png")]) == 2
    assert "not both" in capsys.readouterr().err


def test_complete_with_a_class(digits_run, tmp_path):
    assert main(["complete", str(digits_run), "--dataset", "digits", "--index", "0", "--keep-rows", "4", "-k", "2", "--class", "0",
                 "--out", str(tmp_path / "c.png"), "--seed", "0", "-q"]) == 0
    assert np.load(tmp_path / "c.npz")["images"].shape == (2, 1, 8, 8)


def test_evaluate_reports_the_conditional_nll(digits_run, tmp_path, capsys):
    assert main(["evaluate", str(digits_run), "--limit", "20", "--json", str(tmp_path / "e.json"), "-q"]) == 0
    assert "digits/test: conditional" in capsys.readouterr().out
    assert json.loads((tmp_path / "e.json").read_text())["test"]["conditional"] is True


def test_compress_and_decompress_a_labelled_dataset_and_class_folders(digits_run, tmp_path, capsys):
    assert main(["compress", str(digits_run), "--dataset", "digits", "--limit", "12", "-o", str(tmp_path / "d.pxr"), "--stats", "-q"]) == 0
    assert main(["decompress", str(digits_run), str(tmp_path / "d.pxr"), "-o", str(tmp_path / "out"), "-q"]) == 0
    originals = load_dataset("digits", "test").images[:12, 0]
    restored = np.stack([np.array(Image.open(tmp_path / "out" / f"{i:05d}.png")) for i in range(12)])
    assert np.array_equal(restored, originals)
    # files in sub-folders named after classes; another name is refused in one line
    for cls in ("3", "8"):
        (tmp_path / "files" / cls).mkdir(parents=True)
        Image.fromarray(originals[int(cls)]).save(tmp_path / "files" / cls / f"img{cls}.png")
    capsys.readouterr()
    assert main(["compress", str(digits_run), str(tmp_path / "files" / "3"), str(tmp_path / "files" / "8"), "-o",
                 str(tmp_path / "f.pxr"), "-q"]) == 0
    assert main(["decompress", str(digits_run), str(tmp_path / "f.pxr"), "-o", str(tmp_path / "fout"), "-q"]) == 0
    assert np.array_equal(np.array(Image.open(tmp_path / "fout" / "img8.png")), originals[8])
    (tmp_path / "files" / "other").mkdir()
    Image.fromarray(originals[0]).save(tmp_path / "files" / "other" / "x.png")
    assert main(["compress", str(digits_run), str(tmp_path / "files" / "other"), "-o", str(tmp_path / "g.pxr"), "-q"]) == 2
    assert "sub-folder 'other' is not a class name" in capsys.readouterr().err
    assert main(["compress", str(digits_run), str(tmp_path / "files" / "other"), "--class", "0", "-o", str(tmp_path / "g.pxr"), "-q"]) == 0


def test_decompress_by_class_restores_the_class_folders(digits_run, tmp_path, capsys):
    originals = load_dataset("digits", "test").images[:4, 0]
    for index, cls in enumerate(("3", "3", "8", "0")):
        (tmp_path / "files" / cls).mkdir(parents=True, exist_ok=True)
        Image.fromarray(originals[index]).save(tmp_path / "files" / cls / f"img{index}.png")
    folders = [str(tmp_path / "files" / cls) for cls in ("0", "3", "8")]
    assert main(["compress", str(digits_run), *folders, "-o", str(tmp_path / "f.pxr"), "-q"]) == 0
    assert main(["decompress", str(digits_run), str(tmp_path / "f.pxr"), "-o", str(tmp_path / "out"), "--by-class", "-q"]) == 0
    restored = sorted(str(path.relative_to(tmp_path / "out")) for path in (tmp_path / "out").rglob("*.png"))
    assert restored == ["0/img3.png", "3/img0.png", "3/img1.png", "8/img2.png"]
    for name in restored:
        assert np.array_equal(np.array(Image.open(tmp_path / "out" / name)), np.array(Image.open(tmp_path / "files" / name)))
    capsys.readouterr()
    assert main(["decompress", str(digits_run), str(tmp_path / "f.pxr"), "-o", str(tmp_path / "out"), "--by-class", "-q"]) == 2
    assert "out/0/img3.png already exists" in capsys.readouterr().err
    assert main(["decompress", "pretrained:binarized_mnist/pixelcnn", str(tmp_path / "f.pxr"), "-o", str(tmp_path / "u"), "--by-class"]) == 2
    assert "--by-class needs a class-conditional model" in capsys.readouterr().err
