"""The three native engines: each reference engine's caches, one native call per position and colour.

The caches and the row work follow the reference engines of :mod:`pixelrnn.sampling.reference_engines`
(PixelCNN, section 3.5; Row LSTM, section 3.1; Diagonal BiLSTM, section 3.2); each block adds
its part to the per-group program of :class:`pixelrnn.sampling.native_column.NativeColumn`.
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

from ..models.description import Block
from ..native.program import Operand, Program, at
from .reference_engine import IncrementalEngine, MaskedConvAt, Pointwise
from .reference_engines import DiagonalBiLSTMEngine, PixelCNNEngine, RowLSTMEngine, named_caches
from .native_column import NativeColumn, gate_order, group_ranges


class NativePixelCNNEngine(NativeColumn, PixelCNNEngine):
    """PixelCNN: the reference caches (the k x k convolutions' input maps), native positions and rows."""

    def _setup_blocks(self) -> None:
        super()._setup_blocks()
        self._setup_native()
        self.hidden_groups = group_ranges(self.model.config.hidden, self.channels)
        self.conv_bases = [self._above_base(conv) for conv in self.conv]
        # Per block: a later group's products read the earlier groups' units of the same block.
        self.conv_output = self.like.new_zeros(len(self.model.blocks), self.batch, self.model.config.hidden)
        self._build_programs()

    def _block_row_program(self, program: Program, first: bool) -> None:
        for conv, base in zip(self.conv, self.conv_bases):
            self._above_product(program, conv, base)

    def _block_caches(self):
        caches = {f"block{k}.conv_input": conv.cache for k, conv in enumerate(self.conv)}
        caches.update({f"block{k}.conv_base": base for k, base in enumerate(self.conv_bases) if base is not None})
        return caches

    def _block_program(self, program: Program, index: int, described: Block, c: int, first: bool) -> None:
        block, x = self.model.blocks[index], self.features[index]
        reduce, conv, expand = self.reduce[index], self.conv[index], self.expand[index]
        (start, end), (wide_start, wide_end) = self.hidden_groups[c], self.maps_groups[c]
        cache = conv.cache
        # relu(reduce(relu(x))) straight into the convolution's input cache at (i, j).
        seen = self._prefix(block.reduce, c)
        program.linear(at(cache[:, conv.top, conv.side, start:end], cache.stride(2), cache.stride(1)), at(x[:, :seen]),
                       reduce.weight_t[:seen, start:end], base=at(reduce.bias[start:end].expand(self.batch, -1)),
                       relu_in=True, relu_out=True)
        self._centre_product(program, conv, self.conv_bases[index], c, block.conv, self.conv_output[index, :, start:end], start, end,
                             add=self._condition_at(index, start, end))
        seen = self._prefix(block.expand, c)
        program.linear(at(self.features[index + 1, :, wide_start:wide_end]), at(self.conv_output[index, :, :seen]),
                       expand.weight_t[:seen, wide_start:wide_end], base=at(expand.bias[wide_start:wide_end].expand(self.batch, -1)),
                       add=at(x[:, wide_start:wide_end]) if described.residual else None, relu_in=True)


@dataclass
class _NativeRowLayer:
    """One Row LSTM layer's state; gates permuted by colour group (:func:`gate_order`)."""

    input_to_state: MaskedConvAt  # caches one row of the layer's input: (B, 1, W + 2*(k//2), 2h)
    centre: torch.Tensor  # ((k//2 + 1) * 2h, 4h): the input-to-state kernel's left part and centre
    state: torch.Tensor  # (k * h, 4h): the state-to-state 1 x k kernel over a window of the row above
    gate_bias: torch.Tensor  # (4h,)
    output: Pointwise
    hidden: torch.Tensor  # (B, W + 2*(k//2), h), zero padded: the finished row until the new row's positions overwrite it
    cell_above: torch.Tensor  # (W, B, h)
    cell: torch.Tensor  # (W, B, h)
    state_gates: torch.Tensor  # (B, W, 4h): state-to-state gates of the row, plus the bias


class NativeRowLSTMEngine(NativeColumn, RowLSTMEngine):
    """Row LSTM: per row the state-to-state gates, per position and colour the input-to-state gates and the cell."""

    def _setup_blocks(self) -> None:
        self._setup_native()
        batch, width, size = self.batch, self.width, self.model.config.hidden
        self.hidden_groups = group_ranges(size, self.channels)
        self.order = gate_order(size, self.channels)
        self.gates = self.like.new_zeros(batch, 4 * size)
        self.layers: list[_NativeRowLayer] = []
        for index, block in enumerate(self.model.blocks):
            lstm = block.lstm
            input_to_state = MaskedConvAt(lstm.input_to_state, batch, 1, width, self.like)
            weight = lstm.state_to_state.weight.detach()  # (4h, h, k)
            pad = weight.shape[-1] // 2
            hidden, cell = lstm.initial_state(batch, width)  # row -1: the learned initial state, (B, h, W)
            padded = self.like.new_zeros(batch, width + 2 * pad, size)
            padded[:, pad : pad + width] = hidden.detach().transpose(1, 2)
            cell_above = cell.detach().permute(2, 0, 1).contiguous()
            self.layers.append(_NativeRowLayer(
                input_to_state=input_to_state, centre=input_to_state.centre_t[:, self.order].contiguous(),
                state=weight.permute(2, 1, 0).reshape(-1, 4 * size)[:, self.order].contiguous(),
                gate_bias=input_to_state.bias[self.order].contiguous(), output=Pointwise(block.output), hidden=padded,
                cell_above=cell_above, cell=torch.zeros_like(cell_above), state_gates=self.like.new_zeros(batch, width, 4 * size)))
            self._permute_condition(index, self.order)
        self._build_programs()

    def _block_row_program(self, program: Program, first: bool) -> None:
        size, step = self.model.config.hidden, self.batch * self.model.config.hidden
        for layer in self.layers:
            if not first:  # the finished row's cells become the cells above
                program.copy(at(layer.cell_above[0], step), at(layer.cell[0], step))
            window = layer.hidden[:, : layer.state.shape[0] // size].view(self.batch, -1)  # (B, k * h) at column 0
            program.linear(at(layer.state_gates[:, 0], layer.state_gates.stride(1)), at(window, size), layer.state,
                           base=at(layer.gate_bias.expand(self.batch, -1)))

    def _block_program(self, program: Program, index: int, described: Block, c: int, first: bool) -> None:
        block, layer, x = self.model.blocks[index], self.layers[index], self.features[index]
        size = self.model.config.hidden
        conv, pad = layer.input_to_state, (layer.hidden.shape[1] - self.width) // 2
        (start, end), (wide_start, wide_end) = self.hidden_groups[c], self.maps_groups[c]
        gates, step = slice(4 * start, 4 * end), self.batch * size
        program.copy(at(conv.cache[:, 0, conv.side, wide_start:wide_end], conv.cache.stride(2)), at(x[:, wide_start:wide_end]))
        seen = conv.side * x.shape[1] + self._prefix(block.lstm.input_to_state, c, rows=self.order[gates], column=conv.side)
        patch = conv.cache[:, 0, : conv.side + 1].view(self.batch, -1)  # (B, (k//2 + 1) * 2h), a view
        program.linear(at(self.gates[:, gates]), at(patch[:, :seen], conv.cache.stride(2)), layer.centre[:seen, gates],
                       base=at(layer.state_gates[:, 0, gates], layer.state_gates.stride(1)),
                       add=self._condition_at(index, gates.start, gates.stop))
        program.lstm(at(layer.hidden[:, pad, start:end], size), at(self.gates[:, gates]), at(layer.cell_above[0, :, start:end], step),
                     at(layer.cell[0, :, start:end], step))
        seen = self._prefix(block.output, c)
        program.linear(at(self.features[index + 1, :, wide_start:wide_end]), at(layer.hidden[:, pad, :seen], size),
                       layer.output.weight_t[:seen, wide_start:wide_end], base=at(layer.output.bias[wide_start:wide_end].expand(self.batch, -1)),
                       add=at(x[:, wide_start:wide_end]) if described.residual else None)

    def _block_caches(self):
        return named_caches(self.layers, ("hidden", "cell_above", "cell", "state_gates"))


@dataclass
class _NativeDiagonalLayer:
    """One Diagonal BiLSTM layer's state; rows are column-major, padded with the initial state where read."""

    input_weight: torch.Tensor  # (2h, 8h): [left-to-right | right-to-left] gates, each permuted
    input_bias: torch.Tensor  # (8h,)
    forward: torch.Tensor  # (2h, 4h): state-to-state over [state above ; state to the left], permuted
    reverse: torch.Tensor  # (2h, 4h)
    output: Pointwise
    hidden_above: torch.Tensor  # (W + 1, B, h): left-to-right states of row i-1 at index j+1; index 0 the initial state
    hidden: torch.Tensor  # (W + 1, B, h): of row i
    cell: torch.Tensor  # (W + 1, B, h)
    reverse_gates: torch.Tensor  # (W, B, 4h): right-to-left input gates of the current row
    reverse_states: torch.Tensor  # (W + 1, B, h): right-to-left states of row i-1; index W the initial state
    reverse_cell: torch.Tensor  # (W + 1, B, h): the right-to-left scan's cells; index W the initial cell
    summed: torch.Tensor  # (B, h): both directions at (i, j)


class NativeDiagonalBiLSTMEngine(NativeColumn, DiagonalBiLSTMEngine):
    """Diagonal BiLSTM: left-to-right per position and colour, right-to-left per finished row."""

    first_row_differs = True  # row 0 adds no right-to-left state

    def _setup_blocks(self) -> None:
        self._setup_native()
        batch, width, size = self.batch, self.width, self.model.config.hidden
        self.hidden_groups = group_ranges(size, self.channels)
        self.order = gate_order(size, self.channels)
        both = torch.cat([self.order, 4 * size + self.order])
        self.gates = self.like.new_zeros(batch, 4 * size)
        self.reverse_scratch = self.like.new_zeros(batch, 4 * size)
        self.layers: list[_NativeDiagonalLayer] = []
        for index, block in enumerate(self.model.blocks):
            lstm = block.lstm
            input_to_state = Pointwise(lstm.input_to_state)
            state_to_state = lstm.state_to_state.detach()  # (2, 4h, 2h) over [state above ; state to the left]
            initial_hidden, initial_cell = lstm.initial_hidden.detach(), lstm.initial_cell.detach()  # (2, h)

            def initial(state, direction):
                return state[direction].expand(width + 1, batch, size).clone()

            self.layers.append(_NativeDiagonalLayer(
                input_weight=input_to_state.weight_t[:, both].contiguous(), input_bias=input_to_state.bias[both].contiguous(),
                forward=state_to_state[0].t()[:, self.order].contiguous(), reverse=state_to_state[1].t()[:, self.order].contiguous(),
                output=Pointwise(block.output), hidden_above=initial(initial_hidden, 0), hidden=initial(initial_hidden, 0),
                cell=initial(initial_cell, 0), reverse_gates=self.like.new_zeros(width, batch, 4 * size),
                reverse_states=initial(initial_hidden, 1), reverse_cell=initial(initial_cell, 1), summed=self.like.new_zeros(batch, size)))
            self._permute_condition(index, both)
        self._build_programs()
        self.reverse_program = self._reverse_program()

    def _block_row_program(self, program: Program, first: bool) -> None:
        if not first:  # row i-1's left-to-right states become the states above
            step = self.batch * self.model.config.hidden
            for layer in self.layers:
                program.copy(at(layer.hidden_above[1], step), at(layer.hidden[1], step))

    def _reverse_program(self) -> Program:
        """Row i-1 from its right end (run at columns W-1 .. 0 when row i starts): the mirrored map's recurrence.

        In place: at column j the states of row i-2 at j are read, then overwritten by row i-1's;
        the state to the right (j + 1) is already row i-1's.
        """
        program, size = self._program(), self.model.config.hidden
        scratch, step = self.reverse_scratch, self.batch * size
        for layer in self.layers:
            program.linear(at(scratch), at(layer.reverse_states[0], step), layer.reverse[:size], base=at(layer.reverse_gates[0], 4 * step))
            program.linear(at(scratch), at(layer.reverse_states[1], step), layer.reverse[size:], base=at(scratch))
            for start, end in self.hidden_groups:
                program.lstm(at(layer.reverse_states[0, :, start:end], step), at(scratch[:, 4 * start : 4 * end]),
                             at(layer.reverse_cell[1, :, start:end], step), at(layer.reverse_cell[0, :, start:end], step))
        return program

    def _block_program(self, program: Program, index: int, described: Block, c: int, first: bool) -> None:
        block, layer, x = self.model.blocks[index], self.layers[index], self.features[index]
        size = self.model.config.hidden
        (start, end), (wide_start, wide_end) = self.hidden_groups[c], self.maps_groups[c]
        gates, reverse = slice(4 * start, 4 * end), slice(4 * (size + start), 4 * (size + end))
        step = self.batch * size
        seen = self._prefix(block.lstm.input_to_state, c, rows=self.order[gates])
        program.linear(at(self.gates[:, gates]), at(x[:, :seen]), layer.input_weight[:seen, gates],
                       base=at(layer.input_bias[gates].expand(self.batch, -1)), add=self._condition_at(index, gates.start, gates.stop))
        program.linear(at(layer.reverse_gates[0, :, gates], 4 * step), at(x[:, :seen]), layer.input_weight[:seen, reverse],
                       base=at(layer.input_bias[reverse].expand(self.batch, -1)), add=self._condition_at(index, reverse.start, reverse.stop))
        # Left to right at (i, j): the state above is hidden_above[j + 1], the one to the left hidden[j] (column -1 padded).
        program.linear(at(self.gates[:, gates]), at(layer.hidden_above[1], step), layer.forward[:size, gates], base=at(self.gates[:, gates]))
        program.linear(at(self.gates[:, gates]), at(layer.hidden[0], step), layer.forward[size:, gates], base=at(self.gates[:, gates]))
        program.lstm(at(layer.hidden[1, :, start:end], step), at(self.gates[:, gates]), at(layer.cell[0, :, start:end], step),
                     at(layer.cell[1, :, start:end], step))
        if first:  # row 0 receives zeros from the shift
            states = at(layer.hidden[1, :, :end], step)
        else:  # plus row i-1's right-to-left state at j
            program.add(at(layer.summed[:, start:end]), at(layer.hidden[1, :, start:end], step), at(layer.reverse_states[0, :, start:end], step))
            states = at(layer.summed)
        seen = self._prefix(block.output, c)
        program.linear(at(self.features[index + 1, :, wide_start:wide_end]), Operand(states.view[:, :seen], states.i_stride, states.j_stride),
                       layer.output.weight_t[:seen, wide_start:wide_end], base=at(layer.output.bias[wide_start:wide_end].expand(self.batch, -1)),
                       add=at(x[:, wide_start:wide_end]) if described.residual else None)

    def _block_caches(self):
        caches = named_caches(self.layers, ("hidden_above", "hidden", "cell", "reverse_gates"))
        caches.update({f"block{k}.reverse_above": layer.reverse_states for k, layer in enumerate(self.layers)})
        return caches


#: Each reference engine and its native counterpart.
NATIVE_ENGINES: dict[type[IncrementalEngine], type[IncrementalEngine]] = {
    PixelCNNEngine: NativePixelCNNEngine, RowLSTMEngine: NativeRowLSTMEngine, DiagonalBiLSTMEngine: NativeDiagonalBiLSTMEngine,
}
