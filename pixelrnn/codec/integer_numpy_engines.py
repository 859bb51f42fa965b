"""Incremental engines of the integer coding model: one sub-pixel at a time from cached state.

They mirror the float engines (:mod:`pixelrnn.sampling.reference_engine`, :mod:`pixelrnn.sampling.reference_engines`):
the same interface (``reset`` / ``logits`` / ``advance``, raster order enforced), the same caches
(a masked convolution's input map; the Row LSTM's state-to-state gates of the row and the cells
above; the Diagonal BiLSTM's left-to-right states per position and its right-to-left scan per
finished row) and the same per-row work. They compute :class:`IntegerModel`, whose every sum is
exact, so their logits equal those of the batched pass (:mod:`.integer_batched`) bit for bit.

numpy, not torch: per sub-pixel the work is a chain of small products and elementwise steps, and
numpy's per-call cost is the lower one. The layout is features-major, every per-position value
(channels, batch), so a 1x1 convolution is W (out, in) @ A (in, batch). An input that carries a
row of ones turns its sum's bias into one more weight column: one call per sum.
"""

from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from ..layers.rules import SIGMOID_GATES, gate_slices, kernel_centre
from ..models.description import Block, MaskedSum, walk
from ..models.raster_cursor import RasterCursor
from .fixed_point import ExactSum
from .integer_model import IntegerModel, LSTMLayer


def _with_bias(weight: np.ndarray, bias: np.ndarray) -> np.ndarray:
    """(out, in) -> (out, in + 1): the bias as the weight of a constant-one input."""
    return np.concatenate([weight.reshape(len(weight), -1), bias[:, None]], axis=1)


def _ones_row(rows: int, batch: int) -> np.ndarray:
    """A (rows + 1, batch) buffer whose last row is the constant one of :func:`_with_bias`."""
    buffer = np.zeros((rows + 1, batch))
    buffer[rows] = 1.0
    return buffer


class RingConvAt:
    """A masked kh x kw sum evaluated position by position from a ring of the rows it reads.

    The cache is column-major, ``(W + 2*(kw//2), kh//2 + 1, in + 1, B)``: per column the rows
    i - kh//2 .. i in ring slots (row r in slot r mod (kh//2 + 1)), zero padded, channel ``in``
    one everywhere. The kw columns around j are then one contiguous block, so the whole masked
    sum at (i, j), bias included, is one product; the weights are laid out once per ring phase.
    The block also holds the centre row's right half, not yet written (zeros) and masked out by
    zero weights. Unlike the float engine's two products (rows above per row, centre row per
    position) on a whole-map cache, nothing is computed per row and a few rows stay in the CPU's cache.
    """

    def __init__(self, exact: ExactSum, batch: int, width: int, source: int = 0):
        weight = exact.weights[source]  # (out, in, kh, kw)
        out, channels, kh, kw = weight.shape
        (self.top, self.side), self.batch = kernel_centre(kh, kw), batch
        rows = self.top + 1
        full = np.zeros((out, channels + 1, rows, kw))  # kernel rows down to the centre; those below are masked out
        full[:, :channels] = weight[:, :, :rows]
        full[:, channels, self.top, self.side] = exact.bias
        # Phase p = i mod rows: ring slot r holds image row i - d, d = (p - r) mod rows, read by kernel row top - d.
        self.phases = [np.ascontiguousarray(full[:, :, [self.top - (p - r) % rows for r in range(rows)]].transpose(0, 3, 2, 1))
                       .reshape(out, -1) for p in range(rows)]  # (out, (column, slot, channel))
        self.cache = np.zeros((width + 2 * self.side, rows, channels + 1, batch))
        self.cache[:, :, channels] = 1.0
        self.weight, self.slot_index = self.phases[0], 0

    def start_row(self, i: int) -> None:
        self.slot_index = i % (self.top + 1)
        self.weight = self.phases[self.slot_index]
        if i and self.top:
            self.cache[:, self.slot_index, :-1] = 0.0  # the ring's oldest row becomes row i

    def slot(self, j: int) -> np.ndarray:
        """The (in, B) view of the input at column j of the current row, to be written."""
        return self.cache[j + self.side, self.slot_index, :-1]

    def at(self, j: int, out: np.ndarray) -> np.ndarray:
        return np.matmul(self.weight, self.cache[j : j + 2 * self.side + 1].reshape(-1, self.batch), out=out)


