"""Files written by earlier code still read: a run folder (its state file), a prepared-cache
record, a pretrained folder, the compressed files of tests/golden and those of format versions 3 and 4.

The fixtures under ``tests/fixtures`` were written once (``tests/fixtures/make_fixtures.py``)
and are never rewritten: a change that breaks one of these tests breaks users' files. A new
format version gets new fixtures beside the old ones (docs/formats.md lists them).
"""

import hashlib
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors import safe_open

from pixelrnn import from_pretrained, load_model
from pixelrnn.cli import main
from codec_cases import environment_bytes, with_environment
from pixelrnn.codec import CodedImage, compress, decompress, read_container
from pixelrnn.data import cache as cache_module
from pixelrnn.training.state import STATE_FORMAT

FIXTURES = Path(__file__).resolve().parent / "fixtures"
CONDITIONAL = FIXTURES / "conditional"
GOLDEN = Path(__file__).resolve().parent / "golden" / "files"


def fingerprint(folder: Path) -> dict:
    return {p.name: (hashlib.sha256(p.read_bytes()).hexdigest(), p.stat().st_mtime_ns) for p in sorted(folder.iterdir())}


def test_the_state_file_is_version_1():
    with safe_open(str(FIXTURES / "run" / "state.safetensors"), framework="pt") as handle:
        metadata = handle.metadata()
    assert metadata["format"] == STATE_FORMAT == "pixelrnn.train_state.v1"
    assert metadata["step"] == "6" and json.loads(metadata["validated_step"]) == 6


def test_the_run_folder_resumes_finished_and_unchanged(tmp_path, capsys):
    folder = tmp_path / "run"
    shutil.copytree(FIXTURES / "run", folder)
    before = fingerprint(folder)
    assert main(["train", "--resume", str(folder), "-q"]) == 0
    assert "nothing to do" in capsys.readouterr().out
    assert {name: value for name, value in fingerprint(folder).items() if name != "train.lock"} == before


def test_the_run_folder_trains_on_and_evaluates(tmp_path, capsys):
    folder = tmp_path / "run"
    shutil.copytree(FIXTURES / "run", folder)
    assert main(["train", "--resume", str(folder), "--steps", "7", "-q"]) == 0
    assert json.loads((folder / "metrics.jsonl").read_text().splitlines()[-1])["step"] == 7
    assert main(["evaluate", str(FIXTURES / "run"), "--limit", "4", "-q"]) == 0
    assert "(4 images)" in capsys.readouterr().out
    for name in ("best.safetensors", "last.safetensors"):
        assert load_model(FIXTURES / "run" / name).config.arch == "pixelcnn"


def test_the_prepared_cache_record_is_format_1():
    (record_path,) = (FIXTURES / "prepared" / "cache").rglob("train.json")
    record = json.loads(record_path.read_text())
    assert record["format"] == cache_module.FORMAT == 1
    assert set(record) == {"format", "dataset", "stored", "shape", "levels", "bytes", "mtime_ns", "sha256", "sources"}
    assert set(record["sources"]) == {"files", "bytes", "listing", "sha256"}
    array_path = record_path.with_suffix(".npy")
    assert cache_module._header(array_path) == (cache_module.HEADER_BYTES, record["shape"], "uint8", False)
    assert array_path.stat().st_size == record["bytes"]
    assert cache_module._file_sha256([array_path], cache_module.HEADER_BYTES) == record["sha256"]
    assert cache_module._file_sha256([FIXTURES / "prepared" / "tiny.npz"]) == record["sources"]["sha256"]
    with np.load(FIXTURES / "prepared" / "tiny.npz") as source:
        assert np.array_equal(np.load(array_path), source["train"])


def test_the_pretrained_folder_loads():
    model = from_pretrained(FIXTURES / "pretrained")
    assert model.config.arch == "row_lstm" and model.config.levels == 2
    with torch.no_grad():
        assert torch.isfinite(model.nll(torch.zeros(1, 1, 4, 4, dtype=torch.long))).all()


