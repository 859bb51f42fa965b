"""What a network costs: its multiply-adds per image, counted from its description.

Another executor of :func:`~pixelrnn.models.description.walk`: its values are the multiply-adds
spent so far. The count is that of the products the float network runs on an H x W image
(paper Table 1 and section 3):

- a masked k_h x k_w convolution from ``in`` to ``out`` maps costs ``in * out * k_h * k_w`` per
  position: the masked weights are multiplied as zeros, as ``F.conv2d`` does;
- a Row LSTM layer: its 1 x k input-to-state convolution (2h -> 4h) and its 1 x k state-to-state
  convolution (h -> 4h) per position;
- a Diagonal BiLSTM layer: its 1x1 input-to-state convolution (2h -> 8h, both directions) and,
  per direction, the 2x1 state-to-state product over [state above ; state to the left] (2h -> 4h);
- each block's 1x1 output convolution, each skip (2h -> 2h) and each layer of the output stack.

Biases, the gates' nonlinearities, the cell updates and the residual sums are elementwise and
not counted. A training step costs about three forward passes (the backward pass computes the
gradients of both the inputs and the weights of every product): :func:`training_multiply_adds`.
"""

from __future__ import annotations

from .description import Block, MaskedSum, NetworkDescription, walk


def _sum(layer: MaskedSum) -> int:
    return layer.in_maps * layer.out_maps * layer.kernel[0] * layer.kernel[1]


def _block(block: Block) -> int:
    maps, hidden, kernel = block.maps, block.hidden, block.kernel
    if block.kind == "pixelcnn":  # 1x1 reduce, k x k convolution, 1x1 expand
        return maps * hidden + hidden * hidden * kernel * kernel + hidden * maps
    gates, directions = block.gates, block.directions
    if block.kind == "row_lstm":  # input-to-state and state-to-state, 1 x k each, then the output 1x1
        return maps * gates * kernel + hidden * gates * kernel + hidden * maps
    # Diagonal BiLSTM: both directions' input-to-state 1x1, each direction's 2x1 state-to-state, the output 1x1
    return maps * directions * gates + directions * (2 * hidden) * gates + hidden * maps


class _Counter:
    """The walk's executor: each value is the multiply-adds per position spent up to that point."""

    def __init__(self, network: NetworkDescription):
        self.network = network

    def input(self) -> int:
        return _sum(self.network.input)

    def block(self, index: int, block: Block, stream: int) -> int:
        return stream + _block(block)

    def stream(self, index: int, branch: int, previous: int | None) -> int:
        return branch  # the residual sum is elementwise; the branch's count already includes what it read

    def skip_sum(self, streams: list[int]) -> int:
        return streams[-1] + len(streams) * _sum(self.network.skip_layer)

    def output(self, index: int, layer: MaskedSum, features: int) -> int:
        return features + _sum(layer)


def multiply_adds(network: NetworkDescription, height: int, width: int) -> int:
    """Multiply-adds of one forward pass of ``network`` over one ``height`` x ``width`` image."""
    return walk(network, _Counter(network)) * height * width


def training_multiply_adds(network: NetworkDescription, height: int, width: int) -> int:
    """Multiply-adds of one training step per image: the forward pass and the backward pass (twice the forward)."""
    return 3 * multiply_adds(network, height, width)
