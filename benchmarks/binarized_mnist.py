"""Binarized MNIST under a wall-clock budget: test NLL of each network next to the paper's.

    PIXELRNN_DATA_DIR=/path/to/data python benchmarks/binarized_mnist.py --minutes 20 [--archs pixelcnn,row_lstm,diagonal_bilstm]

Each network of configs/mnist_<arch>.toml trains for ``--minutes`` of wall-clock time on this
machine (Adam, lr 1e-3, batch 16, EMA 0.995 for a short budget; the configs keep the paper's
RMSProp for full runs), picks its best checkpoint on 1000 validation images, and is evaluated
on the whole test set (10000 images, the fixed binarization). Prints a markdown table.
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

from machine import hardware

PAPER_NATS = {"pixelcnn": 81.30, "row_lstm": 80.54, "diagonal_bilstm": 79.20}
ROOT = Path(__file__).resolve().parent.parent


def run(args: list[str]) -> None:
    print("$", " ".join(args), flush=True)
    subprocess.run(args, check=True)


def train_command(config: Path, run_dir: Path, minutes: float, device: str, overrides: tuple[str, ...] = ()) -> list[str]:
    """``pixelrnn train`` for a wall-clock budget: Adam at 1e-3, batch 16, EMA 0.995, best of 1000 validation images."""
    recipe = ("train.optimizer='adam'", "train.schedule='constant'", "train.ema_decay=0.995", "train.eval_every=500",
              "train.eval_images=1000", "train.checkpoint_every=500", f"train.max_minutes={minutes}", *overrides)
    command = [sys.executable, "-m", "pixelrnn", "train", "--config", str(config), "--out", str(run_dir), "--device", device, "--steps", "10000000", "-q"]
    for override in recipe:
        command += ["--set", override]
    return command


def evaluate_command(run_dir: Path, device: str, limit: int = 0) -> list[str]:
    """``pixelrnn evaluate`` of the run's best checkpoint on the test split, into ``run_dir/test.json``."""
    command = [sys.executable, "-m", "pixelrnn", "evaluate", str(run_dir), "--split", "test", "--json", str(run_dir / "test.json"), "-q", "--device", device]
    return command + (["--limit", str(limit)] if limit else [])


def steps_done(run_dir: Path) -> int:
    return max(json.loads(line)["step"] for line in (run_dir / "metrics.jsonl").read_text().splitlines())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", type=float, default=20.0)
    parser.add_argument("--archs", default="pixelcnn,row_lstm,diagonal_bilstm")
    parser.add_argument("--out", default="runs/benchmark_binarized_mnist")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--threads", type=int, default=0, help="CPU threads per process (0 = torch's default)")
    parser.add_argument("--eval-limit", type=int, default=0, help="evaluate only the first N test images (0 = all 10000)")
    args = parser.parse_args()
    if not os.environ.get("PIXELRNN_DATA_DIR"):
        sys.exit("set PIXELRNN_DATA_DIR to a folder holding binarized_mnist/*.amat (or train with --download first)")
    if args.threads:
        os.environ["OMP_NUM_THREADS"] = str(args.threads)  # inherited by the train and evaluate processes
    rows = []
    for arch in args.archs.split(","):
        run_dir = Path(args.out) / arch
        started = time.time()
        run(train_command(ROOT / "configs" / f"mnist_{arch}.toml", run_dir, args.minutes, args.device))
        run(evaluate_command(run_dir, args.device, args.eval_limit))
        test = json.loads((run_dir / "test.json").read_text())["test"]
        steps = steps_done(run_dir)
        rows.append((arch, test["nats_per_image"], test["nats_per_image_stderr"], steps, test["images"], time.time() - started))
    threads = f", {args.threads} thread(s) per process" if args.threads else ""
    print(f"\n# binarized MNIST, {args.minutes:g} min of training per network on {hardware()}{threads}, torch {torch.__version__}\n")
    print("| network | test NLL (nats) | paper | steps (batch 16) | test images |")
    print("| --- | ---: | ---: | ---: | ---: |")
    for arch, nats, stderr, steps, images, _ in rows:
        print(f"| {arch} | {nats:.2f} ± {stderr:.2f} | {PAPER_NATS[arch]:.2f} | {steps} | {images} |")


if __name__ == "__main__":
    main()
