"""Masked convolutions with colour groups (paper section 3.4, Figure 2 right).

Feature maps are split into as many contiguous groups as the image has channels
(R, G, B for colour images, a single group for grey or binary images). Channel ``k``
of an ``n``-channel map belongs to group ``k * C // n``, so the groups have sizes that
differ by at most one when ``n`` is not a multiple of ``C`` (e.g. 128 maps, 3 colours:
43, 43, 42).

A masked ``kh x kw`` kernel (odd sizes, centre at ``(kh // 2, kw // 2)``) lets output
group ``g`` see, for every pair of input/output channels::

        kernel positions                 centre, input group vs output group g
      . . . . . . .                         mask A:  in group <  g
      . . . . . . .    .  all groups        mask B:  in group <= g
      . . . . . . .
      . . . c x x x    c  centre rule       for 3 colours (rows: out, cols: in)
      x x x x x x x    x  never                 A      B
      x x x x x x x                          R . . .  R 1 . .
      x x x x x x x                          G 1 . .  G 1 1 .
                                             B 1 1 .  B 1 1 1

Every position in the rows above the centre, and to the left of it in the centre row,
is fully visible; positions to the right in the centre row and all rows below are cut.
The mask is a buffer multiplied into the weight inside ``forward``, so no code path can
use an unmasked weight, whatever the optimiser or the initialisation did to it. The rows below
the centre (and, in a one-row kernel, the columns right of it) are zero for every mask, so
``forward`` multiplies only the rest (:func:`~.rules.kernel_extent`); a 1x1 kernel is a product
over the channels. Outputs are channels last in memory.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .native_pointwise import native_products_run, pointwise_products
from .rules import GATES, kernel_centre, kernel_extent

MASK_TYPES = ("A", "B")


def channel_groups(num_maps: int, num_groups: int) -> torch.Tensor:
    """Group index (colour) of each of ``num_maps`` feature maps, contiguous near-equal split."""
    if num_maps < num_groups:
        raise ValueError(f"{num_maps} feature maps cannot be split into {num_groups} colour groups; use at least {num_groups}")
    return torch.arange(num_maps) * num_groups // num_maps


def gate_groups(hidden: int, num_groups: int, gates: int = len(GATES)) -> torch.Tensor:
    """Groups of the ``gates * hidden`` gate maps of an LSTM: gate q of unit u has unit u's group."""
    return channel_groups(hidden, num_groups).repeat(gates)


def build_mask(
    mask_type: str,
    kernel_size: tuple[int, int],
    in_groups: torch.Tensor,
    out_groups: torch.Tensor,
) -> torch.Tensor:
    """The (out, in, kh, kw) 0/1 mask described in the module docstring."""
    if mask_type not in MASK_TYPES:
        raise ValueError(f"mask type {mask_type!r} is not one of {MASK_TYPES}")
    kh, kw = kernel_size
    if kh % 2 == 0 or kw % 2 == 0:
        raise ValueError(f"masked kernels need odd sizes so that the centre is a pixel; got {kh}x{kw}")
    ci, cj = kernel_centre(kh, kw)
    mask = torch.zeros(len(out_groups), len(in_groups), kh, kw)
    mask[:, :, :ci, :] = 1.0  # every row above the centre
    mask[:, :, ci, :cj] = 1.0  # left of the centre in its row
    if mask_type == "A":
        centre = out_groups[:, None] > in_groups[None, :]
    else:
        centre = out_groups[:, None] >= in_groups[None, :]
    mask[:, :, ci, cj] = centre.to(mask.dtype)
    return mask


