"""Which engine runs: the native engine where its kernels can run, else the reference engine.

Both compute the same conditionals (to rounding; ``tests/sampling/test_native_engines.py``).
The native engines need the CPU, float32 or float64, and the kernels of :mod:`pixelrnn.native`
built; anything else (CUDA, half precision, no compiler) gets the reference engine.
"""

from __future__ import annotations

from .. import native
from .reference_engine import IncrementalEngine
from .reference_engines import ENGINES, engine_class
from .native_engines import NATIVE_ENGINES


def make_engine(model, native_kernels: bool | None = None) -> IncrementalEngine:
    """The incremental engine of a single-scale network.

    ``native_kernels``: None takes the native engine where it can run; False the reference
    engine; True the native engine, and raises ``RuntimeError`` where it cannot run.
    """
    engine = engine_class(model)
    if engine is None:
        raise ValueError(f"no incremental engine for {type(model).__name__}; engines exist for "
                         f"{', '.join(network.__name__ for network in ENGINES)}")
    if native_kernels is False:
        return engine(model)
    if native.usable(model.input_conv.weight):
        return NATIVE_ENGINES[engine](model)
    if native_kernels:
        raise RuntimeError("the native engine needs the CPU, float32 or float64 and the native kernels built")
    return engine(model)
