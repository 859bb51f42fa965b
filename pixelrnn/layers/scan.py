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
``R^T`` only (:class:`LSTMScan`, used by the Row LSTM). The Diagonal BiLSTM has its own scan,
:class:`DiagonalScan`, that visits only the image positions of each diagonal. The weight gradient is one matmul over all steps
at the end. ``tests/test_layers.py`` checks it against autograd through the step-by-step
reference and with ``torch.autograd.gradcheck`` in float64.

Layout: X (T, D, 4h, N), W (D, 4h, Z), h0 / c0 (D, h); D directions, N = batch x positions.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch.autograd.function import once_differentiable


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
        hiddens = gates_in.new_empty(steps, directions, size, positions)
        for t in range(steps):
            gates = torch.baddbmm(gates_in[t], weight, recurrence.gather(hidden))
            act = activations[t]
            torch.sigmoid(gates[:, : 3 * size], out=act[:, : 3 * size])
            torch.tanh(gates[:, 3 * size :], out=act[:, 3 * size :])
            output_gate, forget_gate, input_gate, content = act.split(size, dim=1)
            cell = torch.mul(forget_gate, cell, out=cells[t]).addcmul_(input_gate, content)
            hidden = torch.mul(output_gate, torch.tanh(cell), out=hiddens[t])
        ctx.recurrence = recurrence
        ctx.save_for_backward(weight, initial_hidden, initial_cell, activations, cells, hiddens)
        return hiddens

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_hiddens):
        weight, initial_hidden, initial_cell, activations, cells, hiddens = ctx.saved_tensors
        recurrence = ctx.recurrence
        steps, directions, four_h, positions = activations.shape
        size = four_h // 4
        init_h = initial_hidden[:, :, None].expand(directions, size, positions)
        init_c = initial_cell[:, :, None].expand(directions, size, positions)
        grad_gates = activations.new_empty(steps, directions, four_h, positions)
        weight_t = weight.transpose(1, 2)
        carry_h = torch.zeros_like(init_h)
        carry_c = torch.zeros_like(init_c)
        for t in range(steps - 1, -1, -1):
            grad_h = grad_hiddens[t] + carry_h
            grad_c = carry_c
            output_gate, forget_gate, input_gate, content = activations[t].split(size, dim=1)
            cell_prev = cells[t - 1] if t > 0 else init_c
            tanh_cell = torch.tanh(cells[t])
            grad_c = grad_c + grad_h * output_gate * (1 - tanh_cell * tanh_cell)
            gate_grad = grad_gates[t]
            o_grad, f_grad, i_grad, g_grad = gate_grad.split(size, dim=1)
            torch.mul(grad_h * tanh_cell, output_gate * (1 - output_gate), out=o_grad)
            torch.mul(grad_c * cell_prev, forget_gate * (1 - forget_gate), out=f_grad)
            torch.mul(grad_c * content, input_gate * (1 - input_gate), out=i_grad)
            torch.mul(grad_c * input_gate, 1 - content * content, out=g_grad)
            carry_c = grad_c * forget_gate
            carry_h = recurrence.scatter(torch.bmm(weight_t, gate_grad))
        grad_init_h = carry_h.sum(-1)  # step 0 read the initial state everywhere
        grad_init_c = carry_c.sum(-1)
        previous = torch.cat([init_h.unsqueeze(0), hiddens[:-1]])  # (T, D, h, N): the state each step read
        recurrent_inputs = recurrence.gather(previous)  # (T, D, Z, N)
        grad_weight = torch.einsum("tdan,tdzn->daz", grad_gates, recurrent_inputs)
        return grad_gates, grad_weight, grad_init_h, grad_init_c, None


def lstm_scan(gates_in, weight, initial_hidden, initial_cell, recurrence) -> torch.Tensor:
    """Hidden states (T, D, h, N) of the scan described in the module docstring."""
    return LSTMScan.apply(gates_in, weight, initial_hidden, initial_cell, recurrence)