class MaskedConv2d(nn.Conv2d):
    """A ``Conv2d`` whose weight is multiplied by a fixed causal mask in every forward pass.

    ``in_groups`` / ``out_groups`` give the colour group of each input / output channel
    (see :func:`channel_groups`). Padding keeps the spatial size ("same" for odd kernels).
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int | tuple[int, int],
        mask_type: str,
        in_groups: torch.Tensor,
        out_groups: torch.Tensor,
        bias: bool = True,
    ):
        kh, kw = (kernel_size, kernel_size) if isinstance(kernel_size, int) else kernel_size
        if len(in_groups) != in_channels or len(out_groups) != out_channels:
            raise ValueError("group vectors must have one entry per channel")
        super().__init__(in_channels, out_channels, (kh, kw), padding=kernel_centre(kh, kw), bias=bias)
        self.mask_type = mask_type
        self.register_buffer("mask", build_mask(mask_type, (kh, kw), in_groups, out_groups), persistent=False)

    def masked_weight(self) -> torch.Tensor:
        return self.weight * self.mask

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.kernel_size == (1, 1):
            return _channel_products(self.bias, [x], [self.masked_weight().flatten(1)])
        # Only the kernel's part above and left of the centre can be non-zero (rules.kernel_extent; every kernel but a
        # 1x1 has such a part to cut), so only that part is multiplied: the "same" padding loses, below and to the
        # right, what the cut rows and columns would have read.
        rows, columns = kernel_extent(*self.kernel_size)
        (height, width), (top, side) = self.kernel_size, self.padding
        padded = F.pad(x, (side, side - (width - columns), top, top - (height - rows)))
        # Channels last, as the stream is: an input of one channel is both layouts at once and would otherwise take the
        # usual one, whose convolution runs two to four times slower here, forward and backward (docs/performance.md).
        padded = padded.to(memory_format=torch.channels_last)
        return F.conv2d(padded, self.masked_weight()[:, :, :rows, :columns], self.bias)

    def extra_repr(self) -> str:
        return super().extra_repr() + f", mask={self.mask_type}"


class _SumOfProducts(torch.autograd.Function):
    """bias + sum_i x_i w_i^T over (N, in_i) rows, accumulated in one output (no sum of separate products)."""

    @staticmethod
    def forward(ctx, bias: torch.Tensor, *rows_and_weights: torch.Tensor) -> torch.Tensor:
        rows, weights = rows_and_weights[0::2], rows_and_weights[1::2]
        out = torch.addmm(bias, rows[0], weights[0].t())
        for x, weight in zip(rows[1:], weights[1:]):
            torch.addmm(out, x, weight.t(), out=out)  # in place, as addmm_, in a form torch's flop counter sees
        ctx.save_for_backward(*rows_and_weights)
        return out

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        grad = grad.contiguous()
        pairs = ctx.saved_tensors
        grads = [grad.sum(0) if ctx.needs_input_grad[0] else None]
        for k, (x, weight) in enumerate(zip(pairs[0::2], pairs[1::2])):
            grads.append(grad @ weight if ctx.needs_input_grad[1 + 2 * k] else None)
            grads.append(grad.t() @ x if ctx.needs_input_grad[2 + 2 * k] else None)
        return tuple(grads)


def sum_of_pointwise(convs, maps: list[torch.Tensor]) -> torch.Tensor:
    """sum_i convs[i](maps[i]) for masked 1x1 convolutions with biases, as one product accumulating in place.

    The same sum as adding the convolutions' outputs, without a copy of each bias, a sum of maps per term, or a
    bias gradient per term. Channels last in memory, as :class:`MaskedConv2d`'s 1x1 path answers.
    """
    if any(conv.kernel_size != (1, 1) or conv.bias is None for conv in convs) or len(convs) != len(maps) or not convs:
        raise ValueError("sum_of_pointwise takes as many maps as 1x1 masked convolutions with biases, at least one")
    bias = torch.stack([conv.bias for conv in convs]).sum(0)
    return _channel_products(bias, maps, [conv.masked_weight().flatten(1) for conv in convs])


def _channel_products(bias: torch.Tensor | None, maps: list[torch.Tensor], weights: list[torch.Tensor]) -> torch.Tensor:
    """bias + sum_i of the 1x1 products of maps[i] (B, in_i, H, W) with weights[i] (out, in_i) -> (B, out, H, W).

    The native products where they run (:mod:`.native_pointwise`); else torch's: one large product over the channels
    for one map (forward, and two backward: faster than a 1x1 convolution), one accumulating in place for several.
    Channels last in memory.
    """
    batch, _, height, width = maps[0].shape
    rows = [x.permute(0, 2, 3, 1).reshape(-1, x.shape[1]) for x in maps]  # (B*H*W, in_i)
    if native_products_run([*rows, *weights, *([] if bias is None else [bias])], weights[0].shape[0]):
        out = pointwise_products(bias, rows, weights)
    elif len(rows) == 1:
        out = F.linear(rows[0], weights[0], bias)
    else:
        out = _SumOfProducts.apply(bias, *[tensor for pair in zip(rows, weights) for tensor in pair])
    return out.view(batch, height, width, -1).permute(0, 3, 1, 2)  # (B*H*W, out) -> (B, out, H, W), channels last
