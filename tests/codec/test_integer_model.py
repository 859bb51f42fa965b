"""The integer coding model (pixelrnn.codec.fixed_point, integer_model, integer_forward, integer_engines).

Its tables are what their integer formulas say (against float references, within rounding) and
the same when rebuilt; its sums are exact at their proven bounds (against Python integers); a
model whose sums could leave the exact range is refused when it is built; frequencies sum
exactly and follow the softmax; and the batched pass equals the incremental engines bit for bit
on random models, images and fixed-point formats (hypothesis).
"""

import math
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings, strategies as st

from codec_cases import INTEGER_CASES, SMALL, image_set, integer_case, teacher_forced_logits, tiny
from pixelrnn.codec import CompressionError, FixedPoint, compress, integer_logits, integer_model
from pixelrnn.codec.fixed_point import EXACT, PRECISION, check_cell, exact_sum, input_values, integer_frequencies, tables
from pixelrnn.codec.integer_batched import _Pass
from pixelrnn.codec.factory import make_integer_engine
from pixelrnn.config import ModelConfig, MultiScaleConfig
from pixelrnn.models import build_model, model_from_config

pytestmark = pytest.mark.usefixtures("one_thread")



# --------------------------------------------------------------------- tables
@pytest.mark.parametrize("fixed", [FixedPoint(), SMALL], ids=["default", "small"])
def test_tables_are_their_formulas_rounded(fixed):
    table = tables(fixed)
    tables.cache_clear()
    again = tables(fixed)
    assert all(np.array_equal(getattr(table, name), getattr(again, name)) for name in ("sigmoid", "tanh_gate", "tanh_cell", "exp"))
    one, half, grid = fixed.one, fixed.table_half, 2.0 ** -fixed.table_bits
    x = np.arange(-half, half + 1) * grid
    sigmoid = table.sigmoid * one  # the integers behind the dyadic fractions
    assert np.array_equal(sigmoid, np.rint(sigmoid)) and sigmoid[half] == one // 2
    assert np.abs(sigmoid - one / (1 + np.exp(-x))).max() <= 0.5 + 1e-6
    assert np.array_equal(sigmoid + sigmoid[::-1], np.full_like(sigmoid, one))  # sigmoid(-x) = 1 - sigmoid(x), exactly
    assert (np.diff(sigmoid) >= 0).all()
    tanh = table.tanh_cell
    assert np.abs(tanh - one * np.tanh(x)).max() <= 0.5 + 1e-6 and np.array_equal(tanh, -tanh[::-1]) and (np.diff(tanh) >= 0).all()
    assert np.array_equal(table.tanh_gate, tanh * 2.0 ** (fixed.table_bits - fixed.activation_bits))
    exp = table.exp
    assert np.array_equal(exp, np.rint(exp)) and exp[0] == 1 << fixed.exp_bits and exp[-1] == 0 and exp[-2] > 0 and (np.diff(exp) <= 0).all()
    assert np.abs(exp - 2.0 ** fixed.exp_bits * np.exp(-np.arange(len(exp)) * grid)).max() <= 0.5 + 1e-6


def test_input_values_are_the_papers_scaling_rounded():
    fixed = FixedPoint()
    assert input_values(fixed, 2).tolist() == [-fixed.one, fixed.one]
    values = input_values(fixed, 256)
    exact = fixed.one * (2 * np.arange(256) / 255 - 1)
    assert np.abs(values - exact).max() <= 0.5 and np.array_equal(values, -values[::-1]) and (np.diff(values) > 0).all()


