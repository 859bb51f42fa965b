"""The integer coding model's batched pass: every sub-pixel's integer logits from whole images at once.

The encoder knows every pixel, so it computes all conditionals of a chunk in one pass, as the
float model's ``forward`` does, instead of one sub-pixel at a time; the decoder runs the incremental
engines of :mod:`.integer_numpy_engines`. Both give the same integers, bit for bit: every sum is exact
(:mod:`.fixed_point`), so its value does not depend on how the pass groups it (tested).

The pass is torch in float64 on any device. A convolution is an ``unfold`` (a copy) and one
matrix product, never a convolution routine: those may use Winograd or FFT transforms, whose
intermediate values are not integers. Only the rows of a masked kernel down to its centre are
unfolded (the rows below are masked out). Rounding is ``torch.round`` (ties to even), as ``rint``.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from ..layers.rules import combine_directions, diagonal_rows, diagonal_steps, kernel_centre, split_gates
from ..models.description import Block, MaskedSum, walk
from .fixed_point import ExactSum
from .integer_model import IntegerModel, LSTMLayer

#: Elements of the largest intermediate of one sub-batch (float64: 256 MiB).
PASS_BUDGET = 1 << 25


class _Pass:
    """The model's arrays as float64 tensors on one device, and the layers of the pass."""

    def __init__(self, model: IntegerModel, device: torch.device):
        self.model, self.device = model, device
        fixed = model.fixed
        self.relu_max, self.half = float(fixed.relu_max), fixed.table_half
        self.sigmoid, self.tanh_gate, self.tanh_cell, self.inputs = (
            self.tensor(a) for a in (model.tables.sigmoid, model.tables.tanh_gate, model.tables.tanh_cell, model.inputs))

    def tensor(self, array: np.ndarray) -> torch.Tensor:
        return torch.as_tensor(np.ascontiguousarray(array), dtype=torch.float64, device=self.device)

    def relu(self, x: torch.Tensor) -> torch.Tensor:
        return x.clamp(0.0, self.relu_max)

    def conv(self, x: torch.Tensor, exact: ExactSum, source: int = 0, bias: bool = True) -> torch.Tensor:
        """The masked convolution's sum (not rounded) over x (B, in, H, W): (B, out, H, W)."""
        batch, _, height, width = x.shape
        weight = self.tensor(exact.weights[source])
        out, _, kh, kw = weight.shape
        top, side = kernel_centre(kh, kw)
        if kh == kw == 1:
            columns = x.reshape(batch, -1, height * width)
        else:  # rows i - top .. i of the kernel: zero padding above and on both sides, as the float convolution
            columns = F.unfold(F.pad(x, (side, side, top, 0)), (top + 1, kw))  # (B, in*(top+1)*kw, H*W)
        total = torch.matmul(weight[:, :, : top + 1].reshape(out, -1), columns)  # (B, out, H*W)
        if bias:
            total = total + self.tensor(exact.bias)[:, None]
        return total.view(batch, out, height, width)

    def pointwise(self, x: torch.Tensor, exact: ExactSum) -> torch.Tensor:
        """A rounded 1x1 sum: x (B, in, H, W) -> (B, out, H, W)."""
        return torch.round(self.conv(x, _as_kernel(exact)))

    # ------------------------------------------------------------- LSTM
    def cell(self, gates: torch.Tensor, cell: torch.Tensor, size: int) -> tuple[torch.Tensor, torch.Tensor]:
        """The integer LSTM update: ``gates`` (B, 4h, ...) are table indices, ``cell`` on the 2^-G grid."""
        output, forget, input_gate, content = split_gates(gates.clamp(0, 2 * self.half).long(), size)
        output, forget, input_gate = self.sigmoid[output], self.sigmoid[forget], self.sigmoid[input_gate]
        cell = torch.round(forget * cell + input_gate * self.tanh_gate[content])
        hidden = torch.round(output * self.tanh_cell[(cell + self.half).clamp(0, 2 * self.half).long()])
        return hidden, cell

    def row_lstm(self, layer: LSTMLayer, x: torch.Tensor) -> torch.Tensor:
        """Row by row (section 3.1): state-to-state 1 x k over the row above, as ``nn.Conv1d`` (zero padded)."""
        batch, _, height, width = x.shape
        size = layer.hidden
        gates_in = self.conv(x, layer.gates)  # (B, 4h, H, W)
        recurrent = self.tensor(layer.gates.weights[1])  # (4h, h, k)
        side = recurrent.shape[-1] // 2
        hidden = self.tensor(layer.initial_hidden)[None, :, None].expand(batch, size, width)
        cell = self.tensor(layer.initial_cell)[None, :, None].expand(batch, size, width)
        states = []
        for i in range(height):
            windows = F.unfold(F.pad(hidden, (side, side))[:, :, None], (1, 2 * side + 1))  # (B, h*k, W)
            gates = torch.round(gates_in[:, :, i] + torch.matmul(recurrent.reshape(4 * size, -1), windows))
            hidden, cell = self.cell(gates, cell, size)
            states.append(hidden)
        return torch.stack(states, dim=2)  # (B, h, H, W)

    def diagonal_scan(self, gates_in: torch.Tensor, recurrent: torch.Tensor, initial_hidden, initial_cell) -> torch.Tensor:
        """One direction of the Diagonal BiLSTM (section 3.2), diagonal by diagonal in image coordinates.

        States live in (B, h, H+1, W+1) buffers whose row 0 and column 0 hold the initial state:
        position (i, j) reads (i-1, j) above and (i, j-1) on its left, both on the previous diagonal.
        """
        batch, four_h, height, width = gates_in.shape
        size = four_h // 4
        hidden = gates_in.new_zeros(batch, size, height + 1, width + 1)
        cell = torch.zeros_like(hidden)
        hidden[:, :, 0, :] = initial_hidden[:, None]
        hidden[:, :, :, 0] = initial_hidden[:, None]
        cell[:, :, :, 0] = initial_cell[:, None]
        for step in diagonal_steps(height, width):
            first, count = diagonal_rows(step, height, width)
            rows = torch.arange(first, first + count, device=self.device)
            cols = step - rows
            beside = torch.cat([hidden[:, :, rows, cols + 1], hidden[:, :, rows + 1, cols]], dim=1)  # (B, 2h, n): [above ; left]
            gates = torch.round(gates_in[:, :, rows, cols] + torch.matmul(recurrent, beside))
            new_hidden, new_cell = self.cell(gates, cell[:, :, rows + 1, cols], size)
            hidden[:, :, rows + 1, cols + 1] = new_hidden
            cell[:, :, rows + 1, cols + 1] = new_cell
        return hidden[:, :, 1:, 1:]

    def diagonal_bilstm(self, layer: LSTMLayer, x: torch.Tensor) -> torch.Tensor:
        size = layer.hidden
        gates_in = self.conv(x, layer.gates)  # (B, 8h, H, W): both directions
        recurrent = self.tensor(layer.gates.weights[1]).view(2, 4 * size, 2 * size)
        initial_hidden, initial_cell = self.tensor(layer.initial_hidden), self.tensor(layer.initial_cell)
        forward = self.diagonal_scan(gates_in[:, : 4 * size], recurrent[0], initial_hidden[0], initial_cell[0])
        # Right to left: the same recurrence on the mirrored map.
        reverse = self.diagonal_scan(gates_in[:, 4 * size :].flip(-1), recurrent[1], initial_hidden[1], initial_cell[1]).flip(-1)
        return combine_directions(forward, reverse)

    # ------------------------------------------------------------- the network
    def logits(self, images: torch.Tensor) -> torch.Tensor:
        model = self.model
        batch, _, height, width = images.shape
        return walk(model.description, self, images).view(batch, model.config.channels, model.config.levels, height, width)

    # The kinds of operation of the description's walk, on whole images.
    def input(self, images: torch.Tensor) -> torch.Tensor:
        return torch.round(self.conv(self.inputs[images], self.model.input_conv))

    def block(self, index: int, block: Block, stream: torch.Tensor) -> torch.Tensor:
        layer = self.model.layers[index]
        if block.kind == "pixelcnn":
            reduced = self.relu(self.pointwise(self.relu(stream), layer.reduce))
            return self.pointwise(self.relu(torch.round(self.conv(reduced, layer.conv))), layer.expand)
        states = self.row_lstm(layer, stream) if block.kind == "row_lstm" else self.diagonal_bilstm(layer, stream)
        return self.pointwise(states, layer.output)

    def stream(self, index: int, branch: torch.Tensor, previous: torch.Tensor | None) -> torch.Tensor:
        return branch if previous is None else previous + branch

    def skip_sum(self, streams: list[torch.Tensor]) -> torch.Tensor:
        skips = self.model.skips
        return torch.round(sum(self.conv(stream, _as_kernel(skips, k), bias=k == 0) for k, stream in enumerate(streams)))

    def output(self, index: int, layer: MaskedSum, features: torch.Tensor) -> torch.Tensor:
        return self.pointwise(self.relu(features), self.model.output[index])


