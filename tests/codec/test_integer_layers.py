"""The integer coding model layer by layer against the float model, within what its fixed-point formats allow.

Weights: each sum's weights, read through its exponent e, are the float weights rounded to the
grid 2^-e. Activations: each operation of the network's walk runs in both passes on the same
input, taken on the integer grid (the float network in float64 reads it exactly), so a layer's
error is its own: weights on 2^-e, biases on 2^-(F+e), the output rounded to its grid (2^-F,
the logits 2^-G), and inside a block what its sums, tables and recurrence add, bounded step by
step. A layer one bit off in any of these fails here, named, however little the logits move.
"""

import math

import numpy as np
import pytest
import torch
from codec_cases import tiny

from pixelrnn.codec import integer_model
from pixelrnn.codec.integer_batched import _Pass
from pixelrnn.codec.integer_model import LSTMLayer, PixelCNNLayer
from pixelrnn.models.base import _FloatPass
from pixelrnn.models.description import walk

pytestmark = pytest.mark.usefixtures("one_thread")

ARCHS = ["pixelcnn", "row_lstm", "diagonal_bilstm"]


def network(arch):
    return tiny(arch, 3, 16, seed=4).double()


def real_weights(net, arch):
    """Each sum's float weights, (out, ...) as the integer model lists its sums and sources."""
    masked = lambda conv: conv.masked_weight().detach()
    found = [("input convolution", [masked(net.input_conv)])]
    for index, block in enumerate(net.blocks):
        if arch == "pixelcnn":
            found += [(f"block {index} {part}", [masked(getattr(block, key))])
                      for part, key in (("reduce", "reduce"), ("convolution", "conv"), ("expand", "expand"))]
        else:
            lstm = block.lstm
            recurrent = lstm.state_to_state.weight.detach() if arch == "row_lstm" else lstm.state_to_state.detach().reshape(-1, 2 * lstm.hidden)
            found += [(f"block {index} LSTM gates", [masked(lstm.input_to_state), recurrent]), (f"block {index} output", [masked(block.output)])]
    if net.description.skip:
        found.append(("skip connections", [masked(conv)[:, :, 0, 0] for conv in net.skips]))
    convs = net.output_stack.convs
    found += [("logits" if k == len(convs) - 1 else f"output layer {k}", [masked(conv)[:, :, 0, 0]]) for k, conv in enumerate(convs)]
    return found


def output_bits(model, name):
    return model.fixed.table_bits if name == "logits" or name.endswith("LSTM gates") else model.fixed.activation_bits


@pytest.mark.parametrize("arch", ARCHS)
def test_each_sums_weights_are_the_float_weights_on_its_grid(arch):
    net = network(arch)
    model = integer_model(net)
    expected = real_weights(net, arch)
    assert [name for name, _ in expected] == [exact.name for exact in model.sums]
    for (name, reals), exact in zip(expected, model.sums):
        # stored = q * 2^(S - F - e): q * 2^-e is the weight it stands for
        to_real = 2.0 ** (model.fixed.activation_bits - output_bits(model, name))
        assert len(exact.weights) == len(reals), name
        for stored, real in zip(exact.weights, reals):
            weight = stored.reshape(real.shape) * to_real
            steps = weight * 2.0**exact.exponent
            assert np.array_equal(steps, np.rint(steps)), f"{name}: weights off the grid 2^-{exact.exponent}"
            assert np.abs(weight - real.numpy()).max() <= 2.0 ** -(exact.exponent + 1), f"{name}: more than half a grid step away"


# --------------------------------------------------------------------- activations
def row_l1(exact, model, name, source=0):
    """max over outputs of sum |w|: how much an input error can grow through this sum."""
    weight = exact.weights[source] * 2.0 ** (model.fixed.activation_bits - output_bits(model, name))
    return float(np.abs(weight).reshape(len(weight), -1).sum(axis=1).max())


def weight_error(exact, inputs_max):
    """|error| bound of a sum from its weights on 2^-e (half a step each) over inputs of at most ``inputs_max``,
    and its bias (on the finer 2^-(F+e); counted as half a weight step)."""
    terms = sum(w[0].size for w in exact.weights)
    return 2.0 ** -(exact.exponent + 1) * terms * inputs_max + 2.0 ** -(exact.exponent + 1)


def lstm_bound(layer: LSTMLayer, model, stream_max, steps, directions):
    """A tolerance for an LSTM layer's states (the sum of both directions'): each step's own rounding, summed.

    A step rounds the gates' sum to 2^-G, reads sigmoid (slope 1/4) and tanh (slope 1) from tables
    rounded to 2^-F and clamped at +-table_range, rounds the cell to 2^-G (|c| grows by at most 1
    a step) and the state to 2^-F. How the recurrence amplifies an earlier step's error is left
    out: its strict worst case is millions of times what a layer measures. So this catches states
    off in scale or gates, not in their last bit (the engines' bit-exact tests cover those).
    """
    fixed = model.fixed
    act, table = 2.0 ** -(fixed.activation_bits + 1), 2.0 ** -(fixed.table_bits + 1)
    clamp = math.exp(-fixed.table_range)  # beyond the tables' ends: sigmoid and tanh are within this of their limits
    pre = table + weight_error(layer.gates, max(stream_max, 1.0))
    sigmoid, tanh = pre / 4 + act + clamp, pre + act + clamp
    cell = float(np.abs(layer.initial_cell).max()) * 2.0**-fixed.table_bits
    total = 0.0
    for step in range(1, steps + 1):
        total += (cell + step + 1) * sigmoid + tanh + table + sigmoid + 2 * act
    return directions * total


