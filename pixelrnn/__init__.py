"""pixelrnn: Pixel Recurrent Neural Networks (van den Oord et al., ICML 2016) in PyTorch."""

from .checkpoint import CheckpointError, load_model, load_model_from, resolve_checkpoint, save_model
from .config import ARCHITECTURES, ConfigError, ModelConfig
from .models import PixelModel, bits_per_dim, build_model, model_from_config
from .presets import PRESETS, get_preset

__version__ = "0.1.0"

__all__ = [
    "ARCHITECTURES", "CheckpointError", "ConfigError", "ModelConfig", "PRESETS", "PixelModel",
    "bits_per_dim", "build_model", "get_preset", "load_model", "load_model_from", "resolve_checkpoint", "model_from_config", "save_model",
]
