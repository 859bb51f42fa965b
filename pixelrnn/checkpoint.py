"""Model checkpoints: weights as safetensors with the configuration in the file's metadata.

A checkpoint is a single ``.safetensors`` file; its metadata holds ``pixelrnn.config`` (the
JSON of :class:`ModelConfig`), so the model rebuilds from the file alone. Nothing is ever
unpickled. Files are written to a temporary name and renamed into place, so an interrupted
write never replaces a good checkpoint with a broken one. The file format and its one reader
live in :mod:`pixelrnn.models.weights`, shared with the pretrained folders.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch

from .config import ModelConfig, MultiScaleConfig
from .models import PixelModel
from .models.weights import FORMAT, config_from_metadata, load_weights, read_metadata, read_safetensors, write_weights

__all__ = ["FORMAT", "load_model", "load_model_with_metadata", "read_checkpoint", "read_safetensors", "save_model"]


def save_model(model: PixelModel, path: str | os.PathLike, metadata: dict[str, str] | None = None) -> Path:
    return write_weights(model, path, metadata)


def read_checkpoint(path: str | os.PathLike) -> tuple[ModelConfig | MultiScaleConfig, dict[str, torch.Tensor], dict[str, str]]:
    """Config, tensors and metadata of a checkpoint, with one-line errors for bad files."""
    metadata, tensors = read_safetensors(path)
    return config_from_metadata(metadata, path), tensors, metadata


def load_model_with_metadata(path: str | os.PathLike, device: str | torch.device = "cpu") -> tuple[PixelModel, dict[str, str]]:
    """The model of a checkpoint file (in eval mode) and the file's metadata."""
    metadata = read_metadata(path)
    return load_weights(config_from_metadata(metadata, path), path).to(device).eval(), metadata


def load_model(path: str | os.PathLike, device: str | torch.device = "cpu") -> PixelModel:
    """The model of a checkpoint, in eval mode (call ``.train()`` to fine-tune it)."""
    return load_model_with_metadata(path, device)[0]
