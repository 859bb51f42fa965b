"""The native engines' shared part: one call per position, and per colour only that colour's units.

The reference engines (:mod:`pixelrnn.sampling.reference_engine`) issue about a hundred tensor operations
per position; here the work at one position is encoded once per ``reset`` as a
:class:`pixelrnn.native.program.Program` and run by one native call per position, and a row
with nothing known is sampled whole by one native call (:meth:`NativeColumn.sample_row`).

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

import functools

import torch

from .. import native
from ..layers.masked_conv import channel_groups
from ..layers.rules import GATES
from ..models.description import Block, MaskedSum, walk
from ..native.program import Program, at
from .position_sums import Pointwise


@functools.lru_cache(maxsize=None)
def group_ranges(count: int, channels: int) -> tuple[tuple[int, int], ...]:
    """Per colour group, the [start, end) of its maps among ``count`` (contiguous groups)."""
    groups = channel_groups(count, channels).tolist()
    return tuple((groups.index(g), len(groups) - groups[::-1].index(g)) for g in range(channels))


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
    order = [q * hidden + unit for start, end in group_ranges(hidden, channels) for q in range(len(GATES)) for unit in range(start, end)]
    return torch.tensor(order)


class NativeColumn:
    """Mixin before a reference engine class: buffers, the common layers, the programs.

    Programs are built once per ``reset``; every operand moves with the position (i, j), so
    nothing is rebuilt per row. Per row, ``row_programs`` (over the columns, left to right)
    does the work a finished row allows: every masked convolution's rows above the centre,
    and each network's own row work. A subclass adds its blocks (``_block_program``), its row
    work (``_block_row_program``) and may add ``reverse_program`` (a scan from the row's right
    end). Programs for the first row leave out what reads a row -1 that is not there.
    """

    reverse_program: Program | None = None
    #: Whether the first row's per-position programs differ from the others' (else they are shared).
    first_row_differs = False

    def _setup_native(self) -> None:
        model, batch = self.model, self.batch
        channels, maps = self.channels, 2 * model.config.hidden
        self.maps_groups = group_ranges(maps, channels)
        self._prefixes: dict[tuple, int] = {}
        # features[0]: the input convolution's output; features[k + 1]: block k's. (L+1, B, 2h)
        self.features = self.like.new_zeros(len(model.blocks) + 1, batch, maps)
        self.skip_weights = [Pointwise(conv) for conv in model.skips]
        self.skip_sum = self.like.new_zeros(batch, maps)
        self.skip_bias = sum(skip.bias for skip in self.skip_weights) if self.skip_weights else None
        self.head_layers = [Pointwise(conv) for conv in model.output_stack.convs]
        self.head_outputs = [self.like.new_zeros(batch, layer.weight_t.shape[1]) for layer in self.head_layers[:-1]]
        self.column_logits = self.like.new_zeros(batch, self.channels * self.levels)
        self.scaled_levels = model.scale(torch.arange(self.levels, device=self.like.device))  # advance() looks values up here
        self.input_base = self._above_base(self.input_conv)
        self._write = native.kernel("pixelrnn_write", self.like.dtype)
        self._draw = native.kernel("pixelrnn_draw", self.like.dtype)
        self._sample_row = native.kernel("pixelrnn_sample_row", self.like.dtype)

    def _build_programs(self) -> None:
        """Every program, once the subclass's buffers exist."""
        lowered = {first: [_GroupPrograms(self, c, first) for c in range(self.channels)]
                   for first in ((False, True) if self.first_row_differs else (False,))}
        self.programs = {first: [group.features for group in groups] for first, groups in lowered.items()}
        self.programs.setdefault(True, self.programs[False])
        self.heads = [group.head for group in lowered[False]]
        self.row_programs = {first: self._row_program(first) for first in (False, True)}

    def _program(self) -> Program:
        return Program(self.batch, self.height, self.width, self.like.dtype)

    # ------------------------------------------------------------- masked convolutions at a position
    def _above_base(self, conv) -> torch.Tensor:
        """A (B, W, out) buffer for a masked convolution's rows above the centre plus its bias (None: 1-row kernel)."""
        return self.like.new_zeros(self.batch, self.width, conv.bias.shape[0]) if conv.top else None

    def _above_product(self, program: Program, conv, base: torch.Tensor | None) -> None:
        """Row work of a masked convolution (``MaskedConvAt``): its rows above the centre, all columns of the row."""
        if base is None:
            return
        cache, columns = conv.cache, conv.kernel_width
        patch = cache[:, 0, :columns].view(self.batch, -1)  # (B, kw * in): the first of kh//2 rows of the patch
        program.linear(at(base[:, 0], base.stride(1)), at(patch, cache.stride(2), cache.stride(1)), conv.above_t,
                       base=at(conv.bias.expand(self.batch, -1)), segments=(patch.shape[1], cache.stride(1)))

    def _centre_product(self, program: Program, conv, base: torch.Tensor | None, c: int, module, out: torch.Tensor,
                        start: int, end: int, add=None, rows=None) -> None:
        """Group c's outputs start..end of a masked convolution at (i, j): its centre row, on top of ``base``."""
        cache = conv.cache
        seen = conv.side * cache.shape[-1] + self._prefix(module, c, rows=rows, row=conv.top, column=conv.side)
        patch = cache[:, conv.top, : conv.side + 1].view(self.batch, -1)  # (B, (kw//2 + 1) * in), a view
        above = at(conv.bias[start:end].expand(self.batch, -1)) if base is None else at(base[:, 0, start:end], base.stride(1))
        program.linear(at(out), at(patch[:, :seen], cache.stride(2), cache.stride(1)), conv.centre_t[:seen, start:end],
                       base=above, add=add)

    # ------------------------------------------------------------- programs
    def _prefix(self, conv, c: int, rows=None, row: int = 0, column: int = 0) -> int:
        """Inputs visible at kernel position (row, column) to group c's outputs of ``conv`` (or to ``rows``)."""
        key = (id(conv), c, row, column)  # rows, where given, follow from conv and c
        if key not in self._prefixes:
            if rows is None:
                start, end = group_ranges(conv.out_channels, self.channels)[c]
                rows = slice(start, end)
            self._prefixes[key] = visible_prefix(conv.mask[:, :, row, column], rows)
        return self._prefixes[key]

    def _row_program(self, first: bool) -> Program:
        program = self._program()
        self._above_product(program, self.input_conv, self.input_base)
        self._block_row_program(program, first)
        return program

    def _permute_condition(self, index: int, order: torch.Tensor) -> None:
        """Layer ``index``'s conditioning bias with its units in ``order`` (a class vector alone stays one (B, width) row)."""
        if self.condition_bias is None:
            return
        bias = self.condition_bias[index]  # (H, W, B, width)
        if bias.stride(0) == bias.stride(1) == 0:
            self.condition_bias[index] = bias[:1, :1, :, order].expand_as(bias)
        else:
            self.condition_bias[index] = bias[..., order].contiguous()

    def _condition_at(self, index: int, start: int, end: int):
        """The conditioning bias of layer ``index``, units start..end, as an operand (None without one)."""
        if self.condition_bias is None:
            return None
        bias = self.condition_bias[index]  # (H, W, B, width)
        return at(bias[0, 0, :, start:end], bias.stride(1), bias.stride(0))

    # ------------------------------------------------------------- engine hooks
    def _start_row(self, i: int) -> None:
        self.row_programs[i == 0].run(i, 0, self.width)
        if i > 0 and self.reverse_program is not None:
            self.reverse_program.run(i, self.width - 1, -1, -1)
        self._pixel = None

    def _write_input(self, j: int, c: int, values) -> None:
        i = self.position[0]
        values = torch.as_tensor(values)
        if values.shape != (self.batch,):
            raise ValueError(f"expected {self.batch} values for sub-pixel {(i, j, c)}; got shape {tuple(values.shape)}")
        if values.dtype != torch.int64:
            values = values.long()
        cache, conv = self.input_conv.cache, self.input_conv
        offset = (i + conv.top) * cache.stride(1) + (j + conv.side) * cache.stride(2) + c
        outside = self._write(values.data_ptr(), values.stride(0), self.scaled_levels.data_ptr(), self.levels,
                              cache.data_ptr() + offset * cache.element_size(), cache.stride(0), self.batch)
        if outside:
            raise ValueError(f"values of sub-pixel {(i, j, c)} must lie in [0, {self.levels}); {outside} do not")

    def _ensure_column(self, i: int, j: int, c: int, head: bool = False) -> None:
        if self._pixel != (i, j):
            self._pixel, self._features_done, self._heads_done = (i, j), 0, 0
        programs = self.programs[i == 0]
        while self._features_done <= c:
            programs[self._features_done].run(i, j)
            self._features_done += 1
        while head and self._heads_done <= c:
            self.heads[self._heads_done].run(i, j)
            self._heads_done += 1

    def logits(self, i: int, j: int, c: int) -> torch.Tensor:
        self._check(i, j, c)
        self._ensure_column(i, j, c, head=True)
        # A copy: the buffer is the next position's.
        return self.column_logits[:, c * self.levels : (c + 1) * self.levels].clone()

    def draw(self, i: int, j: int, c: int, uniform: torch.Tensor, temperature: float, out: torch.Tensor) -> None:
        """Sample sub-pixel c at (i, j) into ``out`` (batch,) int64 with the uniforms ``uniform`` (batch,) float64, then advance.

        ``logits``, :func:`pixelrnn.sampling.generation.sample_categorical` and ``advance`` in one
        step, without tensor operations.
        """
        self._check(i, j, c)
        self._ensure_column(i, j, c, head=True)
        if uniform.dtype != torch.float64 or out.dtype != torch.int64 or uniform.shape != (self.batch,) or out.shape != (self.batch,):
            raise ValueError(f"draw needs ({self.batch},) float64 uniforms and an int64 output")
        logits = self.column_logits
        self._draw(logits.data_ptr() + c * self.levels * logits.element_size(), logits.stride(0), self.levels, self.batch,
                   uniform.data_ptr(), float(temperature), out.data_ptr(), out.stride(0))
        self.advance(i, j, c, out)

    def sample_row(self, i: int, uniforms: torch.Tensor, temperature: float, images: torch.Tensor) -> None:
        """Sample all of row i (nothing of it known) into ``images`` (batch, C, H, W) int64, then advance past it.

        ``uniforms`` (W * C, batch) float64, one row per sub-pixel in raster order: what ``draw``
        does per sub-pixel, the whole row in one native call.
        """
        self._check(i, 0, 0)
        if uniforms.shape != (self.width * self.channels, self.batch) or uniforms.dtype != torch.float64 or not uniforms.is_contiguous():
            raise ValueError(f"sample_row needs contiguous ({self.width * self.channels}, {self.batch}) float64 uniforms")
        if images.dtype != torch.int64 or images.shape != (self.batch, self.channels, self.height, self.width):
            raise ValueError(f"sample_row writes into ({self.batch}, {self.channels}, {self.height}, {self.width}) int64 images")
        conv, cache, logits = self.input_conv, self.input_conv.cache, self.column_logits
        groups = [value for c in range(self.channels) for value in (*self.programs[i == 0][c].encoded(), *self.heads[c].encoded())]
        table = torch.tensor(groups, dtype=torch.int64)
        image = images.data_ptr() + i * images.stride(2) * images.element_size()
        slot = cache.data_ptr() + ((i + conv.top) * cache.stride(1) + conv.side * cache.stride(2)) * cache.element_size()
        self._sample_row(table.data_ptr(), self.channels, self.batch, i, self.width, self.levels, logits.data_ptr(), logits.stride(0),
                         uniforms.data_ptr(), float(temperature), image, images.stride(0), images.stride(1), images.stride(3),
                         self.scaled_levels.data_ptr(), slot, cache.stride(0), cache.stride(2))
        self._pixel = None
        self.position = (i + 1, 0, 0)
        if i + 1 < self.height:
            self._start_row(i + 1)

    def cache_tensors(self) -> dict[str, torch.Tensor]:
        caches = {"image": self.image, **self._block_caches()}
        if self.input_base is not None:
            caches["input_conv.base"] = self.input_base
        return caches


