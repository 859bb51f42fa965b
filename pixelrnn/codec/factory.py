"""Which integer engine runs: the native engine where its kernels are built, else the numpy engine.

Both compute the same integers bit for bit (``tests/codec/test_native_integer.py``), so a file
coded with one decodes with the other; the choice is speed only. The sampling engines have the
same kind of factory (:func:`pixelrnn.sampling.make_engine`).
"""

from __future__ import annotations

from .. import native
from .integer_model import IntegerModel
from .integer_native_engines import NATIVE_ENGINES
from .integer_numpy_engines import ENGINES, IntegerEngine


def make_integer_engine(model: IntegerModel, native_kernels: bool | None = None) -> IntegerEngine:
    """The incremental engine of an integer coding model.

    ``native_kernels``: None takes the native engine where it can run; False the numpy engine;
    True the native engine, and raises ``RuntimeError`` where the kernels are not built.
    """
    if native_kernels is not False and native.plain_kernel("pixelrnn_integer_run") is not None:
        return NATIVE_ENGINES[model.arch](model)
    if native_kernels:
        raise RuntimeError("the native integer engine needs the native kernels built")
    return ENGINES[model.arch](model)
