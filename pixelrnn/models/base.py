"""The probabilistic base shared by every network (paper sections 2 and 3.4, Table 1).

p(x) = prod_i p(x_i,R | x_<i) p(x_i,G | x_<i, x_i,R) p(x_i,B | x_<i, x_i,R, x_i,G)   (eq. 1-2)

Each factor is a softmax over ``levels`` discrete values. A network is:

    x (B, C, H, W) integers  --scale to [-1, 1]-->  7x7 mask-A conv (C -> 2h)
      --> residual blocks (2h -> 2h), each optionally feeding a learnable 1x1 mask-B skip
      --> output stack: [ReLU, 1x1 mask-B conv] x output_layers, ReLU, 1x1 mask-B conv to C*K
      --> logits (B, C, K, H, W), channel c's K logits from colour group c only.

Subclasses provide the residual blocks; this class owns scaling, the output stack and
``nll``. Generation (sampling, completion) lives in :mod:`pixelrnn.sampling`.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..config import ModelConfig
from ..layers.masked_conv import MaskedConv2d, channel_groups
from ..utils import bits_per_dim
from .pretrained import Pretrained


def subpixel_nll(logits: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """Nats of every sub-pixel (B, C, H, W) from logits (B, C, K, H, W) and integers x (B, C, H, W)."""
    if logits.dtype not in (torch.float32, torch.float64):  # half-precision logits: the softmax in float32
        logits = logits.float()
    return F.cross_entropy(logits.transpose(1, 2), x.long(), reduction="none")


def nll_from_logits(logits: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """Nats per image (B,) from logits (B, C, K, H, W) and the observed integers x (B, C, H, W)."""
    return subpixel_nll(logits, x).flatten(1).sum(1)


class OutputStack(nn.Module):
    """ReLU + 1x1 mask-B convolutions, then C*K logits grouped by colour (Table 1)."""

    def __init__(self, in_channels: int, width: int, layers: int, image_channels: int, levels: int):
        super().__init__()
        convs = []
        previous = in_channels
        for _ in range(layers):
            convs.append(MaskedConv2d(previous, width, 1, "B", channel_groups(previous, image_channels), channel_groups(width, image_channels)))
            previous = width
        # Logit channel c*K + k belongs to colour group c: contiguous groups of K.
        convs.append(MaskedConv2d(previous, image_channels * levels, 1, "B", channel_groups(previous, image_channels), channel_groups(image_channels * levels, image_channels)))
        self.convs = nn.ModuleList(convs)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for conv in self.convs:
            x = conv(F.relu(x))
        return x


class PixelModel(nn.Module, Pretrained):
    """Base class: an exact-likelihood autoregressive model over discrete sub-pixels; saved and loaded with
    ``save_pretrained``/``from_pretrained``."""

    def __init__(self, config: ModelConfig):
        super().__init__()
        self.config = config
        channels, maps = config.channels, 2 * config.hidden
        self.input_conv = MaskedConv2d(
            channels, maps, config.input_kernel, "A", channel_groups(channels, channels), channel_groups(maps, channels)
        )
        self.blocks = nn.ModuleList(self.build_blocks())
        groups = channel_groups(maps, channels)
        self.skips = nn.ModuleList(
            [MaskedConv2d(maps, maps, 1, "B", groups, groups) for _ in self.blocks] if config.skip else []
        )
        self.output_stack = OutputStack(maps, config.output_hidden, config.output_layers, channels, config.levels)
        # Multi-scale conditioning (section 3.6): per layer, a 1x1 unmasked map from the c-channel
        # conditioning map to a bias of that layer's input-to-state map. Unmasked: the condition
        # is given, not generated, so any position of it may be seen.
        self.condition_maps = nn.ModuleList(
            [nn.Conv2d(config.condition_channels, block.condition_width, 1) for block in self.blocks]
            if config.condition_channels else []
        )

    def build_blocks(self) -> list[nn.Module]:
        raise NotImplementedError

    # ----------------------------------------------------------------- forward pass
    @property
    def dtype(self) -> torch.dtype:
        return self.input_conv.weight.dtype

    @property
    def device(self) -> torch.device:
        return self.input_conv.weight.device

    def scale(self, x: torch.Tensor) -> torch.Tensor:
        """Integers in [0, K) to floats in [-1, 1] (the paper's 'scaling and centring')."""
        return x.to(self.dtype) * (2.0 / (self.config.levels - 1)) - 1.0

    def check_input(self, x: torch.Tensor) -> None:
        cfg = self.config
        if x.dim() != 4 or x.shape[1] != cfg.channels:
            raise ValueError(f"expected images of shape (batch, {cfg.channels}, height, width); got {tuple(x.shape)}")
        if x.dtype.is_floating_point or x.dtype == torch.bool:
            raise ValueError(f"expected an integer tensor of values in [0, {cfg.levels}); got dtype {x.dtype}")
        if x.numel() and (int(x.min()) < 0 or int(x.max()) >= cfg.levels):
            raise ValueError(f"pixel values must lie in [0, {cfg.levels}); got min {int(x.min())}, max {int(x.max())}")

    def features(self, scaled: torch.Tensor, condition: torch.Tensor | None = None) -> torch.Tensor:
        """Input conv and residual blocks, summed through the skip connections: (B, 2h, H, W)."""
        if (condition is None) != (not self.config.condition_channels):
            raise ValueError(f"this network takes a {self.config.condition_channels}-channel condition map" if condition is None
                             else "this network is unconditional; it takes no condition map")
        y = self.input_conv(scaled)
        skip_sum = None
        for index, block in enumerate(self.blocks):
            y = block(y) if condition is None else block(y, self.condition_maps[index](condition))
            if self.config.skip:
                contribution = self.skips[index](y)
                skip_sum = contribution if skip_sum is None else skip_sum + contribution
        return skip_sum if self.config.skip else y

    def logits_from_scaled(self, scaled: torch.Tensor, condition: torch.Tensor | None = None) -> torch.Tensor:
        """Logits (B, C, K, H, W) from already scaled inputs; differentiable in the input.

        ``condition`` (B, c, H, W) is the conditioning map of a multi-scale network's
        conditional stage (section 3.6); unconditional networks take none.
        """
        batch, channels, height, width = scaled.shape
        logits = self.output_stack(self.features(scaled, condition))  # (B, C*K, H, W)
        return logits.view(batch, channels, self.config.levels, height, width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits (B, C, K, H, W) of p(x_{c,i,j} = k | earlier sub-pixels) for integer images x."""
        self.check_input(x)
        return self.logits_from_scaled(self.scale(x))

    def nll(self, x: torch.Tensor) -> torch.Tensor:
        """Negative log-likelihood of each image in nats, shape (B,)."""
        return nll_from_logits(self(x), x)

    def bits_per_dim(self, x: torch.Tensor) -> torch.Tensor:
        return bits_per_dim(self.nll(x), x[0].numel())
