"""Training p(x | class) on labelled data: labels reach the loss, resume stays exact, one-line errors."""

import json
import signal

import numpy as np
import pytest
import torch

from pixelrnn.config import ConfigError
from pixelrnn.data import load_dataset
from pixelrnn.training import Trainer, TrainingError, build_run_config


@pytest.fixture
def labelled(tmp_path, monkeypatch):
    monkeypatch.setenv("PIXELRNN_CACHE_DIR", str(tmp_path / "cache"))
    rng = np.random.default_rng(0)
    path = tmp_path / "labelled.npz"
    np.savez(path, train=rng.integers(0, 4, (40, 1, 5, 4), dtype=np.uint8), train_labels=np.arange(40) % 3,
             valid=rng.integers(0, 4, (9, 1, 5, 4), dtype=np.uint8), valid_labels=np.arange(9) % 3, levels=np.array(4))
    return [load_dataset(f"npz:{path}", split, progress=False) for split in ("train", "valid")]


def config(steps, classes="'auto'", arch="row_lstm"):
    return build_run_config(None, [f"model.classes={classes}", f"train.steps={steps}", "train.batch_size=8", "train.optimizer='adam'",
                                   "train.lr=3e-3", "train.log_every=1", "train.eval_every=3", "train.checkpoint_every=2",
                                   "model.hidden=4", "model.layers=1", "model.output_hidden=8"],
                            **{"model.arch": arch, "data.dataset": "labelled"})


def trainer(steps, run_dir, train, valid, resume=False, **options):
    return Trainer(config(steps, **options), run_dir, train.images, valid.images, 4, progress=False, resume=resume,
                   train_labels=train.labels, valid_labels=valid.labels, class_names=train.class_names)


def records(run_dir):
    return [(r["step"], r["split"], r["nats"]) for r in map(json.loads, (run_dir / "metrics.jsonl").read_text().splitlines())]


@pytest.mark.parametrize("arch", ["row_lstm", "pixelcnn"])
def test_an_interrupted_conditional_run_resumes_exactly(tmp_path, labelled, arch):
    train, valid = labelled
    straight = trainer(7, tmp_path / "a", train, valid, arch=arch)
    assert straight.model_config.classes == 3  # auto: the dataset's classes
    straight.train()

    interrupted = trainer(7, tmp_path / "b", train, valid, arch=arch)
    original = interrupted.train_step

    def step_then_signal(stop_request=False):
        result = original(stop_request)
        if interrupted.step == 4:
            interrupted._on_signal(signal.SIGTERM, None)
        return result

    interrupted.train_step = step_then_signal
    assert interrupted.train().step == 4
    resumed = trainer(7, tmp_path / "b", train, valid, resume=True, arch=arch)
    assert resumed.train().step == 7
    assert records(tmp_path / "a") == records(tmp_path / "b")
    for name, value in straight.model.state_dict().items():
        assert torch.equal(value, resumed.model.state_dict()[name]), name


def test_the_logged_losses_are_conditional(tmp_path, labelled):
    train, valid = labelled
    run = trainer(3, tmp_path / "run", train, valid)
    run.train()
    model = run.eval_model.eval()
    images, labels = torch.from_numpy(valid.images.astype(np.int64)), torch.from_numpy(valid.labels)
    with torch.no_grad():
        expected = model.nll(images, labels).mean().item()
        other = model.nll(images, (labels + 1) % 3).mean().item()
    logged = [nats for step, split, nats in records(tmp_path / "run") if split == "valid"][-1]
    assert logged == pytest.approx(expected, rel=1e-5) and logged != pytest.approx(other, rel=1e-6)


def test_one_line_errors_without_labels_or_with_labels_out_of_range(tmp_path, labelled):
    train, valid = labelled
    with pytest.raises(TrainingError, match="has no labels") as e:
        Trainer(config(2, classes=3), tmp_path / "a", train.images, valid.images, 4, progress=False, dataset_name="plain")
    assert "\n" not in str(e.value)
    with pytest.raises(ConfigError, match="auto.*no labels"):
        Trainer(config(2), tmp_path / "b", train.images, valid.images, 4, progress=False)
    with pytest.raises(TrainingError, match="label 2, outside \\[0, 2\\)"):
        trainer(2, tmp_path / "c", train, valid, classes=2)
    with pytest.raises(ConfigError, match="model.classes='many'"):
        trainer(2, tmp_path / "d", train, valid, classes="'many'")
