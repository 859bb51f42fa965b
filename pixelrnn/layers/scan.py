"""A fused LSTM scan with a hand-written backward pass, shared by both spatial LSTMs.

The recurrences of the Row LSTM and the Diagonal BiLSTM are many small steps; recorded by
autograd, each step costs a dozen graph nodes, and slicing a precomputed tensor step by step
makes autograd allocate and fill full-size gradients. This scan runs the loop without autograd
and back-propagates through time by hand:

    forward, per step t:  z_t = R(h_{t-1})                  (the layer's recurrent input)
                          a_t = X_t + W z_t                  (one batched matmul, all directions)
                          o, f, i = sigmoid(a_t[:3h]),  g = tanh(a_t[3h:])
                          c_t = f c_{t-1} + i g,  h_t = o tanh(c_t)
                          rows not started yet keep the initial state (Diagonal BiLSTM)

``R`` is linear (shifts of the state with the learned initial state at the border), so the
backward pass needs its adjoint ``R^T`` only. The weight gradient is one matmul over all steps
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

    def gather(self, hidden: torch.Tensor, initial: torch.Tensor) -> torch.Tensor:
        """(..., h, B*W) -> (..., k*h, B*W), tap-major: block s holds h shifted by s - k//2."""
        *lead, size, _ = hidden.shape
        pad = self.kernel // 2
        grid = F.pad(hidden.reshape(*lead, size, self.batch, self.width), (pad, pad))  # (..., h, B, W + 2r)
        taps = [grid[..., s : s + self.width] for s in range(self.kernel)]
        return torch.cat(taps, dim=-3).reshape(*lead, self.kernel * size, -1)

    def scatter(self, grad: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Adjoint of ``gather``: (D, k*h, N) -> gradient of the state (D, h, N); none for h0."""
        directions, taps_size, _ = grad.shape
        size, pad = taps_size // self.kernel, self.kernel // 2
        taps = grad.reshape(directions, self.kernel, size, self.batch, self.width)
        grid = grad.new_zeros(directions, size, self.batch, self.width + 2 * pad)
        for s in range(self.kernel):
            grid[..., s : s + self.width] += taps[:, s]
        return grid[..., pad : pad + self.width].reshape(directions, size, -1), None

    def reset_mask(self, step: int) -> None:
        return None


class DiagonalRecurrence:
    """Diagonal BiLSTM: ``z = [state above ; state to the left]`` in the skewed map.

    The row above row 0 is the initial state, and rows whose diagonal has not reached them yet
    (row i before step i) keep the initial state.
    """

    def __init__(self, batch: int, height: int, device: torch.device):
        self.batch, self.height = batch, height
        self.rows = torch.arange(height, device=device).repeat(batch)  # row index of each of the B*H positions

    def gather(self, hidden: torch.Tensor, initial: torch.Tensor) -> torch.Tensor:
        """(..., D, h, B*H) -> (..., D, 2h, B*H)."""
        *lead, directions, size, _ = hidden.shape
        grid = hidden.reshape(*lead, directions, size, self.batch, self.height)
        top = initial[:, :, None, None].expand(*lead, directions, size, self.batch, 1)
        above = torch.cat([top, grid[..., :-1]], dim=-1).reshape(hidden.shape)
        return torch.cat([above, hidden], dim=-2)

    def scatter(self, grad: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        directions, double, _ = grad.shape
        size = double // 2
        above = grad[:, :size].reshape(directions, size, self.batch, self.height)
        state = grad[:, size:].reshape(directions, size, self.batch, self.height).clone()
        state[..., :-1] += above[..., 1:]
        return state.reshape(directions, size, -1), above[..., 0].sum(-1)

    def reset_mask(self, step: int) -> torch.Tensor | None:
        return self.rows <= step if step < self.height - 1 else None


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
            gates = torch.baddbmm(gates_in[t], weight, recurrence.gather(hidden, initial_hidden))
            act = activations[t]
            torch.sigmoid(gates[:, : 3 * size], out=act[:, : 3 * size])
            torch.tanh(gates[:, 3 * size :], out=act[:, 3 * size :])
            output_gate, forget_gate, input_gate, content = act.split(size, dim=1)
            cell = torch.mul(forget_gate, cell, out=cells[t]).addcmul_(input_gate, content)
            hidden = torch.mul(output_gate, torch.tanh(cell), out=hiddens[t])
            mask = recurrence.reset_mask(t)
            if mask is not None:
                torch.where(mask, hidden, init_h, out=hidden)
                torch.where(mask, cell, init_c, out=cell)
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
        grad_init_h = initial_hidden.new_zeros(directions, size)
        grad_init_c = initial_cell.new_zeros(directions, size)
        weight_t = weight.transpose(1, 2)
        carry_h = torch.zeros_like(init_h)
        carry_c = torch.zeros_like(init_c)
        for t in range(steps - 1, -1, -1):
            grad_h = grad_hiddens[t] + carry_h
            grad_c = carry_c
            mask = recurrence.reset_mask(t)
            if mask is not None:  # rows not started took the initial state: their gradient goes there
                grad_init_h += torch.where(mask, 0.0, grad_h).sum(-1)
                grad_init_c += torch.where(mask, 0.0, grad_c).sum(-1)
                grad_h = torch.where(mask, grad_h, 0.0)
                grad_c = torch.where(mask, grad_c, 0.0)
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
            carry_h, grad_top = recurrence.scatter(torch.bmm(weight_t, gate_grad))
            if grad_top is not None:
                grad_init_h += grad_top
        grad_init_h += carry_h.sum(-1)  # step 0 read the initial state everywhere
        grad_init_c += carry_c.sum(-1)
        previous = torch.cat([init_h.unsqueeze(0), hiddens[:-1]])  # (T, D, h, N): the state each step read
        recurrent_inputs = recurrence.gather(previous, initial_hidden)  # (T, D, Z, N)
        grad_weight = torch.einsum("tdan,tdzn->daz", grad_gates, recurrent_inputs)
        return grad_gates, grad_weight, grad_init_h, grad_init_c, None


def lstm_scan(gates_in, weight, initial_hidden, initial_cell, recurrence) -> torch.Tensor:
    """Hidden states (T, D, h, N) of the scan described in the module docstring."""
    return LSTMScan.apply(gates_in, weight, initial_hidden, initial_cell, recurrence)
