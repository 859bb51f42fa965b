"""The three native engines: each reference engine's caches, one native call per position and colour.

The caches and the row work follow the reference engines of :mod:`pixelrnn.sampling.engines`
(PixelCNN, section 3.5; Row LSTM, section 3.1; Diagonal BiLSTM, section 3.2); each block adds
its part to the per-group program of :class:`pixelrnn.sampling.native_engine.NativeColumn`.
Deviations in layout, none in what is computed:

- LSTM gates are permuted so that each colour group's [o | f | i | g] is one block
  (:func:`gate_order`); the state-to-state weights, biases and conditioning maps with them.
- Diagonal BiLSTM state rows have a column -1, ``(W + 1, B, h)``, that holds the learned
  initial state (the left neighbour of column 0), so no position is a special case; the
  right-to-left scan of a finished row is one program run from the right end.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from ..native.program import Program, at
from .engine import IncrementalEngine, _Pointwise
from .engines import DiagonalBiLSTMEngine, PixelCNNEngine, RowLSTMEngine, _named_caches
from .native_engine import NativeColumn, gate_order, group_ranges


class NativePixelCNNEngine(NativeColumn, PixelCNNEngine):
    """PixelCNN: the reference caches (the k x k convolutions' input maps), native positions."""

    def _setup_blocks(self) -> None:
        super()._setup_blocks()
        self._setup_native()
        self.hidden_groups = group_ranges(self.model.config.hidden, self.channels)
        # Per block: a later group's products read the earlier groups' units of the same block.
        self.conv_output = self.like.new_zeros(len(self.model.blocks), self.batch, self.model.config.hidden)

    def _block_program(self, program: Program, index: int, i: int, c: int) -> None:
        block, x = self.model.blocks[index], self.features[index]
        reduce, conv, expand = self.reduce[index], self.conv[index], self.expand[index]
        (start, end), (wide_start, wide_end) = self.hidden_groups[c], self.maps_groups[c]
        column = conv.cache.stride(2)
        # relu(reduce(relu(x))) straight into the convolution's input cache at (i, j).
        seen = self._prefix(block.reduce, c)
        program.linear(at(conv.cache[:, i + conv.top, conv.side, start:end], column), at(x[:, :seen]), reduce.weight_t[:seen, start:end],
                       base=at(reduce.bias[start:end].expand(self.batch, -1)), relu_in=True, relu_out=True)
        seen = conv.side * conv.cache.shape[-1] + self._prefix(block.conv, c, row=conv.top, column=conv.side)
        patch = conv.cache[:, i + conv.top, : conv.side + 1].view(self.batch, -1)  # (B, (k//2 + 1) * h)
        program.linear(at(self.conv_output[index, :, start:end]), at(patch[:, :seen], column), conv.centre_t[:seen, start:end],
                       base=at(conv.base[0][:, start:end], conv.base.stride(0)), add=self._condition_at(index, i, start, end))
        seen = self._prefix(block.expand, c)
        program.linear(at(self.features[index + 1, :, wide_start:wide_end]), at(self.conv_output[index, :, :seen]),
                       expand.weight_t[:seen, wide_start:wide_end], base=at(expand.bias[wide_start:wide_end].expand(self.batch, -1)),
                       add=at(x[:, wide_start:wide_end]) if block.residual else None, relu_in=True)


class NativeRowLSTMEngine(NativeColumn, RowLSTMEngine):
    """Row LSTM: the reference caches with permuted gates, native positions."""

    def _setup_blocks(self) -> None:
        super()._setup_blocks()
        self._setup_native()
        size = self.model.config.hidden
        self.hidden_groups = group_ranges(size, self.channels)
        self.order = gate_order(size, self.channels)
        self.gates = self.like.new_zeros(self.batch, 4 * size)
        self.centres, self.state_weights, self.gate_biases = [], [], []
        for index, layer in enumerate(self.layers):
            self.centres.append(layer.input_to_state.centre_t[:, self.order].contiguous())
            self.state_weights.append(layer.module.state_to_state.weight.detach()[self.order].contiguous())
            self.gate_biases.append(layer.input_to_state.bias[self.order].contiguous())
            if self.condition_bias is not None:
                self.condition_bias[index] = self.condition_bias[index][..., self.order].contiguous()

    def _start_blocks_row(self, i: int) -> None:
        for layer, weight, bias in zip(self.layers, self.state_weights, self.gate_biases):
            if i > 0:  # the finished row's cells become the cells above
                layer.cell_above, layer.cell = layer.cell, layer.cell_above
            gates = F.conv1d(layer.hidden, weight, padding=weight.shape[-1] // 2)  # (B, 4h, W), permuted gates
            layer.state_gates = (gates + bias[:, None]).permute(2, 0, 1).contiguous()  # (W, B, 4h)

    def _block_program(self, program: Program, index: int, i: int, c: int) -> None:
        block, layer, x = self.model.blocks[index], self.layers[index], self.features[index]
        conv = layer.input_to_state
        (start, end), (wide_start, wide_end) = self.hidden_groups[c], self.maps_groups[c]
        gates = slice(4 * start, 4 * end)
        column = conv.cache.stride(2)
        program.copy(at(conv.cache[:, 0, conv.side, wide_start:wide_end], column), at(x[:, wide_start:wide_end]))
        seen = conv.side * x.shape[1] + self._prefix(block.lstm.input_to_state, c, rows=self.order[gates], column=conv.side)
        patch = conv.cache[:, 0, : conv.side + 1].view(self.batch, -1)  # (B, (k//2 + 1) * 2h)
        program.linear(at(self.gates[:, gates]), at(patch[:, :seen], column), self.centres[index][:seen, gates],
                       base=at(layer.state_gates[0][:, gates], layer.state_gates.stride(0)),
                       add=self._condition_at(index, i, gates.start, gates.stop))
        # State maps are (B, h, W): column j is one step along the last dimension.
        program.lstm(at(layer.hidden[:, start:end, 0], 1), at(self.gates[:, gates]), at(layer.cell_above[:, start:end, 0], 1),
                     at(layer.cell[:, start:end, 0], 1))
        seen = self._prefix(block.output, c)
        program.linear(at(self.features[index + 1, :, wide_start:wide_end]), at(layer.hidden[:, :seen, 0], 1),
                       layer.output.weight_t[:seen, wide_start:wide_end], base=at(layer.output.bias[wide_start:wide_end].expand(self.batch, -1)),
                       add=at(x[:, wide_start:wide_end]) if block.residual else None)


@dataclass
class _NativeDiagonalLayer:
    """One Diagonal BiLSTM layer's state; rows are column-major, with column -1 at index 0 where padded."""

    input_weight: torch.Tensor  # (2h, 8h): [left-to-right | right-to-left] gates, each permuted
    input_bias: torch.Tensor  # (8h,)
    forward: torch.Tensor  # (2h, 4h): state-to-state over [state above ; state to the left], permuted
    reverse: torch.Tensor  # (2h, 4h)
    output: _Pointwise
    initial_hidden: torch.Tensor  # (2, h): per direction
    hidden_above: torch.Tensor  # (W + 1, B, h): left-to-right states of row i-1; index 0 the initial state
    hidden: torch.Tensor  # (W + 1, B, h): of row i
    cell: torch.Tensor  # (W + 1, B, h)
    reverse_gates: torch.Tensor  # (W, B, 4h): right-to-left input gates of the current row
    reverse_above: torch.Tensor  # (W, B, h): right-to-left states of the row above
    reverse_cell: torch.Tensor  # (W + 1, B, h): the right-to-left scan's cells; index W the initial cell
    reverse_shifted: torch.Tensor | None = None  # what the layer adds to row i: row i-1's right-to-left states


class NativeDiagonalBiLSTMEngine(NativeColumn, DiagonalBiLSTMEngine):
    """Diagonal BiLSTM: left-to-right per position and colour, right-to-left per finished row."""

    def _setup_blocks(self) -> None:
        self._setup_native()
        batch, width, size = self.batch, self.width, self.model.config.hidden
        self.hidden_groups = group_ranges(size, self.channels)
        self.order = gate_order(size, self.channels)
        both = torch.cat([self.order, 4 * size + self.order])
        self.gates = self.like.new_zeros(batch, 4 * size)
        self.summed = self.like.new_zeros(len(self.model.blocks), batch, size)  # per layer, as conv_output of the PixelCNN
        self.layers: list[_NativeDiagonalLayer] = []
        for index, block in enumerate(self.model.blocks):
            lstm = block.lstm
            input_to_state = _Pointwise(lstm.input_to_state)
            state_to_state = lstm.state_to_state.detach()  # (2, 4h, 2h) over [state above ; state to the left]
            initial_hidden, initial_cell = lstm.initial_hidden.detach(), lstm.initial_cell.detach()  # (2, h)
            rows = initial_hidden[0].expand(width + 1, batch, size).clone()  # row -1, and column -1 of every row
            self.layers.append(_NativeDiagonalLayer(
                input_weight=input_to_state.weight_t[:, both].contiguous(), input_bias=input_to_state.bias[both].contiguous(),
                forward=state_to_state[0].t()[:, self.order].contiguous(), reverse=state_to_state[1].t()[:, self.order].contiguous(),
                output=_Pointwise(block.output), initial_hidden=initial_hidden, hidden_above=rows, hidden=rows.clone(),
                cell=initial_cell[0].expand(width + 1, batch, size).clone(), reverse_gates=self.like.new_zeros(width, batch, 4 * size),
                reverse_above=initial_hidden[1].expand(width, batch, size).clone(),
                reverse_cell=initial_cell[1].expand(width + 1, batch, size).clone()))
            if self.condition_bias is not None:
                self.condition_bias[index] = self.condition_bias[index][..., both].contiguous()

    def _start_blocks_row(self, i: int) -> None:
        if i == 0:
            return
        batch, width, size = self.batch, self.width, self.model.config.hidden
        program = Program(batch, width, self.like.dtype)
        scratch = self.like.new_zeros(batch, 4 * size)
        states = []
        for layer in self.layers:
            # Row i-1 from its right end: the mirrored map's left-to-right recurrence; index W is right of the row.
            row = self.like.new_empty(width + 1, batch, size)
            row[width] = layer.initial_hidden[1]
            step = batch * size
            program.linear(at(scratch), at(layer.reverse_above[0], step), layer.reverse[:size], base=at(layer.reverse_gates[0], 4 * step))
            program.linear(at(scratch), at(row[1], step), layer.reverse[size:], base=at(scratch))
            for start, end in self.hidden_groups:
                program.lstm(at(row[0][:, start:end], step), at(scratch[:, 4 * start : 4 * end]),
                             at(layer.reverse_cell[1][:, start:end], step), at(layer.reverse_cell[0][:, start:end], step))
            states.append(row[:width])
        program.run(width - 1, -1, -1)
        for layer, row in zip(self.layers, states):
            # Row i-1's states are both the row above of row i's scan and the layer's shifted output at row i.
            layer.reverse_above = layer.reverse_shifted = row
            layer.hidden_above, layer.hidden = layer.hidden, layer.hidden_above

    def _block_program(self, program: Program, index: int, i: int, c: int) -> None:
        block, layer, x = self.model.blocks[index], self.layers[index], self.features[index]
        size = self.model.config.hidden
        (start, end), (wide_start, wide_end) = self.hidden_groups[c], self.maps_groups[c]
        gates, reverse = slice(4 * start, 4 * end), slice(4 * (size + start), 4 * (size + end))
        step = self.batch * size
        seen = self._prefix(block.lstm.input_to_state, c, rows=self.order[gates])
        program.linear(at(self.gates[:, gates]), at(x[:, :seen]), layer.input_weight[:seen, gates],
                       base=at(layer.input_bias[gates].expand(self.batch, -1)), add=self._condition_at(index, i, gates.start, gates.stop))
        program.linear(at(layer.reverse_gates[0][:, gates], 4 * step), at(x[:, :seen]), layer.input_weight[:seen, reverse],
                       base=at(layer.input_bias[reverse].expand(self.batch, -1)), add=self._condition_at(index, i, reverse.start, reverse.stop))
        # Left to right at (i, j): the state above is hidden_above[j + 1], the one to the left hidden[j] (column -1 padded).
        program.linear(at(self.gates[:, gates]), at(layer.hidden_above[1], step), layer.forward[:size, gates], base=at(self.gates[:, gates]))
        program.linear(at(self.gates[:, gates]), at(layer.hidden[0], step), layer.forward[size:, gates], base=at(self.gates[:, gates]))
        program.lstm(at(layer.hidden[1][:, start:end], step), at(self.gates[:, gates]), at(layer.cell[0][:, start:end], step),
                     at(layer.cell[1][:, start:end], step))
        if layer.reverse_shifted is not None:  # row 0 receives zeros from the shift
            program.add(at(self.summed[index, :, start:end]), at(layer.hidden[1][:, start:end], step), at(layer.reverse_shifted[0][:, start:end], step))
            states, states_step = self.summed[index], 0
        else:
            states, states_step = layer.hidden[1], step
        seen = self._prefix(block.output, c)
        program.linear(at(self.features[index + 1, :, wide_start:wide_end]), at(states[:, :seen], states_step),
                       layer.output.weight_t[:seen, wide_start:wide_end], base=at(layer.output.bias[wide_start:wide_end].expand(self.batch, -1)),
                       add=at(x[:, wide_start:wide_end]) if block.residual else None)

    def _block_caches(self):
        return _named_caches(self.layers, ("hidden_above", "hidden", "cell", "reverse_gates", "reverse_above"))


#: Each reference engine and its native counterpart.
NATIVE_ENGINES: dict[type[IncrementalEngine], type[IncrementalEngine]] = {
    PixelCNNEngine: NativePixelCNNEngine, RowLSTMEngine: NativeRowLSTMEngine, DiagonalBiLSTMEngine: NativeDiagonalBiLSTMEngine,
}
