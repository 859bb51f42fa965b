"""The coding model: a model's conditionals as the range coder's integer frequencies, and its identity.

The paper (section 5.1) reads the negative log-likelihood in bits/dim as the size that a
compression scheme built on the model would reach, up to a small arithmetic-coding overhead.
The decoder only knows x_<i, so it must rebuild every frequency exactly as the encoder saw it:
one differing frequency desynchronises the range coder and garbles everything after it. Both
sides run an incremental engine (the encoder teacher-forces it with the known values), code the
images in the same chunks (stored in the header) and turn its output into integer frequencies
w_k with sum 2^24 - K; ``constriction``'s categorical model (``perfect=False``) adds one to each,
so the coder's model is exactly (w_k + 1) / 2^24 and no float arithmetic of ``constriction`` is
involved. Two coding models do this:

- :class:`IntegerCoding` (arithmetic ``integer``, the default): the integer coding model of
  :mod:`.integer_model`, whose frequencies are fixed by integer arithmetic. A file decodes on any
  machine, instruction set, BLAS, thread count and torch release.
- :class:`FloatCoding` (``float32`` / ``float64``, format version 1's): the float model's engine
  (:mod:`pixelrnn.sampling`) on the CPU, one torch thread, and :func:`quantise` (softmax in
  float64, ``floor(p (2^24 - K))``, the remainder to the most likely symbol). A file decodes on
  the machine type and torch build that wrote it: another instruction set, BLAS or torch release
  may compute a logit differently in its last bit. The header records the environment and a
  decode elsewhere warns; the pixel checksum then tells, and it never returns wrong pixels.
"""

from __future__ import annotations

import contextlib
import copy
import hashlib
import platform
from typing import Sequence

import numpy as np
import torch

from ..config import ModelConfig
from ..errors import CompressionError
from ..sampling import engine_class, make_engine
from ..utils import torch_threads
from .container import FLOAT_DTYPES, MAX_LEVELS
from .fixed_point import PRECISION, FixedPoint
from .factory import make_integer_engine
from .integer_native_engines import NativeIntegerEngine, frequencies
from .integer_model import integer_model

ARITHMETIC_CHOICES = ("integer", "float32", "float64")


def one_thread():
    """One torch thread while coding (a reduction's order may depend on the thread count)."""
    return torch_threads(1)


def check_model(model) -> None:
    config = getattr(model, "config", None)
    if not isinstance(config, ModelConfig) or engine_class(model) is None:
        raise CompressionError("compression needs a single-scale network (pixelcnn, row_lstm or diagonal_bilstm)")
    if config.condition_channels:
        raise CompressionError("compression needs an unconditional network; this one takes a condition map")
    if config.levels > MAX_LEVELS or config.channels > 255:
        raise CompressionError(f"compression codes at most {MAX_LEVELS} levels and 255 channels; the model has {config.levels} "
                               f"and {config.channels}")


