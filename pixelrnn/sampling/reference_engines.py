"""The three incremental engines, one per network of section 3, and the registry that pairs them.

Each engine caches what its network's blocks need to compute one more position (the shared
part, the input convolution, skips and output stack, is :class:`IncrementalEngine`):

- PixelCNN (section 3.5): each block's k x k mask-B convolution reads its cached input map.
- Row LSTM (section 3.1): per layer, the state-to-state gates of the row, computed once the
  row above is final, and the cells of the row above.
- Diagonal BiLSTM (section 3.2): the left-to-right direction per position; the right-to-left
  direction once per finished row, scanned from the row's right end.

Per-layer state is a dataclass per network; :meth:`IncrementalEngine.cache_tensors` names its
tensors ``block<k>.<field>``.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from ..layers.lstm import lstm_cell
from ..models import DiagonalBiLSTMNetwork, PixelCNN, PixelModel, RowLSTMNetwork
from .reference_engine import IncrementalEngine, MaskedConvAt, Pointwise


def named_caches(layers, names: tuple[str, ...]) -> dict[str, torch.Tensor]:
    return {f"block{k}.{name}": getattr(layer, name) for k, layer in enumerate(layers) for name in names}


class PixelCNNEngine(IncrementalEngine):
    """PixelCNN (section 3.5): each block caches the input map of its k x k mask-B convolution."""

    def _setup_blocks(self) -> None:
        self.reduce, self.conv, self.expand = [], [], []
        for block in self.model.blocks:
            self.reduce.append(Pointwise(block.reduce))
            self.conv.append(MaskedConvAt(block.conv, self.batch, self.height, self.width, self.like))
            self.expand.append(Pointwise(block.expand))

    def _start_blocks_row(self, i: int) -> None:
        for conv in self.conv:
            conv.start_row(i)

    def _block(self, index, x, i, j):
        conv, reduce = self.conv[index], self.reduce[index]
        # relu(reduce(relu(x))) computed straight into the conv's input cache (saves two copies).
        slot = conv.slot(j)
        torch.addmm(reduce.bias, torch.relu(x), reduce.weight_t, out=slot)
        slot.relu_()
        hidden = self._conditioned(index, i, j, conv.at(j))
        return self.expand[index](torch.relu(hidden))

    def _block_caches(self):
        caches = {}
        for k, conv in enumerate(self.conv):
            caches[f"block{k}.conv_input"] = conv.cache
            caches[f"block{k}.conv_base"] = conv.base
        return caches


@dataclass
class _RowLSTMLayer:
    """One Row LSTM layer's state while sampling; state maps are (B, h, W)."""

    module: nn.Module
    input_to_state: MaskedConvAt  # caches one row of the layer's input
    output: Pointwise
    row_input: torch.Tensor  # (B, 1, W + 2*(k//2), 2h), the input-to-state cache
    hidden: torch.Tensor  # (B, h, W): the finished row until the new row's positions overwrite it
    cell_above: torch.Tensor  # (B, h, W)
    cell: torch.Tensor  # (B, h, W)
    state_gates: torch.Tensor | None = None  # (W, B, 4h): state-to-state gates of the row, plus the bias


class RowLSTMEngine(IncrementalEngine):
    """Row LSTM (section 3.1): per layer, the state-to-state gates of the row and the cells above.

    State maps are (B, h, W), the layout of the layer's own state-to-state ``Conv1d``. The
    hidden states of the row above are read once, by that convolution when the row starts,
    so one hidden buffer serves both rows: it holds the finished row until the new row's
    positions overwrite it. The cells above are read at every position (and again for every
    colour of a pixel), so the cells have two buffers, swapped per row.
    """

    def _setup_blocks(self) -> None:
        self.layers: list[_RowLSTMLayer] = []
        for block in self.model.blocks:
            lstm = block.lstm
            input_to_state = MaskedConvAt(lstm.input_to_state, self.batch, 1, self.width, self.like)
            input_to_state.start_row(0)
            hidden, cell = lstm.initial_state(self.batch, self.width)  # row -1: the learned initial state
            self.layers.append(_RowLSTMLayer(
                module=lstm, input_to_state=input_to_state, output=Pointwise(block.output), row_input=input_to_state.cache,
                hidden=hidden.detach().clone(), cell_above=cell.detach().clone(), cell=torch.zeros_like(cell)))

    def _start_blocks_row(self, i: int) -> None:
        for layer in self.layers:
            if i > 0:  # the finished row's cells become the cells above
                layer.cell_above, layer.cell = layer.cell, layer.cell_above
            # State-to-state 1 x k convolution over the whole row above, plus the input-to-state bias.
            gates = layer.module.state_to_state(layer.hidden)  # (B, 4h, W)
            layer.state_gates = (gates + layer.input_to_state.bias[:, None]).permute(2, 0, 1).contiguous()  # (W, B, 4h)

    def _block(self, index, x, i, j):
        layer = self.layers[index]
        layer.input_to_state.write(j, x)
        gates = self._conditioned(index, i, j, layer.input_to_state.at(j, base=layer.state_gates[j]))  # (B, 4h)
        hidden, cell = lstm_cell(gates, layer.cell_above[:, :, j])
        layer.hidden[:, :, j] = hidden
        layer.cell[:, :, j] = cell
        return layer.output(hidden)

    def _block_caches(self):
        return named_caches(self.layers, ("row_input", "hidden", "cell_above", "cell", "state_gates"))


