"""Training runs (paper section 5.2): configuration, run folder, state file, batches, trainer, data parallelism."""

from ..errors import TrainingError
from .batches import BatchLoader, BatchOrder
from .run_config import DataConfig, RunConfig, TrainConfig, build_run_config
from .run_folder import RunFolder, load_model_from, resolve_checkpoint
from .state import TrainingState
from .trainer import NLLObjective, Trainer, TrainResult, learning_rate, make_optimizer

__all__ = ["BatchLoader", "BatchOrder", "DataConfig", "NLLObjective", "RunConfig", "RunFolder", "TrainConfig", "TrainResult", "Trainer",
           "TrainingError", "TrainingState", "build_run_config", "learning_rate", "load_model_from", "make_optimizer", "resolve_checkpoint"]
