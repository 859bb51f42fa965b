"""The native engines' shared part: one call per position, and per colour only that colour's units.

The reference engines (:mod:`pixelrnn.sampling.engine`) issue about a hundred tensor operations
per position; here a row's work at one position is encoded once per row as a
:class:`pixelrnn.native.program.Program` and run by one native call per position.

Colour groups (section 3.4) also save arithmetic: the units of colour group g at (i, j) read
the sub-pixels c < g of (i, j) only, so they are final once those are known, and the logits of
channel c read groups <= c only. The reference engine recomputes the whole position for each
sub-pixel; these engines compute, for sub-pixel c, the units of group c of every layer and the
logits of channel c: each group once per pixel, a third of the work for colour images. Every
masked product of group c reads a prefix of its input (groups <= c of the centre position,
everything at earlier positions), which :func:`visible_prefix` reads off the layer's mask.

Per group there are two programs: the features (every layer up to the skip sum) and the head
(the output stack). Sub-pixels fed without asking for their logits (teacher forcing) run the
features only. The sums are regrouped again, so the logits agree with the reference engine
and the full forward pass to rounding (1e-16 relative in float64, 1e-7 in float32), not bit
for bit.
"""

from __future__ import annotations

import torch

from ..layers.masked_conv import channel_groups
from ..native.program import Program, at
from .engine import _Pointwise


def group_ranges(count: int, channels: int) -> list[tuple[int, int]]:
    """Per colour group, the [start, end) of its maps among ``count`` (contiguous groups)."""
    groups = channel_groups(count, channels).tolist()
    return [(groups.index(g), len(groups) - groups[::-1].index(g)) for g in range(channels)]


def visible_prefix(mask: torch.Tensor, rows) -> int:
    """How many leading inputs the output ``rows`` of a kernel position's (out, in) ``mask`` see; they see no other."""
    seen = mask[rows].bool().any(0)
    count = int(seen.sum())
    if not bool(seen[:count].all()):
        raise ValueError("the mask's visible inputs are not a prefix; the native engine cannot group this layer")
    return count


def gate_order(hidden: int, channels: int) -> torch.Tensor:
    """A permutation of an LSTM's 4h gates [o | f | i | g] that puts each colour group's gates together.

    Group c's units u0..u1 get positions 4*u0 .. 4*u1 - 1, as [o | f | i | g] of those units, so a
    group's gates are one contiguous block, the layout of the native LSTM step.
    """
    order = [q * hidden + unit for start, end in group_ranges(hidden, channels) for q in range(4) for unit in range(start, end)]
    return torch.tensor(order)


class NativeColumn:
    """Mixin before a reference engine class: buffers, the common layers, per-group programs."""

    def _setup_native(self) -> None:
        model, batch = self.model, self.batch
        channels, maps = self.channels, 2 * model.config.hidden
        self.maps_groups = group_ranges(maps, channels)
        # features[0]: the input convolution's output; features[k + 1]: block k's. (L+1, B, 2h)
        self.features = self.like.new_zeros(len(model.blocks) + 1, batch, maps)
        self.skip_weights = [_Pointwise(conv) for conv in model.skips]
        self.skip_sum = self.like.new_zeros(batch, maps)
        self.skip_bias = sum(skip.bias for skip in self.skip_weights) if self.skip_weights else None
        self.head_layers = [_Pointwise(conv) for conv in model.output_stack.convs]
        self.head_outputs = [self.like.new_zeros(batch, layer.weight_t.shape[1]) for layer in self.head_layers[:-1]]

    # ------------------------------------------------------------- programs
    def _prefix(self, conv, c: int, rows=None, row: int = 0, column: int = 0) -> int:
        """Inputs visible at kernel position (row, column) to group c's outputs of ``conv`` (or to ``rows``)."""
        if rows is None:
            start, end = group_ranges(conv.out_channels, self.channels)[c]
            rows = slice(start, end)
        return visible_prefix(conv.mask[:, :, row, column], rows)

    def _features_program(self, i: int, c: int) -> Program:
        """Group c of every layer at (i, j): the input convolution, the blocks, the skip sum."""
        program = Program(self.batch, self.width, self.like.dtype)
        conv, (start, end) = self.input_conv, self.maps_groups[c]
        seen = conv.side * self.channels + self._prefix(self.model.input_conv, c, row=conv.top, column=conv.side)
        patch = conv.cache[:, i + conv.top, : conv.side + 1].view(self.batch, -1)  # (B, (kw//2 + 1) * C)
        program.linear(at(self.features[0, :, start:end]), at(patch[:, :seen], self.channels), conv.centre_t[:seen, start:end],
                       base=at(conv.base[0][:, start:end], conv.base.stride(0)))
        for index in range(len(self.model.blocks)):
            self._block_program(program, index, i, c)
        for index, skip in enumerate(self.skip_weights):
            seen = self._prefix(self.model.skips[index], c)
            # The first skip's product starts from all the skips' biases summed; the others add to it.
            base = at(self.skip_bias[start:end].expand(self.batch, -1)) if index == 0 else at(self.skip_sum[:, start:end])
            program.linear(at(self.skip_sum[:, start:end]), at(self.features[index + 1, :, :seen]),
                           skip.weight_t[:seen, start:end], base=base)
        return program

    def _head_program(self, c: int, logits: torch.Tensor) -> Program:
        """Group c of the output stack: the logits of channel c at (i, j), into ``logits`` (W, B, C*K)."""
        program = Program(self.batch, self.width, self.like.dtype)
        x = self.skip_sum if self.model.skips else self.features[-1]
        for index, (layer, conv) in enumerate(zip(self.head_layers, self.model.output_stack.convs)):
            start, end = group_ranges(conv.out_channels, self.channels)[c]
            seen = self._prefix(conv, c)
            last = index == len(self.head_layers) - 1
            out = at(logits[0][:, start:end], logits.stride(0)) if last else at(self.head_outputs[index][:, start:end])
            program.linear(out, at(x[:, :seen]), layer.weight_t[:seen, start:end],
                           base=at(layer.bias[start:end].expand(self.batch, -1)), relu_in=True)
            x = None if last else self.head_outputs[index]
        return program

    def _condition_at(self, index: int, i: int, start: int, end: int):
        """The conditioning bias of layer ``index`` at row i, units start..end, as an operand (None without one)."""
        if self.condition_bias is None:
            return None
        bias = self.condition_bias[index]  # (H, W, B, width)
        return at(bias[i, 0, :, start:end], bias.stride(1))

    # ------------------------------------------------------------- engine hooks
    def _start_row(self, i: int) -> None:
        super()._start_row(i)
        # A fresh buffer per row: the logits handed out stay valid after the row is done.
        self.row_logits = self.like.new_empty(self.width, self.batch, self.channels * self.levels)
        self.programs = [self._features_program(i, c) for c in range(self.channels)]
        self.heads = [self._head_program(c, self.row_logits) for c in range(self.channels)]
        self._pixel = None

    def _ensure_column(self, i: int, j: int, c: int, head: bool = False) -> None:
        if self._pixel != (i, j):
            self._pixel, self._features_done, self._heads_done = (i, j), 0, 0
            self._logits = self.row_logits[j].view(self.batch, self.channels, self.levels)
        while self._features_done <= c:
            self.programs[self._features_done].run(j)
            self._features_done += 1
        while head and self._heads_done <= c:
            self.heads[self._heads_done].run(j)
            self._heads_done += 1

    def logits(self, i: int, j: int, c: int) -> torch.Tensor:
        self._check(i, j, c)
        self._ensure_column(i, j, c, head=True)
        return self._logits[:, c]
