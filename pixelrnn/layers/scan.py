"""Fused LSTM scans with hand-written backward passes for the Row LSTM and the Diagonal BiLSTM.

The recurrences of the Row LSTM and the Diagonal BiLSTM are many small steps; recorded by
autograd, each step costs a dozen graph nodes, and slicing a precomputed tensor step by step
makes autograd allocate and fill full-size gradients. This scan runs the loop without autograd
and back-propagates through time by hand:

    forward, per step t:  z_t = R(h_{t-1})                  (the layer's recurrent input)
                          a_t = X_t + W z_t                  (one batched matmul, all directions)
                          o, f, i = sigmoid(a_t[:3h]),  g = tanh(a_t[3h:])
                          c_t = f c_{t-1} + i g,  h_t = o tanh(c_t)

``R`` is linear (shifts of the state, zero padded), so the backward pass needs its adjoint
``R^T`` only (:class:`LSTMScan`, used by the Row LSTM; layout X (T, D, 4h, N), W (D, 4h, Z),
h0 / c0 (D, h), D directions, N = batch x positions). The Diagonal BiLSTM has its own scan,
:class:`DiagonalScan`, which works in image coordinates: each diagonal is a strided view.
Both compute the weight gradient as one matmul over all steps at the end. Where the native
kernels run (:mod:`pixelrnn.native`), :mod:`pixelrnn.layers.native_scan` runs the same scans
in one call each; :func:`diagonal_layer_scan` and :func:`row_scan` choose, and these loops are
the reference and the fallback.
``tests/test_layers.py`` checks both against autograd through the step-by-step reference and
with ``torch.autograd.gradcheck`` in float64.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch.autograd.function import once_differentiable

from . import rules
from .rules import SIGMOID_GATES, diagonal_rows, diagonal_steps, split_gates
from .native_scan import NativeDiagonalLayer, NativeDiagonalScan, NativeRowScan, native_scans_run


# Devices where tanh goes through sigmoid: torch's CPU tanh is several times slower than its
# sigmoid (benchmarks/scan_speed.py). On a GPU each extra operation is an extra kernel launch.
SIGMOID_TANH_DEVICES = {"cpu"}


def _tanh(x: torch.Tensor, out: torch.Tensor | None = None) -> torch.Tensor:
    """tanh(x), on the devices of ``SIGMOID_TANH_DEVICES`` as 2 sigmoid(2x) - 1."""
    if x.device.type not in SIGMOID_TANH_DEVICES:
        return torch.tanh(x, out=out) if out is not None else torch.tanh(x)
    out = torch.mul(x, 2, out=out) if out is not None else x * 2
    return out.sigmoid_().mul_(2).sub_(1)


def _sigmoid_and_tanh(gates: torch.Tensor, size: int, out: torch.Tensor, dim: int = -1) -> torch.Tensor:
    """``out`` = [sigmoid(o, f, i) | tanh(g)] of pre-activations ``[o|f|i|g]`` along ``dim``; ``gates`` is scratch.

    On the devices of ``SIGMOID_TANH_DEVICES`` one sigmoid covers all four gates: tanh(g) = 2 sigmoid(2g) - 1.
    """
    if gates.device.type not in SIGMOID_TANH_DEVICES:
        torch.sigmoid(gates.narrow(dim, 0, SIGMOID_GATES * size), out=out.narrow(dim, 0, SIGMOID_GATES * size))
        torch.tanh(gates.narrow(dim, SIGMOID_GATES * size, size), out=out.narrow(dim, SIGMOID_GATES * size, size))
        return out
    gates.narrow(dim, SIGMOID_GATES * size, size).mul_(2)
    torch.sigmoid(gates, out=out)
    out.narrow(dim, SIGMOID_GATES * size, size).mul_(2).sub_(1)
    return out


def _cell_forward(gates, cell_prev, size: int, dim: int, activations, cell, tanh_cell, hidden) -> None:
    """One LSTM update into the given outputs: gates ``[o|f|i|g]`` along ``dim`` (scratch), ``c = f c_prev + i g``, ``h = o tanh(c)``."""
    _sigmoid_and_tanh(gates, size, out=activations, dim=dim)
    output_gate, forget_gate, input_gate, content = split_gates(activations, size, dim)
    torch.mul(forget_gate, cell_prev, out=cell).addcmul_(input_gate, content)
    _tanh(cell, out=tanh_cell)
    torch.mul(output_gate, tanh_cell, out=hidden)


def _cell_backward(grad_h, grad_c_carried, activations, tanh_cell, cell_prev, size: int, dim: int, grad_gates, one) -> torch.Tensor:
    """Back through :func:`_cell_forward`: writes dL/d(pre-activation gates) into ``grad_gates``, returns dL/dc.

    ``grad_c_carried`` is what the next step's cell sent back; ``one`` is a scalar 1 (``1 - x^2`` as one addcmul).
    """
    output_gate, _, input_gate, content = split_gates(activations, size, dim)
    grad_c = torch.addcmul(grad_c_carried, grad_h * output_gate, torch.addcmul(one, tanh_cell, tanh_cell, value=-1))
    grad_o, grad_f, grad_i, grad_g = split_gates(grad_gates, size, dim)
    torch.mul(grad_h, tanh_cell, out=grad_o)
    torch.mul(grad_c, cell_prev, out=grad_f)
    torch.mul(grad_c, content, out=grad_i)
    torch.mul(grad_c, input_gate, out=grad_g)
    sigmoids = activations.narrow(dim, 0, SIGMOID_GATES * size)
    grad_gates.narrow(dim, 0, SIGMOID_GATES * size).mul_(torch.addcmul(sigmoids, sigmoids, sigmoids, value=-1))
    grad_g.mul_(torch.addcmul(one, content, content, value=-1))
    return grad_c


def _in_float32(scan, gates_in, weight, initial_hidden, initial_cell, *options) -> torch.Tensor:
    """Run ``scan.apply`` with autocast off and float32 (or wider) inputs: its sums through time
    are where half precision would lose the most."""
    dtype = torch.promote_types(gates_in.dtype, torch.float32)
    with torch.autocast(gates_in.device.type, enabled=False):
        return scan.apply(gates_in.to(dtype).contiguous(), weight.to(dtype), initial_hidden.to(dtype), initial_cell.to(dtype), *options)


class RowRecurrence:
    """Row LSTM: ``z`` is the previous row seen through a 1 x k window (zero padded)."""

    def __init__(self, batch: int, width: int, kernel: int):
        self.batch, self.width, self.kernel = batch, width, kernel

    def gather(self, hidden: torch.Tensor) -> torch.Tensor:
        """(..., h, B*W) -> (..., k*h, B*W), tap-major: block s holds h shifted by s - k//2."""
        *lead, size, _ = hidden.shape
        pad = self.kernel // 2
        grid = F.pad(hidden.reshape(*lead, size, self.batch, self.width), (pad, pad))  # (..., h, B, W + 2r)
        taps = [grid[..., s : s + self.width] for s in range(self.kernel)]
        return torch.cat(taps, dim=-3).reshape(*lead, self.kernel * size, -1)

    def scatter(self, grad: torch.Tensor) -> torch.Tensor:
        """Adjoint of ``gather``: (D, k*h, N) -> gradient of the state (D, h, N)."""
        directions, taps_size, _ = grad.shape
        size, pad = taps_size // self.kernel, self.kernel // 2
        taps = grad.reshape(directions, self.kernel, size, self.batch, self.width)
        grid = grad.new_zeros(directions, size, self.batch, self.width + 2 * pad)
        for s in range(self.kernel):
            grid[..., s : s + self.width] += taps[:, s]
        return grid[..., pad : pad + self.width].reshape(directions, size, -1)



