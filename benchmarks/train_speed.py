"""Training throughput (images/s) of presets at their native image size, before and after the native scans.

    python benchmarks/train_speed.py [--presets a,b] [--batch 16] [--steps 20] [--device cpu]
    python benchmarks/train_speed.py --checkout OTHER_TREE [--presets a,b] [--rounds 2]

Each preset trains on random images: forward, backward and an RMSProp step are timed together.
"before" runs without the native kernels (``pixelrnn.native.disabled()``: the PyTorch scans of
``pixelrnn/layers/scan.py`` and torch's 1x1 products), "after" with them (the native scans of
``pixelrnn/layers/native_scan.py`` and the 1x1 products of ``pixelrnn/layers/native_pointwise.py``);
everything else is the same code.
The two alternate step by step in one process (after one warm-up step each), ``--steps`` steps
each, and the table gives the median step as images per second of wall-clock time and of the
process's CPU time (all threads), their ratios and the load average: on a machine shared with
other work the wall-clock rates depend on the others, the ratios much less. On a GPU, or where
the native kernels cannot be built, there is no "after" and only the one path is timed.

Model FLOPs utilisation (MFU): each preset's multiply-adds per training step and image are counted
from its description (``pixelrnn.models.cost.training_multiply_adds``: the products of the forward
pass, three times for forward and backward; tested against torch's flop counter), and the machine's
rate is a large float32 matrix product (2048 x 2048) timed in the same process on the same threads.
MFU = 2 x multiply-adds x images/s / that rate, for the wall-clock rates.

``--checkout OTHER_TREE`` compares this tree with another checkout of the project instead (for
example the code before the native scans: ``git worktree add OTHER_TREE 611dcbf``): each round
runs the same training step in a fresh process on each tree, one after the other, the order
alternating from round to round (``PYTHONPATH`` set to the tree), ``--steps`` steps after two
warm-up steps, and prints the median step's images/s of each.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch

from machine import cpu_name
from pixelrnn.models import model_from_config
from pixelrnn.presets import PRESETS


def trainer(preset, batch: int, device: torch.device):
    torch.manual_seed(0)
    cfg = preset.config
    model = model_from_config(cfg).to(device)
    try:  # the library's own optimiser, as training builds it
        from pixelrnn.training import TrainConfig, make_optimizer
        optimizer = make_optimizer(TrainConfig(optimizer="rmsprop", lr=1e-4), model.parameters())
    except ImportError:  # a checkout from before make_optimizer, which trained with the per-parameter loop
        optimizer = torch.optim.RMSprop(model.parameters(), lr=1e-4)
    x = torch.randint(0, cfg.levels, (batch, cfg.channels, *preset.image_size), device=device)

    def step():
        loss = model.nll(x).mean()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    return step


def matmul_rate(device: torch.device, size: int = 2048, repeats: int = 5) -> float:
    """FLOP/s of the fastest of ``repeats`` float32 (size x size) @ (size x size) products on this process's threads."""
    a, b = torch.randn(size, size, device=device), torch.randn(size, size, device=device)
    best = float("inf")
    for _ in range(repeats + 1):  # the first warms up
        start = time.perf_counter()
        torch.mm(a, b)
        if device.type == "cuda":
            torch.cuda.synchronize()
        best = min(best, time.perf_counter() - start)
    return 2 * size**3 / best


def training_flops(preset) -> int:
    """FLOPs (2 x multiply-adds) of one training step of one image of ``preset`` (forward and backward)."""
    from pixelrnn.models.cost import training_multiply_adds
    from pixelrnn.models.description import describe

    return 2 * training_multiply_adds(describe(preset.config), *preset.image_size)


def timed_step(step, device: torch.device, use_native: bool) -> tuple[float, float]:
    """(wall-clock, CPU) seconds of one training step."""
    from pixelrnn import native  # here, not at the top: a checkout under comparison may predate it

    with native.disabled() if not use_native else contextlib.nullcontext():
        wall, cpu = time.perf_counter(), time.process_time()
        step()
        if device.type == "cuda":
            torch.cuda.synchronize()
        return time.perf_counter() - wall, time.process_time() - cpu


def measure_only(preset_name: str, batch: int, steps: int) -> None:
    """Print the median step's images/s of wall-clock and of CPU time, of the pixelrnn on sys.path (the tree under comparison)."""
    step = trainer(PRESETS[preset_name], batch, torch.device("cpu"))
    for _ in range(2):
        step()
    walls, cpus = [], []
    for _ in range(steps):
        wall, cpu = time.perf_counter(), time.process_time()
        step()
        walls.append(time.perf_counter() - wall)
        cpus.append(time.process_time() - cpu)
    print(batch / statistics.median(walls), batch / statistics.median(cpus))


