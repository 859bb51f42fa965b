"""The incremental engine's shared part: per new sub-pixel, compute only what its value changes.

Generation is sequential (paper section 2: "the generation of an image is sequential"): the
naive sampler runs the whole network once per sub-pixel, i.e. 3·H·W full forward passes per
colour image. Every layer of the three networks is causal in raster order, so the activations
at an earlier position never change once that position's sub-pixels are fixed. The engines
here cache them and, for the next sub-pixel at (i, j), compute each layer at (i, j) only:

- masked convolutions (sections 3.4 and 3.5): a k×k mask-A/B convolution at (i, j) reads its
  input at (i, j) and at earlier positions only (rows above, columns to the left; the rows
  below and the right half of the centre row are masked). Each such layer's *input* map is
  cached and its output at (i, j) computed from the cache. 1×1 convolutions (residual
  blocks, skips, output stack) are per position.
- Row LSTM (section 3.1): the state of row i at column j needs the previous row's hidden
  states at columns j-k//2..j+k//2 (state-to-state 1×k convolution, computed for the whole
  row once the previous row is final) and the layer's input at columns j-k//2..j (the mask-B
  1×k input-to-state convolution), plus the previous row's cell at column j.
- Diagonal BiLSTM (section 3.2): with the skew of Figure 3, the left-to-right state at (i, j)
  reads the hidden states at (i-1, j) and (i, j-1) and the cell at (i, j-1); the learned
  initial state stands in for row -1 and for column -1 (``DiagonalBiLSTM.forward``). The
  right-to-left direction is the same recurrence on the mirrored map: its state at (i, j)
  reads (i-1, j) and (i, j+1), so it needs row i complete; the layer adds it shifted down one
  row. It is therefore scanned once per finished row, from the right end to the left.

Colour groups (section 3.4, eq. 2): the logits of channel c at (i, j) read the sub-pixels
c' < c of (i, j) through the colour-grouped masks. The engine recomputes the whole column at
(i, j) for every sub-pixel: features of colour group g at (i, j) are exact as soon as the
channels < g of (i, j) are known, so the column computed for channel c gives exact logits
for c (groups <= c); the groups above c are overwritten by the recomputations for c + 1, ...
The column computed for the last channel is final and is what later positions read.

Cost per sub-pixel: one position of every layer, plus one row operation per layer and per
finished row (amortised over W positions) -- instead of H·W positions. For small models the
cost is the number of tensor operations, not arithmetic, so the code keeps that number down:
a k×k convolution is split into the rows above the centre (one convolution for a whole row,
when the row starts: they are final by then) and the centre row (one matrix product per
position, whose patch is a view of the cache); the skip convolutions are one product over
the concatenated block outputs. The sums are regrouped, so the logits agree with the full
forward pass to rounding (about 1e-7 in float32, 1e-16 in float64), not bit for bit.

Interface of an engine (``make_engine(model)`` in :mod:`pixelrnn.sampling.factory`; the native engines of
:mod:`pixelrnn.sampling.native_engines` have the same)::

    engine.reset(batch, height, width)        # empty image, cursor at sub-pixel (0, 0, 0)
    logits = engine.logits(i, j, c)           # (batch, levels) for the cursor's sub-pixel
    engine.advance(i, j, c, values)           # fix it to values (batch,) ints; cursor moves on

Sub-pixels are visited in raster order (row i, column j, channel c), the order of the naive
sampler; ``logits``/``advance`` raise ``ValueError`` for any other position. ``advance``
without a ``logits`` call is teacher forcing (used for the kept rows of a completion): the
column is then computed once per pixel, when its last channel is fixed. The weights are read
at ``reset``; everything runs under ``torch.no_grad()`` on the model's device and dtype.
"""

from __future__ import annotations

import weakref

import torch

from ..models.description import Block, MaskedSum, walk
from ..models.raster_cursor import RasterCursor
from .position_sums import MaskedConvAt, Pointwise
from ..utils import torch_threads