class DiagonalScan(torch.autograd.Function):
    """The Diagonal BiLSTM scan over the active diagonal only.

    At step t of the skewed map only rows ``max(0, t-W+1) .. min(H-1, t)`` hold image pixels;
    the others are padding that the layer discards. In a row-major (H*B) layout of positions
    those rows are one contiguous block, so each step reads and writes one slice. Rows keep
    their latest state in a buffer with an extra row -1 that holds the initial state (the
    "row above" of row 0); rows that have not started hold the initial state, so no reset is
    needed. At image positions it computes exactly what the step-by-step reference
    ``DiagonalBiLSTM.forward_reference`` computes (tested); padding positions of the output
    hold the initial state.

    Layout: gates_in (T, D, 4h, H*B), weight (D, 4h, 2h) over [above ; left], output
    (T, D, h, H*B).
    """

    @staticmethod
    def forward(ctx, gates_in, weight, initial_hidden, initial_cell, height, width):
        steps, directions, four_h, positions = gates_in.shape
        size, batch = four_h // 4, positions // height
        # Every stored state starts as the initial state; row -1 is prepended to the positions.
        hiddens = initial_hidden[None, :, :, None].expand(steps, directions, size, positions + batch).contiguous()
        cells = initial_cell[None, :, :, None].expand(steps, directions, size, positions).contiguous()
        activations = gates_in.new_zeros(steps, directions, four_h, positions)
        hidden_now = hiddens[0].clone()  # (D, h, (H+1)*B): latest state of every row
        cell_now = cells[0].clone()
        for t in range(steps):
            lo, hi = max(0, t - width + 1), min(height - 1, t)
            rows = slice(lo * batch, (hi + 1) * batch)
            shifted = slice((lo + 1) * batch, (hi + 2) * batch)
            recurrent = torch.cat([hidden_now[:, :, rows], hidden_now[:, :, shifted]], dim=1)  # (D, 2h, n)
            gates = torch.baddbmm(gates_in[t][:, :, rows], weight, recurrent)
            act = activations[t][:, :, rows]
            torch.sigmoid(gates[:, : 3 * size], out=act[:, : 3 * size])
            torch.tanh(gates[:, 3 * size :], out=act[:, 3 * size :])
            output_gate, forget_gate, input_gate, content = act.split(size, dim=1)
            cell = torch.addcmul(forget_gate * cell_now[:, :, rows], input_gate, content)
            hidden = output_gate * torch.tanh(cell)
            cells[t][:, :, rows] = cell
            cell_now[:, :, rows] = cell
            hiddens[t][:, :, shifted] = hidden
            hidden_now[:, :, shifted] = hidden
        ctx.shape = (height, width)
        ctx.save_for_backward(weight, initial_hidden, initial_cell, activations, cells, hiddens)
        return hiddens[:, :, :, batch:]

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_hiddens):
        weight, initial_hidden, initial_cell, activations, cells, hiddens = ctx.saved_tensors
        height, width = ctx.shape
        steps, directions, four_h, positions = activations.shape
        size, batch = four_h // 4, positions // height
        grad_gates = torch.zeros_like(activations)
        grad_hidden_now = hiddens.new_zeros(directions, size, positions + batch)
        grad_cell_now = cells.new_zeros(directions, size, positions)
        weight_t = weight.transpose(1, 2)
        for t in range(steps - 1, -1, -1):
            lo, hi = max(0, t - width + 1), min(height - 1, t)
            rows = slice(lo * batch, (hi + 1) * batch)
            shifted = slice((lo + 1) * batch, (hi + 2) * batch)
            grad_h = grad_hiddens[t][:, :, rows] + grad_hidden_now[:, :, shifted]
            output_gate, forget_gate, input_gate, content = activations[t][:, :, rows].split(size, dim=1)
            cell_prev = cells[t - 1][:, :, rows] if t > 0 else initial_cell[:, :, None].expand_as(grad_h)
            tanh_cell = torch.tanh(cells[t][:, :, rows])
            grad_c = grad_cell_now[:, :, rows] + grad_h * output_gate * (1 - tanh_cell * tanh_cell)
            gate_grad = grad_gates[t][:, :, rows]
            o_grad, f_grad, i_grad, g_grad = gate_grad.split(size, dim=1)
            torch.mul(grad_h * tanh_cell, output_gate * (1 - output_gate), out=o_grad)
            torch.mul(grad_c * cell_prev, forget_gate * (1 - forget_gate), out=f_grad)
            torch.mul(grad_c * content, input_gate * (1 - input_gate), out=i_grad)
            torch.mul(grad_c * input_gate, 1 - content * content, out=g_grad)
            grad_cell_now[:, :, rows] = grad_c * forget_gate  # now the gradient of the states at t-1
            grad_recurrent = torch.bmm(weight_t, gate_grad)  # (D, 2h, n): [above ; left]
            grad_hidden_now[:, :, shifted] = grad_recurrent[:, size:]
            grad_hidden_now[:, :, rows] += grad_recurrent[:, :size]
        # What is left in the buffers reached the initial state: row -1 and rows before their start;
        # so did the output's padding positions, which hold the initial state.
        step = torch.arange(steps, device=grad_hiddens.device)[:, None]
        row = torch.arange(height, device=grad_hiddens.device)[None, :]
        padding = ((row > step) | (row < step - width + 1)).to(grad_hiddens.dtype)  # (T, H)
        grad_padding = torch.einsum("tdhib,ti->dh", grad_hiddens.reshape(steps, directions, size, height, batch), padding)
        grad_init_h = grad_hidden_now.sum(-1) + grad_padding
        grad_init_c = grad_cell_now.sum(-1)
        start = initial_hidden[None, :, :, None].expand(1, directions, size, positions + batch)
        previous = torch.cat([start, hiddens[:-1]])  # (T, D, h, (H+1)*B): the states each step read
        recurrent_inputs = torch.cat([previous[..., :positions], previous[..., batch:]], dim=2)  # (T, D, 2h, H*B)
        grad_weight = torch.einsum("tdan,tdzn->daz", grad_gates, recurrent_inputs)
        return grad_gates, grad_weight, grad_init_h, grad_init_c, None, None


def diagonal_scan(gates_in, weight, initial_hidden, initial_cell, height: int, width: int) -> torch.Tensor:
    """Hidden states (T, D, h, H*B) of the Diagonal BiLSTM scan; see :class:`DiagonalScan`."""
    return DiagonalScan.apply(gates_in, weight, initial_hidden, initial_cell, height, width)
