"""The rate of the native scans' matrix product on rows laid out as a scan step lays them out.

    python benchmarks/product_rows.py [--seconds 1] [--rounds 5]

One step of the Diagonal BiLSTM's forward scan at the MNIST preset (``mnist_diagonal_bilstm``:
h = 16, 28 x 28, a diagonal of 28 positions in each of the 8 images of a product) is one product
``activations = gates + [state above ; state to the left] @ weight``: 224 rows, 2h = 32 inputs,
4h = 64 outputs (``pixelrnn/native/scan.cpp``). Its rows are one diagonal's positions, which
lie far apart in memory: the gates one row down and one column left in the convolution's
(B, H, W, 8h) output (27 x 128 floats), the activations likewise in (B, H, W, 4h)
(27 x 64 floats), the states in the padded (B, H + 1, W + 1, h) buffers (28 x 16 floats).

The same product (``pixelrnn/native/dense.h``, compiled here with the flags of the native build)
is timed on three layouts of its rows:

- ``contiguous``: every operand's rows one after another (the states as overlapping windows of
  one diagonal, as a diagonal-major buffer would hold them);
- ``scan``: the strides of today's scan;
- ``gates apart``: the gates at today's stride, the states and activations contiguous (what
  diagonal-major buffers inside the scan would give without reordering the convolution's output).

Each product starts at another place of 26 MB maps (the size of one layer's gates at batch 64),
as the scan's steps do. One thread; the layouts alternate, ``--rounds`` times, each for about
``--seconds``; the medians are printed with the load average.
"""

from __future__ import annotations

import argparse
import ctypes
import os
import statistics
from pathlib import Path

import torch
from machine import cpu_name
from torch.utils import cpp_extension

from pixelrnn import native

HERE = Path(__file__).resolve().parent
H, WIDTH, IMAGES = 16, 28, 8
ROWS, N_IN, N_OUT = IMAGES * WIDTH, 2 * H, 4 * H
#: (x stride, base stride, out stride) in floats, per layout
LAYOUTS = {
    "contiguous": (H, N_OUT, N_OUT),
    "scan": (WIDTH * H, (WIDTH - 1) * 8 * H, (WIDTH - 1) * N_OUT),
    "gates apart": (H, (WIDTH - 1) * 8 * H, N_OUT),
}
MAP_FLOATS = 64 * WIDTH * WIDTH * 8 * H  # one layer's gates at batch 64


def build() -> ctypes.CDLL:
    path = cpp_extension.load("pixelrnn_product_rows", [str(HERE / "product_rows.cpp")], extra_cflags=native.compile_flags(),
                              extra_include_paths=[str(native.SOURCE_DIR)], is_python_module=False, verbose=False)
    library = ctypes.CDLL(path)
    library.pixelrnn_product_rate.restype = ctypes.c_double
    library.pixelrnn_product_rate.argtypes = [ctypes.c_int64] * 7 + [ctypes.c_double]
    return library


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=1.0, help="per layout and round")
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    library = build()
    print(f"# the scan's product ({ROWS} rows, {N_IN} inputs, {N_OUT} outputs), {cpu_name()}, one thread, "
          f"torch {torch.__version__} build flags; median of {args.rounds} alternating rounds of {args.seconds:g} s")
    print(f"# load average at start: {os.getloadavg()[0]:.2f}\n")
    rates = {name: [] for name in LAYOUTS}
    for _ in range(args.rounds):
        for name, strides in LAYOUTS.items():
            rates[name].append(library.pixelrnn_product_rate(ROWS, N_IN, N_OUT, *strides, MAP_FLOATS, args.seconds))
    contiguous = statistics.median(rates["contiguous"])
    print("| rows | strides x / gates / activations (floats) | GFLOP/s | of contiguous |")
    print("| --- | --- | ---: | ---: |")
    for name, strides in LAYOUTS.items():
        rate = statistics.median(rates[name])
        print(f"| {name} | {' / '.join(map(str, strides))} | {rate:.1f} | {rate / contiguous:.0%} |")
    print(f"\n# load average at the end: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
