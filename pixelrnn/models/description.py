"""Each network of section 3, described once: its layers in order and their wiring.

A :class:`NetworkDescription` is built from a :class:`~pixelrnn.config.ModelConfig` by
:func:`describe` and read by every executor: the float network (:mod:`pixelrnn.models`), the
incremental engines (:mod:`pixelrnn.sampling`, reference and native) and the integer coding model
(:mod:`pixelrnn.codec`, batched, numpy and native). Executors implement kinds of operation (a
masked sum, a kind of block, a residual sum, the skip sum, an output layer); :func:`walk` is the
one statement of how a network strings them together (paper Table 1, Figure 5)::

    s_0 = input(x)                                   k x k mask A, C -> 2h
    s_l = s_{l-1} + block_l(s_{l-1})                 (residual; block_l(s_{l-1}) alone without)
    z   = sum_l skip_l(s_l)                          (1x1 mask B each; z = s_L without skips)
    logits = out_n(relu(... out_1(relu(z))))         ReLU + 1x1 mask B, the last one to C*K

Blocks (section 3): ``pixelcnn`` (ReLU, 1x1 2h -> h, ReLU, k x k mask B, ReLU, 1x1 h -> 2h),
``row_lstm`` and ``diagonal_bilstm`` (the LSTM layer, then a 1x1 mask B h -> 2h).

Conditioning enters each block at one place, part of the block's description
(``Block.condition_entry``, ``Block.condition_width``): a multi-scale stage's map (section 3.6)
and a class-conditional network's class vector both add there. A class vector is also added to
the output of every layer of the output stack (:func:`class_entries` lists them all).
The rules inside the layers (mask geometry, gate layout, the diagonal walk, the shifted
right-to-left direction) are :mod:`pixelrnn.layers.rules`.

A description is plain data: an executor given a description that no configuration produces
(say residual connections on some blocks only) computes that network, which is how the tests
check that each executor reads the description rather than restating it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, Sequence

from ..config import ModelConfig
from ..layers.rules import GATES

#: Where each kind of block adds its conditioning bias (section 3.6).
CONDITION_ENTRIES = {"pixelcnn": "convolution", "row_lstm": "input_to_state", "diagonal_bilstm": "input_to_state"}


@dataclass(frozen=True)
class MaskedSum:
    """A masked convolution: ``in_maps`` -> ``out_maps``, ``kernel`` (kh, kw), mask ``A`` or ``B``, colour-grouped."""

    in_maps: int
    out_maps: int
    kernel: tuple[int, int]
    mask: str


@dataclass(frozen=True)
class Block:
    """One residual block: its kind, its widths, whether the residual stream adds it, and its conditioning entry.

    ``kind`` is the architecture's (section 3.1 ``row_lstm``, 3.2 ``diagonal_bilstm``, 3.5
    ``pixelcnn``). ``kernel``: the PixelCNN's k x k convolution or the Row LSTM's 1 x k kernels (1
    for the Diagonal BiLSTM).
    """

    kind: str
    maps: int
    hidden: int
    kernel: int
    residual: bool

    @property
    def condition_entry(self) -> str:
        return CONDITION_ENTRIES[self.kind]

    @property
    def gates(self) -> int:
        """Pre-activations of the block's LSTM layer per direction (4h, :data:`~pixelrnn.layers.rules.GATES`), 0 for a convolution block."""
        return 0 if self.kind == "pixelcnn" else len(GATES) * self.hidden

    @property
    def directions(self) -> int:
        return 2 if self.kind == "diagonal_bilstm" else 1

    @property
    def condition_width(self) -> int:
        """Maps of the conditioning bias added at ``condition_entry``: the k x k convolution's h, or every direction's gates."""
        return self.hidden if self.kind == "pixelcnn" else self.directions * self.gates


@dataclass(frozen=True)
class NetworkDescription:
    """A network: input convolution, blocks in order, skips, output stack (module docstring)."""

    arch: str
    channels: int
    levels: int
    input: MaskedSum
    blocks: tuple[Block, ...]
    skip: bool
    output: tuple[MaskedSum, ...]
    condition_channels: int = 0
    classes: int = 0

    @property
    def maps(self) -> int:
        """Width of the residual stream (2h)."""
        return self.input.out_maps

    @property
    def skip_layer(self) -> MaskedSum:
        """Each block's skip connection to the output: 1x1 mask B over the stream (present where ``skip``)."""
        return MaskedSum(self.maps, self.maps, (1, 1), "B")


def _block(config: ModelConfig) -> Block:
    kernel = {"pixelcnn": config.conv_kernel, "row_lstm": config.row_kernel, "diagonal_bilstm": 1}[config.arch]
    return Block(config.arch, 2 * config.hidden, config.hidden, kernel, config.residual)


def describe(config: ModelConfig) -> NetworkDescription:
    """The description of the single-scale network ``config`` configures."""
    maps, levels, channels = 2 * config.hidden, config.levels, config.channels
    output, width = [], maps
    for _ in range(config.output_layers):
        output.append(MaskedSum(width, config.output_hidden, (1, 1), "B"))
        width = config.output_hidden
    # The logits: channel c's K logits are maps c*K .. c*K + K - 1, colour group c.
    output.append(MaskedSum(width, channels * levels, (1, 1), "B"))
    return NetworkDescription(
        arch=config.arch, channels=channels, levels=levels,
        input=MaskedSum(channels, maps, (config.input_kernel, config.input_kernel), "A"),
        blocks=tuple(_block(config) for _ in range(config.layers)), skip=config.skip, output=tuple(output),
        condition_channels=config.condition_channels, classes=config.classes)


def class_entries(network: NetworkDescription) -> tuple[list[int], list[int]]:
    """Widths of a class-conditional network's class vectors: one per block (at its condition
    entry), one per layer of the output stack (added to its output). Empty for ``classes == 0``."""
    if not network.classes:
        return [], []
    return [block.condition_width for block in network.blocks], [layer.out_maps for layer in network.output]


class Executor(Protocol):
    """The kinds of operation :func:`walk` asks of an executor; each returns the executor's own values."""

    def input(self, *inputs): ...
    def block(self, index: int, block: Block, stream): ...
    def stream(self, index: int, branch, previous): ...
    def skip_sum(self, streams: Sequence): ...
    def output(self, index: int, layer: MaskedSum, features): ...


def walk(network: NetworkDescription, ops: Executor, *inputs):
    """Run ``network`` on an executor: the one statement of the residual, skip and output wiring.

    ``ops.stream(index, branch, previous)`` gets ``previous`` (the stream the block read) where the
    block is residual and None where it is not; ``ops.output`` is a ReLU then the layer's sum.
    """
    stream = ops.input(*inputs)
    streams = []
    for index, block in enumerate(network.blocks):
        branch = ops.block(index, block, stream)
        stream = ops.stream(index, branch, stream if block.residual else None)
        streams.append(stream)
    features = ops.skip_sum(streams) if network.skip else stream
    for index, layer in enumerate(network.output):
        features = ops.output(index, layer, features)
    return features
