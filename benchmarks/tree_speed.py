"""This tree against another checkout: sampling, coding and training speed, interleaved, as ratios.

    git worktree add ../before 71f8e7a            # the tree to compare with
    python benchmarks/tree_speed.py --checkout ../before [--rounds 3] [--only sample,codec,train]

Every workload runs in a fresh process per tree (``PYTHONPATH`` set to the tree, the timing code
the same: this tree's ``benchmarks/``), on one torch thread, the two trees alternating in ABBA
order, round by round, so that a machine shared with other work slows both alike. The table gives
each tree's median seconds of wall-clock time and of the process's CPU time, the speed ratios
(other / this: above 1 means this tree is faster) and the load average after the workload's last
run; on a machine shared with other work the CPU time is the steadier measure. Workloads, on the MNIST presets with random weights (28x28x1, 2
levels) and 16 images:

- ``sample``: ``sample(...)`` on the native engines (all 28 rows) and on the reference engines
  (the first 7 rows, ``pixelrnn.native.disabled()``), as ``benchmarks/sampling_speed.py`` times them;
- ``codec``: ``compress`` then ``decompress`` with the integer coding model on the native and on
  the numpy engine, as ``benchmarks/codec_speed.py`` runs them (random binary images);
- ``train``: five training steps (forward, backward, RMSProp) after one warm-up, as
  ``benchmarks/train_speed.py`` times them, with the native scans.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from machine import cpu_name

ARCHS = ("pixelcnn", "row_lstm", "diagonal_bilstm")
BATCH = 16


def workloads(kinds: list[str]) -> list[str]:
    found = []
    for arch in ARCHS:
        found += [f"sample:{arch}:native", f"sample:{arch}:reference"] if "sample" in kinds else []
        found += [f"codec:{arch}:native", f"codec:{arch}:numpy"] if "codec" in kinds else []
        found += [f"train:{arch}"] if "train" in kinds else []
    return found


def measure(workload: str) -> tuple[float, float]:
    """(wall, CPU) seconds of one run of ``workload`` with the pixelrnn on sys.path, on one thread."""
    from pixelrnn import PRESETS, model_from_config, native

    torch.set_num_threads(1)
    kind, arch, *path = workload.split(":")
    preset = PRESETS[f"mnist_{arch}"]
    torch.manual_seed(0)
    model = model_from_config(preset.config).eval()
    off = native.disabled() if path and path[0] in ("reference", "numpy") else contextlib.nullcontext()
    if kind == "sample":
        from sampling_speed import time_rows

        rows = 28 if path[0] == "native" else 7
        time_rows(model, BATCH, 1, 28, path[0] == "native")  # warm-up: the native build, allocations
        return time_rows(model, BATCH, rows, 28, path[0] == "native")
    if kind == "codec":
        from pixelrnn.codec import compress, decompress, images_from_array

        images = images_from_array(np.random.default_rng(0).integers(0, 2, (BATCH, 1, 28, 28), dtype=np.uint8), 2)
        with off:
            compress(model, images[:1])  # warm-up
            start = clocks()
            decoded = decompress(model, compress(model, images))
            spent = since(start)
        assert all(np.array_equal(a.values, b.values) for a, b in zip(decoded, images))
        return spent
    from train_speed import trainer

    step = trainer(preset, BATCH, torch.device("cpu"))
    step()
    start = clocks()
    for _ in range(5):
        step()
    return since(start)


def clocks() -> tuple[float, float]:
    return time.perf_counter(), time.process_time()


def since(start: tuple[float, float]) -> tuple[float, float]:
    now = clocks()
    return now[0] - start[0], now[1] - start[1]


def run(tree: Path, workload: str) -> tuple[float, float]:
    here = Path(__file__).resolve().parent
    # A kernel cache per tree: builds of other checkouts record other source paths and would be rebuilt.
    extensions = Path(tempfile.gettempdir()) / "pixelrnn_tree_speed" / hashlib.sha256(str(tree).encode()).hexdigest()[:12]
    environment = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tree), str(here)]), "TORCH_EXTENSIONS_DIR": str(extensions)}
    output = subprocess.run([sys.executable, __file__, "--measure-only", workload], env=environment, check=True,
                            capture_output=True, text=True).stdout
    wall, cpu = output.strip().splitlines()[-1].split()
    return float(wall), float(cpu)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkout", help="the other checkout of the project")
    parser.add_argument("--rounds", type=int, default=3, help="rounds; each runs every workload once per tree")
    parser.add_argument("--only", default="sample,codec,train", help="comma-separated: sample, codec, train")
    parser.add_argument("--measure-only", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.measure_only:
        print(*measure(args.measure_only))
        return
    if not args.checkout:
        parser.error("--checkout OTHER_TREE is required")
    trees = {"other": Path(args.checkout).resolve(), "this": Path(__file__).resolve().parents[1]}
    print(f"# this tree against {trees['other']}: {cpu_name()}, {os.cpu_count()} logical CPUs, torch {torch.__version__}, "
          f"1 torch thread; median seconds of {args.rounds} rounds, trees in ABBA order")
    print(f"# command: python benchmarks/tree_speed.py {' '.join(sys.argv[1:])}")
    print(f"# load average at start: {os.getloadavg()[0]:.2f}\n")
    print("| workload | other tree: s (wall / CPU) | this tree: s (wall / CPU) | speed, this / other (wall / CPU) | load |")
    print("| --- | ---: | ---: | ---: | ---: |")
    for workload in workloads(args.only.split(",")):
        times = {"other": [], "this": []}
        for index in range(args.rounds):
            for label in ("other", "this") if index % 2 == 0 else ("this", "other"):
                times[label].append(run(trees[label], workload))
        other = [statistics.median(run[k] for run in times["other"]) for k in (0, 1)]
        this = [statistics.median(run[k] for run in times["this"]) for k in (0, 1)]
        print(f"| {workload} | {other[0]:.3f} / {other[1]:.3f} | {this[0]:.3f} / {this[1]:.3f} | "
              f"{other[0] / this[0]:.3f}x / {other[1] / this[1]:.3f}x | {os.getloadavg()[0]:.1f} |", flush=True)


if __name__ == "__main__":
    main()
