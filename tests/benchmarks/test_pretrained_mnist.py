"""benchmarks/pretrained_mnist.py: what a card says of a run's progress, and the checkpoint it exports."""

import argparse
import datetime
import os
import sys
from pathlib import Path

import torch
from safetensors.torch import save_file

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))

from pretrained_mnist import progress, snapshot  # noqa: E402

RECIPE = {"max_minutes": 2900.0, "num_threads": 1, "batch_size": 16}


def run_folder(tmp_path: Path, step: int, log: str) -> Path:
    run = tmp_path / "row_lstm"
    run.mkdir()
    save_file({"weight": torch.zeros(1)}, run / "state.safetensors", metadata={"step": str(step)})
    save_file({"weight": torch.full((1,), float(step))}, run / "best.safetensors", metadata={"step": "1000"})
    (tmp_path / "row_lstm.log").write_text(log)
    return run


def test_an_interim_checkpoint_gives_the_time_and_images_so_far_and_says_the_run_goes_on(tmp_path):
    log = ("stopped at step 900 (signal:SIGINT); best validation 90.0\npretrained_mnist: session of 40.5 minutes\n"
           "stopped at step 1500 (signal:SIGINT); best validation 88.0\npretrained_mnist: session of 20.25 minutes\n")
    run = run_folder(tmp_path, 1500, log)
    text = progress(argparse.Namespace(minutes=3000.0), "row_lstm", run, RECIPE, {"trained_steps": "1500", "step": "1000"})
    assert "3000 minutes" in text and "61 minutes spent" in text and "step 1500 (24,000 images seen)" in text
    assert "best validation checkpoint is step 1000" in text and "interim checkpoint" in text


def test_a_finished_run_is_not_called_interim(tmp_path):
    run = run_folder(tmp_path, 2000, "stopped at step 2000 (budget); best validation 85.0\npretrained_mnist: session of 110.0 minutes\n")
    text = progress(argparse.Namespace(minutes=110.0), "row_lstm", run, RECIPE, {"trained_steps": "2000", "step": "1000"})
    assert "110 minutes spent" in text and "interim" not in text


def test_the_exported_checkpoint_is_a_copy_the_training_cannot_replace(tmp_path):
    run = run_folder(tmp_path, 1500, "")
    copy = snapshot("row_lstm", run)
    assert copy == tmp_path / "row_lstm.exported.safetensors" and copy.read_bytes() == (run / "best.safetensors").read_bytes()
    save_file({"weight": torch.full((1,), 7.0)}, run / "best.safetensors", metadata={"step": "2000"})  # the run goes on
    assert copy.read_bytes() != (run / "best.safetensors").read_bytes()
    assert [path.name for path in tmp_path.iterdir() if path.name.endswith(".tmp")] == []


def test_a_session_still_going_on_counts_up_to_the_last_save_of_the_state(tmp_path):
    """Its "session of" line comes when it stops; its start line says since when it has trained."""
    log = ("pretrained_mnist: session started at 2026-01-01T10:00:00+00:00\nstopped at step 900 (signal:SIGINT); best validation 90.0\n"
           "pretrained_mnist: session of 40.5 minutes\npretrained_mnist: session started at 2026-01-01T12:00:00+00:00\n")
    run = run_folder(tmp_path, 1500, log)
    saved = datetime.datetime(2026, 1, 1, 12, 30, tzinfo=datetime.timezone.utc).timestamp()
    os.utime(run / "state.safetensors", (saved, saved))
    text = progress(argparse.Namespace(minutes=3000.0), "row_lstm", run, RECIPE, {"trained_steps": "1500", "step": "1000"})
    assert "70 minutes spent" in text and "interim checkpoint" in text
    (tmp_path / "row_lstm.log").write_text(log + "stopped at step 1500 (signal:SIGINT); best validation 88.0\n"
                                           "pretrained_mnist: session of 31.0 minutes\n")
    assert "72 minutes spent" in progress(argparse.Namespace(minutes=3000.0), "row_lstm", run, RECIPE,
                                          {"trained_steps": "1500", "step": "1000"})


def test_a_bundled_model_at_least_as_good_as_the_run_is_kept_with_only_if_better(tmp_path, monkeypatch, capsys):
    """--only-if-better: the run's best checkpoint is scored (here from its cache) and compared with the bundled card's figure."""
    import json

    import pytest

    import pretrained_mnist
    from pretrained_mnist import bundled_nats, digest, export

    run = run_folder(tmp_path, 1500, "")
    exported = snapshot("row_lstm", run)
    score = {"nats_per_image": 81.50, "nats_per_image_stderr": 0.20, "subset_nats_per_image": 81.0, "sha256": digest(exported)}
    (tmp_path / "row_lstm.test.json").write_text(json.dumps(score))
    out = tmp_path / "pretrained"
    bundled = out / "binarized_mnist" / "row_lstm"
    bundled.mkdir(parents=True)
    assert bundled_nats(bundled) is None  # no model yet: the run's checkpoint goes in
    from pixelrnn.models import build_model
    from pixelrnn.models.pretrained import save_pretrained

    save_pretrained(build_model("row_lstm", channels=1, levels=2, hidden=2, layers=1, output_hidden=4), bundled,
                    metadata={"test_nats_per_image": "81.4300"})
    before = (bundled / "model.safetensors").read_bytes()
    args = argparse.Namespace(out=str(out), only_if_better=True, threads=1)
    assert export(args, "row_lstm", run) is None
    assert "kept, its test NLL 81.43 is no worse than the run's best checkpoint's 81.50" in capsys.readouterr().out
    assert (bundled / "model.safetensors").read_bytes() == before

    def loaded(_checkpoint):  # past the comparison, the export reads the checkpoint
        raise LookupError("exported")

    monkeypatch.setattr(pretrained_mnist, "load_model_with_metadata", loaded)
    score["nats_per_image"] = 81.40  # the run is now better: it is exported
    (tmp_path / "row_lstm.test.json").write_text(json.dumps(score))
    with pytest.raises(LookupError, match="exported"):
        export(args, "row_lstm", run)
    with pytest.raises(LookupError, match="exported"):  # without the option, the export never compares
        score["nats_per_image"] = 90.0
        (tmp_path / "row_lstm.test.json").write_text(json.dumps(score))
        export(argparse.Namespace(out=str(out), only_if_better=False, threads=1), "row_lstm", run)
