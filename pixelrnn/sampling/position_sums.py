"""Masked convolutions evaluated one position at a time, from cached inputs (the float engines' sums).

Sections 3.4 and 3.5: a masked convolution at (i, j) reads its input at earlier positions and at
(i, j) only, so an incremental engine can keep a layer's input map and compute its output where
a new sub-pixel is known. :class:`MaskedConvAt` splits the sum into the kernel rows above the
centre (once per row) and the centre row (once per position); :class:`Pointwise` is a 1x1
convolution as one product. Both read the weights through ``masked_weight()``, so no engine uses
an unmasked weight.
"""

from __future__ import annotations

import torch

from ..layers.masked_conv import MaskedConv2d
from ..layers.rules import kernel_centre


class Pointwise:
    """A 1x1 masked convolution as a matrix product at one position: (N, in) -> (N, out)."""

    def __init__(self, conv: MaskedConv2d):
        self.weight_t = conv.masked_weight()[:, :, 0, 0].detach().t().contiguous()  # (in, out)
        out = self.weight_t.shape[1]
        self.bias = conv.bias.detach() if conv.bias is not None else self.weight_t.new_zeros(out)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return torch.addmm(self.bias, x, self.weight_t)


class MaskedConvAt:
    """A kh x kw masked convolution evaluated position by position from its cached input map.

    The object owns the cache of its input, channels-last, ``(B, H + kh//2, W + 2*(kw//2), in)``,
    zero in the padding as the full convolution's ``padding`` is; position (i, j) lives at
    ``[i + kh//2, j + kw//2]``. The mask cuts the rows below the centre and the right half of
    the centre row, so the sum splits in two:

    - ``start_row(i)``: the kernel rows above the centre read image rows i - kh//2 .. i-1 only,
      final once row i starts: one matrix product gives their contribution (plus the bias) to
      every position of row i, kept as ``base`` (W, B, out).
    - ``at(j)``: the centre row reads columns j - kw//2 .. j of row i, a contiguous slice of the
      cache, so one matrix product adds it to ``base[j]`` (or to a given base).
    """

    def __init__(self, conv: MaskedConv2d, batch: int, height: int, width: int, like: torch.Tensor):
        kh, kw = conv.kernel_size
        (self.top, self.side), self.kernel_width = kernel_centre(kh, kw), kw
        weight = conv.masked_weight().detach()  # (out, in, kh, kw)
        out, in_channels = weight.shape[0], weight.shape[1]
        # Both matrices have rows ordered (kernel row, kernel column, channel), like a channels-last patch.
        self.above_t = weight[:, :, : self.top, :].permute(2, 3, 1, 0).reshape(-1, out).contiguous()  # (kh//2 * kw * in, out)
        centre = weight[:, :, self.top, : self.side + 1]  # (out, in, kw//2 + 1): left part and centre
        self.centre_t = centre.permute(2, 1, 0).reshape(-1, out).contiguous()  # ((kw//2 + 1) * in, out)
        self.bias = conv.bias.detach() if conv.bias is not None else weight.new_zeros(out)
        self.batch, self.width = batch, width
        self.cache = like.new_zeros(batch, height + self.top, width + 2 * self.side, in_channels)
        self.base = self.centre_row = None

    def start_row(self, i: int) -> None:
        self.centre_row = self.cache[:, i + self.top]  # (B, W + 2*(kw//2), in), a view
        if self.top == 0:
            self.base = self.bias.expand(self.width, self.batch, -1)
            return
        rows = self.cache[:, i : i + self.top]  # (B, kh//2, W + 2*(kw//2), in): image rows i - kh//2 .. i-1
        windows = rows.unfold(2, self.kernel_width, 1)  # (B, kh//2, W, in, kw)
        patches = windows.permute(0, 2, 1, 4, 3).reshape(self.batch * self.width, -1)  # (B*W, kh//2 * kw * in)
        above = torch.addmm(self.bias, patches, self.above_t)  # (B*W, out)
        self.base = above.view(self.batch, self.width, -1).transpose(0, 1).contiguous()  # (W, B, out)

    def write(self, j: int, values: torch.Tensor) -> None:
        """Set the input at column j of the current row: (B, in)."""
        self.centre_row[:, j + self.side] = values

    def slot(self, j: int) -> torch.Tensor:
        """The cache's (B, in) view at column j of the current row, to be written in place."""
        return self.centre_row[:, j + self.side]

    def at(self, j: int, base: torch.Tensor | None = None) -> torch.Tensor:
        """The convolution's output (B, out) at column j of the current row."""
        patch = self.centre_row[:, j : j + self.side + 1].reshape(self.batch, -1)  # (B, (kw//2 + 1) * in), a view
        return torch.addmm(self.base[j] if base is None else base, patch, self.centre_t)