class _GroupPrograms:
    """The native engine as the executor of the description's walk: colour group c's two programs.

    ``features``: group c of every layer at (i, j), from the input convolution to the skip sum;
    ``head``: group c of the output stack, the logits of channel c. A block's program ends with its
    output product, into which it adds the stream it read where the block is residual, so
    :meth:`stream` has nothing left to do.
    """

    def __init__(self, engine: NativeColumn, c: int, first: bool):
        self.engine, self.c, self.first = engine, c, first
        self.features, self.head = engine._program(), engine._program()
        walk(engine.model.description, self)

    def input(self) -> torch.Tensor:
        engine, c = self.engine, self.c
        start, end = engine.maps_groups[c]
        engine._centre_product(self.features, engine.input_conv, engine.input_base, c, engine.model.input_conv,
                               engine.features[0, :, start:end], start, end)
        return engine.features[0]

    def block(self, index: int, block: Block, stream: torch.Tensor) -> torch.Tensor:
        self.engine._block_program(self.features, index, block, self.c, self.first)
        return self.engine.features[index + 1]

    def stream(self, index: int, branch: torch.Tensor, previous: torch.Tensor | None) -> torch.Tensor:
        return branch

    def skip_sum(self, streams: list[torch.Tensor]) -> torch.Tensor:
        engine, c = self.engine, self.c
        start, end = engine.maps_groups[c]
        for index, (skip, stream) in enumerate(zip(engine.skip_weights, streams)):
            seen = engine._prefix(engine.model.skips[index], c)
            # The first skip's product starts from all the skips' biases summed; the others add to it.
            base = at(engine.skip_bias[start:end].expand(engine.batch, -1)) if index == 0 else at(engine.skip_sum[:, start:end])
            self.features.linear(at(engine.skip_sum[:, start:end]), at(stream[:, :seen]), skip.weight_t[:seen, start:end], base=base)
        return engine.skip_sum

    def output(self, index: int, layer: MaskedSum, features: torch.Tensor) -> torch.Tensor:
        engine, c = self.engine, self.c
        out = [*engine.head_outputs, engine.column_logits][index]
        dense, conv = engine.head_layers[index], engine.model.output_stack.convs[index]
        start, end = group_ranges(layer.out_maps, engine.channels)[c]
        seen = engine._prefix(conv, c)
        class_vector = None if engine.output_bias is None else at(engine.output_bias[index][:, start:end])
        self.head.linear(at(out[:, start:end]), at(features[:, :seen]), dense.weight_t[:seen, start:end],
                         base=at(dense.bias[start:end].expand(engine.batch, -1)), add=class_vector, relu_in=True)
        return out
