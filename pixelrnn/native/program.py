"""Instruction lists for the native per-position step (``program.cpp``), built from tensor views.

An incremental engine describes what it computes at one position of a row as a list of
instructions whose operands are 2-D ``(batch, units)`` views of its caches and weights, each
with a ``j_stride``: the operand of column j is the view moved by ``j * j_stride`` elements.
The list is built once per row and run once per position (or over a range of columns, for a
scan along the row) by one native call. The builder checks every view against the kernel's
layout rules, so a wrong view is a Python error, not a wrong memory access.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from . import kernel

_LINEAR, _LSTM, _ADD, _COPY = 1, 2, 3, 4
_RELU_IN, _RELU_OUT = 1, 2
_NONE = (0, 0, 0, 0)


@dataclass(frozen=True)
class Operand:
    """A (batch, units) view and how far it moves per column (in elements)."""

    view: torch.Tensor
    j_stride: int = 0

    def fields(self, rows: int, units: int, columns: int, contiguous_units: bool = False) -> tuple[int, int, int, int]:
        view = self.view
        if view.dim() != 2 or view.shape[0] != rows or view.shape[1] < units:
            raise ValueError(f"operand of shape {tuple(view.shape)} where ({rows}, >= {units}) was expected")
        if contiguous_units and units > 1 and view.stride(1) != 1:
            raise ValueError("this operand needs contiguous units")
        # Every element the kernel may touch, at any of the row's columns, lies inside the tensor's storage.
        strides = (self.j_stride, view.stride(0), view.stride(1))
        last = view.storage_offset() + (columns - 1) * strides[0] + (rows - 1) * strides[1] + max(units - 1, 0) * strides[2]
        if min(strides) < 0 or last >= view.untyped_storage().nbytes() // view.element_size():
            raise ValueError(f"operand moved by {self.j_stride} per column leaves its storage within {columns} columns")
        return view.data_ptr(), self.j_stride, view.stride(0), view.stride(1)


def at(view: torch.Tensor, j_stride: int = 0) -> Operand:
    return Operand(view, j_stride)


class Program:
    """Instructions for ``pixelrnn_run_*`` on ``batch`` rows of ``dtype``, run at columns 0 .. columns-1."""

    def __init__(self, batch: int, columns: int, dtype: torch.dtype):
        self.batch, self.columns, self.dtype = batch, columns, dtype
        self.rows: list[list[int]] = []
        self.keep: list[torch.Tensor] = []  # every tensor an instruction points into stays alive with the program
        self._encoded = None
        self._run = kernel("pixelrnn_run", dtype)

    def _check(self, *operands: Operand | None) -> None:
        for operand in operands:
            if operand is not None:
                if operand.view.dtype != self.dtype or operand.view.device.type != "cpu":
                    raise ValueError(f"operand of {operand.view.dtype} on {operand.view.device}; the program runs {self.dtype} on the CPU")
                self.keep.append(operand.view)

    def linear(self, out: Operand, x: Operand, weight: torch.Tensor, base: Operand | None = None, add: Operand | None = None,
               relu_in: bool = False, relu_out: bool = False) -> None:
        """out = base + add + act(x) @ weight; ``weight`` (n_in, n_out) with contiguous rows; act = relu if ``relu_in``."""
        n_in, n_out = weight.shape
        if n_out > 1 and weight.stride(1) != 1:
            raise ValueError("the weight's rows must be contiguous")
        self._check(out, x, base, add)
        self.keep.append(weight)
        flags = (_RELU_IN if relu_in else 0) | (_RELU_OUT if relu_out else 0)
        rows, cols = self.batch, self.columns
        self.rows.append([_LINEAR, n_in, n_out, flags, weight.data_ptr(), weight.stride(0),
                          *out.fields(rows, n_out, cols, True), *x.fields(rows, n_in, cols),
                          *(base.fields(rows, n_out, cols, True) if base is not None else _NONE),
                          *(add.fields(rows, n_out, cols, True) if add is not None else _NONE)])

    def lstm(self, hidden: Operand, gates: Operand, cell_prev: Operand, cell: Operand) -> None:
        """One LSTM update of n units: ``gates`` (batch, 4n) as [o | f | i | g], contiguous."""
        units = gates.view.shape[1] // 4
        self._check(hidden, gates, cell_prev, cell)
        rows, cols = self.batch, self.columns
        self.rows.append([_LSTM, 0, units, 0, 0, 0, *hidden.fields(rows, units, cols), *gates.fields(rows, 4 * units, cols, True),
                          *cell_prev.fields(rows, units, cols), *cell.fields(rows, units, cols)])

    def add(self, out: Operand, x: Operand, y: Operand) -> None:
        units = out.view.shape[1]
        self._check(out, x, y)
        rows, cols = self.batch, self.columns
        self.rows.append([_ADD, 0, units, 0, 0, 0, *out.fields(rows, units, cols), *x.fields(rows, units, cols), *y.fields(rows, units, cols), *_NONE])

    def copy(self, out: Operand, x: Operand) -> None:
        units = out.view.shape[1]
        self._check(out, x)
        rows, cols = self.batch, self.columns
        self.rows.append([_COPY, 0, units, 0, 0, 0, *out.fields(rows, units, cols), *x.fields(rows, units, cols), *_NONE, *_NONE])

    def run(self, j_begin: int, j_end: int | None = None, j_step: int = 1) -> None:
        """Run every instruction at column j_begin (or at each column of range(j_begin, j_end, j_step))."""
        if self._encoded is None:
            self._encoded = torch.tensor(self.rows, dtype=torch.int64).reshape(-1)
        end = j_begin + j_step if j_end is None else j_end
        self._run(self._encoded.data_ptr(), len(self.rows), self.batch, j_begin, end, j_step)