# --------------------------------------------------------------------- frequencies
@settings(max_examples=60, deadline=None)
@given(st.sampled_from([2, 3, 17, 256]), st.integers(1, 20), st.integers(0, 2**32 - 1), st.sampled_from([1.0, 2.0**12, 2.0**18]))
def test_frequencies_sum_exactly_and_follow_the_softmax(levels, rows, seed, spread):
    rng = np.random.default_rng(seed)
    logits = np.rint(rng.normal(size=(rows, levels)) * spread)
    logits[0] = 7.0  # a tie everywhere: the remainder goes to the first symbol
    exp_table = tables(FixedPoint()).exp
    weights = integer_frequencies(logits, exp_table)
    assert weights.dtype == np.float64 and (weights >= 0).all() and np.array_equal(weights, np.rint(weights))
    assert (weights.sum(axis=1) == (1 << PRECISION) - levels).all()
    assert weights[0, 0] >= weights[0, 1:].max() and len(set(weights[0, 1:])) == 1
    order = np.argsort(logits, axis=1, kind="stable")
    rising = np.diff(np.take_along_axis(logits, order, axis=1), axis=1) > 0
    assert (np.diff(np.take_along_axis(weights, order, axis=1), axis=1)[rising] >= 0).all()  # a larger logit never gets less
    probs = torch.softmax(torch.from_numpy(logits / 2**12), dim=1).numpy()
    assert np.abs((weights + 1) / 2**PRECISION - probs).max() <= (levels + 2) / 2**PRECISION + 1e-6
    assert np.array_equal(integer_frequencies(logits.astype(np.int64), exp_table), weights)
    assert np.array_equal(integer_frequencies(np.ascontiguousarray(logits.T).T, exp_table), weights)  # any memory layout
    # The definition, in Python integers: R = floor(2^29 (2^24 - K) / sum m), w = floor(m R / 2^29), the remainder to the first maximum.
    free = (1 << PRECISION) - levels
    for row, expected in zip(logits.astype(np.int64).tolist(), weights.tolist()):
        mass = [int(exp_table[min(max(row) - value, len(exp_table) - 1)]) for value in row]
        reciprocal = (free << 29) // sum(mass)
        reference = [m * reciprocal >> 29 for m in mass]
        reference[row.index(max(row))] += free - sum(reference)
        assert reference == expected


# --------------------------------------------------------------------- exact sums
def exact_integers(matrix, scale):
    """The integers q behind a stored matrix q * 2^-scale, as Python ints (object array)."""
    integers = matrix * 2.0**scale
    assert np.array_equal(integers, np.rint(integers))
    return integers.astype(np.int64).astype(object)


@pytest.mark.parametrize("magnitude", [0.3, 50.0, 2e3])
def test_sums_are_exact_at_their_proven_bound(magnitude):
    fixed = FixedPoint()
    rng = np.random.default_rng(0)
    weight = torch.from_numpy(rng.normal(size=(6, 40)) * magnitude)
    bias = torch.from_numpy(rng.normal(size=6) * magnitude)
    limit = fixed.relu_max
    exact = exact_sum("test", [(weight, limit)], [bias], fixed, fixed.activation_bits)
    assert exact.bound < EXACT
    shift = fixed.activation_bits + exact.exponent - fixed.activation_bits
    if exact.exponent < fixed.max_weight_bits:  # the finest grid: one bit finer would leave the exact range
        assert exact.bound >= EXACT // 4
    q, q_bias = exact_integers(exact.weights[0], shift), exact_integers(exact.bias, shift)
    # The worst input: every activation at its bound, signed like the row's weights (the largest partial sums).
    inputs = np.where(q >= 0, limit, -limit).astype(object)  # (6, 40), one input vector per row
    truth = (q * inputs).sum(axis=1) + q_bias
    assert max(abs(int(t)) for t in truth) <= exact.bound
    computed = np.einsum("ok,ok->o", exact.weights[0], inputs.astype(np.float64)) + exact.bias
    assert [int(value) for value in computed * 2.0**shift] == [int(t) for t in truth]
    computed = (exact.weights[0] @ inputs.astype(np.float64).T).diagonal() + exact.bias  # BLAS: another order, the same sums
    assert [int(value) for value in computed * 2.0**shift] == [int(t) for t in truth]


