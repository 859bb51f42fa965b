"""Multi-Scale PixelRNN against a single-scale model of similar size, same wall-clock budget.

    PIXELRNN_DATA_DIR=/path/to/data python benchmarks/multiscale_mnist.py --minutes 20 --threads 1 --parallel

Trains ``configs/mnist_multiscale.toml`` (28x28 given a 14x14 subsample, two 7-layer
h = 16 Diagonal BiLSTMs) and a single-scale Diagonal BiLSTM widened to about the same number
of parameters (7 layers, ``--single-hidden``, default 26: 190,946 against 186,692) on binarized MNIST, each for
``--minutes`` with the recipe of ``binarized_mnist.py`` (Adam 1e-3, batch 16, EMA 0.995, best
checkpoint on 1000 validation images). Both are then evaluated on the test set (NLL over all
28x28 dimensions, so the figures compare directly) and sample 64 images from seed 0:
``<out>/<name>/samples.png``, plus ``samples_stages.png`` (both stages side by side) for the
multi-scale model. ``--parallel`` trains the two at once, one process per core, so that both
see the same machine conditions. Prints a markdown table.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import torch

from binarized_mnist import ROOT, evaluate_command, hardware, run, steps_done, train_command
from pixelrnn.training import load_model_from


def parameters(run_dir: Path) -> int:
    return sum(p.numel() for p in load_model_from(run_dir).parameters())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", type=float, default=20.0)
    parser.add_argument("--single-hidden", type=int, default=26, help="h of the single-scale 7-layer Diagonal BiLSTM")
    parser.add_argument("--out", default="runs/benchmark_multiscale_mnist")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--threads", type=int, default=0, help="CPU threads per process (0 = torch's default)")
    parser.add_argument("--parallel", action="store_true", help="train both models at the same time")
    parser.add_argument("--eval-limit", type=int, default=0, help="evaluate only the first N test images (0 = all 10000)")
    parser.add_argument("--samples", type=int, default=64)
    args = parser.parse_args()
    if not os.environ.get("PIXELRNN_DATA_DIR"):
        sys.exit("set PIXELRNN_DATA_DIR to a folder holding binarized_mnist/*.amat")
    if args.threads:
        os.environ["OMP_NUM_THREADS"] = str(args.threads)
    out = Path(args.out)
    models = {
        "multiscale": train_command(ROOT / "configs" / "mnist_multiscale.toml", out / "multiscale", args.minutes, args.device),
        "single_scale": train_command(ROOT / "configs" / "mnist_diagonal_bilstm.toml", out / "single_scale", args.minutes, args.device,
                                      (f"model.hidden={args.single_hidden}", f"model.output_hidden={2 * args.single_hidden}")),
    }
    if args.parallel:
        for command in models.values():
            print("$", " ".join(command), flush=True)
        processes = [subprocess.Popen(command) for command in models.values()]
        if any(process.wait() for process in processes):
            sys.exit("a training run failed")
    else:
        for command in models.values():
            run(command)
    rows = []
    for name in models:
        run_dir = out / name
        run(evaluate_command(run_dir, args.device, args.eval_limit))
        test = json.loads((run_dir / "test.json").read_text())["test"]
        started = time.time()
        run([sys.executable, "-m", "pixelrnn", "sample", str(run_dir), "-n", str(args.samples), "--seed", "0",
             "--out", str(run_dir / "samples.png"), "--device", args.device])
        rows.append((name, parameters(run_dir), steps_done(run_dir), test, time.time() - started))
    threads = f", {args.threads} thread(s) per process" if args.threads else ""
    mode = "in parallel" if args.parallel else "one after the other"
    print(f"\n# binarized MNIST 28x28, {args.minutes:g} min of training each ({mode}) on {hardware()}{threads}, torch {torch.__version__}\n")
    print("| model | parameters | steps (batch 16) | test NLL (nats) | bits/dim | sampling 64 (s) | samples |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | --- |")
    for name, count, steps, test, seconds in rows:
        print(f"| {name} | {count:,} | {steps} | {test['nats_per_image']:.2f} ± {test['nats_per_image_stderr']:.2f} | "
              f"{test['bits_per_dim']:.4f} | {seconds:.0f} | {out / name / 'samples.png'} |")


if __name__ == "__main__":
    main()
