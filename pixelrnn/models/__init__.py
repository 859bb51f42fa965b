"""The networks of the paper and their likelihood, one file each, on the shared probabilistic base."""

from __future__ import annotations

from ..config import ModelConfig, default_output_hidden
from ..utils import bits_per_dim
from .base import PixelModel
from .diagonal_bilstm import DiagonalBiLSTMNetwork
from .multiscale import MultiScaleLogits, MultiScalePixelRNN
from .pixelcnn import PixelCNN
from .pretrained import from_pretrained, save_pretrained
from .registry import KNOWN, MODELS, model_from_config, network_from_config
from .row_lstm import RowLSTMNetwork

# Every model module is imported above, so every architecture has entered the registry.
assert set(MODELS) == set(KNOWN), f"architectures without a class: {set(KNOWN) - set(MODELS)}"


def build_model(arch: str, *, channels: int, levels: int, hidden: int, layers: int, **options) -> PixelModel:
    """Build a network; ``options`` are the other fields of :class:`ModelConfig`.

    When ``output_hidden`` is not given: 32 maps for single-channel images (the paper's MNIST
    networks), 8h for colour, between 32 and the paper's 1024 (its CIFAR-10 networks, h = 128, get
    1024), so that a small colour network is not mostly output stack
    (:func:`pixelrnn.config.default_output_hidden`).
    """
    options.setdefault("output_hidden", default_output_hidden(channels, hidden))
    return model_from_config(ModelConfig.from_dict(dict(arch=arch, channels=channels, levels=levels, hidden=hidden, layers=layers, **options)))


__all__ = ["MODELS", "PixelModel", "bits_per_dim", "build_model", "from_pretrained", "model_from_config", "network_from_config",
           "save_pretrained", "MultiScaleLogits", "MultiScalePixelRNN", "PixelCNN", "RowLSTMNetwork", "DiagonalBiLSTMNetwork"]
