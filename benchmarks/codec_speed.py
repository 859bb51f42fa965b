"""Compression and decompression speed of binarized MNIST, before and after the native engines.

    PIXELRNN_DATA_DIR=/path/to/data python benchmarks/codec_speed.py [--images 64] [--rounds 3]
                                                                     [--archs pixelcnn,row_lstm,diagonal_bilstm]

The coder (``pixelrnn.codec``) computes every conditional with the incremental engine that
``make_engine`` gives: "before" runs it under ``pixelrnn.native.disabled()`` (the reference
engines), "after" with the native engines. Models are the MNIST presets with random weights
(speed does not depend on the weights; the file sizes do, so they are not reported here: see
``docs/compression.md``); the images are the first ``--images`` of the binarized MNIST test
split (``PIXELRNN_DATA_DIR``), or random binary images where the data is not there. Each
round compresses and decompresses with both paths, in a rotating order; the table gives the
median images per second of wall-clock time and of the process's CPU time, their ratios and
the load average. Each path decodes its own file bit for bit (checked by the coder).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import statistics
import sys
import time

import numpy as np
import torch

from machine import cpu_name
from pixelrnn import PRESETS, model_from_config, native
from pixelrnn.codec import compress, decompress, images_from_array
from pixelrnn.errors import DatasetError

ARCHS = ("pixelcnn", "row_lstm", "diagonal_bilstm")


def test_images(count: int) -> tuple[np.ndarray, str]:
    try:
        from pixelrnn.data import load_dataset

        return load_dataset("binarized_mnist", "test").images[:count], "binarized MNIST test split"
    except (DatasetError, OSError):
        return np.random.default_rng(0).integers(0, 2, (count, 1, 28, 28), dtype=np.uint8), "random binary images (no data found)"


def timed(function) -> tuple[float, float, object]:
    wall, cpu = time.perf_counter(), time.process_time()
    result = function()
    return time.perf_counter() - wall, time.process_time() - cpu, result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--archs", default=",".join(ARCHS))
    args = parser.parse_args()
    if native.library() is None:
        parser.error("the native kernels are not available here, so there is no 'after' to time")
    values, source = test_images(args.images)
    images = images_from_array(values, 2)
    print(f"# codec speed, {len(images)} images ({source}), {cpu_name()}, {os.cpu_count()} logical CPUs, torch {torch.__version__}; "
          f"medians of {args.rounds} rounds")
    print(f"# load average at start: {os.getloadavg()[0]:.2f}\n")
    print("| preset | compress before | compress after | speed-up | decompress before | decompress after | speed-up | load |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for arch in args.archs.split(","):
        torch.manual_seed(0)
        model = model_from_config(PRESETS[f"mnist_{arch}"].config).eval()
        times = {(path, job): [] for path in ("before", "after") for job in ("compress", "decompress")}
        for index in range(args.rounds):
            for path in (("before", "after") if index % 2 == 0 else ("after", "before")):
                with native.disabled() if path == "before" else contextlib.nullcontext():
                    *spent, data = timed(lambda: compress(model, images))
                    times[path, "compress"].append(spent)
                    *spent, decoded = timed(lambda: decompress(model, data))
                    times[path, "decompress"].append(spent)
                assert all(np.array_equal(a.values, b.values) for a, b in zip(decoded, images))
        rate = {key: [len(images) / statistics.median(t[k] for t in value) for k in (0, 1)] for key, value in times.items()}

        def shown(key):
            return " / ".join(f"{r:,.1f}" for r in rate[key])

        def ratio(job):
            return " / ".join(f"{a / b:.1f}x" for a, b in zip(rate["after", job], rate["before", job]))

        print(f"| mnist_{arch} | {shown(('before', 'compress'))} | {shown(('after', 'compress'))} | {ratio('compress')} | "
              f"{shown(('before', 'decompress'))} | {shown(('after', 'decompress'))} | {ratio('decompress')} | "
              f"{os.getloadavg()[0]:.1f} |", flush=True)
    print("\nimages/s of wall-clock time / of CPU time")


if __name__ == "__main__":
    sys.exit(main())