class LSTMScan(torch.autograd.Function):
    @staticmethod
    def forward(ctx, gates_in, weight, initial_hidden, initial_cell, recurrence):
        steps, directions, four_h, positions = gates_in.shape
        size = four_h // 4
        init_h = initial_hidden[:, :, None].expand(directions, size, positions)
        init_c = initial_cell[:, :, None].expand(directions, size, positions)
        hidden, cell = init_h, init_c
        activations = gates_in.new_empty(steps, directions, four_h, positions)
        cells = gates_in.new_empty(steps, directions, size, positions)
        tanh_cells = gates_in.new_empty(steps, directions, size, positions)
        hiddens = gates_in.new_empty(steps, directions, size, positions)
        for t in range(steps):
            gates = torch.baddbmm(gates_in[t], weight, recurrence.gather(hidden))
            _cell_forward(gates, cell, size, 1, activations[t], cells[t], tanh_cells[t], hiddens[t])
            hidden, cell = hiddens[t], cells[t]
        ctx.recurrence = recurrence
        ctx.save_for_backward(weight, initial_hidden, initial_cell, activations, cells, tanh_cells, hiddens)
        return hiddens

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_hiddens):
        weight, initial_hidden, initial_cell, activations, cells, tanh_cells, hiddens = ctx.saved_tensors
        recurrence = ctx.recurrence
        steps, directions, four_h, positions = activations.shape
        size = four_h // 4
        init_h = initial_hidden[:, :, None].expand(directions, size, positions)
        init_c = initial_cell[:, :, None].expand(directions, size, positions)
        grad_gates = activations.new_empty(steps, directions, four_h, positions)
        weight_t = weight.transpose(1, 2)
        one = activations.new_ones(())
        carry_h = torch.zeros_like(init_h)
        carry_c = torch.zeros_like(init_c)
        for t in range(steps - 1, -1, -1):
            cell_prev = cells[t - 1] if t > 0 else init_c
            grad_c = _cell_backward(grad_hiddens[t] + carry_h, carry_c, activations[t], tanh_cells[t], cell_prev, size, 1, grad_gates[t], one)
            carry_c = grad_c * activations[t].narrow(1, size, size)  # through the forget gate
            carry_h = recurrence.scatter(torch.bmm(weight_t, grad_gates[t]))
        grad_init_h = carry_h.sum(-1)  # step 0 read the initial state everywhere
        grad_init_c = carry_c.sum(-1)
        previous = torch.cat([init_h.unsqueeze(0), hiddens[:-1]])  # (T, D, h, N): the state each step read
        recurrent_inputs = recurrence.gather(previous)  # (T, D, Z, N)
        grad_weight = torch.einsum("tdan,tdzn->daz", grad_gates, recurrent_inputs)
        return grad_gates, grad_weight, grad_init_h, grad_init_c, None


