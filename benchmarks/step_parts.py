"""Where a training step's time goes, by operation and shape, and the parts measured on their own.

    python benchmarks/step_parts.py profile --preset mnist_row_lstm [--batch 64] [--threads 1] [--steps 3] [--top 20]
    python benchmarks/step_parts.py optimiser --preset mnist_row_lstm [--threads 1]
    python benchmarks/step_parts.py input-conv [--threads 2]
    python benchmarks/step_parts.py pointwise [--batch 64] [--threads 2] [--rounds 15]
    python benchmarks/step_parts.py ceiling --preset mnist_diagonal_bilstm [--batch 64] [--threads 2] [--rounds 15]

``profile``: ``torch.profiler`` over ``--steps`` training steps of the preset (the step of
benchmarks/train_speed.py: forward, backward, the library's optimiser), grouped by operation and
input shapes; prints each group's calls and milliseconds of self CPU time per step. To compare two
checkouts, run it with ``PYTHONPATH`` set to each. ``optimiser``: milliseconds per step of Adam and
RMSProp over the preset's parameters, per-parameter loop, foreach and fused, and of the EMA's
update, per parameter and in one call. ``input-conv``: forward and backward of a mask-A 7x7
(trimmed 4x7) input convolution, the padded input in the usual layout against channels last, at
binarized MNIST's and CIFAR-10's sizes. ``pointwise``: forward and backward of the binarized-MNIST presets' masked 1x1
convolutions (every shape they use, and the seven-term sum of the skips), the native products of
``pixelrnn/layers/native_pointwise.py`` against torch's (``F.linear``, and ``addmm`` accumulating), alternating call by
call in one process (the native products on every shape, even where the layers leave the fewest outputs to torch),
with the faster one's rate (3 x 2 x rows x in x out FLOP: forward, input and weight gradient) beside the rate of a
2048 x 2048 float32 product timed in the same process: what a product of that shape reaches here at best.
``ceiling``: every product the preset's training step counts (``pixelrnn.models.cost.products``: the
convolutions as inputs x taps -> outputs, the scans' state-to-state products included), each timed
as a 1x1 product over contiguous rows (the skips as the one summed product they are), the faster of
torch and native; the step's time if it were those products alone, and the MFU that would give: an
upper bound for the preset on this machine at this batch, since the step also runs the LSTM's
activations and the elementwise work that the count leaves out.
Medians of repeated runs, after warm-up; the load average
is printed: compare figures of one run only.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import statistics
import time
from collections import Counter

import torch
import torch.nn.functional as F

from pixelrnn import native as kernels
from pixelrnn.layers import native_pointwise
from pixelrnn.layers.masked_conv import MaskedConv2d, channel_groups, sum_of_pointwise
from pixelrnn.models import model_from_config
from pixelrnn.models.cost import products, products_of_sum, skip_terms
from pixelrnn.models.description import describe
from pixelrnn.presets import PRESETS
from train_speed import matmul_rate, trainer


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


def product_times(terms: int, n_in: int, n_out: int, batch: int, rounds: int, size=(28, 28)) -> tuple[float, float]:
    """Median ms of forward + backward of ``terms`` masked 1x1 convolutions n_in -> n_out (summed where several) over
    ``batch`` maps of ``size``, torch and native."""
    torch.manual_seed(0)
    convs = [MaskedConv2d(n_in, n_out, 1, "B", channel_groups(n_in, 1), channel_groups(n_out, 1)) for _ in range(terms)]
    maps = [torch.randn(batch, n_in, *size).contiguous(memory_format=torch.channels_last).requires_grad_() for _ in range(terms)]
    upstream = torch.randn(batch, n_out, *size).contiguous(memory_format=torch.channels_last)

    def step(native: bool):
        with contextlib.nullcontext() if native else kernels.disabled():
            out = convs[0](maps[0]) if terms == 1 else sum_of_pointwise(convs, maps)
            out.backward(upstream)

    times = {False: [], True: []}
    for native in (False, True):
        step(native)  # warm-up
    for _ in range(rounds):
        for native in (False, True):
            start = time.perf_counter()
            step(native)
            times[native].append(1000 * (time.perf_counter() - start))
    return statistics.median(times[False]), statistics.median(times[True])


def product_flops(terms: int, n_in: int, n_out: int, batch: int, size=(28, 28)) -> int:
    return 3 * 2 * terms * batch * size[0] * size[1] * n_in * n_out  # forward, input gradient, weight gradient


def pointwise(args) -> None:
    native_pointwise.FEWEST_OUTPUTS = 1  # the native products on every shape, the two logits' included
    large = matmul_rate(torch.device("cpu"))
    print(f"# masked 1x1 convolutions, batch {args.batch} at 28x28, forward and backward, {torch.get_num_threads()} threads, "
          f"medians of {args.rounds} alternating calls; float32 2048x2048 matrix product here: {large / 1e9:.1f} GFLOP/s; "
          f"load average {os.getloadavg()[0]:.2f}\n")
    print("| shape | torch (ms) | native (ms) | torch / native | GFLOP/s of the faster | of the large product |\n"
          "| --- | ---: | ---: | ---: | ---: | ---: |")
    for terms, n_in, n_out in ((1, 16, 32), (1, 32, 16), (1, 32, 32), (1, 32, 128), (1, 128, 32), (7, 32, 32), (1, 32, 2)):
        before, after = product_times(terms, n_in, n_out, args.batch, args.rounds)
        shape = f"{n_in} -> {n_out}" if terms == 1 else f"{terms} x ({n_in} -> {n_out}), summed"
        rate = product_flops(terms, n_in, n_out, args.batch) / (min(before, after) / 1000)
        print(f"| {shape} | {before:.2f} | {after:.2f} | {before / after:.2f}x | {rate / 1e9:.1f} | {rate / large:.0%} |")
    print(f"\n# load average at the end: {os.getloadavg()[0]:.2f}")


def ceiling(args) -> None:
    native_pointwise.FEWEST_OUTPUTS = 1
    preset = PRESETS[args.preset]
    network, size = describe(preset.config), tuple(preset.image_size)
    shapes = Counter(products(network))
    sums = []  # the skips run as one summed product
    terms = skip_terms(network)
    if terms:
        skip = products_of_sum(network.skip_layer)
        shapes[skip] -= terms
        sums.append((terms, *skip))
    large = matmul_rate(torch.device("cpu"))
    print(f"# {args.preset}: every counted product as a 1x1 product over contiguous rows, batch {args.batch} at {size[0]}x{size[1]}, "
          f"forward and backward, {torch.get_num_threads()} threads, the faster of torch and native, medians of {args.rounds}; "
          f"float32 2048x2048 matrix product here: {large / 1e9:.1f} GFLOP/s; load average {os.getloadavg()[0]:.2f}\n")
    print("| product (inputs -> outputs) | per step | ms each | GFLOP/s | of the large product |\n| --- | ---: | ---: | ---: | ---: |")
    flops = seconds = 0.0
    for terms, n_in, n_out in [(1, *shape) for shape, count in shapes.items() if count] + sums:
        count = shapes[(n_in, n_out)] if terms == 1 else 1
        ms = min(product_times(terms, n_in, n_out, args.batch, args.rounds, size))
        work = product_flops(terms, n_in, n_out, args.batch, size)
        flops, seconds = flops + count * work, seconds + count * ms / 1000
        label = f"{n_in} -> {n_out}" if terms == 1 else f"{terms} x ({n_in} -> {n_out}), summed"
        print(f"| {label} | {count} | {ms:.2f} | {work / ms / 1e6:.1f} | {work / (ms / 1000) / large:.0%} |")
    print(f"\nthe step's counted products alone, each at its shape's rate: {1000 * seconds:.0f} ms, "
          f"{args.batch / seconds:.1f} images/s, MFU at most {flops / seconds / large:.0%} "
          f"(before the scans' activations and the elementwise work); load average at the end: {os.getloadavg()[0]:.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("part", choices=["profile", "optimiser", "input-conv", "pointwise", "ceiling"])
    parser.add_argument("--preset", default="mnist_row_lstm")
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--top", type=int, default=20)
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    parser.add_argument("--rounds", type=int, default=15, help="pointwise, ceiling: calls of each kind, alternating")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    {"profile": profile, "optimiser": optimiser, "input-conv": input_conv, "pointwise": pointwise, "ceiling": ceiling}[args.part](args)


if __name__ == "__main__":
    main()
