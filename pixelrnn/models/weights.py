"""A model's weights in a safetensors file: written, read and loaded without unpickling anything.

A weights file holds the tensors of ``state_dict()``; its metadata holds ``format`` and
``pixelrnn.config`` (the JSON of the model's configuration), so the model rebuilds from the file
alone, plus any string metadata the writer adds (step, dataset, image size). Files are written to
a temporary name and renamed into place.

This is the one reader of model weights: single-file checkpoints (:mod:`pixelrnn.checkpoint`)
and pretrained folders (:mod:`.pretrained`) both load through :func:`load_weights`, so a check
made here holds for both. It sits beside the networks so that their own ``save_pretrained`` and
``from_pretrained`` need nothing from the floors above.
"""

from __future__ import annotations

import contextlib
import json
import os
from pathlib import Path

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file

from ..config import ModelConfig, MultiScaleConfig, config_from_json
from ..errors import CheckpointError, ConfigError
from ..utils import atomic_write
from .registry import model_from_config

FORMAT = "pixelrnn.checkpoint.v1"


def write_weights(model, path: str | os.PathLike, metadata: dict[str, str] | None = None) -> Path:
    """The model's weights, configuration and ``metadata`` (strings) as one safetensors file."""
    tensors = {name: value.detach().contiguous().cpu() for name, value in model.state_dict().items()}
    header = {"format": FORMAT, "pixelrnn.config": model.config.to_json(), **(metadata or {})}
    atomic_write(path, lambda temp: save_file(tensors, temp, metadata=header))
    return Path(path)


@contextlib.contextmanager
def _opened(path: Path):
    """A safetensors handle; a missing, damaged or foreign file is a one-line CheckpointError."""
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} does not exist")
    try:
        with safe_open(str(path), framework="pt") as handle:
            yield handle
    except (SafetensorError, OSError, ValueError, RuntimeError) as error:
        first_line = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise CheckpointError(f"{path} is not a readable safetensors checkpoint ({first_line})") from None


def read_safetensors(path: str | os.PathLike) -> tuple[dict[str, str], dict[str, torch.Tensor]]:
    """Metadata and tensors of a safetensors file; a damaged or foreign file is a CheckpointError."""
    with _opened(Path(path)) as handle:
        return handle.metadata() or {}, {key: handle.get_tensor(key) for key in handle.keys()}


def read_metadata(path: str | os.PathLike) -> dict[str, str]:
    """The metadata of a safetensors file, without reading its tensors."""
    with _opened(Path(path)) as handle:
        return handle.metadata() or {}


def config_from_metadata(metadata: dict[str, str], path: str | os.PathLike) -> ModelConfig | MultiScaleConfig:
    """The configuration a pixelrnn weights file carries (one-line errors for foreign files)."""
    if metadata.get("format") != FORMAT:
        raise CheckpointError(f"{path} is a safetensors file but not a pixelrnn checkpoint (format {metadata.get('format')!r}, expected {FORMAT!r})")
    try:
        return config_from_json(metadata["pixelrnn.config"])
    except (KeyError, json.JSONDecodeError, ConfigError, TypeError) as error:
        raise CheckpointError(f"{path} holds no valid model configuration ({error})") from None


def load_weights(config: ModelConfig | MultiScaleConfig, path: str | os.PathLike):
    """The model ``config`` describes, with the weights of the file at ``path`` (every name, every shape)."""
    _, tensors = read_safetensors(path)
    model = model_from_config(config)
    try:
        model.load_state_dict(tensors, strict=True)
    except RuntimeError as error:
        raise CheckpointError(f"{path}: weights do not match its configuration ({str(error).splitlines()[0]})") from None
    return model
