"""The integer coding model of a trained network: its layers in fixed point, their bounds, its fingerprint.

:func:`integer_model` derives it from any single-scale network of section 3 (PixelCNN, Row LSTM,
Diagonal BiLSTM; 1 or 3 channels; any number of levels): the same layers, in the same order, with
every sum quantised by :func:`pixelrnn.codec.fixed_point.exact_sum` and every activation bounded:

- ReLU outputs are clamped to [0, 2^(F + clamp_bits)] (the clamp is part of the model);
- the residual stream is not clamped: its bound is the input convolution's plus each block's
  output bound (a block's sums read clamped ReLUs or LSTM states, so the bound grows by a sum,
  not a product, with depth);
- LSTM states are in [-1, 1] by construction, the learned initial state bounds itself, and a
  cell's bound follows from the longest recurrence a file may hold (``MAX_SIDE`` steps).

Each bound is checked when the model is built, so a model whose integer version could overflow the
exact range is refused then, with a one-line error naming the layer, never while coding. The
batched pass is :mod:`.integer_batched`; the incremental engines are :mod:`.integer_numpy_engines`.

Multi-scale networks (section 3.6) have no integer coding model: their conditioning network
(transposed convolutions) would need one too; they are refused, as by the float coder.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass, field

import numpy as np
import torch

from ..config import ModelConfig
from ..errors import CompressionError
from ..models import DiagonalBiLSTMNetwork, PixelCNN, RowLSTMNetwork
from ..models.description import Block, MaskedSum, NetworkDescription, walk
from .container import MAX_SIDE
from .fixed_point import DEFINITION, ExactSum, FixedPoint, Tables, check_cell, exact_sum, input_values, tables


@dataclass
class PixelCNNLayer:
    """relu -> 1x1 reduce -> relu -> kxk mask B -> relu -> 1x1 expand (section 3.5)."""

    reduce: ExactSum
    conv: ExactSum
    expand: ExactSum


@dataclass
class LSTMLayer:
    """A Row LSTM (section 3.1) or Diagonal BiLSTM (section 3.2) layer and its output 1x1 convolution.

    ``gates`` has two sources: the input-to-state weights and the state-to-state weights (Row
    LSTM: (4h, h, k) over the row above; Diagonal BiLSTM: (8h, 2h), both directions stacked,
    each over [state above ; state beside]). Its outputs are table indices: gates at 2^-G plus N.
    """

    gates: ExactSum
    output: ExactSum
    initial_hidden: np.ndarray  # (h,) or (2, h): activations
    initial_cell: np.ndarray  # (h,) or (2, h): at 2^-G
    hidden: int = 0


@dataclass
class IntegerModel:
    """A network in fixed point; ``fingerprint`` identifies it (the file header stores it)."""

    config: ModelConfig
    description: NetworkDescription  # the layers in order and their wiring, as the float network's
    arch: str
    fixed: FixedPoint
    tables: Tables
    inputs: np.ndarray  # (K,) the activation of each sub-pixel value
    input_conv: ExactSum
    layers: list
    skips: ExactSum | None  # one source per layer; None without skip connections
    output: list[ExactSum]
    fingerprint: bytes = field(default=b"", repr=False)

    @property
    def sums(self) -> list[ExactSum]:
        found = [self.input_conv]
        for layer in self.layers:
            found += [layer.reduce, layer.conv, layer.expand] if isinstance(layer, PixelCNNLayer) else [layer.gates, layer.output]
        return found + ([self.skips] if self.skips else []) + self.output

    def describe(self) -> str:
        exponents = [s.exponent for s in self.sums]
        largest = max(s.bound for s in self.sums)
        return (f"integer {self.arch}: {self.fixed.describe()}; weight grids 2^-{min(exponents)}..2^-{max(exponents)}; "
                f"largest proven sum 2^{math.log2(largest):.2f} (exact below 2^53)")


def _masked(conv) -> torch.Tensor:
    return conv.masked_weight().detach()


def _biases(*convs) -> list[torch.Tensor]:
    return [conv.bias.detach() for conv in convs if conv.bias is not None]


def _relu(bound: int, fixed: FixedPoint) -> int:
    return min(bound, fixed.relu_max)


def _pixelcnn_layer(block, index: int, stream: int, fixed: FixedPoint, entry: list[torch.Tensor]) -> tuple[PixelCNNLayer, int]:
    activation = fixed.activation_bits
    reduce = exact_sum(f"block {index} reduce", [(_masked(block.reduce), _relu(stream, fixed))], _biases(block.reduce), fixed, activation)
    conv = exact_sum(f"block {index} convolution", [(_masked(block.conv), _relu(reduce.output_bound, fixed))], _biases(block.conv) + entry,
                     fixed, activation)
    expand = exact_sum(f"block {index} expand", [(_masked(block.expand), _relu(conv.output_bound, fixed))], _biases(block.expand),
                       fixed, activation)
    return PixelCNNLayer(reduce, conv, expand), expand.output_bound


def _initial(parameter: torch.Tensor, bits: int) -> np.ndarray:
    return np.rint(parameter.detach().to("cpu", torch.float64).numpy() * 2.0 ** bits)


def _lstm_layer(block, index: int, stream: int, fixed: FixedPoint, diagonal: bool, entry: list[torch.Tensor]) -> tuple[LSTMLayer, int]:
    lstm = block.lstm
    initial_hidden = _initial(lstm.initial_hidden, fixed.activation_bits)
    initial_cell = _initial(lstm.initial_cell, fixed.table_bits)
    state_bound = max(fixed.one, int(np.abs(initial_hidden).max(initial=0)))
    check_cell(f"block {index} LSTM cell", fixed, int(np.abs(initial_cell).max(initial=0)), MAX_SIDE)
    if diagonal:  # (2, 4h, 2h) -> (8h, 2h): direction d's gates over its own [above ; beside]
        recurrent = lstm.state_to_state.detach().reshape(-1, lstm.state_to_state.shape[-1])
    else:
        recurrent = lstm.state_to_state.weight.detach()  # (4h, h, k)
    gates = exact_sum(f"block {index} LSTM gates", [(_masked(lstm.input_to_state), stream), (recurrent, state_bound)],
                      _biases(lstm.input_to_state) + entry, fixed, fixed.table_bits, offset=fixed.table_half)
    # The output convolution reads computed states only (|h| <= 1), the Diagonal BiLSTM the sum of two.
    output = exact_sum(f"block {index} output", [(_masked(block.output), (2 if diagonal else 1) * fixed.one)],
                       _biases(block.output), fixed, fixed.activation_bits)
    return LSTMLayer(gates, output, initial_hidden, initial_cell, lstm.hidden), output.output_bound


def _fingerprint(model: IntegerModel) -> bytes:
    """sha256 of everything the frequencies depend on: definition, config, parameters, tables, every sum."""
    digest = hashlib.sha256(b"pixelrnn-integer-model\0")
    digest.update(f"{DEFINITION}\0{model.config.to_json()}\0".encode() + model.fixed.to_bytes())
    arrays = [model.tables.sigmoid, model.tables.tanh_gate, model.tables.tanh_cell, model.tables.exp, model.inputs]
    for layer in model.layers:
        if isinstance(layer, LSTMLayer):
            arrays += [layer.initial_hidden, layer.initial_cell]
    for exact in model.sums:
        arrays += [*exact.weights, exact.bias, np.array([exact.exponent])]
    for array in arrays:
        array = np.ascontiguousarray(array)
        digest.update(f"\0{array.dtype.str}{array.shape}\0".encode())
        digest.update(array.astype(array.dtype.newbyteorder("<")).tobytes())
    return digest.digest()


ARCHS = {PixelCNN: "pixelcnn", RowLSTMNetwork: "row_lstm", DiagonalBiLSTMNetwork: "diagonal_bilstm"}


def integer_model(model, fixed: FixedPoint | None = None, label: int | None = None) -> IntegerModel:
    """The integer coding model of a single-scale network without a condition map (module docstring).

    A class-conditional network (``config.classes`` > 0) has one integer model per class:
    ``label``'s class vectors are biases of the sums they enter, quantised and bounded with them.

    Raises CompressionError for any other model, and for a model whose sums cannot be proven exact.
    """
    fixed = fixed or FixedPoint()
    arch = next((name for network, name in ARCHS.items() if isinstance(model, network)), None)
    config = getattr(model, "config", None)
    if arch is None or not isinstance(config, ModelConfig):
        raise CompressionError(f"an integer coding model exists for single-scale networks (pixelcnn, row_lstm, diagonal_bilstm); "
                               f"not for {type(model).__name__}")
    if config.condition_channels:
        raise CompressionError("an integer coding model needs an unconditional network; this one takes a condition map")
    if (label is None) != (not config.classes) or (label is not None and not 0 <= label < config.classes):
        raise CompressionError(f"the integer coding model of a network with {config.classes} classes takes a label in [0, {config.classes})"
                               if config.classes else "this network is unconditional; its integer coding model takes no label")
    with torch.no_grad():
        sums = _Quantiser(model, fixed, label)
        walk(model.description, sums)
    result = IntegerModel(config, model.description, arch, fixed, tables(fixed), input_values(fixed, config.levels), sums.input_conv,
                          sums.layers, sums.skips, sums.output_sums)
    result.fingerprint = _fingerprint(result)
    return result


class _Quantiser:
    """The description's walk with bounds for values: each layer's exact sum, in the network's order.

    A value is the bound of the stream or features at that point; each operation quantises its
    layer against the bound of what it reads and returns the bound of what it gives.
    """

    def __init__(self, model, fixed: FixedPoint, label: int | None):
        self.model, self.fixed, self.label = model, fixed, label
        self.layers: list = []
        self.skips: ExactSum | None = None
        self.output_sums: list[ExactSum] = []

    def input(self) -> int:
        conv, fixed = self.model.input_conv, self.fixed
        self.input_conv = exact_sum("input convolution", [(_masked(conv), fixed.one)], _biases(conv), fixed, fixed.activation_bits)
        return self.input_conv.output_bound

    def block(self, index: int, block: Block, stream: int) -> int:
        module = self.model.blocks[index]
        entry = self.class_vector(self.model.block_class_vectors, index)  # added where the block's conditioning enters
        if block.kind == "pixelcnn":
            layer, bound = _pixelcnn_layer(module, index, stream, self.fixed, entry)
        else:
            layer, bound = _lstm_layer(module, index, stream, self.fixed, block.kind == "diagonal_bilstm", entry)
        self.layers.append(layer)
        return bound

    def stream(self, index: int, branch: int, previous: int | None) -> int:
        return branch if previous is None else previous + branch

    def skip_sum(self, streams: list[int]) -> int:
        skips = self.model.skips
        self.skips = exact_sum("skip connections", [(_masked(conv)[:, :, 0, 0], bound) for conv, bound in zip(skips, streams)],
                               _biases(*skips), self.fixed, self.fixed.activation_bits)
        return self.skips.output_bound

    def output(self, index: int, layer: MaskedSum, features: int) -> int:
        conv, fixed = self.model.output_stack.convs[index], self.fixed
        last = index == len(self.model.description.output) - 1
        self.output_sums.append(exact_sum("logits" if last else f"output layer {index}", [(_masked(conv)[:, :, 0, 0], _relu(features, fixed))],
                                     _biases(conv) + self.class_vector(self.model.output_class_vectors, index), fixed,
                                     fixed.table_bits if last else fixed.activation_bits))
        return self.output_sums[-1].output_bound

    def class_vector(self, tables, index: int) -> list[torch.Tensor]:
        """The label's vector of entry ``index`` as one more bias (none for an unconditional network)."""
        return [] if self.label is None else [tables[index].weight[self.label].detach()]
