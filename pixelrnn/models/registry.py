"""The one registry of single-scale networks: architecture name -> class (section 3)."""

from __future__ import annotations

from ..config import ARCHITECTURES, ModelConfig
from .base import PixelModel
from .diagonal_bilstm import DiagonalBiLSTMNetwork
from .pixelcnn import PixelCNN
from .row_lstm import RowLSTMNetwork

NETWORKS: dict[str, type[PixelModel]] = {"pixelcnn": PixelCNN, "row_lstm": RowLSTMNetwork, "diagonal_bilstm": DiagonalBiLSTMNetwork}
assert tuple(NETWORKS) == ARCHITECTURES, "every architecture name of the config has one network class"


def network_from_config(config: ModelConfig) -> PixelModel:
    return NETWORKS[config.arch](config)
