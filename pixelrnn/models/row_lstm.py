"""Row LSTM network (paper section 3.1, Table 1, Figure 4 centre, Figure 5 middle).

7x7 mask-A convolution, then ``layers`` residual blocks around a Row LSTM layer whose
input-to-state convolution is 1 x k with mask B (k = 3, "3 x 1" in the paper's width-first
notation) and whose state-to-state convolution is 1 x k unmasked over the previous row; a
1x1 mask-B convolution takes the h states back to 2h maps and the block input is added.
Skip connections and the output stack are shared with the other networks. The dependency
field of a pixel is the triangle above it plus its left neighbours: the Row LSTM cannot see
the whole available context. Deviation: see ``pixelrnn.layers.lstm`` (initial state).
"""

from __future__ import annotations

from ..layers.lstm import RowLSTM, LSTMResidualBlock
from .base import PixelModel, register_block
from .description import Block
from .registry import register


@register_block("row_lstm")
def row_lstm_block(block: Block, image_channels: int) -> LSTMResidualBlock:
    """The block's branch: the LSTM layer and its 1x1 output convolution (the residual sum: the description's walk)."""
    return LSTMResidualBlock(RowLSTM(block.maps, block.hidden, image_channels, block.kernel), block.hidden, image_channels)


@register("row_lstm")
class RowLSTMNetwork(PixelModel):
    """Blocks of kind ``row_lstm`` (:func:`pixelrnn.models.description.describe`)."""
