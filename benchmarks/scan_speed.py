"""Time of one Diagonal BiLSTM scan (forward, and forward + backward) and of the activations it uses.

    python benchmarks/scan_speed.py [--threads 2] [--repeats 30]

The scan of ``pixelrnn/layers/scan.py`` at the MNIST preset's size (batch 16, 28x28, h = 16,
both directions) and at batch 1, h = 1, where the arithmetic is negligible and what remains is
the fixed cost of the operations and the Python loop. Then torch's ``tanh``, ``sigmoid`` and the
``2 sigmoid(2x) - 1`` form the scans use, on one diagonal step's content-gate slice.
"""

from __future__ import annotations

import argparse
import time

import torch

from pixelrnn.layers.scan import DiagonalScan, _tanh  # _tanh: the form the scans use on the CPU


def milliseconds(function, repeats: int) -> float:
    function()
    start = time.perf_counter()
    for _ in range(repeats):
        function()
    return (time.perf_counter() - start) / repeats * 1e3


def scan_times(batch: int, size: int, height: int, width: int, repeats: int) -> tuple[float, float]:
    torch.manual_seed(0)
    directions = 2
    gates = torch.randn(directions, batch, height, width, 4 * size, requires_grad=True)
    weight = (0.1 * torch.randn(directions, 4 * size, 2 * size)).requires_grad_()
    initial = [torch.zeros(directions, size, requires_grad=True) for _ in range(2)]
    upstream = torch.randn(directions, batch, height, width, size)
    forward = milliseconds(lambda: DiagonalScan.apply(gates, weight, *initial), repeats)
    both = milliseconds(lambda: DiagonalScan.apply(gates, weight, *initial).backward(upstream), repeats)
    return forward, both


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (0 = default)")
    parser.add_argument("--repeats", type=int, default=30)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    print(f"# Diagonal BiLSTM scan, 28x28, {torch.get_num_threads()} threads, torch {torch.__version__}\n")
    print("| batch | h | forward (ms) | forward + backward (ms) |")
    print("| ---: | ---: | ---: | ---: |")
    for batch, size in ((16, 16), (1, 1)):
        forward, both = scan_times(batch, size, 28, 28, args.repeats)
        print(f"| {batch} | {size} | {forward:.1f} | {both:.1f} |")
    pre = torch.randn(2, 448, 64)  # one step of the preset: 2 directions, 16 images x 28 rows, 4h gates
    content = pre[..., 48:]
    print("\n| activation on a (2, 448, 16) slice | µs |")
    print("| --- | ---: |")
    for name, function in (("torch.tanh", lambda: torch.tanh(content)), ("torch.sigmoid", lambda: torch.sigmoid(content)),
                           ("2 sigmoid(2x) - 1", lambda: _tanh(content))):
        print(f"| {name} | {1000 * milliseconds(function, 100 * args.repeats):.1f} |")


if __name__ == "__main__":
    main()
