"""The networks of the paper and their likelihood, one file each, on the shared probabilistic base."""

from __future__ import annotations

from ..config import ModelConfig, MultiScaleConfig
from ..utils import bits_per_dim
from .base import PixelModel
from .diagonal_bilstm import DiagonalBiLSTMNetwork
from .multiscale import MultiScaleLogits, MultiScalePixelRNN
from .pixelcnn import PixelCNN
from .registry import NETWORKS, network_from_config
from .row_lstm import RowLSTMNetwork


def model_from_config(config: ModelConfig | MultiScaleConfig) -> PixelModel | MultiScalePixelRNN:
    if isinstance(config, MultiScaleConfig):
        return MultiScalePixelRNN(config)
    return network_from_config(config)


def build_model(arch: str, *, channels: int, levels: int, hidden: int, layers: int, **options) -> PixelModel:
    """Build a network; ``options`` are the other fields of :class:`ModelConfig`.

    When ``output_hidden`` is not given it follows the paper: 32 maps for single-channel
    images, 1024 for colour images.
    """
    options.setdefault("output_hidden", 32 if channels == 1 else 1024)
    return model_from_config(ModelConfig.from_dict(dict(arch=arch, channels=channels, levels=levels, hidden=hidden, layers=layers, **options)))


__all__ = ["NETWORKS", "PixelModel", "bits_per_dim", "build_model", "model_from_config", "network_from_config",
           "MultiScaleLogits", "MultiScalePixelRNN", "PixelCNN", "RowLSTMNetwork", "DiagonalBiLSTMNetwork"]
