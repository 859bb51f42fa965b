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

from ..layers.lstm import LSTMResidualBlock, RowLSTM
from .base import PixelModel
from .registry import register


@register("row_lstm")
class RowLSTMNetwork(PixelModel):
    def build_blocks(self):
        cfg = self.config
        return [
            LSTMResidualBlock(RowLSTM(2 * cfg.hidden, cfg.hidden, cfg.channels, cfg.row_kernel), cfg.hidden, cfg.channels, cfg.residual)
            for _ in range(cfg.layers)
        ]