def lstm_scan(gates_in, weight, initial_hidden, initial_cell, recurrence) -> torch.Tensor:
    """Hidden states (T, D, h, N) of the scan described in the module docstring; float32 under autocast."""
    return _in_float32(LSTMScan, gates_in, weight, initial_hidden, initial_cell, recurrence)


def _diagonal(buffer: torch.Tensor, step: int, first_row: int, rows: int, row_offset: int, col_offset: int) -> torch.Tensor:
    """View (D, B, rows, k) of ``buffer`` (D, B, R, C, k) at the diagonal ``row - row_offset + col - col_offset = step``.

    Row ``first_row + r`` of the view is the buffer's position ``(first_row + r + row_offset,
    step - first_row - r + col_offset)``: consecutive rows are one row down and one column left.
    """
    stride_d, stride_b, stride_row, stride_col, _ = buffer.stride()
    directions, batch, _, _, size = buffer.shape
    offset = buffer.storage_offset() + (first_row + row_offset) * stride_row + (step - first_row + col_offset) * stride_col
    return buffer.as_strided((directions, batch, rows, size), (stride_d, stride_b, stride_row - stride_col, 1), offset)


def diagonal_padded_states(gates_in: torch.Tensor, initial_hidden: torch.Tensor, initial_cell: torch.Tensor):
    """Hidden and cell buffers (D, B, H+1, W+1, h) of the Diagonal BiLSTM scan, row -1 and column -1 set to the initial state."""
    directions, batch, height, width, four_h = gates_in.shape
    padded = (directions, batch, height + 1, width + 1, four_h // 4)
    hidden, cell = gates_in.new_empty(padded), gates_in.new_empty(padded)
    hidden[:, :, 0] = initial_hidden[:, None, None, :]
    hidden[:, :, :, 0] = initial_hidden[:, None, None, :]
    cell[:, :, :, 0] = initial_cell[:, None, None, :]  # a cell reads only its left neighbour
    return hidden, cell


def diagonal_initial_grads(grad_hidden: torch.Tensor, grad_cell: torch.Tensor):
    """(grad initial hidden, grad initial cell) of the Diagonal BiLSTM scan from its padded gradient buffers.

    What reached the padding reached the initial state: row -1 (read as "above" by row 0) and
    column -1 (read as "left" by column 0); the corner is never read.
    """
    return grad_hidden[:, :, 0, 1:].sum((1, 2)) + grad_hidden[:, :, 1:, 0].sum((1, 2)), grad_cell[:, :, 1:, 0].sum((1, 2))


class DiagonalScan(torch.autograd.Function):
    """The Diagonal BiLSTM scan, computed in image coordinates (no skewed copy of anything).

    Step t computes the diagonal ``i + j = t`` of the image, which is column t of the skewed
    map of Figure 3; on a row-major buffer a diagonal is a strided view (one row down, one
    column left), so each step reads its gates and writes its states in place. The states
    live in buffers padded with a row -1 and a column -1 that hold the learned initial
    state: the "state above" of row 0 and the "state to the left" of column 0. Every image
    position is visited once, so the buffers are the image's size and nothing needs resetting.

        buffer (H+1) x (W+1), padded:    step t reads   above (i-1, j)   and   left (i, j-1),
          c  c  c  c  c                  both on diagonal t-1, and writes (i, j):
          c  .  .  .  .
          c  .  .  .  .                  c: initial state   .: image positions
          c  .  .  .  .

    Layout: gates_in (D, B, H, W, 4h), weight (D, 4h, 2h) over [above ; left], initial
    states (D, h); returns the hidden states (D, B, H, W, h). It computes exactly what the
    step-by-step reference ``DiagonalBiLSTM.forward_reference`` computes (tested).
    """

    @staticmethod
    def forward(ctx, gates_in, weight, initial_hidden, initial_cell):
        directions, batch, height, width, four_h = gates_in.shape
        size = four_h // 4
        hidden, cell = diagonal_padded_states(gates_in, initial_hidden, initial_cell)
        activations = gates_in.new_empty(directions, batch, height, width, four_h)
        tanh_cells = gates_in.new_empty(directions, batch, height, width, size)
        weight_t = weight.transpose(1, 2)  # (D, 2h, 4h)
        for t in diagonal_steps(height, width):
            lo, n = diagonal_rows(t, height, width)
            recurrent = torch.cat([_diagonal(hidden, t, lo, n, 0, 1), _diagonal(hidden, t, lo, n, 1, 0)], dim=-1)  # (D, B, n, 2h)
            gates = torch.bmm(recurrent.view(directions, batch * n, 2 * size), weight_t).view(directions, batch, n, four_h)
            gates += _diagonal(gates_in, t, lo, n, 0, 0)
            _cell_forward(gates, _diagonal(cell, t, lo, n, 1, 0), size, -1, _diagonal(activations, t, lo, n, 0, 0),
                          _diagonal(cell, t, lo, n, 1, 1), _diagonal(tanh_cells, t, lo, n, 0, 0), _diagonal(hidden, t, lo, n, 1, 1))
        ctx.save_for_backward(weight, activations, cell, tanh_cells, hidden)
        return hidden[:, :, 1:, 1:]

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_output):
        weight, activations, cell, tanh_cells, hidden = ctx.saved_tensors
        directions, batch, height, width, four_h = activations.shape
        size = four_h // 4
        grad_hidden = hidden.new_zeros(hidden.shape)
        grad_hidden[:, :, 1:, 1:] = grad_output
        grad_cell = cell.new_zeros(cell.shape)  # the gradient carried from the right neighbour
        grad_gates = activations.new_empty(activations.shape)
        one = activations.new_ones(())  # 1 - x^2 as one addcmul
        for t in reversed(diagonal_steps(height, width)):
            lo, n = diagonal_rows(t, height, width)
            act = _diagonal(activations, t, lo, n, 0, 0)
            local = activations.new_empty(directions, batch, n, four_h)  # dL/d(pre-activation gates), contiguous for the bmm
            grad_c = _cell_backward(_diagonal(grad_hidden, t, lo, n, 1, 1), _diagonal(grad_cell, t, lo, n, 1, 1), act,
                                    _diagonal(tanh_cells, t, lo, n, 0, 0), _diagonal(cell, t, lo, n, 1, 0), size, -1, local, one)
            _diagonal(grad_gates, t, lo, n, 0, 0).copy_(local)
            _diagonal(grad_cell, t, lo, n, 1, 0).addcmul_(grad_c, act[..., size : 2 * size])  # through the forget gate
            grad_recurrent = torch.bmm(local.view(directions, batch * n, four_h), weight).view(directions, batch, n, 2 * size)
            _diagonal(grad_hidden, t, lo, n, 0, 1).add_(grad_recurrent[..., :size])
            _diagonal(grad_hidden, t, lo, n, 1, 0).add_(grad_recurrent[..., size:])
        recurrent = torch.cat([hidden[:, :, :-1, 1:], hidden[:, :, 1:, :-1]], dim=-1)  # (D, B, H, W, 2h): what each position read
        grad_weight = torch.bmm(grad_gates.view(directions, -1, four_h).transpose(1, 2), recurrent.view(directions, -1, 2 * size))
        return grad_gates, grad_weight, *diagonal_initial_grads(grad_hidden, grad_cell)


