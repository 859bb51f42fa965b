"""Native integer engines: the engines of :mod:`.integer_numpy_engines`, each position's work in one call.

The numpy engines spend their time on a hundred or so small array operations per position
(products, roundings, clamps, table lookups). Here each engine encodes, once per ``reset``, what
it computes at one position as an instruction list over its own caches (the same buffers, in the
same layout), run by ``pixelrnn_integer_run`` (``pixelrnn/native/integer.cpp``) in one call per
position; the Diagonal BiLSTM's right-to-left scan of a finished row is one call per row. Work
done once per row (the Row LSTM's state-to-state product, the ring buffers' new row) stays numpy.

Every sum of the integer coding model is exact (:mod:`.fixed_point`), so the native sums, grouped
differently and with fused multiply-adds, equal numpy's bit for bit, and so do the integer
logits: a file coded on one path decodes on the other (``tests/codec/test_native_integer.py``).
Where the native kernels are not built, :func:`.factory.make_integer_engine` gives the numpy engine.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

try:
    from numpy.lib.array_utils import byte_bounds
except ImportError:  # numpy < 2
    byte_bounds = np.byte_bounds

from .. import native
from ..models.description import Block, MaskedSum, walk
from .fixed_point import PRECISION, RECIPROCAL_BITS, integer_frequencies
from .integer_numpy_engines import ENGINES, IntegerEngine, RingConvAt

_PRODUCT, _CELL, _ADD, _COPY = 1, 2, 3, 4
_CLAMP_IN, _ROUND, _CLAMP_OUT, _INT64_OUT = 1, 2, 4, 8
_ITEM = 8  # float64 and int64


@dataclass(frozen=True)
class Operand:
    """A (rows, batch) view at position (0, 0) and how far it moves per row and per column, in elements.

    With ``period`` > 0 the row offset is (i mod period) * ``i_stride``: a ring of row buffers, or
    weights that change with the row's phase.
    """

    view: np.ndarray
    i_stride: int = 0
    j_stride: int = 0
    period: int = 0


def _root(array: np.ndarray) -> np.ndarray:
    while isinstance(array.base, np.ndarray):
        array = array.base
    return array


class IntegerProgram:
    """Instructions for ``pixelrnn_integer_run`` on ``batch`` images of ``height`` x ``width``.

    Every operand is checked, at every position of the image, to stay inside the array it views:
    a wrong view is a Python error, not a stray memory access.
    """

    def __init__(self, engine: IntegerEngine):
        self.batch, self.height, self.width = engine.batch, engine.height, engine.width
        self.rows: list[list[int]] = []
        self.keep: list[np.ndarray] = []  # every array an instruction points into lives as long as the program
        self._encoded: np.ndarray | None = None
        self._run = native.plain_kernel("pixelrnn_integer_run")
        tables = engine.model.tables
        self._tables = [np.ascontiguousarray(t, dtype=np.float64) for t in (tables.sigmoid, tables.tanh_gate, tables.tanh_cell)]
        if len({len(t) for t in self._tables}) != 1:
            raise ValueError("the integer model's sigmoid and tanh tables must have one length")
        self._context = np.array([t.ctypes.data for t in self._tables] + [len(self._tables[0]), engine.half], dtype=np.int64)
        self._relu_max = engine.relu_max
        self._engine = engine  # its ``threads`` when the program runs

    def _fields(self, operand: Operand | None, rows: int, batch_contiguous: bool = True) -> list[int]:
        if operand is None:
            return [0] * 6
        view = operand.view
        if view.dtype.itemsize != _ITEM or view.ndim != 2 or view.shape[0] < rows:
            raise ValueError(f"operand {view.dtype} {view.shape} where ({rows}, ...) of 8-byte items was expected")
        row_stride, column_stride = (s // _ITEM for s in view.strides)
        if batch_contiguous and view.shape[1] > 1 and column_stride != 1:
            raise ValueError("this operand needs its second axis contiguous")
        phases = range(operand.period) if operand.period else (0, self.height - 1)
        offsets = [p * operand.i_stride + j * operand.j_stride for p in phases for j in (0, self.width - 1)]
        extent = (rows - 1) * row_stride + (view.shape[1] - 1) * column_stride
        low, high = byte_bounds(_root(view))
        start = view.ctypes.data
        if min(offsets) * _ITEM + start < low or (max(offsets) + extent + 1) * _ITEM + start > high:
            raise ValueError("an operand would leave its array at some position of the image")
        self.keep.append(view)
        return [start, operand.i_stride, operand.period, operand.j_stride, row_stride, column_stride]

    def product(self, out: Operand, x: Operand, weight: Operand | np.ndarray, add: Operand | None = None, *,
                clamp_in: bool = False, round: bool = True, clamp_out: bool = False, int64_out: bool = False) -> None:
        """out = clamp(round(weight @ clamp(x))) + add, each step where asked; weight (out, in), x (in, batch)."""
        weight = weight if isinstance(weight, Operand) else Operand(weight)
        n_out, n_in = weight.view.shape
        if x.view.shape[1] != self.batch or out.view.shape[1] != self.batch:
            raise ValueError(f"x and out must have {self.batch} columns")
        flags = (_CLAMP_IN * clamp_in) | (_ROUND * round) | (_CLAMP_OUT * clamp_out) | (_INT64_OUT * int64_out)
        self.rows.append([_PRODUCT, n_out, n_in, flags, *self._fields(weight, n_out), *self._fields(out, n_out, False),
                          *self._fields(x, n_in), *self._fields(add, n_out, False)])

    def cell(self, hidden: Operand, gates: Operand, before: Operand, cell: Operand) -> None:
        """The integer LSTM update of n units: ``gates`` (4n, batch) [o | f | i | g] sums, not yet rounded."""
        units = gates.view.shape[0] // 4
        self.rows.append([_CELL, units, 0, 0, *self._fields(before, units), *self._fields(hidden, units),
                          *self._fields(gates, 4 * units), *self._fields(cell, units)])

    def add(self, out: Operand, x: Operand, y: Operand) -> None:
        rows = out.view.shape[0]
        self.rows.append([_ADD, rows, 0, 0, *[0] * 6, *self._fields(out, rows), *self._fields(x, rows), *self._fields(y, rows)])

    def copy(self, out: Operand, x: Operand) -> None:
        rows = out.view.shape[0]
        self.rows.append([_COPY, rows, 0, 0, *[0] * 6, *self._fields(out, rows), *self._fields(x, rows), *[0] * 6])

    def run(self, i: int, j_begin: int, j_end: int | None = None, j_step: int = 1) -> None:
        """Every instruction at (i, j_begin), or at each column of range(j_begin, j_end, j_step) of row i."""
        if self._encoded is None:
            self._encoded = np.array(self.rows, dtype=np.int64).reshape(-1)
            self._addresses = self._encoded.ctypes.data, self._context.ctypes.data
        if self.rows:
            program, context = self._addresses
            self._run(program, len(self.rows), self.batch, i, j_begin, j_begin + j_step if j_end is None else j_end, j_step,
                      context, self._relu_max, self._engine.threads)


def _slot(conv: RingConvAt) -> Operand:
    """The (in, B) input at column j of row i's ring slot: what the numpy engine writes through ``conv.slot(j)``."""
    cache = conv.cache
    return Operand(cache[conv.side, 0, :-1], cache.strides[1] // _ITEM, cache.strides[0] // _ITEM, period=cache.shape[1])


def _window(conv: RingConvAt) -> Operand:
    """The kernel's columns around j, all ring slots, channels with the ones: the product's input (``conv.at``)."""
    cache = conv.cache
    return Operand(cache[: 2 * conv.side + 1].reshape(-1, conv.batch), j_stride=cache.strides[0] // _ITEM)


def _phased_weight(conv: RingConvAt) -> Operand:
    """The weights of each ring phase (``conv.phases``) stacked: row i reads phase i mod (top + 1).

    Inputs whose weights are zero in every phase at the end of the window (the centre row's right
    side, masked out: a third of a Row LSTM's input-to-state window) are left out of the product.
    """
    stacked = np.stack(conv.phases)  # (phases, out, (column, slot, channel))
    used = stacked.any(axis=(0, 1)).nonzero()[0]
    width = int(used[-1]) + 1 if len(used) else 1
    return Operand(stacked[0, :, :width], i_stride=stacked[0].size, period=len(stacked))


class NativeIntegerEngine:
    """The shared part: the input convolution, the residual stream, skips and output stack as instructions.

    Mixed into a numpy engine, which keeps its caches, its ``reset`` and its per-row work; a
    subclass adds its blocks (``_block_instructions``) and, for the Diagonal BiLSTM, a row program.
    """

    #: Whether the first row's program differs from the others' (the Diagonal BiLSTM's shifted row).
    first_row_differs = False
    #: Threads of a position's work: the images split into groups of at least 32 (any count gives the same integers).
    threads = 1

    def _setup_blocks(self) -> None:
        super()._setup_blocks()
        first = [self._program(c, first=True) for c in range(self.channels)]
        self.programs = {True: first, False: [self._program(c, first=False) for c in range(self.channels)]
                         if self.first_row_differs else first}

    def _program(self, c: int, first: bool) -> IntegerProgram:
        lowering = _IntegerLowering(self, c, first)
        walk(self.model.description, lowering)
        return lowering.program

    def _column(self, i: int, j: int) -> np.ndarray:
        self.programs[i == 0][self.position[2]].run(i, j)
        return self.logits_buffer

    def _block_instructions(self, program: IntegerProgram, index: int, first: bool, residual: Operand | None) -> None:
        raise NotImplementedError


class _IntegerLowering:
    """The description's walk as one program of instructions: channel c's logits at a position.

    Values are the numpy engine's buffers, as in its own walk (``_IntegerColumn``). A block's last
    product adds the stream it read where the block is residual, so ``stream`` emits nothing.
    """

    def __init__(self, engine: NativeIntegerEngine, c: int, first: bool):
        self.engine, self.c, self.first = engine, c, first
        self.program = IntegerProgram(engine)

    def input(self) -> np.ndarray:
        engine = self.engine
        self.program.product(Operand(engine.slots[0]), _window(engine.input_conv), _phased_weight(engine.input_conv))
        return engine.slots[0]

    def block(self, index: int, block: Block, stream: np.ndarray) -> np.ndarray:
        engine = self.engine
        engine._block_instructions(self.program, index, self.first, Operand(engine.slots[index]) if block.residual else None)
        return engine.slots[index + 1]

    def stream(self, index: int, branch: np.ndarray, previous: np.ndarray | None) -> np.ndarray:
        return branch

    def skip_sum(self, streams: list[np.ndarray]) -> np.ndarray:
        engine = self.engine
        self.program.product(Operand(engine.output_inputs[0][:-1]), Operand(engine.stream[engine.slot_rows:]), engine.skip)
        return engine.output_inputs[0][:-1]

    def output(self, index: int, layer: MaskedSum, features: np.ndarray) -> np.ndarray:
        engine, inputs = self.engine, self.engine.output_inputs[index]
        if not np.shares_memory(features, inputs):  # the last stream, without skips: into the first layer's input
            self.program.copy(Operand(inputs[:-1]), Operand(features))
        if index + 1 < len(engine.output):
            self.program.product(Operand(engine.output_inputs[index + 1][:-1]), Operand(inputs), engine.output[index], clamp_in=True)
            return engine.output_inputs[index + 1][:-1]
        logits = engine.logits_buffer[:, self.c].T  # (K, B): the product's outputs are the rows
        self.program.product(Operand(logits), Operand(inputs), np.ascontiguousarray(engine.logits_weights[self.c].T),
                             clamp_in=True, int64_out=True)
        return logits


class NativePixelCNNEngine(NativeIntegerEngine, ENGINES["pixelcnn"]):
    """PixelCNN: reduce into the k x k sum's ring, the masked sum, expand (``PixelCNNEngine._block``)."""

    def _block_instructions(self, program, index, first, residual):
        conv = self.convs[index]
        program.product(_slot(conv), Operand(self.slots_with_ones[index]), self.reduce[index], clamp_in=True, clamp_out=True)
        program.product(Operand(self.hidden[:-1]), _window(conv), _phased_weight(conv), clamp_out=True)
        program.product(Operand(self.slots[index + 1]), Operand(self.hidden), self.expand[index], residual)


class NativeRowLSTMEngine(NativeIntegerEngine, ENGINES["row_lstm"]):
    """Row LSTM: per position the input-to-state sum, the row's state-to-state gates, the cell, the output sum.

    The cells of row i are slot i mod 2 of the numpy engine's ``cells`` and those above the other,
    so the same instructions serve every row; the slots' names need no swapping here.
    """

    def _start_blocks_row(self, i: int) -> None:
        for layer in self.layers:
            self._row_state_gates(layer)

    def _block_instructions(self, program, index, first, residual):
        layer, size = self.layers[index], self.model.layers[index].hidden
        its, cells, hidden, state_gates = layer["input_to_state"], layer["cells"], layer["hidden"], layer["state_gates"]
        program.copy(_slot(its), Operand(self.slots[index]))
        gates = Operand(self.gates[: 4 * size])
        program.product(gates, _window(its), _phased_weight(its), Operand(state_gates[:, 0], j_stride=self.batch), round=False)
        row, column = cells.strides[0] // _ITEM, cells.strides[1] // _ITEM
        program.cell(Operand(hidden[layer["side"], :size], j_stride=hidden.strides[0] // _ITEM), gates,
                     Operand(cells[1, 0], -row, column, period=2), Operand(cells[0, 0], row, column, period=2))
        program.product(Operand(self.slots[index + 1]), Operand(hidden[layer["side"]], j_stride=hidden.strides[0] // _ITEM),
                        self.outputs[index], residual)


class NativeDiagonalBiLSTMEngine(NativeIntegerEngine, ENGINES["diagonal_bilstm"]):
    """Diagonal BiLSTM: left to right per position, the finished row right to left in one call.

    Row 0 has its own program (it adds no shifted right-to-left state).
    """

    first_row_differs = True

    def _setup_blocks(self) -> None:
        super()._setup_blocks()
        self.reverse = [self._reverse_program(layer) for layer in self.layers]

    def _start_blocks_row(self, i: int) -> None:
        for layer, reverse in zip(self.layers, self.reverse):
            if i > 0:
                layer["states"][1, i - 1] = layer["initial_hidden"][1]  # right of the last column
                reverse.run(i - 1, 0, self.width)
                layer["shifted_row"] = i - 1
            layer["states"][0, i] = layer["initial_hidden"][0]

    def _directions(self, layer: dict, direction: int):
        states, padded = layer["states"][direction], layer["padded_cell"][direction]
        slot, cell = states.strides[0] // _ITEM, padded.strides[0] // _ITEM
        size = states.shape[1]
        beside = Operand(states[0:2].reshape(2 * size, self.batch), slot, 2 * slot)  # slots i + 2j, i + 2j + 1
        new = Operand(states[2], slot, 2 * slot)  # slot i + 2j + 2
        return beside, new, Operand(padded[0], j_stride=cell), Operand(padded[1], j_stride=cell)

    def _reverse_program(self, layer: dict) -> IntegerProgram:
        """Row i's right-to-left scan, column j of the mirrored row at run(i, j): ``_right_to_left``."""
        program = IntegerProgram(self)
        size, row_gates = len(layer["initial_hidden"][1]), layer["row_gates"]
        beside, new, before, cell = self._directions(layer, 1)
        gates = Operand(self.gates[: 4 * size])
        program.product(gates, beside, layer["recurrent"][1],
                        Operand(row_gates[self.width - 1, 4 * size :], j_stride=-row_gates.strides[0] // _ITEM), round=False)
        program.cell(new, gates, before, cell)
        return program

    def _block_instructions(self, program, index, first, residual):
        layer = self.layers[index]
        size, row_gates = len(layer["initial_hidden"][0]), layer["row_gates"]
        row_step = row_gates.strides[0] // _ITEM
        program.product(Operand(row_gates[0], j_stride=row_step), Operand(self.slots_with_ones[index]), layer["input_to_state"],
                        round=False)
        beside, new, before, cell = self._directions(layer, 0)
        gates = Operand(self.gates[: 4 * size])
        program.product(gates, beside, layer["recurrent"][0], Operand(row_gates[0, : 4 * size], j_stride=row_step), round=False)
        program.cell(new, gates, before, cell)
        state_input = Operand(self.state_input[:-1])
        if first:  # row 0 receives zeros from the shift
            program.copy(state_input, new)
        else:  # the right-to-left state of (i - 1, j): slot (i - 1) + 2 (W - 1 - j) + 2
            states = layer["states"][1]
            slot = states.strides[0] // _ITEM
            program.add(state_input, new, Operand(states[2 * self.width - 1], slot, -2 * slot))
        program.product(Operand(self.slots[index + 1]), Operand(self.state_input), self.outputs[index], residual)


NATIVE_ENGINES = {"pixelcnn": NativePixelCNNEngine, "row_lstm": NativeRowLSTMEngine, "diagonal_bilstm": NativeDiagonalBiLSTMEngine}


def frequencies(logits: np.ndarray, exp_table: np.ndarray) -> np.ndarray:
    """:func:`.fixed_point.integer_frequencies` in one native call where the kernels are built: the same weights.

    ``logits`` (N, K) int64 with contiguous rows (the engines' output); anything else, or no
    kernels, takes the numpy function.
    """
    kernel = native.plain_kernel("pixelrnn_integer_frequencies")
    if kernel is None or logits.dtype != np.int64 or logits.ndim != 2 or (logits.shape[1] > 1 and logits.strides[1] != _ITEM):
        return integer_frequencies(logits, exp_table)
    exp_table = np.ascontiguousarray(exp_table, dtype=np.float64)  # already so: the model's table
    count, levels = logits.shape
    weights = np.empty((count, levels))
    if count:
        kernel(logits.ctypes.data, logits.strides[0] // _ITEM, count, levels, exp_table.ctypes.data, len(exp_table),
               PRECISION, RECIPROCAL_BITS, weights.ctypes.data)
    return weights
