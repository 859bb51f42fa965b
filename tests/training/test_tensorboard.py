"""TensorBoard logging (train.tensorboard): what it writes, and that it changes nothing of the run."""

import json

import numpy as np
import pytest

from pixelrnn.training import Trainer, build_run_config

pytest.importorskip("tensorboard", reason="the [tensorboard] extra is not installed")
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator  # noqa: E402


def config(tensorboard: bool):
    return build_run_config(None, ["train.steps=4", "train.batch_size=8", "train.log_every=1", "train.eval_every=2",
                                   f"train.tensorboard={str(tensorboard).lower()}", "model.hidden=4", "model.layers=1",
                                   "model.output_hidden=8"], **{"model.arch": "row_lstm", "data.dataset": "tiny"})


def test_tensorboard_logs_bits_per_dim_rate_speed_and_samples_without_changing_the_run(tmp_path):
    rng = np.random.default_rng(0)
    train, valid = rng.integers(0, 4, (24, 1, 5, 4), dtype=np.uint8), rng.integers(0, 4, (6, 1, 5, 4), dtype=np.uint8)
    Trainer(config(True), tmp_path / "board", train, valid, 4, progress=False).train()
    Trainer(config(False), tmp_path / "plain", train, valid, 4, progress=False).train()

    events = EventAccumulator(str(tmp_path / "board" / "tensorboard"), size_guidance={"images": 0})
    events.Reload()
    scalars = {tag: [(e.step, e.value) for e in events.Scalars(tag)] for tag in events.Tags()["scalars"]}
    records = [json.loads(line) for line in (tmp_path / "board" / "metrics.jsonl").read_text().splitlines()]
    for split in ("train", "valid"):
        logged = [(r["step"], r["bits_per_dim"]) for r in records if r["split"] == split]
        assert [step for step, _ in scalars[f"{split}/bits_per_dim"]] == [step for step, _ in logged]
        assert [value for _, value in scalars[f"{split}/bits_per_dim"]] == pytest.approx([value for _, value in logged], rel=1e-6)
    assert [step for step, _ in scalars["learning_rate"]] == [1, 2, 3, 4] and len(scalars["images_per_second"]) == 4
    grids = events.Images("samples")
    assert [image.step for image in grids] == [2, 4] and grids[0].width > 0

    # metrics.jsonl stays the record, and the run is the same with TensorBoard off
    plain = [json.loads(line) for line in (tmp_path / "plain" / "metrics.jsonl").read_text().splitlines()]
    assert [(r["step"], r["split"], r["nats"]) for r in records] == [(r["step"], r["split"], r["nats"]) for r in plain]
    assert not (tmp_path / "plain" / "tensorboard").exists()