def model_fingerprint(model) -> bytes:
    """sha256 identifying a model: its config JSON, then every state tensor in sorted key order.

    For each tensor: ``\\0 key \\0 dtype \\0 shape \\0`` (UTF-8), then its bytes in C order as
    stored in memory (little-endian on every machine torch supports). Parameters and buffers
    both count, so any weight change, any config change gives another fingerprint.
    """
    digest = hashlib.sha256(b"pixelrnn-model\0")
    digest.update(model.config.to_json().encode())
    for key, tensor in sorted(model.state_dict().items()):
        tensor = tensor.detach().to("cpu").contiguous()
        digest.update(f"\0{key}\0{tensor.dtype}\0{tuple(tensor.shape)}\0".encode())
        digest.update(tensor.reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.digest()


def environment() -> dict[str, str]:
    """What the probabilities depend on besides the model and the file: recorded, compared on decode."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        coder = version("constriction")
    except PackageNotFoundError:  # pragma: no cover - the import of constriction fails first
        coder = "unknown"
    return {
        "torch": torch.__version__,
        "device": "cpu",
        "isa": torch.backends.cpu.get_cpu_capability(),
        "machine": platform.machine() or "unknown",
        "constriction": coder,
    }


def quantise(logits: torch.Tensor) -> np.ndarray:
    """(N, K) logits -> (N, K) float64 integer weights w >= 0 with sum exactly 2^24 - K.

    The coder's model is (w_k + 1) / 2^24 (``constriction`` adds the one). Softmax in float64,
    ``floor(p * (2^24 - K))``, the remainder (< K) added to the first most likely symbol. A row
    with a non-finite probability (a broken model: NaN or infinite logits) becomes uniform, the
    same on both sides. After the softmax everything is exact integer arithmetic in float64
    (values below 2^24): elementwise or sums of integers, whose order cannot change the result.
    """
    levels = logits.shape[-1]
    free = float((1 << PRECISION) - levels)
    probs = torch.softmax(logits.to(torch.float64), dim=-1).numpy()  # a fresh tensor: writable, ours
    weights = np.floor(probs * free)
    remainder = free - weights.sum(axis=1)
    if not np.isfinite(remainder).all():  # cheap test on (N,) instead of (N, K)
        broken = ~np.isfinite(remainder)
        probs[broken] = 1.0 / levels
        weights[broken] = np.floor(probs[broken] * free)
        remainder = free - weights.sum(axis=1)
    weights[np.arange(len(weights)), probs.argmax(axis=1)] += remainder
    return weights


def code_lengths(weights: np.ndarray, symbols: np.ndarray) -> np.ndarray:
    """Ideal bits of ``symbols`` (N,) under the quantised model of ``weights`` (N, K)."""
    chosen = weights[np.arange(len(symbols)), symbols] + 1.0
    return PRECISION - np.log2(chosen)


def coding_model(model, dtype: torch.dtype):
    """The model on the CPU in ``dtype``, in eval mode: the caller's model if it already is, else a copy."""
    if model.device.type == "cpu" and model.dtype == dtype and not model.training:
        return model
    return copy.deepcopy(model).to(device="cpu", dtype=dtype).eval()


def chunks(shapes: Sequence[tuple[int, int]], batch_size: int, chunk_pixels: int,
           labels: Sequence[int] | None = None) -> list[list[int]]:
    """Image indices in coding order: grouped by size and class (in order of first appearance), then chunked.

    Within a group, images keep their order; a chunk holds min(batch_size,
    max(1, chunk_pixels // (H*W))) images (the last one of a group fewer). Encoder and decoder
    both derive the chunks from the header, so the engine sees the same batches. ``labels``: the
    images' classes, for a class-conditional model (a chunk is coded with one class's model).
    """
    groups: dict[tuple, list[int]] = {}
    for index, shape in enumerate(shapes):
        groups.setdefault((*shape, labels[index]) if labels is not None else tuple(shape), []).append(index)
    result = []
    for (height, width, *_), indices in groups.items():
        size = min(batch_size, max(1, chunk_pixels // (height * width)))
        result.extend(indices[start : start + size] for start in range(0, len(indices), size))
    return result


class FloatCoding:
    """Format version 1's coding model: the float model's engine, one thread, :func:`quantise` (platform-tied)."""

    fixed_point = None

    def __init__(self, model, arithmetic: str):
        self.arithmetic = arithmetic
        self.fingerprint = model_fingerprint(model)
        # Always the reference engine: the native one groups its sums differently, and a float
        # file decodes only on the arithmetic that wrote it.
        self.engine = make_engine(coding_model(model, FLOAT_DTYPES[arithmetic]), native_kernels=False)

    def running(self) -> contextlib.ExitStack:
        stack = contextlib.ExitStack()
        stack.enter_context(torch.no_grad())
        stack.enter_context(one_thread())
        return stack

    def reset(self, batch: int, height: int, width: int, label: int | None = None) -> None:
        self.engine.reset(batch, height, width, labels=None if label is None else torch.full((batch,), label))

    def weights(self, i: int, j: int, c: int) -> np.ndarray:
        return quantise(self.engine.logits(i, j, c))

    def advance(self, i: int, j: int, c: int, values: np.ndarray) -> None:
        self.engine.advance(i, j, c, torch.from_numpy(values))


class IntegerCoding:
    """The integer coding model's engine and :func:`.fixed_point.integer_frequencies`: the same frequencies on any machine.

    ``threads``: threads for the engine's products (the native engine's groups of at least 32
    images, or numpy's BLAS; any count gives the same frequencies). Default: torch's thread count
    for the native engine, one for numpy's (its small products are fastest on one).
    """

    arithmetic = "integer"

    def __init__(self, model, fixed_point: FixedPoint | None = None, threads: int | None = None):
        if threads is not None and (not isinstance(threads, int) or threads < 1):
            raise CompressionError(f"threads must be a whole number >= 1; got {threads!r}")
        # A class-conditional network has an integer model per class; its file names all of them.
        labels = range(model.config.classes) if model.config.classes else [None]
        self.models = [integer_model(model, fixed_point, label) for label in labels]
        self.model = self.models[0]
        self.fixed_point = self.model.fixed
        self.fingerprint = self.model.fingerprint if len(self.models) == 1 else hashlib.sha256(
            b"pixelrnn-class-conditional\0" + b"".join(coding.fingerprint for coding in self.models)).digest()
        first = make_integer_engine(self.model)
        native_engine = isinstance(first, NativeIntegerEngine)
        self.threads = threads or (torch.get_num_threads() if native_engine else 1)
        # The native engine's per-row numpy products stay on one BLAS thread, whose idle workers
        # would otherwise spin against the engine's own threads.
        self.blas_threads = 1 if native_engine else self.threads
        self.engines = {0: first}  # the other classes' engines are built when a chunk of their class comes
        self._select(0)

    def _select(self, index: int) -> None:
        """Make class ``index``'s coding model and engine (built on first use) the current ones."""
        if index not in self.engines:
            self.engines[index] = make_integer_engine(self.models[index])
        self.model, self.engine = self.models[index], self.engines[index]
        if isinstance(self.engine, NativeIntegerEngine):
            self.engine.threads = self.threads

    def running(self):
        from threadpoolctl import threadpool_limits

        return threadpool_limits(self.blas_threads, user_api="blas")

    def reset(self, batch: int, height: int, width: int, label: int | None = None) -> None:
        self._select(label or 0)
        self.engine.reset(batch, height, width)

    def weights(self, i: int, j: int, c: int) -> np.ndarray:
        return frequencies(self.engine.logits(i, j, c), self.model.tables.exp)

    def advance(self, i: int, j: int, c: int, values: np.ndarray) -> None:
        self.engine.advance(i, j, c, values)


def coding_for(model, arithmetic: str = "integer", fixed_point: FixedPoint | None = None, threads: int | None = None):
    """The coding model of ``model`` in ``arithmetic`` (one of :data:`ARITHMETIC_CHOICES`)."""
    check_model(model)
    if arithmetic == "integer":
        return IntegerCoding(model, fixed_point, threads)
    if arithmetic not in FLOAT_DTYPES:
        raise CompressionError(f"arithmetic must be one of {', '.join(ARITHMETIC_CHOICES)}; got {arithmetic!r}")
    return FloatCoding(model, arithmetic)
