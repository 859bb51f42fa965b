"""PixelCNN (paper section 3.5, Table 1, Figure 5 left).

7x7 mask-A convolution, then ``layers`` residual blocks, each::

    x (2h) -> ReLU -> 1x1 mask B (2h -> h) -> ReLU -> kxk mask B (h -> h)
           -> ReLU -> 1x1 mask B (h -> 2h)          (the residual sum: models/description.py)

(the 3x3 convolution of Table 1 with k = 3), learnable skip connections to the output and
the shared output stack. The receptive field is bounded and grows with depth (Figure 4 left):
it is the union of the masked kernels' fields, so it misses the region to the right of the
pixel above that the LSTM networks reach. No deviation from the paper.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..layers.masked_conv import MaskedConv2d, channel_groups
from .base import PixelModel, register_block
from .description import Block
from .registry import register


@register_block("pixelcnn")
class PixelCNNBlock(nn.Module):
    """The block's branch; the residual stream adds it (:func:`pixelrnn.models.description.walk`)."""

    def __init__(self, block: Block, image_channels: int):
        super().__init__()
        hidden, kernel = block.hidden, block.kernel
        wide, narrow = channel_groups(block.maps, image_channels), channel_groups(hidden, image_channels)
        self.reduce = MaskedConv2d(block.maps, hidden, 1, "B", wide, narrow)
        self.conv = MaskedConv2d(hidden, hidden, kernel, "B", narrow, narrow)
        self.expand = MaskedConv2d(hidden, block.maps, 1, "B", narrow, wide)

    def forward(self, x, condition: torch.Tensor | None = None):
        """``condition`` (B, h, H, W), if given, biases the kxk convolution (section 3.6)."""
        y = self.conv(F.relu(self.reduce(F.relu(x))))
        if condition is not None:
            y = y + condition
        return self.expand(F.relu(y))


@register("pixelcnn")
class PixelCNN(PixelModel):
    """PixelCNN: blocks of kind ``pixelcnn`` (:func:`pixelrnn.models.description.describe`)."""