def _as_kernel(exact: ExactSum, source: int = 0) -> ExactSum:
    """A 1x1 sum viewed as a (out, in, 1, 1) kernel of its ``source``."""
    weight = exact.weights[source]
    return ExactSum(exact.name, [weight.reshape(*weight.shape[:2], 1, 1)], exact.bias, exact.exponent, exact.bound, exact.output_bound)


def _per_image(model: IntegerModel, height: int, width: int) -> int:
    """Elements of the largest intermediate of one image's pass (an unfold or a layer's output)."""
    largest = max(max(w.size // w.shape[0] for w in exact.weights) + len(exact.bias) for exact in model.sums)
    return largest * height * width


@torch.no_grad()
def integer_logits(model: IntegerModel, images, device: str | torch.device = "cpu") -> torch.Tensor:
    """Integer logits (N, C, K, H, W), float64 on the 2^-G grid, of integer images (N, C, H, W).

    Exactly the logits of the incremental engines (:mod:`.integer_numpy_engines`), for any device and
    thread count. Images are passed in sub-batches of about ``PASS_BUDGET`` elements.
    """
    images = torch.as_tensor(np.asarray(images) if not isinstance(images, torch.Tensor) else images).long()
    count, _, height, width = images.shape
    step = max(1, PASS_BUDGET // _per_image(model, height, width))
    runner = _Pass(model, torch.device(device))
    parts = [runner.logits(images[start : start + step].to(runner.device)).cpu() for start in range(0, count, step)]
    return torch.cat(parts) if parts else torch.zeros(0, model.config.channels, model.config.levels, height, width, dtype=torch.float64)
