"""pixelrnn: Pixel Recurrent Neural Networks (van den Oord et al., ICML 2016) in PyTorch."""

from .causality import CausalityReport, check_causality
from .checkpoint import save_model
from .config import ARCHITECTURES, ModelConfig, MultiScaleConfig
from .data import load_dataset
from .errors import CheckpointError, CompressionError, ConfigError, DatasetError, ImageError, PixelRNNError, TrainingError
from .hub import BUNDLED
from .models import MultiScalePixelRNN, PixelModel, build_model, model_from_config, save_pretrained
from .models import from_pretrained as _from_pretrained
from .presets import PRESETS, get_preset
from .sampling import complete, fill, sample
from .training.run_folder import RunFolder, load_model_from, resolve_checkpoint
from .utils import VERSION, bits_per_dim

__version__ = VERSION


def load_model(path, device="cpu"):
    """The model of a checkpoint file, a run folder (its best checkpoint, else its last), a pretrained folder or
    ``pretrained:NAME``, in eval mode: every place a model can be, as every command takes it (= :func:`load_model_from`)."""
    return load_model_from(path, device)


def from_pretrained(name_or_directory, device="cpu", **options):
    """A pretrained model in eval mode: a pretrained folder, a bundled name or a Hub repository id; a run folder is
    loaded too (its best checkpoint), as by :func:`load_model`. ``options``: see :func:`pixelrnn.models.from_pretrained`."""
    if not options and RunFolder(str(name_or_directory)).is_run() and not (RunFolder(str(name_or_directory)).path / "model.safetensors").exists():
        return load_model_from(name_or_directory, device)
    return _from_pretrained(name_or_directory, device, **options)


__all__ = [
    "ARCHITECTURES", "BUNDLED", "CausalityReport", "CheckpointError", "CompressionError", "ConfigError", "DatasetError", "ImageError",
    "ModelConfig", "MultiScaleConfig", "MultiScalePixelRNN", "PRESETS", "PixelModel", "PixelRNNError", "TrainingError", "bits_per_dim",
    "build_model", "check_causality", "complete", "fill", "from_pretrained", "get_preset", "load_dataset", "load_model", "load_model_from",
    "model_from_config", "resolve_checkpoint", "sample", "save_model", "save_pretrained",
]
