"""The LSTM scans of sections 3.1-3.2 as native kernels: each scan, forward or backward, one call.

Same recurrences and hand-written backward passes as :mod:`pixelrnn.layers.scan` (the
reference, and the fallback where the kernels cannot run), with each step's dozen tensor
operations replaced by a loop in ``pixelrnn/native/scan.cpp``; images (and directions) are
scanned in parallel on torch's CPU threads (its OpenMP threads where torch uses OpenMP); the
weights' gradients are accumulated per image (per group of images in the Diagonal BiLSTM, whose
steps multiply a group's diagonals in one product) by the kernels and summed here. The Diagonal
BiLSTM scan keeps its states and activations diagonal-major (:func:`diagonal_major_slots`); its
interface takes and gives the reference's layouts, and the initial states' gradients are read
off its padded buffers here.

- :class:`NativeDiagonalScan`: the Diagonal BiLSTM, interface of ``scan.DiagonalScan``;
  :class:`NativeDiagonalLayer`: the same from the convolution's output to the layer's output.
- :class:`NativeRowScan`: the Row LSTM, position-major: gates (B, H, W, 4h), weight (4h, k*h)
  over the k taps of the row above (tap-major), states (B, H, W, h).
"""

from __future__ import annotations

import functools

import torch
from torch.autograd.function import once_differentiable

from .. import native


def native_scans_run(tensor: torch.Tensor) -> bool:
    """Whether the native scans take ``tensor``'s device and dtype (after the float32 promotion of autocast).

    Never while torch.compile traces: dynamo cannot see into a native call, so a traced graph
    takes the PyTorch scan (the Diagonal BiLSTM's scan is opaque to it and runs eagerly anyway).
    """
    if torch.compiler.is_compiling():
        return False
    return native.usable(tensor.new_empty(0, dtype=torch.promote_types(tensor.dtype, torch.float32)))


@functools.lru_cache(maxsize=16)
def diagonal_major_slots(rows: int, columns: int) -> torch.Tensor:
    """(rows, columns) -> the slot of each position in the diagonal-major order of the native Diagonal BiLSTM scan's buffers.

    Diagonal r + c after diagonal r + c - 1, each by row (``DiagonalMajor`` in ``native/scan.cpp``):
    a diagonal's positions, far apart in the usual order, are neighbours, as the rows of a
    step's products must be to run fast. The padded state buffers hold the (H + 1) x (W + 1) map
    whose row 0 and column 0 are the initial state (row -1 and column -1 of the image).
    """
    r, c = torch.arange(rows)[:, None], torch.arange(columns)[None, :]
    diagonals = torch.arange(rows + columns - 1)
    first_rows = (diagonals - columns + 1).clamp(min=0)
    lengths = diagonals.clamp(max=rows - 1) - first_rows + 1
    return (lengths.cumsum(0) - lengths)[r + c] + r - first_rows[r + c]


def _image_slots(height: int, width: int) -> torch.Tensor:
    """The padded buffers' slots of the image's positions, row-major: where the interface's (H, W) states live."""
    return diagonal_major_slots(height + 1, width + 1)[1:, 1:].flatten()


#: Images per product in the native Diagonal BiLSTM scans: a step multiplies the diagonal's
#: positions in this many images at once (rows of one product rather than one small product per
#: image). A constant, not the thread count, so that the results do not depend on the threads.
IMAGES_PER_PRODUCT = 8


