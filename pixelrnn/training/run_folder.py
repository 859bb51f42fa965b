"""A run folder: the one place that names its files, and what a later command reads back from it.

A run folder holds::

    config.json          the resolved run configuration, every model field written out
    metrics.jsonl        one JSON object a line: {"step", "split", "nats", "bits_per_dim", ...}
    state.safetensors    everything needed to resume: weights, EMA weights, optimizer state,
                         RNG state, step, best validation score (JSON in the metadata)
    last.safetensors     model checkpoint of the latest step (evaluation weights)
    best.safetensors     model checkpoint with the best validation NLL (evaluation weights)

Every file is written to a temporary name and renamed, so an interruption at any moment leaves
the previous version intact. Any command that takes a checkpoint takes a run folder too
(:func:`resolve_checkpoint`: its best checkpoint, else its last one), a pretrained folder (its
``model.safetensors``) and ``pretrained:NAME``: a bundled model or a Hub repository
(:mod:`pixelrnn.hub`), resolved here for every command.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import torch

from ..checkpoint import load_model
from ..errors import CheckpointError, TrainingError
from ..hub import PREFIX, WEIGHTS_NAME, pretrained_folder
from ..utils import atomic_write
from .run_config import RunConfig, build_run_config

CHECKPOINT_NAMES = ("best.safetensors", "last.safetensors", WEIGHTS_NAME)  # a run folder's, then a pretrained folder's


@dataclass(frozen=True)
class RunFolder:
    path: Path

    def __init__(self, path: str | os.PathLike):
        object.__setattr__(self, "path", Path(path))

    config = property(lambda self: self.path / "config.json")
    metrics = property(lambda self: self.path / "metrics.jsonl")
    state = property(lambda self: self.path / "state.safetensors")
    last = property(lambda self: self.path / "last.safetensors")
    best = property(lambda self: self.path / "best.safetensors")

    def holds_run(self) -> bool:
        return self.state.exists()

    def is_run(self) -> bool:
        """A folder written by training: its config and a checkpoint (a pretrained folder has a
        config.json too, but its weights are ``model.safetensors``)."""
        return self.config.is_file() and (self.best.is_file() or self.last.is_file())

    # ------------------------------------------------------------- configuration
    def write_config(self, config: RunConfig, model_config=None) -> None:
        """``config.json``: the run configuration, with every field of ``model_config`` when given."""
        text = json.dumps(config.to_dict(model_config), indent=2) + "\n"
        atomic_write(self.config, lambda temp: Path(temp).write_text(text))

    def read_config(self) -> dict:
        """The saved configuration as written (sections of plain values)."""
        return json.loads(self.config.read_text())

    def data_settings(self) -> dict:
        """The ``[data]`` section the run was trained with ({} outside a run folder)."""
        return self.read_config().get("data", {}) if self.config.is_file() else {}

    def resume_config(self, overrides=()) -> RunConfig:
        """The run's saved configuration with ``train.KEY=VALUE`` overrides: the run continued."""
        if not self.config.is_file():
            raise TrainingError(f"cannot resume: {self.config} does not exist")
        for item in overrides:
            if not item.startswith("train."):
                raise TrainingError(f"cannot change {item.split('=')[0]} when resuming; only train.* keys may change")
        raw = self.read_config()
        return build_run_config(None, overrides, **{f"{section}.{key}": value for section, values in raw.items() for key, value in values.items()})

    # ------------------------------------------------------------- metrics log
    def reset_metrics(self) -> None:
        atomic_write(self.metrics, lambda temp: Path(temp).write_text(""))

    def append_metrics(self, record: dict) -> None:
        with open(self.metrics, "a") as handle:
            handle.write(json.dumps(record) + "\n")

    def truncate_metrics(self, step: int) -> None:
        """Drop log lines written after ``step``, so that a resumed run's log reads as one run."""
        lines = self.metrics.read_text().splitlines() if self.metrics.exists() else []
        kept = [line for line in lines if line.strip() and json.loads(line)["step"] <= step]
        if kept == lines:
            return  # nothing to drop: the file stays as it is
        atomic_write(self.metrics, lambda temp: Path(temp).write_text("".join(line + "\n" for line in kept)))


def resolve_checkpoint(path: str | os.PathLike) -> Path:
    """A checkpoint file, a run folder (its best checkpoint, else its last one), a pretrained folder or ``pretrained:NAME``."""
    if str(path).startswith(PREFIX):
        path = pretrained_folder(str(path)[len(PREFIX):])
    path = Path(path)
    if path.is_dir():
        for name in CHECKPOINT_NAMES:
            if (path / name).is_file():
                return path / name
        raise CheckpointError(f"run folder {path} holds no checkpoint ({' or '.join(CHECKPOINT_NAMES)})")
    if not path.exists():
        raise CheckpointError(f"checkpoint or run folder {path} does not exist")
    return path


def load_model_from(path: str | os.PathLike, device: str | torch.device = "cpu"):
    """Load from a checkpoint file or a run folder."""
    return load_model(resolve_checkpoint(path), device)
