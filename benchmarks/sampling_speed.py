"""Time naive and incremental (cached) sampling for each network; print a markdown table.

    python benchmarks/sampling_speed.py [--quick] [--archs pixelcnn,row_lstm] [--batches 1,16,64]
                                        [--sizes mnist,cifar]

Models are the paper's presets (``pixelrnn.presets``) with random weights: 28x28x1 with 2
levels (``mnist_*``) and 32x32x3 with 256 levels (``cifar10_*``). Speed does not depend on the
weights.

How the numbers are obtained (each is the time of a whole image, divided by the batch):
- naive (``sample(model, ..., naive=True)``): every sub-pixel costs one full forward pass of
  the whole batch at the full image size plus one draw, the same work for every sub-pixel, so
  the total is exactly linear in the number of sub-pixels. The first ``naive_steps``
  sub-pixels of an image are timed through the library's naive path and the time per
  sub-pixel is multiplied by C*H*W. The naive path is timed with one thread and with torch's
  default thread count, and the faster is reported (small convolutions can be slower with
  more threads on a busy machine).
- incremental (``sample(model, ...)``): the engine's work per row does not depend on the rows
  below it, so sampling an image of the first ``rows`` rows costs exactly the first ``rows``
  rows of the full image; that time is multiplied by H / rows (``rows`` = H: no
  extrapolation). The engine runs on one thread (``IncrementalEngine.threads``).
- every measurement is repeated ``--repeat`` times and the fastest kept, for both paths: the
  machine may be shared, and other work only ever makes a run slower.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time

import torch

from machine import cpu_name
from pixelrnn import PRESETS, model_from_config
from pixelrnn.sampling import fill, sample

SIZES = {
    # name: (preset prefix, image rows to sample incrementally in full / quick mode, naive steps full / quick)
    "mnist": ("mnist_", (28, 7), (28, 14)),
    "cifar": ("cifar10_", (4, 1), (3, 1)),
}
ARCHS = ("pixelcnn", "row_lstm", "diagonal_bilstm")


def time_incremental(model, batch, height, width, rows):
    generator = torch.Generator().manual_seed(0)
    start = time.perf_counter()
    sample(model, batch, rows, width, generator=generator)
    return (time.perf_counter() - start) * height / rows


def time_naive(model, batch, height, width, steps, threads):
    channels = model.config.channels
    images = torch.zeros(batch, channels, height, width, dtype=torch.long)
    known = torch.ones_like(images, dtype=torch.bool)
    # Leave the first `steps` sub-pixels of raster order (i, j, c) unknown.
    order = torch.arange(channels * height * width).view(height, width, channels).permute(2, 0, 1)
    known[:, order < steps] = False
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        with torch.no_grad():
            model.logits_from_scaled(model.scale(images))  # warm-up (allocations, kernel choice)
        start = time.perf_counter()
        fill(model, images, known, generator=torch.Generator().manual_seed(0), naive=True)
        elapsed = time.perf_counter() - start
    finally:
        torch.set_num_threads(previous)
    return elapsed / steps * channels * height * width


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer rows and naive steps (extrapolated)")
    parser.add_argument("--archs", default=",".join(ARCHS), help="comma-separated architectures")
    parser.add_argument("--batches", default="1,16,64", help="comma-separated batch sizes")
    parser.add_argument("--sizes", default="mnist,cifar", help="comma-separated: mnist (28x28x1, 2 levels), cifar (32x32x3, 256 levels)")
    parser.add_argument("--repeat", type=int, help="time each measurement this many times, keep the fastest (default 2, quick 1)")
    args = parser.parse_args(argv)
    archs = [a for a in args.archs.split(",") if a]
    batches = [int(b) for b in args.batches.split(",") if b]
    sizes = [s for s in args.sizes.split(",") if s]
    for name in archs:
        if name not in ARCHS:
            parser.error(f"unknown architecture {name!r}; choose from {', '.join(ARCHS)}")
    for name in sizes:
        if name not in SIZES:
            parser.error(f"unknown size {name!r}; choose from {', '.join(SIZES)}")

    repeat = args.repeat or (1 if args.quick else 2)
    default_threads = torch.get_num_threads()
    print(f"hardware: {cpu_name()}, {torch.get_num_threads()} threads, torch {torch.__version__}, Python {platform.python_version()}")
    print(f"load average at start (other work on the machine): {os.getloadavg()[0]:.2f}")
    print(f"command: python benchmarks/sampling_speed.py {' '.join(sys.argv[1:] if argv is None else argv)}")
    print()
    print("| preset | image | batch | naive ms/image | incremental ms/image | speed-up | measured |")
    print("| --- | --- | ---: | ---: | ---: | ---: | --- |")
    for size in sizes:
        prefix, row_counts, step_counts = SIZES[size]
        for arch in archs:
            preset = PRESETS[prefix + arch]
            torch.manual_seed(0)
            model = model_from_config(preset.config).eval()
            height, width = preset.image_size
            channels = preset.config.channels
            rows = min(height, row_counts[args.quick])
            steps = step_counts[args.quick]
            for batch in batches:
                print(f"  {preset.name} batch {batch}...", file=sys.stderr, flush=True)
                incremental = min(time_incremental(model, batch, height, width, rows) for _ in range(repeat))
                naive = min(time_naive(model, batch, height, width, steps, threads)
                            for threads in sorted({1, default_threads}) for _ in range(repeat))
                how = f"naive: {steps} of {channels * height * width} sub-pixels; incremental: {rows} of {height} rows"
                print(f"| {preset.name} | {channels}x{height}x{width}, {preset.config.levels} levels | {batch} | "
                      f"{naive / batch * 1000:,.0f} | {incremental / batch * 1000:,.1f} | {naive / incremental:,.0f}x | {how} |",
                      flush=True)
    print(f"\nload average at the end: {os.getloadavg()[0]:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
