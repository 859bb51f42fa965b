"""Training pipeline: exact resume, safe interruption, schedules, configs, CLI errors."""

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors import safe_open

from pixelrnn import load_model_from
from pixelrnn.cli import main
from pixelrnn.config import ConfigError
from pixelrnn.training import build_run_config
from pixelrnn.training import BatchOrder, TrainConfig, Trainer, TrainingError, learning_rate, make_optimizer

CONFIGS = Path(__file__).resolve().parents[2] / "configs"


@pytest.fixture
def tiny_npz(tmp_path):
    """A 4-level, 1x6x5 dataset in the npz layout the data module reads."""
    rng = np.random.default_rng(0)
    path = tmp_path / "tiny.npz"
    np.savez(path, train=rng.integers(0, 4, (40, 1, 6, 5), dtype=np.uint8),
             valid=rng.integers(0, 4, (12, 1, 6, 5), dtype=np.uint8),
             test=rng.integers(0, 4, (10, 1, 6, 5), dtype=np.uint8), levels=np.array(4))
    return path


def tiny_config(steps, **train):
    overrides = [f"train.{k}={json.dumps(v)}" for k, v in {
        "steps": steps, "batch_size": 8, "optimizer": "adam", "lr": 3e-3, "schedule": "cosine", "warmup_steps": 2,
        "ema_decay": 0.9, "log_every": 1, "eval_every": 4, "checkpoint_every": 3, **train}.items()]
    return build_run_config(None, overrides + ["model.hidden=4", "model.layers=2", "model.output_hidden=8"],
                            **{"model.arch": "diagonal_bilstm", "data.dataset": "tiny"})


def data(path):
    arrays = np.load(path)
    return arrays["train"], arrays["valid"]


def state_tensors(run_dir):
    with safe_open(str(run_dir / "state.safetensors"), framework="pt") as handle:
        return {key: handle.get_tensor(key) for key in handle.keys()}


def train_losses(run_dir):
    return [(r["step"], r["split"], r["nats"]) for r in map(json.loads, (run_dir / "metrics.jsonl").read_text().splitlines())]


def test_interrupted_then_resumed_run_equals_an_uninterrupted_one(tmp_path, tiny_npz):
    train, valid = data(tiny_npz)
    straight = Trainer(tiny_config(11), tmp_path / "a", train, valid, 4, progress=False)
    assert straight.train().stopped == "finished"

    interrupted = Trainer(tiny_config(11), tmp_path / "b", train, valid, 4, progress=False)
    original_step = interrupted.train_step

    def step_then_signal(stop_request=False):  # SIGTERM arrives during step 5: the step finishes, then the run stops
        result = original_step(stop_request)
        if interrupted.step == 5:
            interrupted._on_signal(signal.SIGTERM, None)
        return result

    interrupted.train_step = step_then_signal
    result = interrupted.train()
    assert (result.step, result.stopped) == (5, "signal:SIGTERM")
    resumed = Trainer(tiny_config(11), tmp_path / "b", train, valid, 4, progress=False, resume=True)
    assert resumed.step == 5
    assert resumed.train().step == 11

    assert train_losses(tmp_path / "a") == train_losses(tmp_path / "b")
    a, b = state_tensors(tmp_path / "a"), state_tensors(tmp_path / "b")
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key


def test_resume_from_an_older_checkpoint_drops_later_log_lines(tmp_path, tiny_npz):
    """A crash after step 4 was logged but before it was saved: the log is cut back to the state."""
    import shutil

    train, valid = data(tiny_npz)
    Trainer(tiny_config(2, schedule="constant"), tmp_path / "run", train, valid, 4, progress=False).train()
    shutil.copy(tmp_path / "run" / "state.safetensors", tmp_path / "state_at_2")
    Trainer(tiny_config(4, schedule="constant"), tmp_path / "run", train, valid, 4, progress=False, resume=True).train()
    assert max(step for step, _, _ in train_losses(tmp_path / "run")) == 4
    shutil.copy(tmp_path / "state_at_2", tmp_path / "run" / "state.safetensors")  # the step-4 save never happened

    trainer = Trainer(tiny_config(4, schedule="constant"), tmp_path / "run", train, valid, 4, progress=False, resume=True)
    assert trainer.step == 2
    assert max(step for step, _, _ in train_losses(tmp_path / "run")) == 2
    trainer.train()
    Trainer(tiny_config(4, schedule="constant"), tmp_path / "straight", train, valid, 4, progress=False).train()
    # the 2-step run validated at its end; apart from that, one run
    train_only = lambda run: [line for line in train_losses(run) if line[1] == "train"]
    assert train_only(tmp_path / "run") == train_only(tmp_path / "straight")


