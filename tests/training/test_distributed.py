"""Data parallel training under torchrun: 2 CPU processes (gloo) against 1 process."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from pixelrnn.training import BatchOrder, Trainer

from ddp_worker import tiny_run_config

WORKER = Path(__file__).resolve().parent / "ddp_worker.py"


def torchrun(*args, processes=2):
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={processes}", *map(str, args)]
    result = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    return result


@pytest.fixture
def tiny_npz(tmp_path):
    rng = np.random.default_rng(1)
    path = tmp_path / "tiny.npz"
    np.savez(path, train=rng.integers(0, 4, (32, 1, 5, 4), dtype=np.uint8),
             valid=rng.integers(0, 4, (6, 1, 5, 4), dtype=np.uint8), levels=np.array(4))
    return path


def single_process_run(path, run_dir, steps):
    config = tiny_run_config(steps)
    arrays = np.load(path)
    trainer = Trainer(config, run_dir, arrays["train"], arrays["valid"], 4, progress=False)
    trainer.train()
    return trainer


def metrics(run_dir):
    return [json.loads(line) for line in (Path(run_dir) / "metrics.jsonl").read_text().splitlines()]


def test_two_processes_hold_identical_weights_and_match_one_process(tmp_path, tiny_npz):
    torchrun(WORKER, tiny_npz, tmp_path / "ddp", 5)
    assert json.loads((tmp_path / "ddp" / "rank1.json").read_text())["world_size"] == 2
    rank0, rank1 = load_file(tmp_path / "ddp" / "rank0.safetensors"), load_file(tmp_path / "ddp" / "rank1.safetensors")
    for name in rank0:
        assert torch.equal(rank0[name], rank1[name]), name

    single = single_process_run(tiny_npz, tmp_path / "single", 5)
    for name, value in single.model.state_dict().items():
        assert torch.allclose(rank0[name], value, rtol=1e-4, atol=1e-5), name
    ddp_log, single_log = metrics(tmp_path / "ddp"), metrics(tmp_path / "single")
    assert [(r["step"], r["split"]) for r in ddp_log] == [(r["step"], r["split"]) for r in single_log]
    for a, b in zip(ddp_log, single_log):
        assert a["nats"] == pytest.approx(b["nats"], rel=1e-5), (a, b)  # global-batch loss and pooled validation
    # only rank 0 wrote the run files
    assert sorted(p.name for p in (tmp_path / "ddp").iterdir() if not p.name.startswith("rank")) == sorted(
        p.name for p in (tmp_path / "single").iterdir())


def test_resume_across_a_change_of_world_size(tmp_path, tiny_npz):
    common = ["-m", "pixelrnn", "train", "--dataset", f"npz:{tiny_npz}", "--arch", "pixelcnn", "--set", "model.hidden=4",
              "--set", "model.layers=1", "--set", "model.output_hidden=8", "--set", "train.batch_size=8",
              "--set", "train.log_every=1", "--set", "train.checkpoint_every=100", "--set", "train.eval_every=100", "-q"]
    launched = torchrun(*common, "--steps", 3, "--out", tmp_path / "run")
    # rank 0 speaks for both processes
    assert launched.stdout.count("parameters on") == 1 and launched.stdout.count("stopped at step 3") == 1, launched.stdout
    resumed = subprocess.run([sys.executable, "-m", "pixelrnn", "train", "--resume", str(tmp_path / "run"), "--steps", "6", "-q"],
                             capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr
    straight = subprocess.run([sys.executable, *common, "--steps", "6", "--out", str(tmp_path / "straight")],
                              capture_output=True, text=True, timeout=300)
    assert straight.returncode == 0, straight.stderr
    a = [r["nats"] for r in metrics(tmp_path / "run") if r["split"] == "train"]
    b = [r["nats"] for r in metrics(tmp_path / "straight") if r["split"] == "train"]
    assert len(a) == len(b) == 6
    assert a == pytest.approx(b, rel=1e-5)


def read_batches(run_dir, rank):
    """{step: (rows, pixel sum)} of the batches a rank gathered; a step gathered twice (ahead, then after resuming) must agree."""
    found = {}
    for line in (Path(run_dir) / f"rank{rank}-batches.jsonl").read_text().splitlines():
        record = json.loads(line)
        entry = (record["rows"], record["sum"])
        assert found.setdefault(record["step"], entry) == entry, record
    return found


def test_two_processes_read_the_single_process_batches_from_the_cache_and_resume_exactly(tmp_path, tiny_npz):
    torchrun(WORKER, tiny_npz, tmp_path / "ddp", 3, "cached")
    torchrun(WORKER, tiny_npz, tmp_path / "ddp", 6, "cached", "resume")
    assert all(json.loads((tmp_path / "ddp" / f"rank{r}.json").read_text())["memory_mapped"] for r in (0, 1))

    train = np.load(tiny_npz)["train"]
    order = BatchOrder(len(train), 8, seed=0)
    shares = [read_batches(tmp_path / "ddp", rank) for rank in (0, 1)]
    for step in range(6):
        rows = shares[0][step][0] + shares[1][step][0]
        assert rows == order.indices(step).tolist(), step  # rank 0 reads the first half of the batch, rank 1 the second
        assert [shares[r][step][1] for r in (0, 1)] == [int(train[shares[r][step][0]].sum()) for r in (0, 1)]

    single = single_process_run(tiny_npz, tmp_path / "single", 6)
    assert single.step == 6
    ddp_train = [r["nats"] for r in metrics(tmp_path / "ddp") if r["split"] == "train"]
    single_train = [r["nats"] for r in metrics(tmp_path / "single") if r["split"] == "train"]
    assert len(ddp_train) == 6 and ddp_train == pytest.approx(single_train, rel=1e-5)


def test_two_processes_train_a_class_conditional_network_on_labels_and_resume_exactly(tmp_path):
    rng = np.random.default_rng(3)
    path = tmp_path / "labelled.npz"
    np.savez(path, train=rng.integers(0, 4, (32, 1, 5, 4), dtype=np.uint8), train_labels=np.arange(32) % 3,
             valid=rng.integers(0, 4, (6, 1, 5, 4), dtype=np.uint8), valid_labels=np.arange(6) % 3, levels=np.array(4))
    torchrun(WORKER, path, tmp_path / "ddp", 3, "cached", "labelled")
    torchrun(WORKER, path, tmp_path / "ddp", 5, "cached", "labelled", "resume")
    rank0, rank1 = load_file(tmp_path / "ddp" / "rank0.safetensors"), load_file(tmp_path / "ddp" / "rank1.safetensors")
    assert any("class" in name for name in rank0)  # the class vectors are trained
    for name in rank0:
        assert torch.equal(rank0[name], rank1[name]), name

    arrays = np.load(path)
    single = Trainer(tiny_run_config(5, "model.classes=3"), tmp_path / "single", arrays["train"], arrays["valid"], 4, progress=False,
                     train_labels=arrays["train_labels"], valid_labels=arrays["valid_labels"])
    single.train()
    assert single.model_config.classes == 3
    for name, value in single.model.state_dict().items():
        assert torch.allclose(rank0[name], value, rtol=1e-4, atol=1e-5), name
    ddp, one = ([(r["step"], r["nats"]) for r in metrics(tmp_path / run) if r["split"] == "train"] for run in ("ddp", "single"))
    assert [step for step, _ in ddp] == [step for step, _ in one] == [1, 2, 3, 4, 5]
    assert [nats for _, nats in ddp] == pytest.approx([nats for _, nats in one], rel=1e-5)  # conditional loss, resumed exactly

    shuffled = Trainer(tiny_run_config(5, "model.classes=3"), tmp_path / "shuffled", arrays["train"], arrays["valid"], 4,
                       progress=False, train_labels=(arrays["train_labels"] + 1) % 3, valid_labels=arrays["valid_labels"])
    shuffled.train()  # other labels, other training: the labels reach the loss
    assert not all(torch.equal(value, single.model.state_dict()[name]) for name, value in shuffled.model.state_dict().items())