# Opaque to torch.compile: every diagonal is a view of a different shape, so dynamo would re-trace
# the loop step by step until its recompile limit. (The Row LSTM's scan traces through without breaks.)
# torch._disable_dynamo is torch.compiler.disable applied at the first call: the decorator itself
# would import torch._dynamo (longer than importing torch) into every program that imports the
# library. Dynamo skips the wrapper and what it calls, so the scan stays out of compiled graphs.
@torch._disable_dynamo
def diagonal_scan(gates_in, weight, initial_hidden, initial_cell) -> torch.Tensor:
    """Hidden states (D, B, H, W, h) of the Diagonal BiLSTM scan; see :class:`DiagonalScan`.

    ``gates_in`` is (D, B, H, W, 4h). Under autocast the scan runs in float32. The native scan
    runs where it can (:mod:`pixelrnn.layers.native_scan`), this module's elsewhere.
    """
    scan = NativeDiagonalScan if native_scans_run(gates_in) else DiagonalScan
    return _in_float32(scan, gates_in, weight, initial_hidden, initial_cell)


def direction_gates(gates: torch.Tensor) -> torch.Tensor:
    """(B, H, W, 8h) input gates of a Diagonal BiLSTM -> (2, B, H, W, 4h), the right-to-left direction mirrored."""
    size = gates.shape[-1] // 2
    return torch.stack([gates[..., :size], gates[..., size:].flip(2)])


