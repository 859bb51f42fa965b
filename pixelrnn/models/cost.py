"""What a network costs: its multiply-adds per image, counted from its description.

Another executor of :func:`~pixelrnn.models.description.walk`: its values are the products run so
far, each as (inputs, outputs) per position (:func:`products`). The count is that of the products
the float network runs on an H x W image (paper Table 1 and section 3):

- a masked k_h x k_w convolution from ``in`` to ``out`` maps costs ``in * out * rows * columns``
  per position, over the part of the kernel its mask can leave non-zero
  (:func:`~pixelrnn.layers.rules.kernel_extent`: the rows above the centre and the centre row, the
  left half and the centre of a one-row kernel), the part ``MaskedConv2d`` multiplies; the weights
  masked by colour group inside that part are multiplied as zeros;
- a Row LSTM layer: its 1 x k input-to-state convolution (2h -> 4h, the k // 2 + 1 taps up to the
  centre) and its 1 x k state-to-state convolution over the row above (h -> 4h, every tap) per position;
- a Diagonal BiLSTM layer: its 1x1 input-to-state convolution (2h -> 8h, both directions) and,
  per direction, the 2x1 state-to-state product over [state above ; state to the left] (2h -> 4h);
- each block's 1x1 output convolution, each skip (2h -> 2h) and each layer of the output stack.

Biases, the gates' nonlinearities, the cell updates and the residual sums are elementwise and
not counted. A training step costs about three forward passes (the backward pass computes the
gradients of both the inputs and the weights of every product): :func:`training_multiply_adds`.
"""

from __future__ import annotations

from ..layers.rules import kernel_extent
from .description import Block, MaskedSum, NetworkDescription, walk


def products_of_sum(layer: MaskedSum) -> tuple[int, int]:
    """(inputs, outputs) of a masked convolution's product per position: its input maps times its
    kernel's taps within :func:`~pixelrnn.layers.rules.kernel_extent`, and its output maps."""
    rows, columns = kernel_extent(*layer.kernel)
    return layer.in_maps * rows * columns, layer.out_maps


def _block(block: Block) -> list[tuple[int, int]]:
    maps, hidden, kernel = block.maps, block.hidden, block.kernel
    if block.kind == "pixelcnn":  # 1x1 reduce, masked k x k convolution, 1x1 expand
        rows, columns = kernel_extent(kernel, kernel)
        return [(maps, hidden), (hidden * rows * columns, hidden), (hidden, maps)]
    gates, directions = block.gates, block.directions
    if block.kind == "row_lstm":  # masked input-to-state and full state-to-state, 1 x k each, then the output 1x1
        return [(maps * kernel_extent(1, kernel)[1], gates), (hidden * kernel, gates), (hidden, maps)]
    # Diagonal BiLSTM: both directions' input-to-state 1x1, each direction's 2x1 state-to-state, the output 1x1
    return [(maps, directions * gates)] + [(2 * hidden, gates)] * directions + [(hidden, maps)]


class _Products:
    """The walk's executor: each value is the list of products (inputs, outputs) per position up to that point."""

    def __init__(self, network: NetworkDescription):
        self.network = network

    def input(self) -> list[tuple[int, int]]:
        return [products_of_sum(self.network.input)]

    def block(self, index: int, block: Block, stream: list) -> list[tuple[int, int]]:
        return stream + _block(block)

    def stream(self, index: int, branch: list, previous: list | None) -> list[tuple[int, int]]:
        return branch  # the residual sum is elementwise; the branch's list already holds what it read

    def skip_sum(self, streams: list[list]) -> list[tuple[int, int]]:
        return streams[-1] + len(streams) * [products_of_sum(self.network.skip_layer)]

    def output(self, index: int, layer: MaskedSum, features: list) -> list[tuple[int, int]]:
        return features + [products_of_sum(layer)]


def products(network: NetworkDescription) -> list[tuple[int, int]]:
    """The products of one forward pass at one position, in the order they run: (inputs, outputs) each.

    A convolution's inputs are its input maps times the taps of the part of its kernel that its
    mask can leave non-zero; a product costs inputs x outputs multiply-adds per position.
    """
    return walk(network, _Products(network))


class _SkipTerms(_Products):
    """The walk's products, remembering how many streams the skips sum."""

    terms = 0

    def skip_sum(self, streams: list[list]) -> list[tuple[int, int]]:
        self.terms = len(streams)
        return super().skip_sum(streams)


def skip_terms(network: NetworkDescription) -> int:
    """How many streams the skips sum, as the walk hands them to one product (0 where the network has no skips)."""
    counter = _SkipTerms(network)
    walk(network, counter)
    return counter.terms


def multiply_adds(network: NetworkDescription, height: int, width: int) -> int:
    """Multiply-adds of one forward pass of ``network`` over one ``height`` x ``width`` image."""
    return sum(inputs * outputs for inputs, outputs in products(network)) * height * width


def training_multiply_adds(network: NetworkDescription, height: int, width: int) -> int:
    """Multiply-adds of one training step per image: the forward pass and the backward pass (twice the forward)."""
    return 3 * multiply_adds(network, height, width)
