"""Spatial LSTM layers: Row LSTM (section 3.1) and Diagonal BiLSTM (section 3.2, Figure 3).

Both layers take a ``(B, in, H, W)`` map and return the hidden states ``(B, h, H, W)``.
Their gates follow equation 3 of the paper: ``[o, f, i, g] = sigma(K_ss * h_prev + K_is * x)``
with the logistic sigmoid for o, f, i and tanh for g, ``c = f * c_prev + i * g``,
``h = o * tanh(c)``. The 4h gate maps are ordered ``[o | f | i | g]`` and each block of h
carries the colour grouping of the h hidden units it produces, so the masked input-to-state
convolution never lets a unit see a colour it must not see.

Both layers learn their initial state (section 5.2: "we learn the initial recurrent state").

Deviations, each forced by a choice the paper leaves open:
- Row LSTM: the initial state is one learned vector per unit, the same for every column.
- Diagonal BiLSTM: the state-to-state 2x1 kernel reads the previous column of the skewed
  map at rows i-1 and i; row 0's "row above" is the learned initial state, and so is a row's
  left neighbour before its first pixel (skewed positions left of a row's start keep the
  initial state instead of evolving on padding).
"""

from __future__ import annotations

import math

import torch
from torch import nn

from .masked_conv import MaskedConv2d, channel_groups, gate_groups
from .rules import GATES, SIGMOID_GATES
from .scan import combine_directions, diagonal_layer_scan, direction_gates, row_scan
from .skew import skew, unskew


