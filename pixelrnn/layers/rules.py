"""The rules of the paper's layers, each stated once and read by every executor.

Float batched (:mod:`pixelrnn.layers`), float incremental (:mod:`pixelrnn.sampling`, reference and
native) and integer (:mod:`pixelrnn.codec`, batched, numpy and native) all compute these layers;
where an executor needs one of the rules below it reads it here, so a change to a rule is a change
in one place (the C++ kernels take the numbers these functions give them).

- **Mask geometry** (section 3.4): a masked ``kh x kw`` kernel sees the rows above its centre and
  the columns left of it in the centre row (and the centre itself, by colour group):
  :func:`kernel_centre`, and the part of the kernel the mask can leave non-zero, :func:`kernel_extent`.
  The masks themselves are built in :mod:`.masked_conv`.
- **Gate layout** (eq. 3): an LSTM's ``4h`` pre-activations are ``[o | f | i | g]``, sigmoid on the
  first three, tanh on ``g``: :data:`GATES`, :func:`split_gates`.
- **The diagonal walk** (section 3.2, Figure 3): step ``t`` of the Diagonal BiLSTM computes the
  image's diagonal ``i + j = t`` (column ``t`` of the skewed map): :func:`diagonal_rows`.
- **The right-to-left direction** (section 3.2): it runs on the mirrored map, and its states are
  shifted down :data:`REVERSE_SHIFT_ROWS` row before they are added, so pixel ``(i, j)`` sees
  only rows above: :func:`combine_directions`.
"""

from __future__ import annotations

import functools

import torch
import torch.nn.functional as F

#: The order of an LSTM's gate blocks along its 4h pre-activations.
GATES = ("o", "f", "i", "g")
#: The first SIGMOID_GATES blocks go through the logistic sigmoid, the rest (g) through tanh.
SIGMOID_GATES = 3
#: How many rows the right-to-left direction of a Diagonal BiLSTM is shifted down.
REVERSE_SHIFT_ROWS = 1


def kernel_centre(kernel_height: int, kernel_width: int) -> tuple[int, int]:
    """(rows above the centre, columns left of it) of an odd masked kernel: the rows and columns it reads.

        . . . . .     top = kh // 2 rows above, all visible
        . . . . .
        x x c - -     side = kw // 2 columns left of the centre c; '-' and the rows below are masked
        - - - - -
    """
    return kernel_height // 2, kernel_width // 2


def kernel_extent(kernel_height: int, kernel_width: int) -> tuple[int, int]:
    """(rows, columns) of an odd masked kernel that its mask can leave non-zero, from its top left corner.

        . . . . .     rows: those above the centre and the centre's own (kh // 2 + 1)
        . . . . .     columns: all of them; a one-row kernel has only the centre row,
        x x c - -     hence its first kw // 2 + 1 (left of the centre, and the centre)
        - - - - -

    The rest is zero whatever the weights and colour groups: products with it are skipped.
    """
    top, side = kernel_centre(kernel_height, kernel_width)
    return top + 1, (side + 1 if kernel_height == 1 else kernel_width)


def gate_slice(name: str, hidden: int) -> slice:
    """The pre-activations of gate ``name`` (one of :data:`GATES`) among 4h."""
    index = GATES.index(name)
    return slice(index * hidden, (index + 1) * hidden)


@functools.lru_cache(maxsize=None)
def gate_slices(hidden: int) -> tuple[slice, ...]:
    """The slice of each gate of :data:`GATES` among 4h (cached: the integer engines index with them per position)."""
    return tuple(gate_slice(name, hidden) for name in GATES)


def split_gates(gates: torch.Tensor, hidden: int, dim: int = 1) -> tuple[torch.Tensor, ...]:
    """(o, f, i, g): the gate blocks of ``gates`` (4h along ``dim``) in :data:`GATES`' order, as views.

    (numpy arrays index with :func:`gate_slices` instead.)
    """
    return gates.split(hidden, dim=dim)


def diagonal_rows(step: int, height: int, width: int) -> tuple[int, int]:
    """(first row, count) of the positions on diagonal ``i + j = step`` of a ``height x width`` image.

    Row ``first + r`` of the diagonal is at column ``step - first - r``; consecutive positions are
    one row down and one column left. Steps run from 0 to ``height + width - 2``.
    """
    first, last = max(0, step - width + 1), min(height - 1, step)
    return first, last - first + 1


def diagonal_steps(height: int, width: int) -> range:
    """The steps of the diagonal walk over a ``height x width`` image, in order."""
    return range(height + width - 1)


def combine_directions(left_to_right: torch.Tensor, right_to_left: torch.Tensor, row_dim: int = -2) -> torch.Tensor:
    """The Diagonal BiLSTM's output from both directions' states in image coordinates (unmirrored).

    The right-to-left states are shifted down :data:`REVERSE_SHIFT_ROWS` row along ``row_dim``
    (zeros enter at the top), so pixel (i, j) receives the right-to-left state of (i-1, j), never
    one of its own row.
    """
    dim = row_dim % right_to_left.dim()
    height = right_to_left.shape[dim]
    pad = [0, 0] * (right_to_left.dim() - 1 - dim) + [REVERSE_SHIFT_ROWS, 0]
    shifted = F.pad(right_to_left, pad).narrow(dim, 0, height)
    return left_to_right + shifted
