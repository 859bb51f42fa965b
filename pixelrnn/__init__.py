"""pixelrnn: Pixel Recurrent Neural Networks (van den Oord et al., ICML 2016) in PyTorch."""

from .causality import CausalityReport, check_causality
from .checkpoint import load_model, save_model
from .config import ARCHITECTURES, ModelConfig, MultiScaleConfig
from .errors import CheckpointError, CompressionError, ConfigError, DatasetError, ImageError, PixelRNNError, TrainingError
from .hub import BUNDLED
from .models import MultiScalePixelRNN, PixelModel, build_model, from_pretrained, model_from_config, save_pretrained
from .presets import PRESETS, get_preset
from .sampling import complete, fill, sample
from .training.run_folder import load_model_from, resolve_checkpoint
from .utils import bits_per_dim

__version__ = "0.1.0"

__all__ = [
    "ARCHITECTURES", "BUNDLED", "CausalityReport", "CheckpointError", "CompressionError", "ConfigError", "DatasetError", "ImageError", "ModelConfig",
    "MultiScaleConfig", "MultiScalePixelRNN", "PRESETS", "PixelModel", "PixelRNNError", "TrainingError", "bits_per_dim",
    "build_model", "check_causality", "complete", "fill", "from_pretrained", "get_preset", "load_model", "load_model_from", "model_from_config",
    "resolve_checkpoint", "sample", "save_model", "save_pretrained",
]