def test_absurd_weights_are_refused_when_the_model_is_built():
    model = tiny("pixelcnn", 1, 2)
    with torch.no_grad():
        model.blocks[1].conv.weight.mul_(1e30)
    with pytest.raises(CompressionError, match=r"block 1 convolution: cannot be computed exactly: .* 36 terms .*largest weight [0-9.]+e\+29"):
        integer_model(model)
    with pytest.raises(CompressionError, match="block 1 convolution"):
        compress(model, image_set(1, 2, 2, [(2, 2)]))  # refused before any pixel is coded
    broken = tiny("row_lstm", 1, 2)
    with torch.no_grad():
        broken.output_stack.convs[0].bias[0] = float("nan")
    with pytest.raises(CompressionError, match="output layer 0: the weights are not finite"):
        integer_model(broken)
    with pytest.raises(CompressionError, match="block 0 LSTM cell: .* could leave the exact range"):
        integer_model(tiny("row_lstm", 1, 2), FixedPoint(activation_bits=24, table_bits=4))


def test_only_single_scale_unconditional_networks_have_an_integer_model():
    single = dict(arch="pixelcnn", channels=1, levels=2, hidden=4, layers=1, output_hidden=8)
    multiscale = model_from_config(MultiScaleConfig(ModelConfig(**single), ModelConfig(**{**single, "condition_channels": 2})))
    with pytest.raises(CompressionError, match="single-scale networks"):
        integer_model(multiscale)
    with pytest.raises(CompressionError, match="single-scale network"):
        compress(multiscale, image_set(1, 2, 1, [(2, 2)]))
    with pytest.raises(CompressionError, match="unconditional"):
        integer_model(multiscale.large)


# --------------------------------------------------------------------- batched pass against the engines
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(**INTEGER_CASES, count=st.integers(1, 3))
def test_batched_integer_logits_equal_the_engines_bit_for_bit(**case):
    model, images = integer_case(**case)
    batched = integer_logits(model, images).numpy()
    assert np.array_equal(batched, np.rint(batched))
    assert np.array_equal(batched, teacher_forced_logits(make_integer_engine(model), images, model.config.levels))


@pytest.mark.parametrize("arch", ["pixelcnn", "row_lstm", "diagonal_bilstm"])
def test_integer_logits_follow_the_float_model(arch):
    network = tiny(arch, 3, 256, seed=4)
    images = np.random.default_rng(4).integers(0, 256, size=(4, 3, 5, 6))
    with torch.no_grad():
        float_logits = network(torch.from_numpy(images)).double().numpy()
    model = integer_model(network)
    error = np.abs(integer_logits(model, images).numpy() * 2.0**-model.fixed.table_bits - float_logits).max()
    assert math.isfinite(error)
    # Rounding the logits alone costs up to 2^-13 (1.2e-4), every earlier sum a little more: about
    # 1.3e-4 measured; one layer's weight grid off by a factor of two gives 5.4e-4.
    assert error < 2e-4, error


def test_the_engine_goes_in_raster_order():
    engine = make_integer_engine(integer_model(tiny("pixelcnn", 3, 4)))
    with pytest.raises(ValueError, match="reset"):
        engine.logits(0, 0, 0)
    with pytest.raises(ValueError, match="expected 2 values"):
        engine.reset(2, 2, 2) or engine.advance(0, 0, 0, np.zeros(3, dtype=np.int64))
    engine.reset(2, 2, 2)
    engine.logits(0, 0, 0)
    with pytest.raises(ValueError, match=r"next is \(i, j, c\) = \(0, 0, 0\), not \(0, 0, 1\)"):
        engine.advance(0, 0, 1, np.zeros(2, dtype=np.int64))


@pytest.mark.parametrize("channels", [1, 3])
@pytest.mark.parametrize("arch", ["pixelcnn", "row_lstm", "diagonal_bilstm"])
def test_a_class_conditional_network_has_an_exact_integer_model_per_class(arch, channels):
    """The class vectors enter the sums as biases: each class's integer logits follow the float
    network given that class, and every integer executor computes them alike."""
    from pixelrnn import build_model, native

    torch.manual_seed(3)
    model = build_model(arch, channels=channels, levels=4, hidden=max(4, channels), layers=2, output_hidden=8, classes=3).eval()
    with torch.no_grad():
        for name, parameter in model.named_parameters():
            if "class_vectors" in name:
                parameter.normal_(0, 0.5)
    images = np.random.default_rng(0).integers(0, 4, size=(2, channels, 4, 5))
    per_class = []
    for label in range(3):
        coding = integer_model(model, label=label)
        batched = integer_logits(coding, images).numpy()
        with torch.no_grad():
            expected = model(torch.as_tensor(images), torch.full((2,), label)).numpy()
        assert np.abs(batched * 2.0 ** -coding.fixed.table_bits - expected).max() < 0.02
        assert np.array_equal(teacher_forced_logits(make_integer_engine(coding, native_kernels=False), images, 4), batched)
        if native.plain_kernel("pixelrnn_integer_run") is not None:
            assert np.array_equal(teacher_forced_logits(make_integer_engine(coding, native_kernels=True), images, 4), batched)
        per_class.append(coding.fingerprint)
    assert len(set(per_class)) == 3  # each class is another coding model
    with pytest.raises(CompressionError, match=r"3 classes takes a label in \[0, 3\)"):
        integer_model(model)
    with pytest.raises(CompressionError, match=r"takes a label in \[0, 3\)"):
        integer_model(model, label=3)


