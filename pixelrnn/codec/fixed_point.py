"""The integer coding model's arithmetic: fixed-point formats, exact sums, tables, frequencies.

A range coder needs the same integer frequencies on both sides, bit for bit. Float logits differ
in their last bits across instruction sets, BLAS builds, thread counts, torch releases and
devices, so the coding model computes everything that determines a frequency in arithmetic whose
result is fixed (Ballé, Johnston & Minnen, "Integer Networks for Data Compression with
Latent-Variable Models", ICLR 2019); the network is the paper's (sections 3.1-3.5), in fixed point.

Formats (:class:`FixedPoint`, recorded in the file's header):

- an activation is an integer a meaning a / 2^F (F = ``activation_bits``); a ReLU output is
  clamped to [0, 2^(F + clamp_bits)], which is what bounds every later sum;
- LSTM gate pre-activations, cells and logits are integers at 2^-G (G = ``table_bits``), the
  resolution of the sigmoid, tanh and exponent tables;
- the weights of one sum are integers q on a grid 2^-e; e is the finest grid (at most
  ``max_weight_bits``) for which the sum is proven exact, and a model needing a grid coarser
  than 2^-``min_weight_bits`` is refused when the coding model is built.

Why a sum is exact: matrices are stored as float64 values q * 2^(S - F - e) (S the output's
scale) and activations as integer-valued float64. Every partial sum of such products is an
integer multiple of 2^(S - F - e); while its magnitude in those units stays below 2^53 it is
represented exactly, in any order of summation, with or without fused multiply-adds. So
:func:`exact_sum` proves, per output, sum_k |q_k| A_k + |q_bias| < 2^53 (A_k: the proven bound
of input k) and the result of a BLAS product or a convolution on these operands is the same on
every machine. Rounding to the output grid is ``rint`` (ties to even), exact in IEEE arithmetic.

Tables come from integer-only formulas (:func:`tables`): exp(-k / 2^G) by a recurrence on
96-bit fixed-point Python integers, starting from a Taylor series; sigmoid and tanh from it by
integer division. Frequencies (:func:`integer_frequencies`) take table values, one integer
division per row and products of integers below 2^53. Nothing here calls a float library function.
"""

from __future__ import annotations

import dataclasses
import struct
from dataclasses import dataclass
from functools import lru_cache
from typing import Sequence

import numpy as np
import torch

from ..errors import CompressionError

EXACT = 1 << 53  # integers below this magnitude, and sums of them, are exact in float64
PRECISION = 24  # bits of the range coder's probabilities (constriction's RangeEncoder: 24)
_GUARD = 96  # fractional bits of the integer recurrence behind the tables

#: The version of the integer model's definition (tables, rounding, layer order); in the fingerprint.
DEFINITION = 1


@dataclass(frozen=True)
class FixedPoint:
    """The fixed-point parameters of an integer coding model (module docstring); stored in the header."""

    activation_bits: int = 16
    clamp_bits: int = 10
    table_bits: int = 12
    table_range: int = 12
    exp_bits: int = 24
    max_weight_bits: int = 24
    min_weight_bits: int = 8

    #: Accepted values: they bound the tables' size and keep every product below 2^63.
    LIMITS = {"activation_bits": (8, 24), "clamp_bits": (1, 16), "table_bits": (4, 14), "table_range": (1, 64),
              "exp_bits": (16, 32), "max_weight_bits": (1, 40), "min_weight_bits": (0, 40)}
    LAYOUT = struct.Struct("<7B")

    def __post_init__(self) -> None:
        for field in dataclasses.fields(self):
            low, high = self.LIMITS[field.name]
            value = getattr(self, field.name)
            if not isinstance(value, int) or not low <= value <= high:
                raise CompressionError(f"fixed-point parameter {field.name}={value!r} is outside {low}..{high}")
        if self.table_bits > self.activation_bits:
            raise CompressionError(f"table_bits={self.table_bits} must not exceed activation_bits={self.activation_bits}")
        if self.min_weight_bits > self.max_weight_bits:
            raise CompressionError(f"min_weight_bits={self.min_weight_bits} exceeds max_weight_bits={self.max_weight_bits}")
        if self.table_range << self.table_bits > 1 << 18:
            raise CompressionError(f"tables over +-{self.table_range} at 2^-{self.table_bits} exceed 2^18 entries a side")

    one = property(lambda self: 1 << self.activation_bits)  # the activation 1.0
    relu_max = property(lambda self: 1 << (self.activation_bits + self.clamp_bits))
    table_half = property(lambda self: self.table_range << self.table_bits)  # N: tables cover -N..N

    def to_bytes(self) -> bytes:
        return self.LAYOUT.pack(*dataclasses.astuple(self))

    @classmethod
    def from_bytes(cls, data: bytes) -> "FixedPoint":
        return cls(*cls.LAYOUT.unpack(data))

    def describe(self) -> str:
        return (f"activations 2^-{self.activation_bits} (ReLU clamp 2^{self.clamp_bits}), tables 2^-{self.table_bits} "
                f"over +-{self.table_range}, exp 2^{self.exp_bits}, weights 2^-{self.min_weight_bits}..2^-{self.max_weight_bits}")


