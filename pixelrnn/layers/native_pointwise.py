"""Masked 1x1 convolutions (section 3.4) as native products over the channels: forward and every gradient in one call each.

Over channels-last maps a 1x1 convolution is one product of every position's channels, (N, in) @ (in, out) with
N = B * H * W: for binarized MNIST at batch 64, 50,176 rows of 16 to 128 channels. On such tall, narrow operands a
BLAS product spends much of its time packing them for a reuse that so few columns do not give;
``pixelrnn/native/pointwise.cpp`` multiplies the rows where they lie (``docs/performance.md`` has the rates). A sum of
several such convolutions (the skips, :func:`~.masked_conv.sum_of_pointwise`) accumulates in one output.

- Forward: ``bias + sum_i x_i @ w_i^T``; backward: each input's gradient ``grad @ w_i`` (the same kernel), each weight's
  ``grad^T @ x_i`` and the bias' row sum, summed over blocks of rows of a fixed size and then added in order, so the
  values do not depend on the number of threads.
- Where the kernels cannot run (another device or dtype, autocast, torch.compile tracing, the kernels not built) or
  would be slower (fewer than :data:`FEWEST_OUTPUTS` outputs), the callers take torch's ``F.linear`` / ``addmm``, the
  reference the tests compare with.
"""

from __future__ import annotations

import torch
from torch.autograd.function import once_differentiable

from .. import native

#: Each weight row is read up to the next multiple of this many columns (the kernels' widest vector tile).
WEIGHT_COLUMNS = 16

#: Fewest outputs for which the native product is used: one tile of the kernel's (two AVX2 vectors of floats). Fewer
#: outputs leave most of each tile's lanes idle, and torch is faster there (the output stack's last 1x1 to two logits:
#: ``benchmarks/step_parts.py pointwise``).
FEWEST_OUTPUTS = 16


def native_products_run(operands: list[torch.Tensor], outputs: int) -> bool:
    """Whether the native products take these operands (rows, weights, bias) into ``outputs`` channels: CPU tensors of
    one dtype, float32 or float64, enough outputs, no autocast, no torch.compile trace."""
    first = operands[0]
    if outputs < FEWEST_OUTPUTS or torch.compiler.is_compiling() or torch.is_autocast_enabled(first.device.type):
        return False
    return all(operand.dtype == first.dtype for operand in operands) and native.usable(first)


def _columns_padded(matrix: torch.Tensor) -> torch.Tensor:
    """``matrix`` (rows, columns) in a contiguous buffer whose rows are a multiple of WEIGHT_COLUMNS long, zero beyond."""
    rows, columns = matrix.shape
    padded = matrix.new_zeros(rows, -(-columns // WEIGHT_COLUMNS) * WEIGHT_COLUMNS)
    padded[:, :columns] = matrix
    return padded


def _threads(rows: int, n_in: int, n_out: int) -> int:
    """torch's CPU threads for a product this large, one for a small one (a thread costs more)."""
    return torch.get_num_threads() if rows * n_in * n_out >= 1 << 22 else 1


def _product(x: torch.Tensor, weight_t: torch.Tensor, out: torch.Tensor, bias: torch.Tensor | None = None,
             accumulate: bool = False) -> None:
    """out (N, n_out) = [bias | out] + x (N, n_in) @ weight_t (n_in, n_out): the kernel reads weight_t padded."""
    rows, n_in = x.shape
    n_out = weight_t.shape[1]
    padded = _columns_padded(weight_t)
    native.kernel("pixelrnn_linear", x.dtype)(
        x.data_ptr(), rows, n_in, padded.data_ptr(), padded.shape[1], n_out, 0 if bias is None else bias.data_ptr(),
        int(accumulate), out.data_ptr(), _threads(rows, n_in, n_out))


class PointwiseProducts(torch.autograd.Function):
    """bias + sum_i x_i @ w_i^T: rows x_i (N, in_i), weights w_i (out, in_i), bias (out,) or None -> (N, out)."""

    @staticmethod
    def forward(ctx, bias, *rows_and_weights):
        rows = [x.contiguous() for x in rows_and_weights[0::2]]
        weights = [w.contiguous() for w in rows_and_weights[1::2]]
        bias = None if bias is None else bias.contiguous()
        out = rows[0].new_empty(rows[0].shape[0], weights[0].shape[0])
        for k, (x, weight) in enumerate(zip(rows, weights)):
            _product(x, weight.t(), out, bias if k == 0 else None, accumulate=k > 0)
        ctx.has_bias = bias is not None
        ctx.save_for_backward(*[tensor for pair in zip(rows, weights) for tensor in pair])
        return out

    @staticmethod
    @once_differentiable
    def backward(ctx, grad):
        grad = grad.contiguous()
        pairs = ctx.saved_tensors
        rows_count, n_out = grad.shape
        grads = [None]
        bias_wanted = ctx.has_bias and ctx.needs_input_grad[0]
        for k, (x, weight) in enumerate(zip(pairs[0::2], pairs[1::2])):
            grad_x = None
            if ctx.needs_input_grad[1 + 2 * k]:
                grad_x = x.new_empty(x.shape)
                _product(grad, weight, grad_x)  # (N, out) @ (out, in)
            grad_weight, grad_bias = None, None
            if ctx.needs_input_grad[2 + 2 * k] or (bias_wanted and k == 0):
                grad_weight = weight.new_empty(weight.shape)
                grad_bias = grad.new_empty(n_out) if bias_wanted and k == 0 else None
                native.kernel("pixelrnn_linear_weight_grad", x.dtype)(
                    x.data_ptr(), grad.data_ptr(), rows_count, x.shape[1], n_out, grad_weight.data_ptr(),
                    0 if grad_bias is None else grad_bias.data_ptr(), _threads(rows_count, x.shape[1], n_out))
            if k == 0:
                grads[0] = grad_bias
            grads += [grad_x, grad_weight if ctx.needs_input_grad[2 + 2 * k] else None]
        return tuple(grads)


def pointwise_products(bias: torch.Tensor | None, rows: list[torch.Tensor], weights: list[torch.Tensor]) -> torch.Tensor:
    """bias + sum_i rows[i] @ weights[i]^T on the native kernels (callers check :func:`native_products_run` first)."""
    return PointwiseProducts.apply(bias, *[tensor for pair in zip(rows, weights) for tensor in pair])
