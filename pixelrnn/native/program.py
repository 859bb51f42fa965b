"""Instruction lists for the native per-position step (``program.cpp``), built from tensor views.

An incremental engine describes what it computes at one position as a list of instructions
whose operands are 2-D ``(batch, units)`` views of its caches and weights at position (0, 0),
each with how far it moves per row (``i_stride``) and per column (``j_stride``), in elements.
The list is built once per batch of images and run once per position (or over the columns of
a row, for the work done when a row starts) by one native call. The builder checks that every
element an instruction may touch, at any position of the image, lies inside its tensor, so a
wrong view is a Python error, not a stray memory access.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from . import kernel

_LINEAR, _LSTM, _ADD, _COPY = 1, 2, 3, 4
_RELU_IN, _RELU_OUT, _PADDED = 1, 2, 4
#: The kernel's last vector of outputs reads whole vectors of weights: every weight row is read up
#: to a multiple of this many columns (up to 64 bytes of float32), copied with zero columns where
#: that would leave the tensor.
PAD_COLUMNS = 16
_NONE = (0, 0, 0, 0, 0)


@dataclass(frozen=True)
class Operand:
    """A (batch, units) view at position (0, 0) and how far it moves per row and per column (elements)."""

    view: torch.Tensor
    i_stride: int = 0
    j_stride: int = 0


def at(view: torch.Tensor, j_stride: int = 0, i_stride: int = 0) -> Operand:
    return Operand(view, i_stride, j_stride)


class Program:
    """Instructions for ``pixelrnn_run_*`` on ``batch`` images of ``height`` x ``width`` in ``dtype``."""

    def __init__(self, batch: int, height: int, width: int, dtype: torch.dtype):
        self.batch, self.height, self.width, self.dtype = batch, height, width, dtype
        self.rows: list[list[int]] = []
        self.keep: list[torch.Tensor] = []  # every tensor an instruction points into lives as long as the program
        self._encoded = None
        self._run = kernel("pixelrnn_run", dtype)

    def _fields(self, operand: Operand | None, units: int, contiguous: bool = False,
                segments: tuple[int, int] = (0, 0)) -> tuple[int, ...]:
        if operand is None:
            return _NONE
        view = operand.view
        if view.dtype != self.dtype or view.device.type != "cpu":
            raise ValueError(f"operand of {view.dtype} on {view.device}; the program runs {self.dtype} on the CPU")
        if view.dim() != 2 or view.shape[0] != self.batch:
            raise ValueError(f"operand of shape {tuple(view.shape)} where ({self.batch}, units) was expected")
        if contiguous and units > 1 and view.stride(1) != 1:
            raise ValueError("this operand needs contiguous units")
        segment, segment_stride = segments
        count = -(-units // segment) if segment else 1
        length = segment if segment else units
        strides = (operand.i_stride, operand.j_stride, view.stride(0), view.stride(1), segment_stride)
        last = (view.storage_offset() + (self.height - 1) * strides[0] + (self.width - 1) * strides[1]
                + (self.batch - 1) * strides[2] + max(length - 1, 0) * strides[3] + (count - 1) * strides[4])
        if min(strides) < 0 or last >= view.untyped_storage().nbytes() // view.element_size():
            raise ValueError("an operand would leave its tensor at some position of the image")
        if not segment and units > view.shape[1]:
            raise ValueError(f"operand of {view.shape[1]} units where {units} are read")
        self.keep.append(view)
        return view.data_ptr(), operand.i_stride, operand.j_stride, view.stride(0), view.stride(1)

    def linear(self, out: Operand, x: Operand, weight: torch.Tensor, base: Operand | None = None, add: Operand | None = None,
               relu_in: bool = False, relu_out: bool = False, segments: tuple[int, int] = (0, 0)) -> None:
        """out = base + add + act(x) @ weight, act = relu where ``relu_in``; ``weight`` (n_in, n_out), rows contiguous.

        ``segments`` = (length, stride): x's units come in runs of ``length`` (the rows of a patch),
        run s starting ``s * stride`` elements after run 0.
        """
        n_in, n_out = weight.shape
        if n_out > 1 and weight.stride(1) != 1:
            raise ValueError("the weight's rows must be contiguous")
        width = -(-n_out // PAD_COLUMNS) * PAD_COLUMNS
        if n_in and weight.storage_offset() + (n_in - 1) * weight.stride(0) + width > weight.untyped_storage().nbytes() // weight.element_size():
            # The last row's padding would leave the tensor: a copy with zero columns (inside, the
            # kernel reads neighbouring weights into outputs it never writes).
            padded = weight.new_zeros(n_in, width)
            padded[:, :n_out] = weight
            weight = padded
        self.keep.append(weight)
        flags = (_RELU_IN if relu_in else 0) | (_RELU_OUT if relu_out else 0) | _PADDED
        self.rows.append([_LINEAR, n_in, n_out, flags, weight.data_ptr(), weight.stride(0), *segments,
                          *self._fields(out, n_out, True), *self._fields(x, n_in, segments=segments),
                          *self._fields(base, n_out, True), *self._fields(add, n_out, True)])

    def lstm(self, hidden: Operand, gates: Operand, cell_prev: Operand, cell: Operand) -> None:
        """One LSTM update of n units: ``gates`` (batch, 4n) as [o | f | i | g], contiguous."""
        units = gates.view.shape[1] // 4
        self.rows.append([_LSTM, 0, units, 0, 0, 0, 0, 0, *self._fields(hidden, units), *self._fields(gates, 4 * units, True),
                          *self._fields(cell_prev, units), *self._fields(cell, units)])

    def add(self, out: Operand, x: Operand, y: Operand) -> None:
        units = out.view.shape[1]
        self.rows.append([_ADD, 0, units, 0, 0, 0, 0, 0, *self._fields(out, units), *self._fields(x, units),
                          *self._fields(y, units), *_NONE])

    def copy(self, out: Operand, x: Operand) -> None:
        units = out.view.shape[1]
        self.rows.append([_COPY, 0, units, 0, 0, 0, 0, 0, *self._fields(out, units), *self._fields(x, units), *_NONE, *_NONE])

    def encoded(self) -> tuple[int, int]:
        """The address and the number of the instructions, for native code that runs the program itself."""
        if self._encoded is None:
            self._encoded = torch.tensor(self.rows, dtype=torch.int64).reshape(-1)
        return self._encoded.data_ptr(), len(self.rows)

    def run(self, i: int, j_begin: int, j_end: int | None = None, j_step: int = 1) -> None:
        """Run every instruction at (i, j_begin), or at each column of range(j_begin, j_end, j_step) of row i."""
        address, count = self.encoded()
        if count:
            self._run(address, count, self.batch, i, j_begin, j_begin + j_step if j_end is None else j_end, j_step)
