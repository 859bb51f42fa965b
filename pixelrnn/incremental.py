"""Exact incremental sampling: per new sub-pixel, compute only what its value changes.

Generation is sequential (paper section 2: "the generation of an image is sequential"): the
naive sampler runs the whole network once per sub-pixel, i.e. 3·H·W full forward passes per
colour image. Every layer of the three networks is causal in raster order, so the activations
at an earlier position never change once that position's sub-pixels are fixed. The engines
here cache them and, for the next sub-pixel at (i, j), compute each layer at (i, j) only:

- masked convolutions (sections 3.4 and 3.5): a k×k mask-A/B convolution at (i, j) reads its
  input at (i, j) and at earlier positions only (rows above, columns to the left; the rows
  below and the right half of the centre row are masked). Each layer's *input* map is cached
  and the layer's output is one matrix product of the cached patch with the masked kernel.
  1×1 convolutions (residual blocks, skips, output stack) are per position.
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

Cost per sub-pixel: one position of every layer, plus, for the LSTMs, one row operation per
finished row (amortised over W positions) -- instead of H·W positions.

Interface of an engine (``make_engine(model)``)::

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

import torch
import torch.nn.functional as F

from .layers.lstm import lstm_cell
from .layers.masked_conv import MaskedConv2d


# --------------------------------------------------------------------- per-position convolutions
class _Pointwise:
    """A 1x1 masked convolution as a matrix: (N, in) -> (N, out)."""

    def __init__(self, conv: MaskedConv2d):
        self.weight = conv.masked_weight()[:, :, 0, 0].detach().contiguous()  # (out, in)
        self.bias = None if conv.bias is None else conv.bias.detach()

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(x, self.weight, self.bias)


class _CausalPatch:
    """A kh x kw masked convolution evaluated at one position from a cached, padded input map.

    The cache is channels-last, ``(B, H + kh//2, W + 2*(kw//2), in)``, zero in the padding
    like the ``padding`` of the full convolution; position (i, j) lives at
    ``[i + kh//2, j + kw//2]``. Only kernel rows up to the centre are used (the rows below are
    masked); for a single-row kernel only the columns up to the centre (the right part is
    masked). Values at not-yet-computed positions are multiplied by masked zeros only.
    """

    def __init__(self, conv: MaskedConv2d):
        kh, kw = conv.kernel_size
        self.top, self.side = kh // 2, kw // 2
        weight = conv.masked_weight().detach()[:, :, : self.top + 1, :]  # (out, in, rows <= centre, kw)
        self.columns = self.side + 1 if kh == 1 else kw
        weight = weight[..., : self.columns]
        # (out, rows, cols, in) flattened to match a channels-last patch.
        self.weight = weight.permute(0, 2, 3, 1).reshape(weight.shape[0], -1).contiguous()
        self.bias = None if conv.bias is None else conv.bias.detach()
        self.in_channels = conv.in_channels

    def cache(self, batch: int, height: int, width: int, like: torch.Tensor) -> torch.Tensor:
        return like.new_zeros(batch, height + self.top, width + 2 * self.side, self.in_channels)

    def write(self, cache: torch.Tensor, i: int, j: int, values: torch.Tensor) -> None:
        cache[:, i + self.top, j + self.side] = values

    def __call__(self, cache: torch.Tensor, i: int, j: int) -> torch.Tensor:
        patch = cache[:, i : i + self.top + 1, j : j + self.columns]  # (B, rows, cols, in)
        return F.linear(patch.reshape(patch.shape[0], -1), self.weight, self.bias)


# --------------------------------------------------------------------- the engines
class IncrementalEngine:
    """Shared part: cursor, input image cache, mask-A input convolution, skips, output stack.

    Subclasses cache their blocks' state and implement ``_block(index, x, i, j)`` (block
    output at (i, j) from its input there), plus ``_start_row(i)`` for per-row work.
    """

    def __init__(self, model):
        self.model = model
        config = model.config
        self.channels, self.levels = config.channels, config.levels
        self.batch = self.height = self.width = 0
        self.position: tuple[int, int, int] | None = None

    # ------------------------------------------------------------- public interface
    @torch.no_grad()
    def reset(self, batch: int, height: int, width: int) -> None:
        """Start an empty batch of ``batch`` images of ``height`` x ``width``; reread the weights."""
        if batch < 1 or height < 1 or width < 1:
            raise ValueError(f"batch, height and width must be >= 1; got {batch}, {height}, {width}")
        model = self.model
        self.batch, self.height, self.width = batch, height, width
        self.like = torch.empty(0, dtype=model.dtype, device=model.device)
        self.input_conv = _CausalPatch(model.input_conv)
        self.image = self.input_conv.cache(batch, height, width, self.like)  # scaled inputs, channels-last
        self.skips = [_Pointwise(conv) for conv in model.skips]
        self.output_convs = [_Pointwise(conv) for conv in model.output_stack.convs]
        self._setup_blocks()
        self.position = (0, 0, 0)
        self._column_at = None  # (i, j, c) for which the cached column was last computed
        self._logits = None
        self._start_row(0)

    @torch.no_grad()
    def logits(self, i: int, j: int, c: int) -> torch.Tensor:
        """Logits (batch, levels) of sub-pixel c at (i, j) given every earlier sub-pixel."""
        self._check(i, j, c)
        self._ensure_column(i, j, c)
        return self._logits[:, c]

    @torch.no_grad()
    def advance(self, i: int, j: int, c: int, values: torch.Tensor) -> None:
        """Fix sub-pixel c at (i, j) to ``values`` (batch,) integers and move the cursor on."""
        self._check(i, j, c)
        values = torch.as_tensor(values, device=self.like.device)
        if values.shape != (self.batch,):
            raise ValueError(f"expected {self.batch} values for sub-pixel {(i, j, c)}; got shape {tuple(values.shape)}")
        self.image[:, i + self.input_conv.top, j + self.input_conv.side, c] = self.model.scale(values)
        if c + 1 < self.channels:
            self.position = (i, j, c + 1)
            return
        # The pixel is complete: make its column final (computed with channels < C-1 known,
        # the last channel itself is read only by later positions) before moving on.
        self._ensure_column(i, j, c)
        if j + 1 < self.width:
            self.position = (i, j + 1, 0)
        else:
            self.position = (i + 1, 0, 0)
            if i + 1 < self.height:
                self._start_row(i + 1)

    def cache_tensors(self) -> dict[str, torch.Tensor]:
        """The cached tensors by name (for inspection and for tests that corrupt a cache)."""
        caches = {"image": self.image}
        caches.update(self._block_caches())
        return caches

    # ------------------------------------------------------------- internals
    def _check(self, i: int, j: int, c: int) -> None:
        if self.position is None:
            raise ValueError("call reset(batch, height, width) before sampling")
        if (i, j, c) != self.position:
            if self.position[0] >= self.height:
                raise ValueError(f"the image is complete; sub-pixel {(i, j, c)} is outside it")
            raise ValueError(f"sub-pixels go in raster order: the next is (i, j, c) = {self.position}, not {(i, j, c)}")

    def _ensure_column(self, i: int, j: int, c: int) -> None:
        if self._column_at != (i, j, c):
            self._logits = self._column(i, j)
            self._column_at = (i, j, c)

    def _column(self, i: int, j: int) -> torch.Tensor:
        """Every layer at (i, j), caches updated; logits (B, C, K)."""
        x = self.input_conv(self.image, i, j)  # (B, 2h)
        skip_sum = None
        for index in range(len(self.model.blocks)):
            x = self._block(index, x, i, j)
            if self.skips:
                contribution = self.skips[index](x)
                skip_sum = contribution if skip_sum is None else skip_sum + contribution
        x = skip_sum if self.skips else x
        for conv in self.output_convs:
            x = conv(F.relu(x))
        return x.view(self.batch, self.channels, self.levels)  # (B, C*K) -> (B, C, K)

    def _setup_blocks(self) -> None:
        raise NotImplementedError

    def _start_row(self, i: int) -> None:
        """Work done once row i-1 is final, before the first sub-pixel of row i."""

    def _block(self, index: int, x: torch.Tensor, i: int, j: int) -> torch.Tensor:
        raise NotImplementedError

    def _block_caches(self) -> dict[str, torch.Tensor]:
        raise NotImplementedError


class PixelCNNEngine(IncrementalEngine):
    """PixelCNN (section 3.5): each block caches the input map of its k x k mask-B convolution."""

    def _setup_blocks(self) -> None:
        self.reduce, self.conv, self.expand, self.conv_inputs = [], [], [], []
        for block in self.model.blocks:
            self.reduce.append(_Pointwise(block.reduce))
            self.conv.append(_CausalPatch(block.conv))
            self.expand.append(_Pointwise(block.expand))
            self.conv_inputs.append(self.conv[-1].cache(self.batch, self.height, self.width, self.like))

    def _block(self, index, x, i, j):
        conv, cache = self.conv[index], self.conv_inputs[index]
        conv.write(cache, i, j, F.relu(self.reduce[index](F.relu(x))))
        y = self.expand[index](F.relu(conv(cache, i, j)))
        return x + y if self.model.blocks[index].residual else y

    def _block_caches(self):
        return {f"block{k}.conv_input": cache for k, cache in enumerate(self.conv_inputs)}


class RowLSTMEngine(IncrementalEngine):
    """Row LSTM (section 3.1): previous row's states, current row's input and states per layer."""

    def _setup_blocks(self) -> None:
        self.layers = []
        batch, width = self.batch, self.width
        for block in self.model.blocks:
            lstm = block.lstm
            layer = {
                "input_to_state": _CausalPatch(lstm.input_to_state),
                "output": _Pointwise(block.output),
                "module": lstm,
            }
            layer["row_input"] = layer["input_to_state"].cache(batch, 1, width, self.like)  # (B, 1, W + pad, 2h)
            hidden, cell = lstm.initial_state(batch, width)  # (B, h, W), row -1
            layer["hidden_above"], layer["cell_above"] = hidden.detach().clone(), cell.detach().clone()
            layer["hidden"] = torch.zeros_like(layer["hidden_above"])  # current row, (B, h, W)
            layer["cell"] = torch.zeros_like(layer["cell_above"])
            self.layers.append(layer)

    def _start_row(self, i: int) -> None:
        for layer in self.layers:
            if i > 0:
                layer["hidden_above"], layer["hidden"] = layer["hidden"], layer["hidden_above"]
                layer["cell_above"], layer["cell"] = layer["cell"], layer["cell_above"]
            # The state-to-state 1 x k convolution of the whole row: the row above is final.
            layer["state_gates"] = layer["module"].state_to_state(layer["hidden_above"])  # (B, 4h, W)

    def _block(self, index, x, i, j):
        layer = self.layers[index]
        input_to_state = layer["input_to_state"]
        input_to_state.write(layer["row_input"], 0, j, x)
        gates = input_to_state(layer["row_input"], 0, j) + layer["state_gates"][:, :, j]  # (B, 4h)
        hidden, cell = lstm_cell(gates, layer["cell_above"][:, :, j])
        layer["hidden"][:, :, j] = hidden
        layer["cell"][:, :, j] = cell
        y = layer["output"](hidden)
        return x + y if self.model.blocks[index].residual else y

    def _block_caches(self):
        caches = {}
        for k, layer in enumerate(self.layers):
            for name in ("row_input", "hidden_above", "cell_above", "hidden", "cell", "state_gates"):
                caches[f"block{k}.{name}"] = layer[name]
        return caches


class DiagonalBiLSTMEngine(IncrementalEngine):
    """Diagonal BiLSTM (section 3.2): left-to-right per position, right-to-left per finished row.

    Row caches are column-major, ``(W, B, channels)``, so one column is a contiguous (B, ch).
    """

    def _setup_blocks(self) -> None:
        self.layers = []
        batch, width = self.batch, self.width
        for block in self.model.blocks:
            lstm = block.lstm
            hidden_size = lstm.hidden
            initial_hidden = lstm.initial_hidden.detach()  # (2, h): [left-to-right, right-to-left]
            initial_cell = lstm.initial_cell.detach()
            layer = {
                "input_to_state": _Pointwise(lstm.input_to_state),  # 2h -> 2 directions x 4h
                "state_to_state": lstm.state_to_state.detach(),  # (2, 4h, 2h) over [above ; left]
                "output": _Pointwise(block.output),
                "hidden_size": hidden_size,
                "initial_hidden": initial_hidden[:, None, :].expand(2, batch, hidden_size),  # (2, B, h)
                "initial_cell": initial_cell[:, None, :].expand(2, batch, hidden_size),
            }
            # Left-to-right: hidden states of row i-1 (row -1: the initial state) and of row i.
            layer["hidden_above"] = layer["initial_hidden"][0].expand(width, batch, hidden_size).clone()
            layer["hidden"] = torch.zeros_like(layer["hidden_above"])
            layer["cell"] = torch.zeros_like(layer["hidden_above"])
            # Right-to-left: input gates of the current row, states of the row above.
            layer["reverse_gates"] = self.like.new_zeros(width, batch, 4 * hidden_size)
            layer["reverse_above"] = layer["initial_hidden"][1].expand(width, batch, hidden_size).clone()
            layer["reverse_shifted"] = None  # what the layer adds at row i: row i-1's right-to-left states
            self.layers.append(layer)

    def _start_row(self, i: int) -> None:
        if i == 0:
            return
        for layer in self.layers:
            self._right_to_left(layer)
            layer["hidden_above"], layer["hidden"] = layer["hidden"], layer["hidden_above"]

    def _right_to_left(self, layer) -> None:
        """Scan the finished row from its right end: the mirrored map's left-to-right recurrence."""
        weight = layer["state_to_state"][1]  # (4h, 2h)
        hidden, cell = layer["initial_hidden"][1], layer["initial_cell"][1]  # right of the last column
        above, gates = layer["reverse_above"], layer["reverse_gates"]
        states = torch.empty_like(above)
        for j in reversed(range(self.width)):
            recurrent = F.linear(torch.cat([above[j], hidden], dim=1), weight)  # (B, 4h)
            hidden, cell = lstm_cell(gates[j] + recurrent, cell)
            states[j] = hidden
        layer["reverse_above"] = states
        layer["reverse_shifted"] = states

    def _block(self, index, x, i, j):
        layer = self.layers[index]
        four_h = 4 * layer["hidden_size"]
        gates = layer["input_to_state"](x)  # (B, 8h): [left-to-right | right-to-left]
        layer["reverse_gates"][j] = gates[:, four_h:]
        if j > 0:
            left, cell_left = layer["hidden"][j - 1], layer["cell"][j - 1]
        else:  # a row's left neighbour before its first pixel is the initial state
            left, cell_left = layer["initial_hidden"][0], layer["initial_cell"][0]
        recurrent = F.linear(torch.cat([layer["hidden_above"][j], left], dim=1), layer["state_to_state"][0])
        hidden, cell = lstm_cell(gates[:, :four_h] + recurrent, cell_left)
        layer["hidden"][j] = hidden
        layer["cell"][j] = cell
        if layer["reverse_shifted"] is not None:  # row 0 receives zeros from the shift
            hidden = hidden + layer["reverse_shifted"][j]
        y = layer["output"](hidden)
        return x + y if self.model.blocks[index].residual else y

    def _block_caches(self):
        caches = {}
        for k, layer in enumerate(self.layers):
            for name in ("hidden_above", "hidden", "cell", "reverse_gates", "reverse_above"):
                caches[f"block{k}.{name}"] = layer[name]
        return caches


ENGINES = {"pixelcnn": PixelCNNEngine, "row_lstm": RowLSTMEngine, "diagonal_bilstm": DiagonalBiLSTMEngine}


def make_engine(model) -> IncrementalEngine:
    """The incremental engine of a model's architecture (``model.config.arch``)."""
    try:
        engine_class = ENGINES[model.config.arch]
    except KeyError:
        raise ValueError(f"no incremental engine for architecture {model.config.arch!r}") from None
    return engine_class(model)