class Trace:
    """Records each operation of the walk: its name and inputs, and its output."""

    def __init__(self, ops):
        self.ops, self.calls = ops, []

    def __getattr__(self, name):
        method = getattr(self.ops, name)

        def call(*args):
            out = method(*args)
            self.calls.append((name, args, out))
            return out
        return call


def sum_checks(net, arch, model):
    """(layer, integer output as a real, float output, bound) of each sum, fed the same input on the integer grid."""
    fixed = model.fixed
    F, act = fixed.activation_bits, 2.0 ** -(fixed.activation_bits + 1)
    grid = lambda x: torch.round(x * 2.0**F)  # an activation on the integer grid
    real = lambda x, bits=F: x * 2.0**-bits
    images = torch.from_numpy(np.random.default_rng(4).integers(0, 16, size=(3, 3, 4, 5)))
    height, width = images.shape[2:]
    floats = Trace(_FloatPass(net, *net.condition_biases(None, None)))
    integers = _Pass(model, torch.device("cpu"))
    relu = torch.relu
    with torch.no_grad():
        walk(net.description, floats, net.scale(images))
        for name, args, out in floats.calls:
            if name == "input":  # the images' values, rounded to the grid, through the input convolution
                bound = row_l1(model.input_conv, model, "input") * act + weight_error(model.input_conv, 1.0) + act
                yield "input convolution", real(integers.input(images.long())), out, bound
            elif name == "block":
                index, kind, stream = args
                module, layer = net.blocks[index], model.layers[index]
                s = real(grid(stream))
                # The whole block as the pass composes it: each sum's error grows through the next (ReLU has slope 1).
                if isinstance(layer, PixelCNNLayer):
                    chain, inputs = 0.0, relu(s)
                    for exact, conv in ((layer.reduce, module.reduce), (layer.conv, module.conv), (layer.expand, module.expand)):
                        chain = row_l1(exact, model, "block") * chain + weight_error(exact, float(inputs.max())) + act
                        inputs = relu(conv(inputs))
                else:
                    diagonal = arch == "diagonal_bilstm"
                    steps = height + width - 1 if diagonal else height
                    chain = (row_l1(layer.output, model, "block") * lstm_bound(layer, model, float(s.abs().max()), steps, 2 if diagonal else 1)
                             + weight_error(layer.output, 2.0) + act)
                yield f"block {index}", real(integers.block(index, kind, grid(s))), module(s), chain
                if isinstance(layer, PixelCNNLayer):
                    r = module.reduce(relu(s))
                    yield (f"block {index} reduce", real(integers.pointwise(integers.relu(grid(s)), layer.reduce)), r,
                           weight_error(layer.reduce, float(relu(s).max())) + act)
                    r = real(grid(relu(r)))
                    c = module.conv(r)
                    yield (f"block {index} convolution", real(torch.round(integers.conv(grid(r), layer.conv))), c,
                           weight_error(layer.conv, float(r.max())) + act)
                    c = real(grid(relu(c)))
                    yield (f"block {index} expand", real(integers.pointwise(grid(c), layer.expand)), module.expand(c),
                           weight_error(layer.expand, float(c.max())) + act)
                else:
                    diagonal = arch == "diagonal_bilstm"
                    states = module.lstm(s)
                    scan = integers.diagonal_bilstm if diagonal else integers.row_lstm
                    steps = height + width - 1 if diagonal else height
                    yield (f"block {index} LSTM", real(scan(layer, grid(s))), states,
                           lstm_bound(layer, model, float(s.abs().max()), steps, 2 if diagonal else 1))
                    states = real(grid(states))
                    yield (f"block {index} output", real(integers.pointwise(grid(states), layer.output)), module.output(states),
                           weight_error(layer.output, float(states.abs().max())) + act)
            elif name == "skip_sum":
                streams = [real(grid(s)) for s in args[0]]
                integer = integers.skip_sum([grid(s) for s in streams])
                yield ("skip connections", real(integer), _FloatPass(net, [], []).skip_sum(streams),
                       weight_error(model.skips, max(float(s.abs().max()) for s in streams)) + act)
            elif name == "output":
                index, layer, features = args
                exact = model.output[index]
                bits = output_bits(model, exact.name)
                features = real(grid(features))
                yield (exact.name, real(integers.output(index, layer, grid(features)), bits), floats.ops.output(index, layer, features),
                       weight_error(exact, float(relu(features).max())) + 2.0 ** -(bits + 1))


def layer_errors(net, arch, model=None):
    """[(layer, error, bound)] of each sum in the network's order."""
    model = model or integer_model(net)
    return [(label, float((integer - floating).abs().max()), bound) for label, integer, floating, bound in sum_checks(net, arch, model)]


@pytest.mark.parametrize("arch", ARCHS)
def test_each_layer_follows_the_float_layer_within_its_formats(arch):
    for label, error, bound in layer_errors(network(arch), arch):
        assert error <= bound, f"{arch} {label}: |integer - float| = {error:.3g} > {bound:.3g}"
