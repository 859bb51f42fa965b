"""Time naive sampling, the reference engines (before) and the native engines (after); print a markdown table.

    python benchmarks/sampling_speed.py [--quick] [--archs pixelcnn,row_lstm] [--batches 1,16,64]
                                        [--sizes mnist,cifar] [--rounds 3]

Models are the paper's presets (``pixelrnn.presets``) with random weights: 28x28x1 with 2
levels (``mnist_*``) and 32x32x3 with 256 levels (``cifar10_*``). Speed does not depend on the
weights.

The three paths run in one process, interleaved: each round times naive, before and after once,
in a rotating order, and the table gives the median of the rounds and the ratios of the
medians, so that a machine shared with other work slows all three alike. Each is given as
wall-clock time and as the process's CPU time (all threads): on a machine shared with other
work the CPU time is the steadier measure. The load average is printed with every row.

- naive (``sample(model, ..., naive=True)``): every sub-pixel costs one full forward pass of
  the whole batch at the full image size plus one draw, so the total is linear in the number
  of sub-pixels: the first ``naive_steps`` sub-pixels of an image are timed and the time per
  sub-pixel multiplied by C*H*W. Each round times it with one thread and with torch's default
  thread count and keeps the faster.
- before: ``sample(model, ...)`` under ``pixelrnn.native.disabled()``: the reference engines
  (``pixelrnn/sampling/reference_engines.py``) and the PyTorch draw, the code path of the engines before
  the native kernels.
- after: ``sample(model, ...)`` with the native engines (``pixelrnn/sampling/native_engines.py``).
- An engine's work on a row does not depend on the rows below it, so sampling the first
  ``rows`` rows costs exactly those rows of the full image. Where ``rows`` < H, the first row
  (which carries the engine's setup) is timed alone too, and the image's time is that of the
  first row plus (H - 1) times the mean of rows 2 .. ``rows`` (``rows`` = H: no extrapolation).
  The engines run on one thread.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import platform
import statistics
import sys
import time

import torch

from machine import cpu_name
from pixelrnn import PRESETS, model_from_config, native
from pixelrnn.sampling import fill, sample

SIZES = {
    # name: (preset prefix, image rows to sample incrementally in full / quick mode, naive steps full / quick)
    "mnist": ("mnist_", (28, 7), (28, 14)),
    "cifar": ("cifar10_", (4, 1), (3, 1)),
}
ARCHS = ("pixelcnn", "row_lstm", "diagonal_bilstm")
SETTLE_SECONDS = 1.0


def clocks() -> tuple[float, float]:
    """Wall-clock and CPU time of this process (all its threads)."""
    return time.perf_counter(), time.process_time()


def since(start: tuple[float, float], scale: float = 1.0) -> tuple[float, float]:
    now = clocks()
    return (now[0] - start[0]) * scale, (now[1] - start[1]) * scale


def time_rows(model, batch, rows, width, use_native):
    """(wall, CPU) seconds of sampling ``batch`` images of ``rows`` rows."""
    generator = torch.Generator().manual_seed(0)
    start = clocks()
    with native.disabled() if not use_native else contextlib.nullcontext():
        sample(model, batch, rows, width, generator=generator)
    return since(start)


def time_incremental(model, batch, height, width, rows, use_native):
    """(wall, CPU) seconds of a whole image, from its first ``rows`` rows (and its first row, to extrapolate)."""
    if rows == height:
        return time_rows(model, batch, rows, width, use_native)
    first = time_rows(model, batch, 1, width, use_native)
    if rows == 1:
        return tuple(value * height for value in first)
    # The first row carries the fixed costs (the engine's setup); the others cost the same each.
    some = time_rows(model, batch, rows, width, use_native)
    return tuple(one + (many - one) * (height - 1) / (rows - 1) for one, many in zip(first, some))


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
        start = clocks()
        fill(model, images, known, generator=torch.Generator().manual_seed(0), naive=True)
        elapsed = since(start, channels * height * width / steps)
    finally:
        torch.set_num_threads(previous)
    return elapsed


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer rows and naive steps (extrapolated), one round")
    parser.add_argument("--archs", default=",".join(ARCHS), help="comma-separated architectures")
    parser.add_argument("--batches", default="1,16,64", help="comma-separated batch sizes")
    parser.add_argument("--sizes", default="mnist,cifar", help="comma-separated: mnist (28x28x1, 2 levels), cifar (32x32x3, 256 levels)")
    parser.add_argument("--rounds", type=int, help="interleaved rounds per row of the table (default 3, quick 1)")
    parser.add_argument("--no-naive", action="store_true", help="skip the naive path (before and after only)")
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
    if native.library() is None:
        parser.error("the native kernels are not available here, so there is no 'after' to time")

    rounds = args.rounds or (1 if args.quick else 3)
    default_threads = torch.get_num_threads()
    print(f"hardware: {cpu_name()}, {os.cpu_count()} logical CPUs, {default_threads} torch threads, "
          f"torch {torch.__version__} ({torch.backends.cpu.get_cpu_capability()}), Python {platform.python_version()}")
    print(f"load average at start (other work on the machine): {os.getloadavg()[0]:.2f}")
    print(f"command: python benchmarks/sampling_speed.py {' '.join(sys.argv[1:] if argv is None else argv)}")
    print(f"medians of {rounds} interleaved round(s); ms per image, wall-clock / CPU time")
    print()
    print("| preset | batch | naive | before | after | after vs naive | after vs before | load | measured |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |")
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
                paths = {
                    "before": lambda: time_incremental(model, batch, height, width, rows, use_native=False),
                    "after": lambda: time_incremental(model, batch, height, width, rows, use_native=True),
                }
                if not args.no_naive:
                    paths["naive"] = lambda: min((time_naive(model, batch, height, width, steps, threads)
                                                  for threads in sorted({1, default_threads})), key=lambda wall_cpu: wall_cpu[0])
                times = {name: [] for name in paths}
                names = list(paths)
                for index in range(rounds):
                    for name in names[index % len(names):] + names[: index % len(names)]:  # rotate the order per round
                        # torch's idle CPU threads spin for a while after parallel work (the naive path's
                        # convolutions); let them sleep, so that they do not take the next path's time.
                        time.sleep(SETTLE_SECONDS)
                        times[name].append(paths[name]())
                # Per path: (wall, cpu) medians in ms per image.
                median = {name: tuple(statistics.median(value[k] for value in values) / batch * 1000 for k in (0, 1))
                          for name, values in times.items()}

                def pair(values, digits):
                    return f"{values[0]:,.{digits}f} / {values[1]:,.{digits}f}"

                def ratio(slow, fast, digits):
                    return f"{slow[0] / fast[0]:,.{digits}f}x / {slow[1] / fast[1]:,.{digits}f}x"

                naive = pair(median["naive"], 0) if "naive" in median else "-"
                versus_naive = ratio(median["naive"], median["after"], 0) if "naive" in median else "-"
                how = f"naive: {steps} of {channels * height * width} sub-pixels; engines: {rows} of {height} rows"
                print(f"| {preset.name} | {batch} | {naive} | {pair(median['before'], 1)} | {pair(median['after'], 1)} | {versus_naive} | "
                      f"{ratio(median['before'], median['after'], 1)} | {os.getloadavg()[0]:.1f} | {how} |", flush=True)
    print(f"\nload average at the end: {os.getloadavg()[0]:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
