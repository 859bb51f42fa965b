"""Where a training step's time goes, by operation and shape, and the parts measured on their own.

    python benchmarks/step_parts.py profile --preset mnist_row_lstm [--batch 64] [--threads 1] [--steps 3] [--top 20]
    python benchmarks/step_parts.py optimiser --preset mnist_row_lstm [--threads 1]
    python benchmarks/step_parts.py input-conv [--threads 2]

``profile``: ``torch.profiler`` over ``--steps`` training steps of the preset (the step of
benchmarks/train_speed.py: forward, backward, the library's optimiser), grouped by operation and
input shapes; prints each group's calls and milliseconds of self CPU time per step. To compare two
checkouts, run it with ``PYTHONPATH`` set to each. ``optimiser``: milliseconds per step of Adam and
RMSProp over the preset's parameters, per-parameter loop, foreach and fused, and of the EMA's
update, per parameter and in one call. ``input-conv``: forward and backward of a mask-A 7x7
(trimmed 4x7) input convolution, the padded input in the usual layout against channels last, at
binarized MNIST's and CIFAR-10's sizes. Medians of repeated runs, after warm-up; the load average
is printed: compare figures of one run only.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

import torch
import torch.nn.functional as F

from pixelrnn.models import model_from_config
from pixelrnn.presets import PRESETS
from train_speed import trainer


def median_ms(work, repeats: int = 20) -> float:
    for _ in range(3):
        work()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        work()
        times.append(time.perf_counter() - start)
    return 1000 * statistics.median(times)


def profile(args) -> None:
    step = trainer(PRESETS[args.preset], args.batch, torch.device("cpu"))
    for _ in range(2):
        step()
    with torch.profiler.profile(record_shapes=True) as recorded:
        for _ in range(args.steps):
            step()
    groups = sorted(recorded.key_averages(group_by_input_shape=True), key=lambda group: -group.self_cpu_time_total)
    print(f"# {args.preset}, batch {args.batch}, {torch.get_num_threads()} threads, {args.steps} steps; "
          f"load average {os.getloadavg()[0]:.2f}\n")
    print("| operation | input shapes | calls per step | ms per step (self CPU) |\n| --- | --- | ---: | ---: |")
    for group in groups[: args.top]:
        print(f"| {group.key} | {str(group.input_shapes)[:90]} | {group.count / args.steps:g} | {group.self_cpu_time_total / 1000 / args.steps:.1f} |")


def optimiser(args) -> None:
    model = model_from_config(PRESETS[args.preset].config)
    average = model_from_config(PRESETS[args.preset].config).requires_grad_(False)
    for parameter in model.parameters():
        parameter.grad = torch.randn_like(parameter)
    parameters = list(model.parameters())
    print(f"# {args.preset}: {len(parameters)} parameters, {torch.get_num_threads()} threads; load average {os.getloadavg()[0]:.2f}\n")
    print("| update | ms per step |\n| --- | ---: |")
    for name, kind in (("Adam", torch.optim.Adam), ("RMSProp", torch.optim.RMSprop)):
        for form in ("foreach", "fused"):
            if form == "fused" and kind is torch.optim.RMSprop:
                continue
            for flag in (False, True):
                print(f"| {name}, {form}={flag} | {median_ms(kind(parameters, lr=1e-3, **{form: flag}).step):.2f} |")
    averages = list(average.parameters())

    def one_by_one():
        for kept, current in zip(averages, parameters):
            kept.lerp_(current, 0.005)

    print(f"| EMA, per parameter | {median_ms(one_by_one):.2f} |")
    print(f"| EMA, one call | {median_ms(lambda: torch._foreach_lerp_(averages, parameters, 0.005)):.2f} |")


def input_conv(args) -> None:
    print(f"# mask-A input convolution (4x7 of a 7x7), forward and backward, {torch.get_num_threads()} threads; "
          f"load average {os.getloadavg()[0]:.2f}\n")
    print("| batch | channels | size | output maps | usual layout (ms) | channels last (ms) |\n| --- | ---: | ---: | ---: | ---: | ---: |")
    for batch, channels, size, maps in ((64, 1, 28, 32), (16, 3, 32, 256), (16, 3, 32, 1024)):
        images = torch.randn(batch, channels, size, size)
        weight = torch.randn(maps, channels, 4, 7, requires_grad=True)
        bias = torch.randn(maps, requires_grad=True)
        upstream = torch.randn(batch, maps, size, size).contiguous(memory_format=torch.channels_last)

        def step(layout):
            padded = F.pad(images, (3, 3, 3, 0))
            F.conv2d(layout(padded), weight, bias).contiguous(memory_format=torch.channels_last).backward(upstream)

        usual = median_ms(lambda: step(lambda x: x), 10)
        last = median_ms(lambda: step(lambda x: x.to(memory_format=torch.channels_last)), 10)
        print(f"| {batch} | {channels} | {size} | {maps} | {usual:.1f} | {last:.1f} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("part", choices=["profile", "optimiser", "input-conv"])
    parser.add_argument("--preset", default="mnist_row_lstm")
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--top", type=int, default=20)
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    {"profile": profile, "optimiser": optimiser, "input-conv": input_conv}[args.part](args)


if __name__ == "__main__":
    main()
