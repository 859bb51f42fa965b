"""Generation with the networks of the paper: the fill loop and the exact incremental engines."""

from .reference_engine import IncrementalEngine
from .reference_engines import ENGINES, DiagonalBiLSTMEngine, PixelCNNEngine, RowLSTMEngine, engine_class
from .factory import make_engine
from .native_engines import NATIVE_ENGINES
from .generation import complete, complete_images, fill, sample, sample_categorical, sample_stages

__all__ = ["ENGINES", "NATIVE_ENGINES", "DiagonalBiLSTMEngine", "IncrementalEngine", "PixelCNNEngine", "RowLSTMEngine", "complete",
           "complete_images", "engine_class", "fill", "make_engine", "sample", "sample_categorical", "sample_stages"]
