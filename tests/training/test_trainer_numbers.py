"""The numbers a training run reports: bits/dim of colour images in its log, and the learning rate each step used.

Each is computed here from its definition, not by the library's helpers: bits/dim is nats over
C*H*W ln 2 (section 5.1); the rate is read from the optimizer while it steps and compared with the
schedule's formula.
"""

import json
import math

import numpy as np
import pytest
import torch

from pixelrnn import load_model_from
from pixelrnn.training import Trainer, build_run_config

CHANNELS, HEIGHT, WIDTH, LEVELS = 3, 4, 3, 4


def config(steps, **train):
    overrides = [f"train.{k}={json.dumps(v)}" for k, v in {
        "steps": steps, "batch_size": 4, "optimizer": "adam", "lr": 2e-3, "log_every": 1, "eval_every": steps,
        "checkpoint_every": steps, "eval_images": 0, **train}.items()]
    return build_run_config(None, overrides + ["model.hidden=4", "model.layers=1", "model.output_hidden=6"],
                            **{"model.arch": "pixelcnn", "data.dataset": "colour"})


def colour(count, seed):
    return np.random.default_rng(seed).integers(0, LEVELS, (count, CHANNELS, HEIGHT, WIDTH), dtype=np.uint8)


def records(run_dir, split):
    lines = map(json.loads, (run_dir / "metrics.jsonl").read_text().splitlines())
    return [r for r in lines if r.get("split") == split]


def test_the_log_and_the_validation_record_give_bits_per_colour_sub_pixel(tmp_path):
    valid = colour(5, seed=1)
    trainer = Trainer(config(3), tmp_path / "run", colour(12, seed=0), valid, LEVELS, progress=False)
    trainer.train()
    to_bits = 1 / (CHANNELS * HEIGHT * WIDTH * math.log(2))
    train_lines = records(tmp_path / "run", "train")
    assert [r["step"] for r in train_lines] == [1, 2, 3]
    for record in train_lines:
        assert record["bits_per_dim"] == pytest.approx(record["nats"] * to_bits, rel=1e-12)
    (last,) = records(tmp_path / "run", "valid")
    model = load_model_from(tmp_path / "run")  # the weights the last validation scored (no EMA here)
    values = torch.from_numpy(valid).long()
    with torch.no_grad():
        logits = model(values).double()
    nats = -torch.log_softmax(logits, dim=2).gather(2, values[:, :, None]).sum(dim=(1, 2, 3, 4)).numpy()
    assert last["step"] == 3
    assert last["nats"] == pytest.approx(nats.mean(), rel=1e-5)
    assert last["bits_per_dim"] == pytest.approx(nats.mean() * to_bits, rel=1e-5)


def schedule(step, *, lr, steps, kind, warmup=0, decay=1.0):
    """The rate of 0-based step ``step``, written out from the schedules' definitions."""
    if kind == "cosine":
        rate = lr * (1 + math.cos(math.pi * step / steps)) / 2
    elif kind == "exponential":
        rate = lr * decay**step
    else:
        rate = lr
    return rate * min(1.0, (step + 1) / warmup) if warmup else rate


@pytest.mark.parametrize("kind,options", [("cosine", {"warmup_steps": 3}), ("exponential", {"lr_decay": 0.5}), ("constant", {})])
def test_each_step_uses_the_scheduled_learning_rate(tmp_path, kind, options):
    steps = 6
    trainer = Trainer(config(steps, schedule=kind, **options), tmp_path / "run", colour(8, seed=2), None, LEVELS, progress=False)
    used = []  # (0-based step, rate) as the optimizer applies it
    trainer.optimizer.register_step_pre_hook(lambda optimizer, *_: used.append((trainer.step, optimizer.param_groups[0]["lr"])))
    trainer.train()
    expected = [schedule(s, lr=2e-3, steps=steps, kind=kind, warmup=options.get("warmup_steps", 0), decay=options.get("lr_decay", 1.0))
                for s in range(steps)]
    assert [s for s, _ in used] == list(range(steps))
    assert [rate for _, rate in used] == pytest.approx(expected, rel=1e-12, abs=0)
    # The logged rate of step s (1-based in the log) is the one that step used.
    assert [r["lr"] for r in records(tmp_path / "run", "train")] == pytest.approx([rate for _, rate in used], rel=1e-12, abs=0)