def test_a_one_layer_networks_skip_sum_keeps_its_bias():
    # With one block the skip sum is a single convolution: its bias is the only one added.
    torch.manual_seed(5)
    network = build_model("pixelcnn", channels=1, levels=16, hidden=4, layers=1, output_hidden=8).eval()
    images = np.random.default_rng(5).integers(0, 16, size=(2, 1, 4, 5))
    with torch.no_grad():
        float_logits = network(torch.from_numpy(images)).double().numpy()
    model = integer_model(network)
    assert np.abs(integer_logits(model, images).numpy() * 2.0**-model.fixed.table_bits - float_logits).max() < 2e-4


def test_an_lstm_cells_bound_grows_by_one_table_unit_and_one_per_step_and_is_refused_at_2_to_the_53():
    fixed = FixedPoint()  # G = 12, F = 16: the update is exact while (|c| + 2^12) 2^20 < 2^53
    assert check_cell("cell", fixed, 7, 10) == 7 + 10 * 4097
    refused = (1 << 33) - 4096 - 10 * 4097  # the first initial cell whose bound after 10 steps reaches the limit
    assert check_cell("cell", fixed, refused - 1, 10) == refused - 1 + 10 * 4097
    with pytest.raises(CompressionError, match="^cell: an LSTM cell over 10 steps could leave the exact range"):
        check_cell("cell", fixed, refused, 10)


def test_the_batched_relu_clamps_at_its_proven_maximum():
    fixed = FixedPoint()
    cells = _Pass(SimpleNamespace(fixed=fixed, tables=tables(fixed), inputs=np.zeros(2)), torch.device("cpu"))
    top = float(fixed.relu_max)
    assert cells.relu(torch.tensor([-5.0, 0.0, 3.0, top, top + 1, 1e12], dtype=torch.float64)).tolist() == [0, 0, 3, top, top, top]


def test_the_batched_cell_reads_each_tables_ends_beyond_them():
    # A table of +-1 at 2^-4: its end entries differ from their neighbours, so a misplaced end shows.
    fixed = FixedPoint(table_bits=4, table_range=1)
    table = tables(fixed)
    half = fixed.table_half
    cells = _Pass(SimpleNamespace(fixed=fixed, tables=table, inputs=np.zeros(2)), torch.device("cpu"))
    end = lambda index: min(max(int(index), 0), 2 * half)
    indices = [-3 * half, -1, 0, 1, half, 2 * half - 1, 2 * half, 2 * half + 1, 5 * half]
    rng = np.random.default_rng(0)
    gates = rng.choice(indices, size=(64, 4)).astype(np.float64)  # (o, f, i, g) per row, h = 1
    previous = rng.choice([-6 * half, -half, 0.0, 3.0, 2 * half, 6 * half], size=(64, 1))
    hidden, cell = cells.cell(torch.from_numpy(gates), torch.from_numpy(previous), 1)
    for row, (o, f, i, g) in enumerate(gates):
        expected_cell = np.round(table.sigmoid[end(f)] * previous[row, 0] + table.sigmoid[end(i)] * table.tanh_gate[end(g)])
        assert cell[row, 0] == expected_cell
        assert hidden[row, 0] == np.round(table.sigmoid[end(o)] * table.tanh_cell[end(expected_cell + half)])
