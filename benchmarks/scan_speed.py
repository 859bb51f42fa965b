"""Time of one Diagonal BiLSTM and one Row LSTM scan, forward and forward + backward, PyTorch against native.

    python benchmarks/scan_speed.py [--threads 2] [--repeats 20]

The scans of ``pixelrnn/layers/scan.py`` (PyTorch: ``DiagonalScan``, ``LSTMScan``) and of
``pixelrnn/layers/native_scan.py`` (``NativeDiagonalScan``, ``NativeRowScan``) at the MNIST
presets' size (batch 16, 28x28, h = 16; the Diagonal BiLSTM with both directions) and at batch
1, h = 1, where the arithmetic is negligible and what remains is each step's fixed cost. The
two run alternately, ``--repeats`` times each, and the medians are printed with the CPU time
of the process (all threads) and the load average.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

import torch

from pixelrnn import native
from pixelrnn.layers.native_scan import NativeDiagonalScan, NativeRowScan
from pixelrnn.layers.scan import DiagonalScan, LSTMScan, RowRecurrence


def scans(batch: int, size: int, height: int, width: int):
    """Per scan: (PyTorch, native), each a function of the inputs returning the hidden states."""
    torch.manual_seed(0)
    gates = torch.randn(2, batch, height, width, 4 * size, requires_grad=True)
    weight = (0.1 * torch.randn(2, 4 * size, 2 * size)).requires_grad_()
    initial = [torch.zeros(2, size, requires_grad=True) for _ in range(2)]
    row_gates = torch.randn(batch, height, width, 4 * size, requires_grad=True)  # native: position-major
    rows = row_gates.detach().permute(1, 3, 0, 2).reshape(height, 1, 4 * size, batch * width).requires_grad_()  # PyTorch: (T, D, 4h, N)
    row_weight = (0.1 * torch.randn(4 * size, 3 * size)).requires_grad_()
    row_initial = [torch.zeros(size, requires_grad=True) for _ in range(2)]
    return {
        "Diagonal BiLSTM": (lambda: DiagonalScan.apply(gates, weight, *initial), lambda: NativeDiagonalScan.apply(gates, weight, *initial)),
        "Row LSTM": (lambda: LSTMScan.apply(rows, row_weight[None], *(state[None] for state in row_initial), RowRecurrence(batch, width, 3)),
                     lambda: NativeRowScan.apply(row_gates, row_weight, *row_initial, 3)),
    }


def run(scan, backward: bool) -> None:
    out = scan()
    if backward:
        out.sum().backward()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (0 = default)")
    parser.add_argument("--repeats", type=int, default=20)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    if native.library() is None:
        parser.error("the native kernels are not available here")
    print(f"# scans at 28x28, {torch.get_num_threads()} threads, torch {torch.__version__}, load average {os.getloadavg()[0]:.2f}, "
          f"medians of {args.repeats} alternating runs, ms wall-clock / CPU\n")
    print("| scan | batch | h | PyTorch forward | native forward | PyTorch forward + backward | native forward + backward | speed-up (f + b, wall) |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for batch, size in ((16, 16), (1, 1)):
        for name, (pytorch, native_scan) in scans(batch, size, 28, 28).items():
            times = {}
            for backward in (False, True):
                for function in (pytorch, native_scan):
                    run(function, backward)  # warm-up
                samples = {"pytorch": [], "native": []}
                for _ in range(args.repeats):
                    for label, function in (("pytorch", pytorch), ("native", native_scan)):
                        wall, cpu = time.perf_counter(), time.process_time()
                        run(function, backward)
                        samples[label].append((time.perf_counter() - wall, time.process_time() - cpu))
                for label, values in samples.items():
                    times[label, backward] = [statistics.median(v[k] for v in values) * 1e3 for k in (0, 1)]

            def shown(key):
                return " / ".join(f"{value:.1f}" for value in times[key])

            print(f"| {name} | {batch} | {size} | {shown(('pytorch', False))} | {shown(('native', False))} | "
                  f"{shown(('pytorch', True))} | {shown(('native', True))} | {times['pytorch', True][0] / times['native', True][0]:.1f}x |",
                  flush=True)


if __name__ == "__main__":
    main()
