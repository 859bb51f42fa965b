"""Skewing of feature maps for the Diagonal BiLSTM (paper section 3.2, Figure 3).

Row ``i`` of an ``H x W`` map is shifted right by ``i`` positions, giving an
``H x (W + H - 1)`` map whose column ``t`` holds the diagonal ``i + j = t``::

    a b c          a b c . .
    d e f   skew   . d e f .
    g h i   --->   . . g h i

Both operations work on the last two dimensions and are pure index shuffles (a pad and
two reshapes), so gradients flow through them unchanged.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def skew(x: torch.Tensor) -> torch.Tensor:
    """(..., H, W) -> (..., H, W + H - 1); out[..., i, i + j] = x[..., i, j], zeros elsewhere."""
    *lead, height, width = x.shape
    padded = F.pad(x, (0, height))  # (..., H, W + H)
    flat = padded.reshape(*lead, height * (width + height))
    # Dropping the last H zeros and re-reading rows of length W + H - 1 moves row i right by i.
    return flat[..., : height * (width + height - 1)].reshape(*lead, height, width + height - 1)


def unskew(x: torch.Tensor, width: int) -> torch.Tensor:
    """Inverse of :func:`skew`: (..., H, W + H - 1) -> (..., H, W)."""
    *lead, height, skewed_width = x.shape
    if skewed_width != width + height - 1:
        raise ValueError(f"a skewed map of height {height} and width {width} has {width + height - 1} columns, not {skewed_width}")
    flat = F.pad(x.reshape(*lead, height * skewed_width), (0, height))  # (..., H * (W + H))
    return flat.reshape(*lead, height, width + height)[..., :width]
