"""Native CPU kernels: the incremental engines' per-position step and the LSTM scans, built on first use.

The engines (section 2's sequential generation) and the scans of the Row LSTM and the Diagonal
BiLSTM (sections 3.1-3.2) are long chains of small operations; run through torch, each costs
a few microseconds of dispatch, more than its arithmetic. The C++ sources beside this file do
a whole position, or a whole scan, in one call with plain loops over small matrices; the masked 1x1
convolutions run as products over the channels there too (tall and narrow, where a BLAS product
spends its time packing).

They are built by ``torch.utils.cpp_extension`` into torch's extension cache the first time
they are needed (a few seconds; the build is keyed by the sources' hash and the CPU's
instruction set, so a changed source or another CPU builds anew) and called through
``ctypes`` on the tensors' memory. The pure-PyTorch code stays the reference and the
fallback: when the kernels cannot be built (no compiler, no ninja), :func:`library` warns
once and returns None, and every caller takes its PyTorch path. ``PIXELRNN_NATIVE=0`` in the
environment, or :func:`disabled`, turns the kernels off. The scans' threads are torch's own
OpenMP threads where torch runs on OpenMP (:func:`_openmp_flags`), else threads of their own.
The codec's integer engines split large batches among OpenMP threads, and run on one without it.
"""

from __future__ import annotations

import contextlib
import ctypes
import hashlib
import os
import sys
import threading
import warnings
from pathlib import Path

import torch

SOURCE_DIR = Path(__file__).resolve().parent
SOURCES = ("program.cpp", "draw.cpp", "scan.cpp", "pointwise.cpp", "integer.cpp")
HEADERS = ("vector_math.h", "dense.h", "lstm.h", "parallel.h")
#: Compiler flags per torch CPU capability: the build may use what torch itself uses on this CPU.
ISA_FLAGS = {
    "AVX2": ["-mavx2", "-mfma", "-DPIXELRNN_VECTOR_BYTES=32"],
    "AVX512": ["-mavx2", "-mfma", "-mavx512f", "-mavx512dq", "-mavx512vl", "-mavx512bw", "-DPIXELRNN_VECTOR_BYTES=64"],
}
_I, _D = ctypes.c_int64, ctypes.c_double
#: Every exported function (``<name>_f32``, ``<name>_f64``, each returning an int64) and its arguments:
#: addresses, sizes and strides as int64.
SIGNATURES = {"pixelrnn_run": [_I] * 7, "pixelrnn_write": [_I] * 7, "pixelrnn_draw": [_I] * 5 + [_D, _I, _I],
              "pixelrnn_sample_row": [_I] * 9 + [_D] + [_I] * 8, "pixelrnn_diagonal_forward": [_I] * 21,
              "pixelrnn_diagonal_backward": [_I] * 22, "pixelrnn_row_forward": [_I] * 14, "pixelrnn_row_backward": [_I] * 18,
              "pixelrnn_linear": [_I] * 10, "pixelrnn_linear_weight_grad": [_I] * 8}
#: Functions in float64 only (the integer coding model's engines), with their arguments.
PLAIN_SIGNATURES = {"pixelrnn_integer_run": [_I] * 8 + [_D, _I], "pixelrnn_integer_frequencies": [_I] * 9}
#: Data types the kernels are built for.
DTYPES = {torch.float32: "f32", torch.float64: "f64"}


class NativeKernelsWarning(UserWarning):
    """The native kernels could not be built; the slower PyTorch paths are used instead."""


_lock = threading.Lock()
_state: dict = {"tried": False, "library": None, "enabled": os.environ.get("PIXELRNN_NATIVE", "1") != "0"}


def extension_name() -> str:
    """The build's name in torch's extension cache: the sources' folder and hash, and the instruction set.

    The folder is part of the name because the build records its sources' paths: two checkouts
    sharing one name would each rebuild the other's build at every first use.
    """
    digest = hashlib.sha256(str(SOURCE_DIR.resolve()).encode() + b"\0")
    for name in SOURCES + HEADERS:
        digest.update((SOURCE_DIR / name).read_bytes())
    capability = torch.backends.cpu.get_cpu_capability()
    return f"pixelrnn_native_{capability.lower()}_{digest.hexdigest()[:16]}"


