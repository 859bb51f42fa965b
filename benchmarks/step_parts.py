"""Where a training step's time goes, by operation and shape, and the parts measured on their own.

    python benchmarks/step_parts.py profile --preset mnist_row_lstm [--batch 64] [--threads 1] [--steps 3] [--top 20]
    python benchmarks/step_parts.py optimiser --preset mnist_row_lstm [--threads 1]
    python benchmarks/step_parts.py input-conv [--threads 2]
    python benchmarks/step_parts.py pointwise [--batch 64] [--threads 2] [--rounds 15]

``profile``: ``torch.profiler`` over ``--steps`` training steps of the preset (the step of
benchmarks/train_speed.py: forward, backward, the library's optimiser), grouped by operation and
input shapes; prints each group's calls and milliseconds of self CPU time per step. To compare two
checkouts, run it with ``PYTHONPATH`` set to each. ``optimiser``: milliseconds per step of Adam and
RMSProp over the preset's parameters, per-parameter loop, foreach and fused, and of the EMA's
update, per parameter and in one call. ``input-conv``: forward and backward of a mask-A 7x7
(trimmed 4x7) input convolution, the padded input in the usual layout against channels last, at
binarized MNIST's and CIFAR-10's sizes. ``pointwise``: forward and backward of the binarized-MNIST presets' masked 1x1
convolutions (every shape they use, and the eight-term sum of the skips), the native products of
``pixelrnn/layers/native_pointwise.py`` against torch's (``F.linear``, and ``addmm`` accumulating), alternating call by
call in one process (the native products on every shape, even where the layers leave the fewest outputs to torch).
Medians of repeated runs, after warm-up; the load average
is printed: compare figures of one run only.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import statistics
import time

import torch
import torch.nn.functional as F

from pixelrnn import native as kernels
from pixelrnn.layers import native_pointwise
from pixelrnn.layers.masked_conv import MaskedConv2d, channel_groups, sum_of_pointwise
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


def pointwise(args) -> None:
    native_pointwise.FEWEST_OUTPUTS = 1  # the native products on every shape, the two logits' included
    print(f"# masked 1x1 convolutions, batch {args.batch} at 28x28, forward and backward, {torch.get_num_threads()} threads, "
          f"medians of {args.rounds} alternating calls; load average {os.getloadavg()[0]:.2f}\n")
    print("| shape | torch (ms) | native (ms) | torch / native |\n| --- | ---: | ---: | ---: |")
    for terms, n_in, n_out in ((1, 16, 32), (1, 32, 16), (1, 32, 32), (1, 32, 128), (1, 128, 32), (8, 32, 32), (1, 32, 2)):
        torch.manual_seed(0)
        convs = [MaskedConv2d(n_in, n_out, 1, "B", channel_groups(n_in, 1), channel_groups(n_out, 1)) for _ in range(terms)]
        maps = [torch.randn(args.batch, n_in, 28, 28).contiguous(memory_format=torch.channels_last).requires_grad_() for _ in range(terms)]
        upstream = torch.randn(args.batch, n_out, 28, 28).contiguous(memory_format=torch.channels_last)

        def step(native: bool):
            with contextlib.nullcontext() if native else kernels.disabled():
                out = convs[0](maps[0]) if terms == 1 else sum_of_pointwise(convs, maps)
                out.backward(upstream)

        times = {False: [], True: []}
        for native in (False, True):
            step(native)  # warm-up
        for _ in range(args.rounds):
            for native in (False, True):
                start = time.perf_counter()
                step(native)
                times[native].append(1000 * (time.perf_counter() - start))
        before, after = statistics.median(times[False]), statistics.median(times[True])
        shape = f"{n_in} -> {n_out}" if terms == 1 else f"{terms} x ({n_in} -> {n_out}), summed"
        print(f"| {shape} | {before:.2f} | {after:.2f} | {before / after:.2f}x |")
    print(f"\n# load average at the end: {os.getloadavg()[0]:.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("part", choices=["profile", "optimiser", "input-conv", "pointwise"])
    parser.add_argument("--preset", default="mnist_row_lstm")
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--top", type=int, default=20)
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    parser.add_argument("--rounds", type=int, default=15, help="pointwise: calls of each kind, alternating")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    {"profile": profile, "optimiser": optimiser, "input-conv": input_conv, "pointwise": pointwise}[args.part](args)


if __name__ == "__main__":
    main()
