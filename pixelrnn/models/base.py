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
from ..layers.masked_conv import MaskedConv2d, channel_groups, sum_of_pointwise
from ..utils import bits_per_dim
from .description import Block, MaskedSum, NetworkDescription, class_entries, describe, walk
from .pretrained import Pretrained

#: The module of each kind of block, entered by the model files (``register_block``).
BLOCK_MODULES: dict[str, type[nn.Module]] = {}


def register_block(kind: str):
    """Class decorator: the module that builds blocks of ``kind`` from a :class:`Block` and the colour count."""
    def enter(cls: type[nn.Module]) -> type[nn.Module]:
        BLOCK_MODULES[kind] = cls
        return cls
    return enter


def masked_conv(layer: MaskedSum, channels: int) -> MaskedConv2d:
    """The float module of a described masked sum, colour-grouped over ``channels``."""
    return MaskedConv2d(layer.in_maps, layer.out_maps, layer.kernel, layer.mask,
                        channel_groups(layer.in_maps, channels), channel_groups(layer.out_maps, channels))


def subpixel_nll(logits: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """Nats of every sub-pixel (B, C, H, W) from logits (B, C, K, H, W) and integers x (B, C, H, W)."""
    if logits.dtype not in (torch.float32, torch.float64):  # half-precision logits: the softmax in float32
        logits = logits.float()
    return F.cross_entropy(logits.transpose(1, 2), x.long(), reduction="none")


def nll_from_logits(logits: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """Nats per image (B,) from logits (B, C, K, H, W) and the observed integers x (B, C, H, W)."""
    return subpixel_nll(logits, x).flatten(1).sum(1)


class OutputStack(nn.Module):
    """ReLU + 1x1 mask-B convolutions, then C*K logits grouped by colour (Table 1); the layers of ``output``."""

    def __init__(self, output: tuple[MaskedSum, ...], image_channels: int):
        super().__init__()
        self.convs = nn.ModuleList([masked_conv(layer, image_channels) for layer in output])

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
        #: What every executor reads: the layers in order and their wiring (:mod:`.description`).
        self.description: NetworkDescription = describe(config)
        network, channels = self.description, config.channels
        self.input_conv = masked_conv(network.input, channels)
        self.blocks = nn.ModuleList([BLOCK_MODULES[block.kind](block, channels) for block in network.blocks])
        self.skips = nn.ModuleList([masked_conv(network.skip_layer, channels) for _ in self.blocks] if network.skip else [])
        self.output_stack = OutputStack(network.output, channels)
        # Multi-scale conditioning (section 3.6): per layer, a 1x1 unmasked map from the c-channel
        # conditioning map to a bias of that layer's input-to-state map. Unmasked: the condition
        # is given, not generated, so any position of it may be seen.
        self.condition_maps = nn.ModuleList(
            [nn.Conv2d(config.condition_channels, block.condition_width, 1) for block in network.blocks]
            if config.condition_channels else []
        )
        # Class conditioning: a learned vector per class at every block's condition entry and after
        # every layer of the output stack (zero at first: the network starts unconditional).
        block_widths, output_widths = class_entries(network)
        self.block_class_vectors = nn.ModuleList([_class_vectors(config.classes, width) for width in block_widths])
        self.output_class_vectors = nn.ModuleList([_class_vectors(config.classes, width) for width in output_widths])

    # ----------------------------------------------------------------- conditioning
    def check_labels(self, labels: torch.Tensor | None, batch: int) -> None:
        """Labels (batch,) integers in [0, classes) for a class-conditional network, None otherwise (one-line errors)."""
        classes = self.config.classes
        if labels is None:
            if classes:
                raise ValueError(f"this network is class-conditional: give labels, one per image, in [0, {classes})")
            return
        if not classes:
            raise ValueError("this network is unconditional; it takes no labels (its configuration has classes = 0)")
        if not isinstance(labels, torch.Tensor) or labels.dtype.is_floating_point or labels.dtype == torch.bool:
            raise ValueError(f"labels are an integer tensor of class indices in [0, {classes}); got {type(labels).__name__}"
                             f"{'' if not isinstance(labels, torch.Tensor) else ' of dtype ' + str(labels.dtype)}")
        if labels.shape != (batch,):
            raise ValueError(f"expected one label per image, shape ({batch},); got {tuple(labels.shape)}")
        if labels.numel() and not torch.compiler.is_compiling() and (int(labels.min()) < 0 or int(labels.max()) >= classes):
            raise ValueError(f"labels must lie in [0, {classes}); got min {int(labels.min())}, max {int(labels.max())}")

    def condition_biases(self, condition: torch.Tensor | None, labels: torch.Tensor | None):
        """What conditioning adds: per block, the bias at its condition entry, (B, width, H, W) or (B, width, 1, 1)
        for a class vector alone; per output layer, a (B, width) class vector. Lists of None where nothing is added.

        The one place where the conditioning sources meet; every float executor reads it.
        """
        blocks: list = [None] * len(self.blocks)
        if condition is not None:
            blocks = [conv(condition) for conv in self.condition_maps]
        outputs: list = [None] * len(self.output_stack.convs)
        if labels is not None:
            labels = labels.to(self.device)
            vectors = [table(labels)[:, :, None, None] for table in self.block_class_vectors]  # (B, width, 1, 1)
            blocks = [vector if bias is None else bias + vector for bias, vector in zip(blocks, vectors)]
            outputs = [table(labels) for table in self.output_class_vectors]
        return blocks, outputs

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
        # Under torch.compile the values are not read (a graph break per call): the eager call checks them.
        if x.numel() and not torch.compiler.is_compiling() and (int(x.min()) < 0 or int(x.max()) >= cfg.levels):
            raise ValueError(f"pixel values must lie in [0, {cfg.levels}); got min {int(x.min())}, max {int(x.max())}")

    def logits_from_scaled(self, scaled: torch.Tensor, condition: torch.Tensor | None = None,
                           labels: torch.Tensor | None = None) -> torch.Tensor:
        """Logits (B, C, K, H, W) from already scaled inputs; differentiable in the input.

        ``condition`` (B, c, H, W) is the conditioning map of a multi-scale network's
        conditional stage (section 3.6); unconditional networks take none. ``labels`` (B,) are
        the classes of a class-conditional network.
        """
        if (condition is None) != (not self.config.condition_channels):
            raise ValueError(f"this network takes a {self.config.condition_channels}-channel condition map" if condition is None
                             else "this network is unconditional; it takes no condition map")
        batch, channels, height, width = scaled.shape
        self.check_labels(labels, batch)
        logits = walk(self.description, _FloatPass(self, *self.condition_biases(condition, labels)), scaled)  # (B, C*K, H, W)
        return logits.view(batch, channels, self.config.levels, height, width)

    def forward(self, x: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        """Logits (B, C, K, H, W) of p(x_{c,i,j} = k | earlier sub-pixels[, class]) for integer images x."""
        self.check_input(x)
        return self.logits_from_scaled(self.scale(x), labels=labels)

    def nll(self, x: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        """Negative log-likelihood of each image in nats, shape (B,); -log p(x | labels) for a class-conditional network."""
        return nll_from_logits(self(x, labels), x)

    def bits_per_dim(self, x: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        return bits_per_dim(self.nll(x, labels), x[0].numel())


class _FloatPass:
    """The float executor of :func:`~.description.walk`: the network's modules on whole maps."""

    def __init__(self, model: PixelModel, block_biases: list, output_biases: list):
        self.model, self.block_biases, self.output_biases = model, block_biases, output_biases

    def input(self, scaled: torch.Tensor) -> torch.Tensor:
        # Channels last from here on: the convolutions keep it, the 1x1 products and the scans read it in place, and every
        # residual and skip sum adds two maps of the same layout (a sum across layouts, or a conversion, is a copy).
        # MaskedConv2d answers channels last (tests/models/test_networks.py checks every block's input).
        return self.model.input_conv(scaled)

    def block(self, index: int, block: Block, stream: torch.Tensor) -> torch.Tensor:
        module, bias = self.model.blocks[index], self.block_biases[index]
        return module(stream) if bias is None else module(stream, bias)

    def stream(self, index: int, branch: torch.Tensor, previous: torch.Tensor | None) -> torch.Tensor:
        return branch if previous is None else previous + branch

    def skip_sum(self, streams: list[torch.Tensor]) -> torch.Tensor:
        return sum_of_pointwise(self.model.skips, streams)

    def output(self, index: int, layer: MaskedSum, features: torch.Tensor) -> torch.Tensor:
        out, bias = self.model.output_stack.convs[index](F.relu(features)), self.output_biases[index]
        return out if bias is None else out + bias[:, :, None, None]


def _class_vectors(classes: int, width: int) -> nn.Embedding:
    table = nn.Embedding(classes, width)
    nn.init.zeros_(table.weight)
    return table