def test_non_finite_loss_stops_and_keeps_the_last_checkpoint(tmp_path, tiny_npz):
    train, valid = data(tiny_npz)
    trainer = Trainer(tiny_config(10), tmp_path / "run", train, valid, 4, progress=False)
    original = trainer.model.nll

    def poisoned(batch):
        out = original(batch)
        return out * float("nan") if trainer.step == 4 else out

    trainer.model.nll = poisoned  # what the training objective calls
    with pytest.raises(TrainingError, match=r"non-finite loss at step 5.*step 3"):
        trainer.train()
    assert int(safe_open(str(tmp_path / "run" / "state.safetensors"), "pt").metadata()["step"]) == 3
    assert load_model_from(tmp_path / "run") is not None


def test_batch_order_is_a_seeded_permutation_per_epoch():
    order = BatchOrder(10, 3, seed=7)
    epoch0 = torch.cat([order.indices(s) for s in range(3)])
    assert len(set(epoch0.tolist())) == 9
    again = BatchOrder(10, 3, seed=7)
    assert torch.equal(again.indices(4), order.indices(4))  # any step, in any order, gives the same batch
    assert not torch.equal(BatchOrder(10, 3, seed=8).indices(0), BatchOrder(10, 3, seed=7).indices(0))
    with pytest.raises(TrainingError, match="fewer than batch_size"):
        BatchOrder(2, 3, seed=0)


@pytest.mark.parametrize("name, reference", [("adam", torch.optim.Adam), ("rmsprop", torch.optim.RMSprop)])
def test_the_optimiser_updates_all_parameters_at_once_as_the_per_parameter_loop_does(name, reference):
    """make_optimizer runs one kernel over all parameters (the per-parameter loop cost 5 to 10 % of a CPU step); same updates."""
    torch.manual_seed(0)
    fast_model = torch.nn.Sequential(torch.nn.Linear(5, 7), torch.nn.Linear(7, 3))
    loop_model = torch.nn.Sequential(torch.nn.Linear(5, 7), torch.nn.Linear(7, 3))
    loop_model.load_state_dict(fast_model.state_dict())
    initial = [parameter.detach().clone() for parameter in fast_model.parameters()]
    fast = make_optimizer(TrainConfig(optimizer=name, lr=1e-2, weight_decay=1e-3), fast_model.parameters())
    loop = reference(loop_model.parameters(), lr=1e-2, weight_decay=1e-3, foreach=False)
    assert isinstance(fast, reference) and (fast.defaults.get("fused") or fast.defaults.get("foreach"))
    for _ in range(3):
        x = torch.randn(4, 5)
        for model, optimizer in ((fast_model, fast), (loop_model, loop)):
            optimizer.zero_grad()
            model(x).square().sum().backward()
            optimizer.step()
    for found, wanted, before in zip(fast_model.parameters(), loop_model.parameters(), initial):
        torch.testing.assert_close(found, wanted, rtol=1e-5, atol=1e-6)
        assert not torch.equal(found, before)


def test_learning_rate_schedules():
    train = tiny_config(100, schedule="cosine", warmup_steps=10, lr=1.0).train
    assert learning_rate(train, 0) == pytest.approx(0.1 * (0.5 * (1 + np.cos(0))))
    assert learning_rate(train, 50) == pytest.approx(0.5)
    assert learning_rate(train, 100) == pytest.approx(0.0)
    exponential = tiny_config(100, schedule="exponential", lr_decay=0.5, warmup_steps=0, lr=1.0).train
    assert learning_rate(exponential, 3) == pytest.approx(0.125)