class IntegerEngine(RasterCursor):
    """Shared part: input convolution, the residual stream, skips, output stack; subclasses do blocks.

    The cursor (raster order, a column per pixel, per-row work) is the float engines' own
    :class:`~pixelrnn.models.raster_cursor.RasterCursor`. The residual stream of a position is one
    buffer of L + 1 slots of (2h + 1, B), slot 0 the input convolution's output, slot l + 1
    block l's, each with its row of ones: the skip sum is one product over slots 1..L, and a
    block reads its input with its bias row. ``logits(i, j, c)`` is a (B, K) int64 view.
    """

    def __init__(self, model: IntegerModel):
        self.model = model
        self.channels, self.levels = model.config.channels, model.config.levels
        fixed = model.fixed
        self.relu_max, self.half = float(fixed.relu_max), fixed.table_half

    def reset(self, batch: int, height: int, width: int) -> None:
        if batch < 1 or height < 1 or width < 1:
            raise ValueError(f"batch, height and width must be >= 1; got {batch}, {height}, {width}")
        model = self.model
        self.batch, self.height, self.width = batch, height, width
        self.input_conv = RingConvAt(model.input_conv, batch, width)
        maps = len(model.input_conv.bias)
        self.slot_rows = maps + 1
        self.stream = np.zeros(((len(model.layers) + 1) * self.slot_rows, batch))
        self.stream[maps :: self.slot_rows] = 1.0
        slots = [self.stream[k * self.slot_rows : (k + 1) * self.slot_rows] for k in range(len(model.layers) + 1)]
        self.slots, self.slots_with_ones = [slot[:-1] for slot in slots], slots
        if model.skips is not None:  # over slots 1..L, the bias on slot 1's row of ones
            columns = [_with_bias(w, model.skips.bias if k == 0 else np.zeros_like(model.skips.bias))
                       for k, w in enumerate(model.skips.weights)]
            self.skip = np.concatenate(columns, axis=1)
        self.output = [_with_bias(exact.weights[0], exact.bias) for exact in model.output]
        self.output_inputs = [_ones_row(w.shape[1] - 1, batch) for w in self.output]
        # The logits batch-major, (B, C, K): a sub-pixel's (B, K) rows are what the frequencies reduce over.
        # Only channel c's are computed for sub-pixel c (the others would be recomputed before they are read).
        last = self.output[-1]
        self.logits_weights = [np.ascontiguousarray(last[c * self.levels : (c + 1) * self.levels].T) for c in range(self.channels)]
        self.logits_sum = np.zeros((batch, self.levels))
        self.logits_buffer = np.zeros((batch, self.channels, self.levels), dtype=np.int64)
        self.cell_index = np.zeros((4 * max([getattr(layer, "hidden", 0) for layer in model.layers] + [1]), batch), dtype=np.intp)
        self._walker = _IntegerColumn(self)
        self._setup_blocks()
        self._start_cursor()

    # ------------------------------------------------------------- internals
    def _write_input(self, j: int, c: int, values: np.ndarray) -> None:
        if np.shape(values) != (self.batch,):
            raise ValueError(f"expected {self.batch} values for sub-pixel {(self.position[0], j, c)}; got shape {np.shape(values)}")
        self.input_conv.slot(j)[c] = self.model.inputs[values]

    def _column(self, i: int, j: int) -> np.ndarray:
        """Every layer at (i, j): caches updated; the integer logits (B, C, K) in ``logits_buffer``, channel c's fresh."""
        self._walker.i, self._walker.j = i, j
        walk(self.model.description, self._walker, j)
        return self.logits_buffer

    def _relu(self, x: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
        """The clamped ReLU (``ndarray.clip``: one pass, cheaper than ``np.maximum`` alone)."""
        return x.clip(0.0, self.relu_max, out=x if out is None else out)

    def _cell(self, gates: np.ndarray, cell_before: np.ndarray, cell: np.ndarray, hidden: np.ndarray, scratch) -> None:
        """The integer LSTM update (:meth:`.integer_forward._Pass.cell`) from (4h, B) gate sums, into ``cell``, ``hidden``.

        Rounding a sum and casting it to a table index is one call (``out=`` an integer array).
        """
        tables, size = self.model.tables, len(cell)
        activations, temporary = scratch
        index = self.cell_index[: 4 * size]
        np.rint(gates, out=index, casting="unsafe")
        sigmoid = SIGMOID_GATES * size  # o, f, i through the sigmoid, g through tanh
        tables.sigmoid.take(index[:sigmoid], mode="clip", out=activations[:sigmoid])
        tables.tanh_gate.take(index[sigmoid:], mode="clip", out=activations[sigmoid:])
        output_gate, forget_gate, input_gate, content = gate_slices(size)
        np.multiply(activations[forget_gate], cell_before, out=cell)
        np.multiply(activations[input_gate], activations[content], out=temporary)
        cell += temporary
        np.rint(cell, out=cell)
        np.add(cell, self.half, out=index[:size], casting="unsafe")
        tables.tanh_cell.take(index[:size], mode="clip", out=temporary)
        np.rint(np.multiply(activations[output_gate], temporary, out=hidden), out=hidden)

    def _setup_blocks(self) -> None:
        raise NotImplementedError

    def _block(self, index: int, i: int, j: int) -> np.ndarray:
        raise NotImplementedError


class PixelCNNEngine(IntegerEngine):
    """PixelCNN (section 3.5): each block caches the input map of its k x k mask-B sum."""

    def _setup_blocks(self) -> None:
        batch = self.batch
        self.convs = [RingConvAt(layer.conv, batch, self.width) for layer in self.model.layers]
        self.reduce = [_with_bias(layer.reduce.weights[0], layer.reduce.bias) for layer in self.model.layers]
        self.expand = [_with_bias(layer.expand.weights[0], layer.expand.bias) for layer in self.model.layers]
        self.relu_input = _ones_row(self.slot_rows - 1, batch)
        self.hidden = _ones_row(self.reduce[0].shape[0], batch)
        self.block_out = np.zeros((self.slot_rows - 1, batch))

    def _start_blocks_row(self, i: int) -> None:
        for conv in self.convs:
            conv.start_row(i)

    def _block(self, index, i, j):
        conv, hidden = self.convs[index], self.hidden[:-1]
        self._relu(self.slots[index], out=self.relu_input[:-1])
        slot = conv.slot(j)  # relu(reduce(relu(x))) straight into the convolution's cache
        self._relu(np.rint(np.matmul(self.reduce[index], self.relu_input, out=slot), out=slot))
        self._relu(np.rint(conv.at(j, hidden), out=hidden))
        return np.rint(np.matmul(self.expand[index], self.hidden, out=self.block_out), out=self.block_out)


class _LSTMEngine(IntegerEngine):
    """What both LSTM engines share: per-layer scratch for the cell, the output sum, its result."""

    def _setup_blocks(self) -> None:
        self._setup_scratch()
        self.layers = [self._layer_state(layer, layer.hidden) for layer in self.model.layers]

    def _layer_state(self, layer: LSTMLayer, size: int) -> dict:
        raise NotImplementedError

    def _setup_scratch(self) -> None:
        batch = self.batch
        self.outputs = [_with_bias(layer.output.weights[0], layer.output.bias) for layer in self.model.layers]
        size = self.model.layers[0].hidden
        self.gates = np.zeros((4 * size, batch))
        self.scratch = (np.zeros((4 * size, batch)), np.zeros((size, batch)))
        self.state_input = _ones_row(size, batch)  # the output sum's input: states and the row of ones
        self.block_out = np.zeros((self.slot_rows - 1, batch))

    def _output(self, index: int, states: np.ndarray) -> np.ndarray:
        """The output 1x1 sum over (h + 1, B) states with their row of ones."""
        return np.rint(np.matmul(self.outputs[index], states, out=self.block_out), out=self.block_out)


class RowLSTMEngine(_LSTMEngine):
    """Row LSTM (section 3.1): per layer, the row's state-to-state gates (one product at row start) and the cells above.

    Row caches are column-major, (W, h, B); the hidden states of the row above are read once,
    when the row starts, so one buffer serves both rows. The cells of row i are ``cells[i % 2]``,
    those of the row above the other slot (``cell`` and ``cell_above`` name them, swapped per row).
    """

    def _layer_state(self, layer: LSTMLayer, size: int) -> dict:
        batch, width = self.batch, self.width
        recurrent = layer.gates.weights[1]  # (4h, h, k)
        side = recurrent.shape[-1] // 2
        hidden = np.zeros((width + 2 * side, size + 1, batch))  # with its row of ones for the output sum
        hidden[:, size] = 1.0
        hidden[side : side + width, :size] = layer.initial_hidden[None, :, None]  # row -1: the learned initial state
        cells = np.zeros((2, width, size, batch))
        cells[1] = layer.initial_cell[None, :, None]  # row -1: the learned initial cell
        return {"input_to_state": RingConvAt(layer.gates, batch, width), "side": side, "hidden": hidden,
                "recurrent": np.concatenate([recurrent, np.zeros_like(recurrent[:, :1])], axis=1)  # the ones: weight 0
                .transpose(0, 2, 1).reshape(len(recurrent), -1),  # columns (column, channel)
                "cells": cells, "cell": cells[0], "cell_above": cells[1],
                "state_gates": np.zeros((len(recurrent), width, batch))}

    def _start_blocks_row(self, i: int) -> None:
        for layer in self.layers:
            if i > 0:
                layer["cell_above"], layer["cell"] = layer["cell"], layer["cell_above"]
            self._row_state_gates(layer)

    def _row_state_gates(self, layer: dict) -> None:
        """The state-to-state gates of the whole row from the row above, into ``state_gates`` (4h, W, B)."""
        windows = sliding_window_view(layer["hidden"], 2 * layer["side"] + 1, axis=0)  # (W, h, B, k)
        patches = windows.transpose(3, 1, 0, 2).reshape(layer["recurrent"].shape[1], -1)  # ((column, channel), W*B)
        np.matmul(layer["recurrent"], patches, out=layer["state_gates"].reshape(len(layer["recurrent"]), -1))

    def _block(self, index, i, j):
        layer = self.layers[index]
        input_to_state = layer["input_to_state"]
        np.copyto(input_to_state.slot(j), self.slots[index])
        gates = input_to_state.at(j, self.gates)
        gates += layer["state_gates"][:, j]
        states = layer["hidden"][j + layer["side"]]  # (h + 1, B): the state and its row of ones
        self._cell(gates, layer["cell_above"][j], layer["cell"][j], states[:-1], self.scratch)
        return self._output(index, states)


class DiagonalBiLSTMEngine(_LSTMEngine):
    """Diagonal BiLSTM (section 3.2): left-to-right per position, right-to-left per finished row, from its right end.

    The state at (i, j) reads (i, j-1) beside it and (i-1, j) above, both on the diagonal before
    (Figure 3's skew). Each direction keeps its states in one buffer of (h, B) slots, (i, j) in
    slot i + 2j + 2: the two it reads are then the adjacent slots i + 2j and i + 2j + 1, so the
    state-to-state sum is one product over a view. Slot i, the state left of column 0, gets the
    initial state when row i starts; the odd slots start as the initial state, row -1. The
    right-to-left direction is the same on the mirrored row (column W-1-j). Each direction's cells
    have a slot before column 0 holding the initial cell: column j's cell is ``padded_cell[d, j + 1]``
    and the one it reads ``padded_cell[d, j]``, so column 0 is no special case.
    """

    def _layer_state(self, layer: LSTMLayer, size: int) -> dict:
        batch, width = self.batch, self.width
        recurrent = layer.gates.weights[1].reshape(2, 4 * size, 2 * size)  # per direction over [above ; beside]
        states = np.empty((2, self.height + 2 * width + 2, size, batch))
        states[:] = layer.initial_hidden[:, None, :, None]
        padded_cell = np.zeros((2, width + 1, size, batch))
        padded_cell[:, 0] = layer.initial_cell[:, :, None]
        return {"input_to_state": _with_bias(layer.gates.weights[0], layer.gates.bias),  # (8h, 2h + 1): both directions
                "recurrent": [np.concatenate([r[:, size:], r[:, :size]], axis=1) for r in recurrent],  # over [beside ; above]
                "states": states, "padded_cell": padded_cell, "row_gates": np.zeros((width, 8 * size, batch)),
                "initial_hidden": np.broadcast_to(layer.initial_hidden[:, :, None], (2, size, batch)).copy(), "shifted_row": None}

    def _start_blocks_row(self, i: int) -> None:
        for layer in self.layers:
            if i > 0:
                self._right_to_left(layer, i - 1)
                layer["shifted_row"] = i - 1
            layer["states"][0, i] = layer["initial_hidden"][0]

    def _right_to_left(self, layer: dict, row: int) -> None:
        """Scan the finished row from its right end: the mirrored row's left-to-right recurrence."""
        size, width = len(layer["initial_hidden"][1]), self.width
        states, cells, gates = layer["states"][1], layer["padded_cell"][1], self.gates
        states[row] = layer["initial_hidden"][1]  # right of the last column
        for mirrored in range(width):
            slot = row + 2 * mirrored + 2
            np.matmul(layer["recurrent"][1], states[slot - 2 : slot].reshape(-1, self.batch), out=gates)
            gates += layer["row_gates"][width - 1 - mirrored, 4 * size :]
            self._cell(gates, cells[mirrored], cells[mirrored + 1], states[slot], self.scratch)

    def _block(self, index, i, j):
        layer = self.layers[index]
        size, slot, states = len(layer["initial_hidden"][0]), i + 2 * j + 2, layer["states"][0]
        row_gates = layer["row_gates"][j]  # (8h, B): both directions at the unmirrored column j
        np.matmul(layer["input_to_state"], self.slots_with_ones[index], out=row_gates)
        gates = np.matmul(layer["recurrent"][0], states[slot - 2 : slot].reshape(-1, self.batch), out=self.gates)
        gates += row_gates[: 4 * size]
        cells = layer["padded_cell"][0]
        self._cell(gates, cells[j], cells[j + 1], states[slot], self.scratch)
        if layer["shifted_row"] is None:  # row 0 receives zeros from the shift
            np.copyto(self.state_input[:-1], states[slot])
        else:
            np.add(states[slot], layer["states"][1, layer["shifted_row"] + 2 * (self.width - 1 - j) + 2], out=self.state_input[:-1])
        return self._output(index, self.state_input)


ENGINES = {"pixelcnn": PixelCNNEngine, "row_lstm": RowLSTMEngine, "diagonal_bilstm": DiagonalBiLSTMEngine}


class _IntegerColumn:
    """A numpy engine as the executor of the description's walk at the (i, j) it is set to; values are its buffers.

    The residual stream's slot ``index + 1`` receives block ``index``'s stream, and the output
    layers read and write the buffers with their rows of ones; the last one computes channel c's
    logits only (c: the cursor's), transposed into ``logits_buffer``.
    """

    def __init__(self, engine: IntegerEngine):
        self.engine, self.i, self.j = engine, 0, 0

    def input(self, j: int) -> np.ndarray:
        slot = self.engine.slots[0]
        return np.rint(self.engine.input_conv.at(j, slot), out=slot)

    def block(self, index: int, block: Block, stream: np.ndarray) -> np.ndarray:
        return self.engine._block(index, self.i, self.j)

    def stream(self, index: int, branch: np.ndarray, previous: np.ndarray | None) -> np.ndarray:
        slot = self.engine.slots[index + 1]
        return np.add(previous, branch, out=slot) if previous is not None else np.copyto(slot, branch) or slot

    def skip_sum(self, streams: list[np.ndarray]) -> np.ndarray:
        engine = self.engine
        out = engine.output_inputs[0][:-1]
        return np.rint(np.matmul(engine.skip, engine.stream[engine.slot_rows :], out=out), out=out)

    def output(self, index: int, layer: MaskedSum, features: np.ndarray) -> np.ndarray:
        engine = self.engine
        inputs = engine.output_inputs[index]
        engine._relu(features, out=inputs[:-1])
        if index + 1 < len(engine.output):
            out = engine.output_inputs[index + 1][:-1]
            return np.rint(np.matmul(engine.output[index], inputs, out=out), out=out)
        channel = engine.position[2]
        np.matmul(inputs.T, engine.logits_weights[channel], out=engine.logits_sum)  # (B, K): the same sums, transposed
        np.rint(engine.logits_sum, out=engine.logits_buffer[:, channel], casting="unsafe")
        return engine.logits_buffer
