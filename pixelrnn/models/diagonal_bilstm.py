"""Diagonal BiLSTM network (paper section 3.2, Table 1, Figures 3, 4 right and 5 right).

7x7 mask-A convolution, then ``layers`` residual blocks around a Diagonal BiLSTM layer:
input-to-state 1x1 mask B, state-to-state 2x1 unmasked over the previous column of the
skewed map, two directions, the right-to-left one shifted down a row before the sum; a 1x1
mask-B convolution back to 2h and the residual addition. The dependency field is the whole
available context, with one exception inherent to the design, at any depth: the last
sub-pixel of a row reaches the next row only through the mask-A input convolution, i.e. only
at its last ``input_kernel // 2 + 1`` columns (and every later row). Deviations: see ``pixelrnn.layers.lstm`` (initial state, padding of the scan).
"""

from __future__ import annotations

from ..layers.lstm import DiagonalBiLSTM, LSTMResidualBlock
from .base import PixelModel, register_block
from .description import Block
from .registry import register


@register_block("diagonal_bilstm")
def diagonal_bilstm_block(block: Block, image_channels: int) -> LSTMResidualBlock:
    """The block's branch: the LSTM layer and its 1x1 output convolution (the residual sum: the description's walk)."""
    return LSTMResidualBlock(DiagonalBiLSTM(block.maps, block.hidden, image_channels), block.hidden, image_channels)


@register("diagonal_bilstm")
class DiagonalBiLSTMNetwork(PixelModel):
    """Blocks of kind ``diagonal_bilstm`` (:func:`pixelrnn.models.description.describe`)."""