@pytest.mark.parametrize("path", sorted(CONFIGS.glob("*.toml")), ids=lambda p: p.stem)
def test_every_shipped_config_resolves_to_a_model(path):
    config = build_run_config(path)
    channels, levels = {"binarized_mnist": (1, 2), "digits": (1, 17)}.get(config.data.dataset, (1, 256) if config.data.dataset == "mnist" else (3, 256))
    model_config = config.model_config(channels, levels)
    assert model_config.channels == channels and model_config.levels == levels


def test_config_errors_name_the_bad_key():
    with pytest.raises(ConfigError, match="model.dropout"):
        build_run_config(None, ["model.dropout=0.1"])
    with pytest.raises(ConfigError, match="train.optimizer='sgd'"):
        build_run_config(None, ["train.optimizer=sgd"])
    with pytest.raises(ConfigError, match="train.steps"):
        build_run_config(None, ["train.steps=fast"])
    with pytest.raises(ConfigError, match="is for channels=1"):
        build_run_config(None, ["model.preset=mnist_pixelcnn"]).model_config(3, 256)
    assert build_run_config(CONFIGS / "mnist_pixelcnn.toml", ["model.hidden=32"]).model_config(1, 2).hidden == 32


def run_cli(*args):
    return subprocess.run([sys.executable, "-m", "pixelrnn", *args], capture_output=True, text=True, timeout=300)


def test_cli_train_evaluate_and_user_errors(tmp_path, tiny_npz, capsys):
    run = tmp_path / "run"
    common = ["--dataset", f"npz:{tiny_npz}", "--arch", "pixelcnn", "--set", "model.hidden=4", "--set", "model.layers=2", "--set", "model.output_hidden=8",
              "--set", "train.batch_size=8", "--set", "train.eval_every=3", "-q"]
    assert main(["train", *common, "--steps", "3", "--out", str(run)]) == 0
    assert {"config.json", "metrics.jsonl", "state.safetensors", "last.safetensors", "best.safetensors"} <= {p.name for p in run.iterdir()}
    report = tmp_path / "eval.json"
    assert main(["evaluate", str(run), "--split", "test", "--train", "--json", str(report), "-q"]) == 0
    result = json.loads(report.read_text())
    model = load_model_from(run)
    test_images = torch.from_numpy(np.load(tiny_npz)["test"]).long()
    expected = model.nll(test_images).double().mean().item()
    assert result["nats_per_image"] == pytest.approx(expected, rel=1e-6)
    assert result["bits_per_dim"] == pytest.approx(expected / (30 * np.log(2)), rel=1e-6)
    assert result["train"]["images"] == 40
    capsys.readouterr()

    bad_cases = [
        ["train", "--arch", "gru", "--dataset", f"npz:{tiny_npz}", "--out", str(tmp_path / "x")],
        ["train", "--arch", "pixelcnn", "--dataset", "imagenet9", "--out", str(tmp_path / "x")],
        ["train", "--arch", "pixelcnn", "--dataset", f"npz:{tiny_npz}", "--set", "train.lrr=1", "--out", str(tmp_path / "x")],
        ["train", *common, "--out", str(run)],  # refuses to overwrite a run
        ["evaluate", str(tmp_path / "missing")],
        ["evaluate", str(run), "--dataset", "digits", "-q"],  # 17 levels and 8x8: not this model's data
    ]
    for args in bad_cases:
        assert main(args) == 2, args
        err = capsys.readouterr().err.strip()
        assert err.count("\n") == 0 and "Traceback" not in err and "error:" in err, err
    # a pickle posing as a checkpoint is refused without being unpickled
    evil = tmp_path / "evil.safetensors"
    evil.write_bytes(b"\x80\x04\x95" + b"cos\nsystem\n" + b"\x00" * 20)
    assert main(["evaluate", str(evil), "--dataset", f"npz:{tiny_npz}"]) == 2
    assert "not a readable" in capsys.readouterr().err
    # nothing already written was lost
    assert (run / "best.safetensors").exists() and (run / "state.safetensors").exists()


