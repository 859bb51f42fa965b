"""The training state file: everything a run needs to continue exactly where it stopped.

Weights (``model/``), EMA weights (``ema/``), optimizer tensors (``optimizer/<param>/<key>``)
and the torch RNG state (``rng/torch``) as safetensors; step, best validation score, the step
of the last finished validation and the optimizer's non-tensor values as JSON in the metadata.
Nothing is pickled.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors.torch import save_file

from ..checkpoint import read_safetensors
from ..config import config_from_json
from ..errors import CheckpointError, TrainingError, one_line
from ..utils import atomic_write

STATE_FORMAT = "pixelrnn.train_state.v1"


@dataclass
class TrainingState:
    """What a run is made of besides its configuration; the modules are updated in place on load."""

    model: torch.nn.Module
    ema_model: torch.nn.Module | None
    optimizer: torch.optim.Optimizer
    step: int = 0
    best_valid: float | None = None
    validated_step: int | None = None  # the step of the last validation that ran to its end

    def save(self, path: Path, model_config) -> None:
        tensors = {f"model/{k}": v.detach().cpu().contiguous() for k, v in self.model.state_dict().items()}
        if self.ema_model is not None:
            tensors.update({f"ema/{k}": v.detach().cpu().contiguous() for k, v in self.ema_model.state_dict().items()})
        optimizer_tensors, optimizer_meta = _optimizer_tensors(self.optimizer)
        tensors.update(optimizer_tensors)
        tensors["rng/torch"] = torch.get_rng_state()
        metadata = {
            "format": STATE_FORMAT,
            "step": str(self.step),
            "best_valid": json.dumps(self.best_valid),
            "validated_step": json.dumps(self.validated_step),
            "optimizer": json.dumps(optimizer_meta),
            "model_config": model_config.to_json(),
        }
        atomic_write(path, lambda temp: save_file(tensors, temp, metadata=metadata))

    def load(self, path: Path, model_config, device: torch.device) -> None:
        """Restore weights, optimizer, RNG, step and best score; the run's model must be the saved one."""
        try:
            metadata, tensors = read_safetensors(path)
        except CheckpointError as error:
            raise TrainingError(f"cannot resume: {error}") from None
        if metadata.get("format") != STATE_FORMAT:
            raise TrainingError(f"cannot resume: {path} is not a pixelrnn training state")
        try:
            self._restore(path, metadata, tensors, model_config, device)
        except (KeyError, ValueError, TypeError, IndexError, AttributeError, RuntimeError, RecursionError) as error:
            raise TrainingError(f"cannot resume: {path} is damaged ({one_line(error)})") from None

    def _restore(self, path: Path, metadata: dict, tensors: dict, model_config, device: torch.device) -> None:
        if config_from_json(metadata["model_config"]) != model_config:
            raise TrainingError(f"cannot resume: the model in {path} differs from the configured one")
        part = lambda prefix: {k[len(prefix):]: v for k, v in tensors.items() if k.startswith(prefix)}
        self.model.load_state_dict(part("model/"))
        if self.ema_model is not None:
            ema = part("ema/")
            self.ema_model.load_state_dict(ema if ema else self.model.state_dict())
        optimizer_tensors = {k: v.to(device) for k, v in tensors.items() if k.startswith("optimizer/")}
        self.optimizer.load_state_dict(_optimizer_state(optimizer_tensors, json.loads(metadata["optimizer"])))
        torch.set_rng_state(tensors["rng/torch"])
        self.step = int(metadata["step"])
        self.best_valid = json.loads(metadata["best_valid"])
        self.validated_step = json.loads(metadata.get("validated_step", "null"))  # null in files written before it was kept


def _optimizer_tensors(optimizer: torch.optim.Optimizer) -> tuple[dict, dict]:
    """Split an optimizer state dict into tensors and JSON-able values (no pickle)."""
    state = optimizer.state_dict()
    tensors, scalars = {}, {}
    for index, values in state["state"].items():
        for key, value in values.items():
            if torch.is_tensor(value):
                tensors[f"optimizer/{index}/{key}"] = value.detach().cpu().contiguous()
            else:
                scalars[f"{index}/{key}"] = value
    return tensors, {"param_groups": state["param_groups"], "scalars": scalars}


def _optimizer_state(tensors: dict, meta: dict) -> dict:
    state: dict = {}
    for name, value in tensors.items():
        _, index, key = name.split("/", 2)
        state.setdefault(int(index), {})[key] = value
    for name, value in meta["scalars"].items():
        index, key = name.split("/", 1)
        state.setdefault(int(index), {})[key] = value
    return {"state": state, "param_groups": meta["param_groups"]}