@pytest.mark.parametrize("path", sorted(GOLDEN.glob("*.pxrnn")), ids=lambda p: p.name)
def test_the_compressed_fixtures_are_format_version_2(path):
    """The .pxr fixtures live in tests/golden (decoded bit for bit there); here: their version."""
    assert read_container(path.read_bytes()).version == 2


# --------------------------------------------------------------------- class-conditional formats
def test_the_conditional_checkpoint_loads_with_its_classes():
    model = load_model(CONDITIONAL / "model.safetensors")
    assert (model.config.classes, model.config.class_names) == (3, ("zero", "one", "two"))
    assert model.metadata == {"image_size": "6x5"}


def test_the_conditional_file_is_format_3_and_decodes_bit_for_bit_with_its_classes():
    stored = (CONDITIONAL / "images.pxrnn").read_bytes()
    container = read_container(stored)
    with np.load(CONDITIONAL / "images.npz") as arrays:
        values, labels = arrays["values"], arrays["labels"]
    assert (container.version, container.classes, container.labels) == (3, 3, tuple(labels.tolist()))
    model = load_model(CONDITIONAL / "model.safetensors")
    decoded = decompress(model, stored)
    assert [image.label for image in decoded] == labels.tolist()
    assert all(np.array_equal(image.values, expected) for image, expected in zip(decoded, values))
    again = compress(model, [CodedImage(f"{k}.png", values[k], "1", "scaled", int(label)) for k, label in enumerate(labels)],
                     batch_size=2)
    if environment_bytes(again) == environment_bytes(stored):
        assert again == stored
    else:  # another machine type or torch build: everything but the environment record must still be the same
        assert with_environment(again, environment_bytes(stored)) == stored


def test_the_prepared_cache_record_with_labels_is_format_1():
    (record_path,) = (CONDITIONAL / "prepared" / "cache").rglob("train.json")
    record = json.loads(record_path.read_text())
    assert record["format"] == cache_module.FORMAT == 1
    assert set(record) == {"format", "dataset", "stored", "shape", "levels", "bytes", "mtime_ns", "sha256", "sources", "labels"}
    labels_path = record_path.with_name("train.labels.npy")
    assert cache_module._file_sha256([labels_path]) == record["labels"]["sha256"]
    with np.load(CONDITIONAL / "prepared" / "labelled.npz") as source:
        assert np.array_equal(np.load(labels_path), source["train_labels"])
        assert np.array_equal(np.load(record_path.with_suffix(".npy")), source["train"])
    assert (record["labels"]["count"], record["labels"]["classes"]) == (5, 3)


# --------------------------------------------------------------------- format version 4: more than 256 levels
WIDE = FIXTURES / "wide"


@pytest.mark.parametrize("name,classes", [("images", 0), ("conditional", 2)])
def test_the_wide_files_are_format_4_and_decode_bit_for_bit_as_16_bit_codes(name, classes):
    stored = (WIDE / f"{name}.pxrnn").read_bytes()
    container = read_container(stored)
    with np.load(WIDE / "images.npz") as arrays:
        values, labels = arrays["values"], arrays["labels"]
    assert values.dtype == np.uint16 and int(values.max()) == 511
    assert (container.version, container.levels, container.classes, container.modes) == (4, 512, classes, ("I;16",) * 4)
    assert container.labels == (tuple(labels.tolist()) if classes else None)
    assert container.pixel_digest == hashlib.sha256(values.astype("<u2").tobytes()).digest()  # the values as u16
    model = load_model(WIDE / f"{'model' if name == 'images' else name}.safetensors")
    decoded = decompress(model, stored)
    assert all(image.values.dtype == np.uint16 and np.array_equal(image.values, expected) for image, expected in zip(decoded, values))
    assert [image.label for image in decoded] == (labels.tolist() if classes else [None] * 4)
    again = compress(model, [CodedImage(f"{k}.png", values[k], "I;16", "raw", int(label) if classes else None)
                             for k, label in enumerate(labels)], batch_size=3)
    if environment_bytes(again) == environment_bytes(stored):
        assert again == stored
    else:  # another machine type or torch build: everything but the environment record must still be the same
        assert with_environment(again, environment_bytes(stored)) == stored
