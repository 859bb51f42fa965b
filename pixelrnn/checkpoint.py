"""Model checkpoints: weights as safetensors with the configuration in the file's metadata.

A checkpoint is a single ``.safetensors`` file; its metadata holds ``pixelrnn.config`` (the
JSON of :class:`ModelConfig`), so the model rebuilds from the file alone. Nothing is ever
unpickled. Files are written to a temporary name and renamed into place, so an interrupted
write never replaces a good checkpoint with a broken one.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file

from .config import ModelConfig, MultiScaleConfig, config_from_json
from .errors import CheckpointError, ConfigError
from .models import PixelModel, model_from_config
from .utils import atomic_write

FORMAT = "pixelrnn.checkpoint.v1"


def save_model(model: PixelModel, path: str | os.PathLike, metadata: dict[str, str] | None = None) -> Path:
    tensors = {name: value.detach().contiguous().cpu() for name, value in model.state_dict().items()}
    header = {"format": FORMAT, "pixelrnn.config": model.config.to_json(), **(metadata or {})}
    atomic_write(path, lambda temp: save_file(tensors, temp, metadata=header))
    return Path(path)


def read_safetensors(path: str | os.PathLike) -> tuple[dict[str, str], dict[str, torch.Tensor]]:
    """Metadata and tensors of a safetensors file; a damaged or foreign file is a CheckpointError."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} does not exist")
    try:
        with safe_open(str(path), framework="pt") as handle:
            return handle.metadata() or {}, {key: handle.get_tensor(key) for key in handle.keys()}
    except (SafetensorError, OSError, ValueError, RuntimeError) as error:
        first_line = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise CheckpointError(f"{path} is not a readable safetensors checkpoint ({first_line})") from None


def read_checkpoint(path: str | os.PathLike) -> tuple[ModelConfig | MultiScaleConfig, dict[str, torch.Tensor], dict[str, str]]:
    """Config, tensors and metadata of a checkpoint, with one-line errors for bad files."""
    path = Path(path)
    metadata, tensors = read_safetensors(path)
    if metadata.get("format") != FORMAT:
        raise CheckpointError(f"{path} is a safetensors file but not a pixelrnn checkpoint (format {metadata.get('format')!r}, expected {FORMAT!r})")
    try:
        config = config_from_json(metadata["pixelrnn.config"])
    except (KeyError, json.JSONDecodeError, ConfigError, TypeError) as error:
        raise CheckpointError(f"{path} holds no valid model configuration ({error})") from None
    return config, tensors, metadata


def load_model_with_metadata(path: str | os.PathLike, device: str | torch.device = "cpu") -> tuple[PixelModel, dict[str, str]]:
    """The model of a checkpoint file (in eval mode) and the file's metadata, from one read."""
    config, tensors, metadata = read_checkpoint(path)
    model = model_from_config(config)
    try:
        model.load_state_dict(tensors, strict=True)
    except RuntimeError as error:
        raise CheckpointError(f"{path}: weights do not match its configuration ({str(error).splitlines()[0]})") from None
    return model.to(device).eval(), metadata


def load_model(path: str | os.PathLike, device: str | torch.device = "cpu") -> PixelModel:
    """The model of a checkpoint, in eval mode (call ``.train()`` to fine-tune it)."""
    return load_model_with_metadata(path, device)[0]