@dataclass
class _DiagonalLayer:
    """One Diagonal BiLSTM layer's state while sampling; row caches are column-major (W, B, ch)."""

    input_to_state: Pointwise  # 2h -> [left-to-right 4h | right-to-left 4h]
    forward_t: torch.Tensor  # (2h, 4h): state-to-state over [state above ; state to the left]
    reverse_t: torch.Tensor  # (2h, 4h)
    output: Pointwise
    hidden_size: int
    initial_hidden: torch.Tensor  # (2, B, h): per direction
    initial_cell: torch.Tensor  # (2, B, h)
    hidden_above: torch.Tensor  # (W, B, h): left-to-right states of row i-1 (row -1: the initial state)
    hidden: torch.Tensor  # (W, B, h): left-to-right states of row i
    cell: torch.Tensor  # (W, B, h)
    reverse_gates: torch.Tensor  # (W, B, 4h): right-to-left input gates of the current row
    reverse_above: torch.Tensor  # (W, B, h): right-to-left states of the row above
    reverse_shifted: torch.Tensor | None = None  # what the layer adds to row i: row i-1's right-to-left states


class DiagonalBiLSTMEngine(IncrementalEngine):
    """Diagonal BiLSTM (section 3.2): left-to-right per position, right-to-left per finished row.

    Row caches are column-major, ``(W, B, channels)``, so one column is a contiguous (B, ch).
    """

    def _setup_blocks(self) -> None:
        self.layers: list[_DiagonalLayer] = []
        batch, width = self.batch, self.width
        for block in self.model.blocks:
            lstm = block.lstm
            size = lstm.hidden
            state_to_state = lstm.state_to_state.detach()  # (2, 4h, 2h) over [state above ; state to the left]
            initial_hidden = lstm.initial_hidden.detach()[:, None, :].expand(2, batch, size)  # (2, B, h)
            hidden_above = initial_hidden[0].expand(width, batch, size).clone()
            self.layers.append(_DiagonalLayer(
                input_to_state=Pointwise(lstm.input_to_state),
                forward_t=state_to_state[0].t().contiguous(), reverse_t=state_to_state[1].t().contiguous(),
                output=Pointwise(block.output), hidden_size=size, initial_hidden=initial_hidden,
                initial_cell=lstm.initial_cell.detach()[:, None, :].expand(2, batch, size),
                hidden_above=hidden_above, hidden=torch.zeros_like(hidden_above), cell=torch.zeros_like(hidden_above),
                reverse_gates=self.like.new_zeros(width, batch, 4 * size),
                reverse_above=initial_hidden[1].expand(width, batch, size).clone()))

    def _start_blocks_row(self, i: int) -> None:
        if i == 0:
            return
        for layer in self.layers:
            self._right_to_left(layer)
            layer.hidden_above, layer.hidden = layer.hidden, layer.hidden_above

    def _right_to_left(self, layer: _DiagonalLayer) -> None:
        """Scan the finished row from its right end: the mirrored map's left-to-right recurrence."""
        hidden, cell = layer.initial_hidden[1], layer.initial_cell[1]  # right of the last column
        above, gates = layer.reverse_above, layer.reverse_gates
        states = torch.empty_like(above)
        for j in reversed(range(self.width)):
            recurrent = torch.addmm(gates[j], torch.cat([above[j], hidden], dim=1), layer.reverse_t)  # (B, 4h)
            hidden, cell = lstm_cell(recurrent, cell)
            states[j] = hidden
        # Row i-1's states are both the row above of row i's scan and the layer's shifted output at row i.
        layer.reverse_above = layer.reverse_shifted = states

    def _block(self, index, x, i, j):
        layer = self.layers[index]
        four_h = 4 * layer.hidden_size
        gates = self._conditioned(index, i, j, layer.input_to_state(x))  # (B, 8h): both directions, at the unmirrored column j
        layer.reverse_gates[j] = gates[:, four_h:]
        if j > 0:
            left, cell_left = layer.hidden[j - 1], layer.cell[j - 1]
        else:  # a row's left neighbour before its first pixel is the initial state
            left, cell_left = layer.initial_hidden[0], layer.initial_cell[0]
        pre_activation = torch.addmm(gates[:, :four_h], torch.cat([layer.hidden_above[j], left], dim=1), layer.forward_t)
        hidden, cell = lstm_cell(pre_activation, cell_left)
        layer.hidden[j] = hidden
        layer.cell[j] = cell
        if layer.reverse_shifted is not None:  # row 0 receives zeros from the shift
            hidden = hidden + layer.reverse_shifted[j]
        return layer.output(hidden)

    def _block_caches(self):
        return named_caches(self.layers, ("hidden_above", "hidden", "cell", "reverse_gates", "reverse_above"))


#: Each network class and its engine.
ENGINES: dict[type[PixelModel], type[IncrementalEngine]] = {
    PixelCNN: PixelCNNEngine, RowLSTMNetwork: RowLSTMEngine, DiagonalBiLSTMNetwork: DiagonalBiLSTMEngine,
}


def engine_class(model) -> type[IncrementalEngine] | None:
    """The incremental engine of a single-scale network, None for anything else."""
    return next((engine for network, engine in ENGINES.items() if isinstance(model, network)), None)