def _openmp_flags() -> list[str]:
    """``-fopenmp`` where torch itself runs on GCC's OpenMP (Linux builds), so that the scans share its threads.

    torch's idle OpenMP workers spin for a while after each parallel region; threads of the
    scans' own would compete with them for the cores. Only where torch's runtime is GCC's
    (``libgomp`` loaded in this process), which ``-fopenmp`` links: never a second runtime.
    Elsewhere the scans start their own threads.
    """
    if not sys.platform.startswith("linux") or "OpenMP" not in torch.__config__.parallel_info():
        return []
    try:
        with open("/proc/self/maps") as maps:
            loaded = any("libgomp" in line for line in maps)
    except OSError:
        return []
    return ["-fopenmp"] if loaded else []


def compile_flags() -> list[str]:
    """The compiler flags of the kernels' build on this CPU (also those of benchmarks built against their headers)."""
    return ["-O3", "-ffp-contract=fast", "-fno-trapping-math", *ISA_FLAGS.get(torch.backends.cpu.get_cpu_capability(), [])]


def _build() -> ctypes.CDLL:
    from torch.utils import cpp_extension

    flags = compile_flags()

    def build(threading: list[str]) -> str:
        name = extension_name() + ("_openmp" if threading else "")
        return cpp_extension.load(name, [str(SOURCE_DIR / source) for source in SOURCES], extra_cflags=flags + threading,
                                  extra_ldflags=threading, extra_include_paths=[str(SOURCE_DIR)], is_python_module=False,
                                  verbose=False)

    threading = _openmp_flags()
    try:
        path = build(threading)
    except Exception:
        if not threading:
            raise
        path = build([])  # a compiler without OpenMP: the scans start threads of their own
    library = ctypes.CDLL(path)
    for name, arguments in SIGNATURES.items():
        for suffix in DTYPES.values():
            function = getattr(library, f"{name}_{suffix}")
            function.restype, function.argtypes = ctypes.c_int64, arguments
    for name, arguments in PLAIN_SIGNATURES.items():
        function = getattr(library, name)
        function.restype, function.argtypes = ctypes.c_int64, arguments
    return library


def library() -> ctypes.CDLL | None:
    """The loaded kernels, or None when they are turned off or cannot be built here (warns once)."""
    if not _state["enabled"]:
        return None
    if not _state["tried"]:
        with _lock:
            if not _state["tried"]:
                try:
                    _state["library"] = _build()
                except Exception as error:  # any failure to build or load: fall back, never fail
                    first_line = (str(error).strip().splitlines() or [type(error).__name__])[0]
                    warnings.warn(f"pixelrnn: native kernels unavailable ({first_line}); using the slower PyTorch "
                                  "paths. Install a C++ compiler and ninja to build them.", NativeKernelsWarning, stacklevel=2)
                finally:
                    _state["tried"] = True
    return _state["library"]


def kernel(name: str, dtype: torch.dtype):
    """The function ``name`` of the kernels for ``dtype``, or None where there is none."""
    lib = library()
    suffix = DTYPES.get(dtype)
    return None if lib is None or suffix is None else getattr(lib, f"{name}_{suffix}")


def plain_kernel(name: str):
    """The float64-only function ``name`` (:data:`PLAIN_SIGNATURES`), or None where the kernels are not built."""
    lib = library()
    return None if lib is None else getattr(lib, name)


def usable(tensor: torch.Tensor) -> bool:
    """Whether the kernels can run on ``tensor``'s device and dtype (and are built)."""
    return tensor.device.type == "cpu" and tensor.dtype in DTYPES and library() is not None


@contextlib.contextmanager
def disabled():
    """Run the block on the PyTorch paths (the reference), whatever the environment says."""
    previous = _state["enabled"]
    _state["enabled"] = False
    try:
        yield
    finally:
        _state["enabled"] = previous