def combine_directions(states: torch.Tensor) -> torch.Tensor:
    """(2, B, h, H, W) states of both directions (the second mirrored) -> the Diagonal BiLSTM's output (B, h, H, W)."""
    return rules.combine_directions(states[0], states[1].flip(-1))


def diagonal_layer_scan(gates: torch.Tensor, weight: torch.Tensor, initial_hidden: torch.Tensor,
                        initial_cell: torch.Tensor) -> torch.Tensor:
    """The Diagonal BiLSTM layer's output (B, h, H, W) from its input gates (B, H, W, 8h); float32 under autocast.

    Natively in one step where it can (:class:`NativeDiagonalLayer`), else as the two directions'
    gates, :func:`diagonal_scan` and :func:`combine_directions`.
    """
    if native_scans_run(gates):
        return _in_float32(NativeDiagonalLayer, gates, weight, initial_hidden, initial_cell).permute(0, 3, 1, 2)
    states = diagonal_scan(direction_gates(gates), weight, initial_hidden, initial_cell)  # (2, B, H, W, h)
    return combine_directions(states.permute(0, 1, 4, 2, 3))


def row_scan(gates: torch.Tensor, weight: torch.Tensor, initial_hidden: torch.Tensor, initial_cell: torch.Tensor,
             kernel: int) -> torch.Tensor:
    """Hidden states (B, h, H, W) of the Row LSTM from its input-to-state gates (B, 4h, H, W).

    ``weight`` (4h, k*h) is the state-to-state 1 x k kernel over the k shifted copies of the row
    above (tap-major). The native scan runs where it can, :class:`LSTMScan` elsewhere; under
    autocast the scan runs in float32.
    """
    batch, four_h, height, width = gates.shape
    if native_scans_run(gates):
        states = _in_float32(NativeRowScan, gates.permute(0, 2, 3, 1), weight, initial_hidden, initial_cell, kernel)  # (B, H, W, h)
        return states.permute(0, 3, 1, 2)
    rows = gates.permute(2, 1, 0, 3).reshape(height, 1, four_h, batch * width)  # (T=H, D=1, 4h, B*W)
    states = lstm_scan(rows, weight[None], initial_hidden[None], initial_cell[None], RowRecurrence(batch, width, kernel))
    return states.view(height, four_h // 4, batch, width).permute(2, 1, 0, 3)  # (B, h, H, W)