def lstm_cell(gates: torch.Tensor, cell: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """One LSTM update from pre-activation gates ``[o|f|i|g]`` stacked on dim 1."""
    hidden = gates.shape[1] // len(GATES)
    # One sigmoid over the leading gates [o | f | i] (GATES' order), tanh over g.
    output_gate, forget_gate, input_gate = torch.sigmoid(gates[:, : SIGMOID_GATES * hidden]).chunk(SIGMOID_GATES, dim=1)
    content = torch.tanh(gates[:, SIGMOID_GATES * hidden :])
    cell = forget_gate * cell + input_gate * content
    return output_gate * torch.tanh(cell), cell


class RowLSTM(nn.Module):
    """Row LSTM layer: one step computes a whole row (section 3.1, Figure 4 centre).

    input-to-state: ``1 x k`` mask-B convolution over the whole map, computed up front.
    state-to-state: ``1 x k`` unmasked convolution over the previous row's hidden state
    (everything in the previous row precedes the current row, so no mask is needed).
    """

    def __init__(self, in_channels: int, hidden: int, image_channels: int, kernel: int = 3):
        super().__init__()
        if kernel % 2 == 0:
            raise ValueError(f"the Row LSTM kernel must be odd so that a row keeps its width; got {kernel}")
        self.hidden = hidden
        self.input_to_state = MaskedConv2d(
            in_channels, 4 * hidden, (1, kernel), "B",
            channel_groups(in_channels, image_channels), gate_groups(hidden, image_channels),
        )
        self.state_to_state = nn.Conv1d(hidden, 4 * hidden, kernel, padding=kernel // 2, bias=False)
        self.initial_hidden = nn.Parameter(torch.zeros(hidden))
        self.initial_cell = nn.Parameter(torch.zeros(hidden))

    def initial_state(self, batch: int, width: int) -> tuple[torch.Tensor, torch.Tensor]:
        shape = (batch, self.hidden, width)
        return (self.initial_hidden[None, :, None].expand(shape), self.initial_cell[None, :, None].expand(shape))

    def step(self, row_gates: torch.Tensor, hidden: torch.Tensor, cell: torch.Tensor):
        """Advance one row: ``row_gates`` (B, 4h, W) from the input, state (B, h, W) of the row above."""
        return lstm_cell(row_gates + self.state_to_state(hidden), cell)

    def forward(self, x: torch.Tensor, condition_gates: torch.Tensor | None = None) -> torch.Tensor:
        """``condition_gates`` (B, 4h, H, W), if given, biases the input-to-state map (section 3.6)."""
        # Channels last, so that the native scan's position-major gates are a view, not a copy.
        gates = self.input_to_state(x.contiguous(memory_format=torch.channels_last))  # (B, 4h, H, W)
        if condition_gates is not None:
            gates = gates + condition_gates
        kernel = self.state_to_state.kernel_size[0]
        # conv1d weight (4h, h, k) as one matrix over the k shifted copies of the state: (4h, k*h)
        weight = self.state_to_state.weight.permute(0, 2, 1).reshape(4 * self.hidden, kernel * self.hidden)
        return row_scan(gates, weight, self.initial_hidden, self.initial_cell, kernel)

    def forward_reference(self, x: torch.Tensor) -> torch.Tensor:
        """The same function step by step through autograd (slow; the tests' reference)."""
        batch, _, height, width = x.shape
        gates = self.input_to_state(x)  # (B, 4h, H, W)
        rows = gates.permute(2, 0, 1, 3).unbind(0)  # H x (B, 4h, W)
        hidden, cell = self.initial_state(batch, width)
        outputs = []
        for row_gates in rows:
            hidden, cell = self.step(row_gates, hidden, cell)
            outputs.append(hidden)
        return torch.stack(outputs, dim=2)  # (B, h, H, W)


class DiagonalBiLSTM(nn.Module):
    """Diagonal BiLSTM layer (section 3.2, Figure 3, Figure 4 right).

    Each direction: 1x1 mask-B input-to-state, skew, a column-by-column scan whose
    state-to-state kernel is 2x1 over the previous column (rows i-1 and i of the skewed
    map, i.e. the pixel above and the pixel to the left), unskew. The second direction runs
    right to left (the input is mirrored); its output is shifted down one row, so pixel (i, j)
    receives only states of rows above, and then added to the first direction's output.

    Both directions run in one scan: their state-to-state steps are one batched matmul.
    ``forward`` computes skew, scan and unskew without building the skewed map: column t of
    the skewed map is diagonal t of the image, a strided view (``layers/scan.py``).
    ``forward_reference`` builds it, step by step, and is what the tests compare against.
    """

    directions = 2

    def __init__(self, in_channels: int, hidden: int, image_channels: int):
        super().__init__()
        self.hidden = hidden
        groups = gate_groups(hidden, image_channels)
        self.input_to_state = MaskedConv2d(
            in_channels, self.directions * 4 * hidden, 1, "B",
            channel_groups(in_channels, image_channels), torch.cat([groups, groups]),
        )
        # Per direction, the 2x1 kernel as one matrix over [state above ; state to the left].
        bound = 1.0 / math.sqrt(2 * hidden)
        self.state_to_state = nn.Parameter(torch.empty(self.directions, 4 * hidden, 2 * hidden).uniform_(-bound, bound))
        self.initial_hidden = nn.Parameter(torch.zeros(self.directions, hidden))
        self.initial_cell = nn.Parameter(torch.zeros(self.directions, hidden))

    def input_gates(self, x: torch.Tensor, condition_gates: torch.Tensor | None = None) -> torch.Tensor:
        """Input-to-state gates (B, H, W, 8h): [left-to-right 4h | right-to-left 4h] at each position.

        ``condition_gates`` (B, 8h, H, W), if given, biases both directions (section 3.6).
        The convolution runs channels last, so that each diagonal step of the scan reads
        contiguous runs of 4h gates: the result is a view of its output.
        """
        gates = self.input_to_state(x.contiguous(memory_format=torch.channels_last))
        if condition_gates is not None:
            gates = gates + condition_gates
        return gates.permute(0, 2, 3, 1)  # (B, H, W, 8h)

    def direction_gates(self, x: torch.Tensor, condition_gates: torch.Tensor | None = None) -> torch.Tensor:
        """Input-to-state gates of both directions, the second mirrored: (2, B, H, W, 4h)."""
        return direction_gates(self.input_gates(x, condition_gates))

    def step(self, column_gates, hidden_above, hidden_left, cell_left):
        """One diagonal step for both directions; all tensors are (2, channels, N)."""
        recurrent = torch.bmm(self.state_to_state, torch.cat([hidden_above, hidden_left], dim=1))  # (2, 4h, N)
        return lstm_cell(column_gates + recurrent, cell_left)

    def forward(self, x: torch.Tensor, condition_gates: torch.Tensor | None = None) -> torch.Tensor:
        gates = self.input_gates(x, condition_gates)  # (B, H, W, 8h)
        return diagonal_layer_scan(gates, self.state_to_state, self.initial_hidden, self.initial_cell)  # (B, h, H, W)

    def forward_reference(self, x: torch.Tensor) -> torch.Tensor:
        """The same function step by step through autograd (slow; the tests' reference)."""
        batch, _, height, width = x.shape
        hidden_size, steps = self.hidden, width + height - 1
        gates = skew(self.direction_gates(x).permute(0, 1, 4, 2, 3))  # (2, B, 4h, H, W + H - 1)
        columns = gates.permute(4, 0, 2, 1, 3).reshape(steps, 2, 4 * hidden_size, batch * height).unbind(0)
        state_shape = (2, hidden_size, batch, height)
        initial_hidden = self.initial_hidden[:, :, None, None].expand(state_shape)
        initial_cell = self.initial_cell[:, :, None, None].expand(state_shape)
        row_index = torch.arange(height, device=x.device)
        hidden, cell = initial_hidden, initial_cell
        outputs = []
        for step, column_gates in enumerate(columns):
            # The state above row 0 is the initial state; rows i-1 and i of the previous column.
            above = torch.cat([initial_hidden[..., :1], hidden[..., :-1]], dim=-1)  # (2, h, B, H)
            new_hidden, new_cell = self.step(
                column_gates,
                above.reshape(2, hidden_size, -1),
                hidden.reshape(2, hidden_size, -1),
                cell.reshape(2, hidden_size, -1),
            )
            new_hidden = new_hidden.view(state_shape)
            new_cell = new_cell.view(state_shape)
            if step < height - 1:  # rows below the diagonal have not started: keep their initial state
                started = row_index <= step
                new_hidden = torch.where(started, new_hidden, initial_hidden)
                new_cell = torch.where(started, new_cell, initial_cell)
            hidden, cell = new_hidden, new_cell
            outputs.append(hidden)
        skewed = torch.stack(outputs, dim=-1)  # (2, h, B, H, W + H - 1)
        return combine_directions(unskew(skewed, width).permute(0, 2, 1, 3, 4))  # (2, B, h, H, W)


class LSTMResidualBlock(nn.Module):
    """The branch of a residual block around an LSTM layer (Figure 5 middle and right).

    2h maps in, h per gate inside the LSTM, a 1x1 mask-B convolution back to 2h. The network's
    walk (:mod:`pixelrnn.models.description`) adds the input where the block is residual.
    """

    def __init__(self, lstm: nn.Module, hidden: int, image_channels: int):
        super().__init__()
        self.lstm = lstm
        self.output = MaskedConv2d(
            hidden, 2 * hidden, 1, "B", channel_groups(hidden, image_channels), channel_groups(2 * hidden, image_channels)
        )

    def forward(self, x: torch.Tensor, condition_gates: torch.Tensor | None = None) -> torch.Tensor:
        return self.output(self.lstm(x, condition_gates))
