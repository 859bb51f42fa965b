"""Training throughput (images/s) of every preset at its native image size.

    python benchmarks/train_speed.py [--presets a,b] [--batch 16] [--seconds 20] [--device cpu]

Each preset trains on random images for a warm-up of 1 step, then for at least ``--seconds``
(and at least 2 steps); forward, backward and an RMSProp step are timed together.
"""

from __future__ import annotations

import argparse
import time

import torch

from machine import cpu_name
from pixelrnn.models import model_from_config
from pixelrnn.presets import PRESETS


def measure(preset, batch: int, seconds: float, device: torch.device) -> float:
    torch.manual_seed(0)
    cfg = preset.config
    model = model_from_config(cfg).to(device)
    optimizer = torch.optim.RMSprop(model.parameters(), lr=1e-4)
    x = torch.randint(0, cfg.levels, (batch, cfg.channels, *preset.image_size), device=device)

    def step():
        loss = model.nll(x).mean()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    step()
    if device.type == "cuda":
        torch.cuda.synchronize()
    steps, start = 0, time.perf_counter()
    while steps < 2 or time.perf_counter() - start < seconds:
        step()
        steps += 1
    if device.type == "cuda":
        torch.cuda.synchronize()
    return steps * batch / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--presets", default=",".join(PRESETS))
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (0 = default)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    hardware = torch.cuda.get_device_name(device) if device.type == "cuda" else f"{cpu_name()}, {torch.get_num_threads()} threads"
    print(f"# training throughput, batch {args.batch}, {hardware}, torch {torch.__version__}, >= {args.seconds:.0f} s per preset\n")
    print("| preset | image | images/s | s/step |")
    print("| --- | --- | ---: | ---: |")
    for name in args.presets.split(","):
        preset = PRESETS[name]
        speed = measure(preset, args.batch, args.seconds, device)
        size = f"{preset.config.channels}x{preset.image_size[0]}x{preset.image_size[1]}"
        shown = f"{speed:.1f}" if speed >= 1 else f"{speed:.2g}"  # the large presets run well under 1 image/s on a CPU
        print(f"| {name} | {size} | {shown} | {args.batch / speed:.2f} |", flush=True)


if __name__ == "__main__":
    main()
