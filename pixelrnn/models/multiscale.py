"""Multi-Scale PixelRNN (paper section 3.6, Figure 2 middle, Figure 8).

An unconditional network models an s x s image subsampled from the n x n image; a conditional
network models the n x n image given it. The conditional network is any of the three single-
scale networks whose every layer's input-to-state map is biased by a 1x1 unmasked convolution
of a c x n x n conditioning map (``ModelConfig.condition_channels``); the map comes from an
upsampling network of transposed convolutions applied to the small image.

The small image is the pixel at the top-left of every f x f block (f = n / s), so it is a
function of the large image and the likelihood is exact::

    -log p(x) = -log p_small(x[::f, ::f]) - sum over the sub-pixels NOT in x[::f, ::f] of
                 log p_large(x_i | x_<i, x[::f, ::f])

Positions fixed by the small image are not predicted a second time; sampling copies them.
NLL is reported over all n x n x C dimensions, so it compares directly with single-scale
models. ``forward`` returns the logits of both stages, as every network returns logits;
generation (small image first, then the large one around it) is in :mod:`pixelrnn.sampling`. Deviation: the paper does not say how the small image is obtained; subsampling (rather
than averaging) is what makes the factorisation above exact.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import torch
from torch import nn

from ..config import MultiScaleConfig
from ..utils import bits_per_dim
from .base import PixelModel, nll_from_logits, subpixel_nll
from .pretrained import Pretrained
from .registry import MULTISCALE, network_from_config, register


class MultiScaleLogits(NamedTuple):
    small: torch.Tensor  # (B, C, K, ceil(H/f), ceil(W/f)): p_small of the subsampled image
    large: torch.Tensor  # (B, C, K, H, W): p_large given the small image


class Upsampler(nn.Module):
    """Small image (B, C, s, s), scaled -> conditioning map (B, c, f*s, f*s).

    log2(f) transposed convolutions (kernel 4, stride 2), each followed by a ReLU, then a 3x3
    convolution. Unmasked: the whole small image is given.
    """

    def __init__(self, channels: int, maps: int, factor: int):
        super().__init__()
        layers: list[nn.Module] = []
        previous = channels
        for _ in range(int(math.log2(factor))):
            layers += [nn.ConvTranspose2d(previous, maps, 4, stride=2, padding=1), nn.ReLU()]
            previous = maps
        layers.append(nn.Conv2d(maps, maps, 3, padding=1))
        self.net = nn.Sequential(*layers)

    def forward(self, small: torch.Tensor) -> torch.Tensor:
        return self.net(small)


@register(MULTISCALE)
class MultiScalePixelRNN(nn.Module, Pretrained):
    """p(x) = p_small(x_small) p_large(x | x_small); ``forward`` returns both stages' logits."""

    def __init__(self, config: MultiScaleConfig):
        super().__init__()
        self.config = config
        self.small: PixelModel = network_from_config(config.small)
        self.large: PixelModel = network_from_config(config.large)
        self.upsample = Upsampler(config.channels, config.large.condition_channels, config.factor)

    dtype = property(lambda self: self.large.dtype)
    device = property(lambda self: self.large.device)

    def check_input(self, x: torch.Tensor) -> None:
        self.large.check_input(x)

    def check_labels(self, labels: torch.Tensor | None, batch: int) -> None:
        self.large.check_labels(labels, batch)

    def subsample(self, x: torch.Tensor) -> torch.Tensor:
        """The small image: the top-left pixel of every f x f block, (B, C, ceil(H/f), ceil(W/f))."""
        return x[:, :, :: self.config.factor, :: self.config.factor]

    def fixed_positions(self, height: int, width: int) -> torch.Tensor:
        """(H, W) bool: the positions the small image already fixes."""
        rows = torch.arange(height, device=self.device) % self.config.factor == 0
        cols = torch.arange(width, device=self.device) % self.config.factor == 0
        return rows[:, None] & cols[None, :]

    def condition(self, small: torch.Tensor, height: int, width: int) -> torch.Tensor:
        """Conditioning map (B, c, H, W) from the integer small image."""
        return self.upsample(self.small.scale(small))[:, :, :height, :width]

    def conditional_logits(self, x: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        """Logits (B, C, K, H, W) of the large image given its own subsample (and the classes ``labels``)."""
        _, _, height, width = x.shape
        return self.large.logits_from_scaled(self.large.scale(x), self.condition(self.subsample(x), height, width), labels)

    def forward(self, x: torch.Tensor, labels: torch.Tensor | None = None) -> MultiScaleLogits:
        """Logits of both stages: the small image's (B, C, K, H/f, W/f) and the large one's (B, C, K, H, W)."""
        self.check_input(x)
        return MultiScaleLogits(self.small(self.subsample(x), labels), self.conditional_logits(x, labels))

    def conditional_nll(self, x: torch.Tensor, large_logits: torch.Tensor | None = None,
                        labels: torch.Tensor | None = None) -> torch.Tensor:
        """-log p_large(x | x_small), summed over the sub-pixels the small image does not fix: (B,)."""
        logits = self.conditional_logits(x, labels) if large_logits is None else large_logits
        free = ~self.fixed_positions(x.shape[2], x.shape[3])
        return (subpixel_nll(logits, x) * free).flatten(1).sum(1)  # (B, C, H, W) -> (B,)

    def nll(self, x: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        """Nats per image (B,) over all H*W*C dimensions; -log p(x | labels) for class-conditional stages."""
        logits = self(x, labels)
        return nll_from_logits(logits.small, self.subsample(x)) + self.conditional_nll(x, logits.large)

    def bits_per_dim(self, x: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        return bits_per_dim(self.nll(x, labels), x[0].numel())