def compare_checkouts(args) -> None:
    here = Path(__file__).resolve().parent
    trees = {"this tree": here.parent, "other tree": Path(args.checkout).resolve()}
    print(f"# training throughput, batch {args.batch}, {cpu_name()}, {torch.get_num_threads()} threads, torch {torch.__version__}, "
          f"median of {args.steps} steps per run, each round a fresh process per tree; other tree: {trees['other tree']}")
    print(f"# load average at start: {os.getloadavg()[0]:.2f}\n")
    # CPU time as well: on a machine that other jobs share, a process's wall-clock time depends on
    # theirs far more than its CPU time does.
    print("| preset | round | other tree: images/s (wall / CPU) | this tree: images/s (wall / CPU) | this / other (wall / CPU) | load |")
    print("| --- | ---: | ---: | ---: | ---: | ---: |")
    for name in args.presets.split(","):
        for index in range(args.rounds):
            rates = {}
            # The first process of a round may find the machine in another state than the second (its clock, its
            # caches, other jobs): the order alternates, other tree first in odd rounds, this tree in even ones.
            for label in ("other tree", "this tree")[:: 1 if index % 2 == 0 else -1]:
                environment = {**os.environ, "PYTHONPATH": os.pathsep.join([str(trees[label]), str(here)])}
                command = [sys.executable, __file__, "--measure-only", name, "--batch", str(args.batch), "--steps", str(args.steps)]
                if args.threads:
                    command += ["--threads", str(args.threads)]
                output = subprocess.run(command, env=environment, check=True, capture_output=True, text=True).stdout
                rates[label] = [float(rate) for rate in output.strip().splitlines()[-1].split()]
            (other_wall, other_cpu), (this_wall, this_cpu) = rates["other tree"], rates["this tree"]
            print(f"| {name} | {index + 1} | {other_wall:.1f} / {other_cpu:.1f} | {this_wall:.1f} / {this_cpu:.1f} | "
                  f"{this_wall / other_wall:.2f}x / {this_cpu / other_cpu:.2f}x | {os.getloadavg()[0]:.1f} |", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--presets", default=",".join(PRESETS))
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--steps", type=int, default=20, help="timed steps per path, alternating")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (0 = default)")
    parser.add_argument("--checkout", help="another checkout of the project to compare this tree with (CPU)")
    parser.add_argument("--rounds", type=int, default=2, help="with --checkout: rounds of one run per tree")
    parser.add_argument("--measure-only", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.measure_only:
        return measure_only(args.measure_only, args.batch, args.steps)
    if args.checkout:
        return compare_checkouts(args)
    device = torch.device(args.device)
    hardware = torch.cuda.get_device_name(device) if device.type == "cuda" else f"{cpu_name()}, {torch.get_num_threads()} threads"
    from pixelrnn import native

    paths = ["before", "after"] if device.type == "cpu" and native.library() is not None else ["before"]
    rate = matmul_rate(device)
    print(f"# training throughput, batch {args.batch}, {hardware}, torch {torch.__version__}, "
          f"median of {args.steps} steps per path, the paths alternating step by step")
    print(f"# float32 2048x2048 matrix product here: {rate / 1e9:.1f} GFLOP/s; load average at start: {os.getloadavg()[0]:.2f}\n")
    print("| preset | image | GFLOP per image | before: images/s (wall / CPU) | after: images/s (wall / CPU) | after / before (wall / CPU) "
          "| MFU before / after | load |")
    print("| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |")
    for name in args.presets.split(","):
        preset = PRESETS[name]
        step = trainer(preset, args.batch, device)
        for path in paths:  # warm-up: allocations, kernel choice, the native build
            timed_step(step, device, path == "after")
        times = {path: [] for path in paths}
        for _ in range(args.steps):
            for path in paths:
                times[path].append(timed_step(step, device, path == "after"))
        # images/s of the median step, wall-clock and CPU
        median = {path: [args.batch / statistics.median(t[k] for t in values) for k in (0, 1)] for path, values in times.items()}

        def shown(values):
            return " / ".join(f"{value:.1f}" if value >= 1 else f"{value:.2g}" for value in values)

        after = shown(median["after"]) if "after" in median else "-"
        ratio = " / ".join(f"{a / b:.2f}x" for a, b in zip(median["after"], median["before"])) if "after" in median else "-"
        size = f"{preset.config.channels}x{preset.image_size[0]}x{preset.image_size[1]}"
        flops = training_flops(preset)
        mfu = " / ".join(f"{100 * flops * median[path][0] / rate:.0f} %" for path in paths)
        print(f"| {name} | {size} | {flops / 1e9:.3f} | {shown(median['before'])} | {after} | {ratio} | {mfu} | "
              f"{os.getloadavg()[0]:.1f} |", flush=True)


if __name__ == "__main__":
    main()