@pytest.mark.slow
def test_sigint_saves_and_resume_matches_an_uninterrupted_run(tmp_path, tiny_npz):
    common = ["train", "--dataset", f"npz:{tiny_npz}", "--arch", "row_lstm", "--set", "model.hidden=4", "--set", "model.layers=2",
              "--set", "model.output_hidden=8", "--set", "train.batch_size=8", "--set", "train.log_every=1",
              "--set", "train.checkpoint_every=1000", "--set", "train.eval_every=1000", "--set", "train.schedule='exponential'",
              "--set", "train.lr_decay=0.97", "-q"]
    steps = "400"
    process = subprocess.Popen([sys.executable, "-m", "pixelrnn", *common, "--steps", steps, "--out", str(tmp_path / "b")],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    metrics = tmp_path / "b" / "metrics.jsonl"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and (not metrics.exists() or len(metrics.read_text().splitlines()) < 5):
        time.sleep(0.05)
    process.send_signal(signal.SIGINT)
    out, err = process.communicate(timeout=120)
    assert process.returncode == 130, err
    assert "--resume" in out
    stopped_at = int(safe_open(str(tmp_path / "b" / "state.safetensors"), "pt").metadata()["step"])
    assert 5 <= stopped_at < 400
    # The exponential schedule does not depend on train.steps, so both runs may end early.
    final = str(stopped_at + 5)
    resumed = run_cli("train", "--resume", str(tmp_path / "b"), "--steps", final, "-q")
    assert resumed.returncode == 0, resumed.stderr
    straight = run_cli(*common, "--steps", final, "--out", str(tmp_path / "a"))
    assert straight.returncode == 0, straight.stderr
    assert train_losses(tmp_path / "a") == train_losses(tmp_path / "b")


def test_complete_from_a_dataset_keeps_the_top_rows(tmp_path, tiny_npz):
    run = tmp_path / "run"
    assert main(["train", "--dataset", f"npz:{tiny_npz}", "--arch", "row_lstm", "--set", "model.hidden=4", "--set", "model.layers=1",
                 "--set", "model.output_hidden=8", "--set", "train.batch_size=8", "--steps", "2", "--out", str(run), "-q"]) == 0
    out = tmp_path / "completions.png"
    assert main(["complete", str(run), "--dataset", f"npz:{tiny_npz}", "--index", "2", "--keep-rows", "3", "-k", "4",
                 "--out", str(out), "--seed", "0", "-q"]) == 0
    completions = np.load(out.with_suffix(".npz"))["images"]
    original = np.load(tiny_npz)["test"][2]
    assert completions.shape == (4, 1, 6, 5)
    assert (completions[:, :, :3] == original[:, :3]).all()


def test_a_signal_during_validation_stops_the_run_and_resume_validates_first(tmp_path, tiny_npz, monkeypatch):
    from pixelrnn.training import trainer as trainer_module

    train, valid = data(tiny_npz)
    Trainer(tiny_config(9, eval_batch_size=4), tmp_path / "a", train, valid, 4, progress=False).train()
    interrupted = Trainer(tiny_config(9, eval_batch_size=4), tmp_path / "b", train, valid, 4, progress=False)
    original, scored = trainer_module.nats_by_batch, []

    def signal_during_validation(*args, **kwargs):
        for nats in original(*args, **kwargs):
            scored.append(len(nats))
            if interrupted.step == 8:
                interrupted._on_signal(signal.SIGTERM, None)
            yield nats

    monkeypatch.setattr(trainer_module, "nats_by_batch", signal_during_validation)
    result = interrupted.train()
    assert (result.step, result.stopped) == (8, "signal:SIGTERM")
    assert scored == [4, 4, 4, 4]  # the validation at step 4 whole; at step 8 the batch in hand, then stop
    assert (8, "valid") not in [(step, split) for step, split, _ in train_losses(tmp_path / "b")]
    assert int(safe_open(str(tmp_path / "b" / "state.safetensors"), "pt").metadata()["step"]) == 8
    monkeypatch.undo()

    resumed = Trainer(tiny_config(9, eval_batch_size=4), tmp_path / "b", train, valid, 4, progress=False, resume=True)
    assert resumed.step == 8 and resumed.validation_due()
    assert resumed.train().step == 9
    assert train_losses(tmp_path / "a") == train_losses(tmp_path / "b")  # step 8's validation, then step 9: as one run
    a, b = state_tensors(tmp_path / "a"), state_tensors(tmp_path / "b")
    assert all(torch.equal(a[key], b[key]) for key in a)


def folder_snapshot(folder):
    return {p.name: (p.read_bytes(), p.stat().st_mtime_ns) for p in sorted(Path(folder).iterdir())}


def test_resuming_a_finished_run_changes_nothing(tmp_path, tiny_npz, capsys):
    run = tmp_path / "run"
    assert main(["train", "--dataset", f"npz:{tiny_npz}", "--arch", "pixelcnn", "--set", "model.hidden=4", "--set", "model.layers=1",
                 "--set", "model.output_hidden=8", "--set", "train.batch_size=8", "--set", "train.eval_every=2", "--steps", "3",
                 "--out", str(run), "-q"]) == 0
    before = folder_snapshot(run)
    capsys.readouterr()
    assert main(["train", "--resume", str(run), "-q"]) == 0
    out = capsys.readouterr().out
    assert f"{run} finished at step 3" in out and "nothing changed" in out and "--steps N" in out
    assert folder_snapshot(run) == before
    assert [(r["step"], r["split"]) for r in map(json.loads, (run / "metrics.jsonl").read_text().splitlines())
            if r["split"] == "valid"] == [(2, "valid"), (3, "valid")]


def test_config_json_writes_every_field_of_the_model(tmp_path, tiny_npz, umask):
    import stat

    from pixelrnn import ModelConfig

    train, valid = data(tiny_npz)
    umask(0o022)
    trainer = Trainer(tiny_config(1), tmp_path / "run", train, valid, 4, progress=False)
    trainer.train()
    modes = {p.name: stat.S_IMODE(p.stat().st_mode) for p in (tmp_path / "run").iterdir()}
    assert set(modes) == {"config.json", "metrics.jsonl", "state.safetensors", "last.safetensors", "best.safetensors"}
    assert set(modes.values()) == {0o644}  # readable by the group and others, as the umask says
    saved = json.loads((tmp_path / "run" / "config.json").read_text())["model"]
    # Every field, but the class fields an unconditional network leaves out (the format of earlier releases).
    assert saved == trainer.model_config.to_dict()
    assert set(saved) == {f for f in ModelConfig.__dataclass_fields__} - {"classes", "class_names"}
    assert saved["levels"] == 4 and saved["input_kernel"] == 7  # from the dataset, and a default
    from pixelrnn.training import RunFolder

    assert RunFolder(tmp_path / "run").resume_config().model_config(1, 4) == trainer.model_config
    with pytest.raises(ConfigError, match="model.levels=4, but the dataset has levels=2"):
        RunFolder(tmp_path / "run").resume_config().model_config(1, 2)


@pytest.mark.slow
def test_sigterm_during_the_last_validation_exits_143_and_logs_plain_lines(tmp_path):
    rng = np.random.default_rng(0)
    path = tmp_path / "long_valid.npz"
    np.savez(path, train=rng.integers(0, 2, (16, 1, 6, 5), dtype=np.uint8), valid=rng.integers(0, 2, (20000, 1, 6, 5), dtype=np.uint8))
    run = tmp_path / "run"
    process = subprocess.Popen([sys.executable, "-m", "pixelrnn", "train", "--dataset", f"npz:{path}", "--arch", "pixelcnn",
                                "--set", "model.hidden=2", "--set", "model.layers=1", "--set", "model.output_hidden=2",
                                "--set", "train.batch_size=8", "--set", "train.log_every=1", "--set", "train.eval_images=0",
                                "--set", "train.eval_batch_size=1", "--steps", "2", "--out", str(run)],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)  # stderr is a pipe: no terminal
    metrics = run / "metrics.jsonl"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and (not metrics.exists() or '"step": 2' not in metrics.read_text()):
        time.sleep(0.05)
    process.send_signal(signal.SIGTERM)  # the last step is logged: the final validation is running
    out, err = process.communicate(timeout=120)
    assert process.returncode == 143, err
    assert "stopped at step 2 (signal:SIGTERM)" in out and f"resume with: pixelrnn train --resume {run}" in out
    assert "valid" not in metrics.read_text()
    assert "\r" not in err and "step 1/2: train" in err and "step 2/2: train" in err
