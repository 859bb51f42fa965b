"""Model checkpoints: weights as safetensors with the configuration in the file's metadata.

A checkpoint is a single ``.safetensors`` file; its metadata holds ``pixelrnn.config`` (the
JSON of :class:`ModelConfig`), so the model rebuilds from the file alone. Nothing is ever
unpickled. Files are written to a temporary name and renamed into place, so an interrupted
write never replaces a good checkpoint with a broken one. The file format and its one reader
live in :mod:`pixelrnn.models.weights`, shared with the pretrained folders; that reader checks
a file from someone else before it allocates what the file asks for.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch

from .config import ModelConfig, MultiScaleConfig
from .models import PixelModel
from .models.weights import (FORMAT, config_from_metadata, load_weights, read_safetensors, read_safetensors_header, read_weights,
                             write_weights)

__all__ = ["FORMAT", "load_model", "load_model_with_metadata", "read_checkpoint", "read_safetensors", "read_safetensors_header",
           "read_weights", "save_model"]


def save_model(model: PixelModel, path: str | os.PathLike, metadata: dict[str, str] | None = None) -> Path:
    return write_weights(model, path, metadata)


def read_checkpoint(path: str | os.PathLike) -> tuple[ModelConfig | MultiScaleConfig, dict[str, torch.Tensor], dict[str, str]]:
    """Config, tensors and metadata of a checkpoint, each checked before the next is read (:mod:`.models.weights`)."""
    metadata, found = read_safetensors_header(path)
    config = config_from_metadata(metadata, path)
    return config, read_weights(path, config, found), metadata


def load_model_with_metadata(path: str | os.PathLike, device: str | torch.device = "cpu") -> tuple[PixelModel, dict[str, str]]:
    """The model of a checkpoint file (in eval mode) and the file's metadata.

    The metadata (image size, dataset, ...) also rides on the model as ``model.metadata``, so that
    ``save_pretrained`` of a loaded model keeps it.
    """
    metadata, found = read_safetensors_header(path)
    model = load_weights(config_from_metadata(metadata, path), path, found).to(device).eval()
    model.metadata = {key: value for key, value in metadata.items() if key not in ("format", "pixelrnn.config")}
    return model, metadata


def load_model(path: str | os.PathLike, device: str | torch.device = "cpu") -> PixelModel:
    """The model of a checkpoint, in eval mode (call ``.train()`` to fine-tune it)."""
    return load_model_with_metadata(path, device)[0]