class IncrementalEngine(RasterCursor):
    """Shared part: cursor, input image cache, mask-A input convolution, skips, output stack.

    Subclasses cache their blocks' state and implement ``_setup_blocks()``, ``_block(index,
    x, i, j)`` (the block's branch at (i, j) from its input there; ``_column`` adds the
    residual), ``_start_blocks_row(i)``
    (work once row i-1 is final) and ``_block_caches()``.
    """

    #: CPU threads inside ``compute_threads()`` (None: leave torch's setting). A step is a long
    #: chain of small products; handing each to several threads costs more than it saves for
    #: the small models (docs/sampling.md), so one thread.
    threads: int | None = 1

    def __init__(self, model):
        self.model = model
        config = model.config
        self.channels, self.levels = config.channels, config.levels
        self.batch = self.height = self.width = 0

    # ------------------------------------------------------------- public interface
    @torch.no_grad()
    def reset(self, batch: int, height: int, width: int, condition: torch.Tensor | None = None,
              labels: torch.Tensor | None = None) -> None:
        """Start an empty batch of ``batch`` images of ``height`` x ``width``; reread the weights.

        ``condition`` (batch, c, height, width) is the conditioning map of a multi-scale
        network's conditional stage (section 3.6); it is given in full, so each layer's bias
        (a 1x1 convolution of it) is computed once here and read per position. ``labels``
        (batch,) are the classes of a class-conditional network: their vectors are read here too.
        """
        if batch < 1 or height < 1 or width < 1:
            raise ValueError(f"batch, height and width must be >= 1; got {batch}, {height}, {width}")
        model = self.model
        if (condition is None) != (not model.config.condition_channels):
            raise ValueError("a conditional network needs its condition map" if condition is None
                             else "this network is unconditional; it takes no condition map")
        model.check_labels(labels, batch)
        blocks, outputs = model.condition_biases(condition, labels)
        # Per layer: the bias of its input-to-state map at every position, (H, W, B, width) (a class
        # vector alone: a view that repeats it); per output layer, the class vector (B, width).
        self.condition_bias = None if condition is None and labels is None else [
            bias.permute(2, 3, 0, 1).expand(height, width, -1, -1) if bias.shape[-2:] == (1, 1)
            else bias.permute(2, 3, 0, 1).contiguous() for bias in blocks]
        self.output_bias = None if labels is None else outputs
        self.batch, self.height, self.width = batch, height, width
        self.like = torch.empty(0, dtype=model.dtype, device=model.device)
        self.input_conv = MaskedConvAt(model.input_conv, batch, height, width, self.like)
        self.image = self.input_conv.cache  # the scaled sub-pixels, channels-last
        if model.skips:
            # All skip 1x1 convolutions as one product over the concatenated block outputs.
            weights = [conv.masked_weight()[:, :, 0, 0].detach() for conv in model.skips]  # (2h, 2h) each
            self.skip_t = torch.cat(weights, dim=1).t().contiguous()  # (layers * 2h, 2h)
            self.skip_bias = sum(conv.bias.detach() for conv in model.skips)
        self.output_convs = [Pointwise(conv) for conv in model.output_stack.convs]
        self._walker = _ColumnWalk(self)
        self._setup_blocks()
        self._start_cursor()

    def cache_tensors(self) -> dict[str, torch.Tensor]:
        """The cached tensors by name (for inspection, and for tests that corrupt a cache)."""
        return {"image": self.image, "input_conv.base": self.input_conv.base, **self._block_caches()}

    def compute_threads(self):
        """A context that runs its body (a sampling loop) with ``self.threads`` CPU threads."""
        return torch_threads(self.threads if self.model.device.type == "cpu" else None)

    # ------------------------------------------------------------- internals
    @torch.no_grad()
    def _write_input(self, j: int, c: int, values) -> None:
        values = torch.as_tensor(values, device=self.like.device)
        if values.shape != (self.batch,):
            raise ValueError(f"expected {self.batch} values for sub-pixel {(self.position[0], j, c)}; got shape {tuple(values.shape)}")
        self.input_conv.centre_row[:, j + self.input_conv.side, c] = self.model.scale(values)

    # The work of ``logits`` and ``advance`` runs without autograd, entered here rather than in the
    # cursor: the native engines and the codec's integer engines call no tensor operations per position.
    @torch.no_grad()
    def _start_row(self, i: int) -> None:
        super()._start_row(i)

    @torch.no_grad()
    def _column(self, i: int, j: int) -> torch.Tensor:
        """Every layer at (i, j), caches updated; logits (B, C, K)."""
        self._walker.i, self._walker.j = i, j
        logits = walk(self.model.description, self._walker, j)  # (B, C*K)
        return logits.view(self.batch, self.channels, self.levels)

    def _conditioned(self, index: int, i: int, j: int, gates: torch.Tensor) -> torch.Tensor:
        """``gates`` (B, width) of layer ``index`` at (i, j) plus its conditioning bias, if the network has one."""
        return gates if self.condition_bias is None else gates + self.condition_bias[index][i, j]

    def _setup_blocks(self) -> None:
        raise NotImplementedError

    def _block(self, index: int, x: torch.Tensor, i: int, j: int) -> torch.Tensor:
        raise NotImplementedError

    def _block_caches(self) -> dict[str, torch.Tensor]:
        raise NotImplementedError


class _ColumnWalk:
    """The reference engine as the executor of the description's walk, at the position (i, j) it is set to."""

    def __init__(self, engine: IncrementalEngine):
        # A weak reference: the engine holds its walker, and a cycle would keep the engine's buffers
        # alive until a full collection, which counts Python objects and never sees their size.
        self.engine, self.i, self.j = weakref.proxy(engine), 0, 0

    def input(self, j: int) -> torch.Tensor:
        return self.engine.input_conv.at(j)  # (B, 2h)

    def block(self, index: int, block: Block, stream: torch.Tensor) -> torch.Tensor:
        return self.engine._block(index, stream, self.i, self.j)

    def stream(self, index: int, branch: torch.Tensor, previous: torch.Tensor | None) -> torch.Tensor:
        return branch if previous is None else previous + branch

    def skip_sum(self, streams: list[torch.Tensor]) -> torch.Tensor:
        engine = self.engine
        return torch.addmm(engine.skip_bias, torch.cat(streams, dim=1), engine.skip_t)  # (B, layers*2h) -> (B, 2h)

    def output(self, index: int, layer: MaskedSum, features: torch.Tensor) -> torch.Tensor:
        out = self.engine.output_convs[index](torch.relu(features))
        return out if self.engine.output_bias is None else out + self.engine.output_bias[index]