def _groups(batch: int) -> int:
    return -(-batch // IMAGES_PER_PRODUCT)


def _threads(*shape: int) -> int:
    """torch's CPU threads for a scan of this many multiply-adds per step and position, one for a small one (a thread costs more)."""
    work = 1
    for size in shape:
        work *= size
    return torch.get_num_threads() if work >= 1 << 22 else 1


def _address(tensor: torch.Tensor) -> int:
    """The memory of a contiguous tensor that the caller holds (a temporary would be freed before the kernel runs)."""
    if not tensor.is_contiguous():
        raise ValueError("the native scans take contiguous tensors")
    return tensor.data_ptr()


def _diagonal_forward(ctx, gates, layout, weight, initial_hidden, initial_cell, shape, out=None):
    """The native scan of ``gates`` (laid out as ``layout``: image, row, column, direction strides, mirror); shape (D, B, H, W, 4h)."""
    directions, batch, height, width, four_h = shape
    # Diagonal-major (diagonal_major_slots); the kernel writes the initial states into the padding (row -1 and column -1).
    hidden = gates.new_empty(directions, batch, (height + 1) * (width + 1), four_h // 4)
    cell = torch.empty_like(hidden)
    activations, tanh_cells = gates.new_empty(shape), gates.new_empty(*shape[:-1], four_h // 4)  # (D, B, H * W, 4h or h)
    weight_t = weight.transpose(1, 2).contiguous()  # (D, 2h, 4h) over [state above ; state to the left]
    initial_hidden, initial_cell = initial_hidden.contiguous(), initial_cell.contiguous()  # held here: the kernel reads their memory
    native.kernel("pixelrnn_diagonal_forward", gates.dtype)(
        _address(gates), *layout, _address(weight_t), _address(initial_hidden), _address(initial_cell), _address(hidden), _address(cell), _address(activations), _address(tanh_cells),
        directions, batch, height, width, four_h // 4, IMAGES_PER_PRODUCT, _threads(*shape, four_h // 2),
        0 if out is None else _address(out))
    ctx.layout, ctx.gates_shape = layout, gates.shape
    ctx.save_for_backward(weight, activations, cell, tanh_cells, hidden)
    return hidden


def _diagonal_backward(ctx, grad_hidden, grad_out=None):
    """Gradients of (gates in their layout, weight, initial hidden, initial cell); ``grad_hidden`` padded, or filled from ``grad_out``."""
    weight, activations, cell, tanh_cells, hidden = ctx.saved_tensors
    directions, batch, height, width, four_h = activations.shape
    grad_cell = cell.new_zeros(cell.shape)  # the gradient carried from the right neighbour
    grad_gates = activations.new_empty(ctx.gates_shape)
    grad_weight_t = activations.new_zeros(directions, _groups(batch), four_h // 2, four_h)  # per group of images, summed below
    weight = weight.contiguous()  # held here: the kernel reads its memory
    native.kernel("pixelrnn_diagonal_backward", activations.dtype)(
        _address(weight), _address(activations), _address(cell), _address(tanh_cells), _address(hidden), _address(grad_hidden),
        _address(grad_cell), _address(grad_gates), *ctx.layout, _address(grad_weight_t), directions, batch, height, width,
        four_h // 4, IMAGES_PER_PRODUCT, _threads(*activations.shape, four_h // 2), 0 if grad_out is None else _address(grad_out))
    # What reached the padding reached the initial state (row -1 and column -1; the corner is never read).
    slots = diagonal_major_slots(height + 1, width + 1)
    row, column = slots[0, 1:].contiguous(), slots[1:, 0].contiguous()
    grad_initial_hidden = grad_hidden.index_select(2, row).sum((1, 2)) + grad_hidden.index_select(2, column).sum((1, 2))
    grad_initial_cell = grad_cell.index_select(2, column).sum((1, 2))
    return grad_gates, grad_weight_t.sum(1).transpose(1, 2), grad_initial_hidden, grad_initial_cell


class NativeDiagonalScan(torch.autograd.Function):
    """The Diagonal BiLSTM scan (``scan.DiagonalScan``): gates_in (D, B, H, W, 4h) -> hidden states (D, B, H, W, h)."""

    @staticmethod
    def forward(ctx, gates_in, weight, initial_hidden, initial_cell):
        directions, batch, height, width, four_h = gates_in.shape
        layout = (height * width * four_h, width * four_h, four_h, batch * height * width * four_h, 0)
        hidden = _diagonal_forward(ctx, gates_in, layout, weight, initial_hidden, initial_cell, gates_in.shape)
        return hidden[:, :, _image_slots(height, width)].view(directions, batch, height, width, -1)

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_output):
        activations, hidden = ctx.saved_tensors[1], ctx.saved_tensors[4]
        directions, batch, height, width, _ = activations.shape
        grad_hidden = hidden.new_zeros(hidden.shape)
        grad_hidden[:, :, _image_slots(height, width)] = grad_output.reshape(directions, batch, height * width, -1)
        return _diagonal_backward(ctx, grad_hidden)


class NativeDiagonalLayer(torch.autograd.Function):
    """The whole Diagonal BiLSTM layer after its input-to-state convolution (``DiagonalBiLSTM.forward``).

    gates (B, H, W, 8h): the convolution's channels-last output, [left-to-right 4h | right-to-left
    4h], read in place (the second direction mirrored); returns the layer's output (B, H, W, h):
    the left-to-right state plus the right-to-left state of the row above. The reference builds
    the two directions' gates and combines their states with four copies of the maps; here there
    are none.
    """

    @staticmethod
    def forward(ctx, gates, weight, initial_hidden, initial_cell):
        batch, height, width, eight_h = gates.shape
        layout = (height * width * eight_h, width * eight_h, eight_h, eight_h // 2, 1)
        out = gates.new_empty(batch, height, width, eight_h // 8)
        _diagonal_forward(ctx, gates, layout, weight, initial_hidden, initial_cell, (2, batch, height, width, eight_h // 2), out)
        return out

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_out):
        hidden = ctx.saved_tensors[4]
        grad_out = grad_out.contiguous()  # held here: the kernel reads its memory
        return _diagonal_backward(ctx, hidden.new_empty(hidden.shape), grad_out)


class NativeRowScan(torch.autograd.Function):
    """The Row LSTM scan: gates (B, H, W, 4h), weight (4h, k*h), initial states (h,) -> hidden states (B, H, W, h)."""

    @staticmethod
    def forward(ctx, gates, weight, initial_hidden, initial_cell, kernel):
        batch, height, width, four_h = gates.shape
        size = four_h // 4
        states = [gates.new_empty(batch, height, width, size) for _ in range(3)]  # hidden, cell, tanh(cell)
        activations = gates.new_empty(gates.shape)
        weight_t = weight.t().contiguous()  # (k*h, 4h)
        initial_hidden, initial_cell = initial_hidden.contiguous(), initial_cell.contiguous()
        native.kernel("pixelrnn_row_forward", gates.dtype)(
            _address(gates), _address(weight_t), _address(initial_hidden), _address(initial_cell), *map(_address, states[:2]),
            _address(activations), _address(states[2]), batch, height, width, size, kernel, _threads(*gates.shape, kernel * size))
        ctx.kernel = kernel
        ctx.save_for_backward(weight, initial_hidden, initial_cell, activations, *states)
        return states[0]

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_hidden):
        weight, initial_hidden, initial_cell, activations, hidden, cell, tanh_cells = ctx.saved_tensors
        batch, height, width, four_h = activations.shape
        size, kernel = four_h // 4, ctx.kernel
        grad_gates = activations.new_empty(activations.shape)
        grad_initial = [hidden.new_empty(batch, width, size) for _ in range(2)]  # per column, what reached row -1
        grad_weight_t = activations.new_zeros(batch, kernel * size, four_h)  # per image, summed below
        weight, grad_hidden = weight.contiguous(), grad_hidden.contiguous()  # held here: the kernel reads their memory
        native.kernel("pixelrnn_row_backward", activations.dtype)(
            _address(weight), _address(initial_hidden), _address(initial_cell), _address(hidden), _address(cell),
            _address(activations), _address(tanh_cells), _address(grad_hidden), _address(grad_gates), *map(_address, grad_initial),
            _address(grad_weight_t), batch, height, width, size, kernel, _threads(*activations.shape, kernel * size))
        return grad_gates, grad_weight_t.sum(0).t(), grad_initial[0].sum((0, 1)), grad_initial[1].sum((0, 1)), None