# --------------------------------------------------------------------- tables
@dataclass(frozen=True)
class Tables:
    """Lookup tables indexed by k + N for k = -N..N (N = ``FixedPoint.table_half``), and the exponent table."""

    sigmoid: np.ndarray  # round(2^F sigmoid(k/2^G)) * 2^-F: the o, f, i gates as dyadic fractions
    tanh_gate: np.ndarray  # round(2^F tanh(k/2^G)) * 2^(G-F): the content gate g, on the cell's grid
    tanh_cell: np.ndarray  # round(2^F tanh(k/2^G)): tanh of a cell, an activation
    exp: np.ndarray  # float64 (D,) of integers: round(2^P exp(-d/2^G)), its last entry 0 (P = exp_bits)


def _exp_step(bits: int) -> int:
    """exp(-2^-bits) in 2^-_GUARD units, by its Taylor series in integers."""
    one = 1 << _GUARD
    term, total, n = one, one, 0
    while term:
        n += 1
        term = (term >> bits) // n
        total += -term if n % 2 else term
    return total


def _round_shift(value: int, shift: int) -> int:
    return (value + (1 << (shift - 1))) >> shift


@lru_cache(maxsize=4)
def tables(fixed: FixedPoint) -> Tables:
    """The tables of ``fixed``: Python integers only, so the same on every machine."""
    one, step, half = 1 << _GUARD, _exp_step(fixed.table_bits), fixed.table_half
    powers = [one]  # powers[k] ~ 2^_GUARD exp(-k / 2^G)
    while len(powers) <= 2 * half or powers[-1] >> (_GUARD - fixed.exp_bits - 1):
        powers.append(powers[-1] * step >> _GUARD)
    exp = [_round_shift(power, _GUARD - fixed.exp_bits) for power in powers]
    exp = exp[: exp.index(0) + 1]
    activation = fixed.activation_bits
    sigmoid = [(((one << (activation + 1)) // (one + powers[k])) + 1) >> 1 for k in range(half + 1)]
    tanh = [(((one - powers[2 * k]) << (activation + 1)) // (one + powers[2 * k]) + 1) >> 1 for k in range(half + 1)]
    sigmoid_all = np.array([fixed.one - s for s in sigmoid[:0:-1]] + sigmoid, dtype=np.float64)  # sigmoid(-x) = 1 - sigmoid(x)
    tanh_all = np.array([-t for t in tanh[:0:-1]] + tanh, dtype=np.float64)
    return Tables(sigmoid=sigmoid_all / fixed.one, tanh_gate=tanh_all * 2.0 ** (fixed.table_bits - activation),
                  tanh_cell=tanh_all, exp=np.array(exp, dtype=np.float64))


def input_values(fixed: FixedPoint, levels: int) -> np.ndarray:
    """(K,) float64: value v's activation, round(2^F (2v/(K-1) - 1)) (the paper's scaling), ties up."""
    denominator = levels - 1
    values = [((2 * v - denominator) * fixed.one * 2 + denominator) // (2 * denominator) for v in range(levels)]
    return np.array(values, dtype=np.float64)


# --------------------------------------------------------------------- exact sums
@dataclass
class ExactSum:
    """out = rint((sum_s W_s a_s + bias)): one layer's sum, with its proof of exactness.

    ``weights`` are the sources' matrices (each with the output as dim 0) and ``bias`` (out,),
    all float64 values q * 2^(S - F - exponent); ``bound`` is the proven maximum of
    |sum_k q_k a_k + q_bias| (< 2^53) and ``output_bound`` that of |out|.
    """

    name: str
    weights: list[np.ndarray]
    bias: np.ndarray
    exponent: int
    bound: int
    output_bound: int


def _row_l1(quantised: np.ndarray) -> list[int] | None:
    """Exact per-output sums of |q| as Python ints, or None if one reaches 2^53.

    A float64 sum of non-negative integers is exact while it stays below 2^53 and, once the true
    sum reaches 2^53, ends at or above 2^53: the comparison is exact in any summation order.
    """
    sums = np.abs(quantised).reshape(len(quantised), -1).sum(axis=1)
    return None if (sums >= EXACT).any() else [int(value) for value in sums]


def _numpy(tensor: torch.Tensor) -> np.ndarray:
    return tensor.detach().to("cpu", torch.float64).numpy()


def exact_sum(name: str, sources: Sequence[tuple[torch.Tensor, int]], biases: Sequence[torch.Tensor], fixed: FixedPoint,
              output_bits: int, offset: int = 0) -> ExactSum:
    """Quantise one sum's weights on the finest grid 2^-e whose sum is proven exact (module docstring).

    ``sources``: (real weight, out first; bound of its integer inputs); ``biases``: real (out,)
    vectors, each rounded to the grid and then added (integers: no float sum to depend on); the
    output is on the grid 2^-``output_bits``, plus the integer ``offset`` (the tables' centre,
    for gates). Raises CompressionError when no grid down to 2^-min_weight_bits works.
    """
    reals = [_numpy(weight) for weight, _ in sources]
    real_biases = [_numpy(bias) for bias in biases]
    if not all(np.isfinite(w).all() for w in reals + real_biases):
        raise CompressionError(f"{name}: the weights are not finite; such a model cannot code anything")
    largest = max(float(np.abs(w).max(initial=0.0)) for w in reals + real_biases)
    activation = fixed.activation_bits
    terms = sum(w[0].size for w in reals)
    for exponent in range(fixed.max_weight_bits, fixed.min_weight_bits - 1, -1):
        quantised = [np.rint(w * 2.0 ** exponent) for w in reals]
        quantised_bias = np.full(len(reals[0]), float(offset << (activation + exponent - output_bits)))
        for bias in real_biases:
            quantised_bias += np.rint(bias * 2.0 ** (activation + exponent))
        sums = [_row_l1(q) for q in quantised]
        if any(s is None for s in sums) or (np.abs(quantised_bias) >= EXACT).any():
            continue
        bias_ints = [abs(int(b)) for b in quantised_bias]
        bound = max(sum(s[row] * limit for s, (_, limit) in zip(sums, sources)) + bias_ints[row] for row in range(len(bias_ints)))
        if bound < EXACT:
            scale = 2.0 ** (output_bits - activation - exponent)
            shift = activation + exponent - output_bits
            return ExactSum(name, [q * scale for q in quantised], quantised_bias * scale, exponent, bound, (bound >> shift) + 1)
    inputs = max(limit for _, limit in sources)
    raise CompressionError(f"{name}: cannot be computed exactly: with weights on a 2^-{fixed.min_weight_bits} grid a sum "
                           f"of {terms} terms could reach 2^53 (largest weight {largest:.3g}, largest input "
                           f"{inputs / fixed.one:.3g}); a model with such weights cannot have an integer coding model")


def check_cell(name: str, fixed: FixedPoint, initial_cell: int, steps: int) -> int:
    """The proven bound of an LSTM cell (integers at 2^-G) after ``steps`` updates; refuses an inexact one.

    c' = rint(f c / 2^F + i g 2^(G-2F)) with 0 <= f, i <= 2^F and |g| <= 2^F, so |c'| <= |c| + 2^G + 1;
    the sum is exact while (|c| + 2^G) 2^(2F-G) < 2^53.
    """
    bound = initial_cell + steps * ((1 << fixed.table_bits) + 1)
    if (bound + (1 << fixed.table_bits)) << (2 * fixed.activation_bits - fixed.table_bits) >= EXACT:
        raise CompressionError(f"{name}: an LSTM cell over {steps} steps could leave the exact range of float64 "
                               f"with {fixed.activation_bits}-bit activations and {fixed.table_bits}-bit tables")
    return bound


# --------------------------------------------------------------------- frequencies
RECIPROCAL_BITS = 29  # m_k R < 2^(29 + 24) = 2^53 (module docstring of integer_frequencies)


def integer_frequencies(logits: np.ndarray, exp_table: np.ndarray) -> np.ndarray:
    """(N, K) integer logits (at 2^-G; int64 or integer-valued float) -> (N, K) float64 integer weights.

    Mass m_k = exp_table[max - l_k] (2^P for the most likely symbol, 0 beyond the table) and
    T = sum m (at most K 2^P <= 2^(P+12) for the K <= 4096 levels a file codes: an exact float64
    sum); per row one integer division R = floor(2^29 (2^24 - K) / T); then
    w_k = floor(m_k R / 2^29), and the remainder 2^24 - K - sum w (at most K + T / 2^29) goes to
    the first most likely symbol, so sum w = 2^24 - K exactly and the coder's model is
    (w_k + 1) / 2^24. The products m_k R are integers below 2^53 (m_k <= 2^P and R <=
    2^(29+24-P), as T >= 2^P), so float64 holds them exactly and the elementwise work needs no
    integer division; none of these bounds depends on K beyond K < 2^24.
    ``exp_table`` is float64 (its values are integers below 2^32).
    """
    count, levels = logits.shape
    free = (1 << PRECISION) - levels
    mass = exp_table.take(np.subtract(logits.max(axis=1, keepdims=True), logits, dtype=np.int64, casting="unsafe"), mode="clip")
    totals = mass.sum(axis=1).astype(np.int64)  # exact: below 2^(P+8)
    reciprocal = ((free << RECIPROCAL_BITS) // totals).astype(np.float64) * 2.0 ** -RECIPROCAL_BITS
    weights = np.floor(mass * reciprocal[:, None], out=mass)
    weights[np.arange(count), logits.argmax(axis=1)] += free - weights.sum(axis=1)
    return weights
