"""Compression and decompression speed of binarized MNIST: the codec before the native engines and after.

    PIXELRNN_DATA_DIR=/path/to/data python benchmarks/codec_speed.py [--images 16,256] [--rounds 3] [--threads N]
                                                                     [--archs pixelcnn,row_lstm,diagonal_bilstm]

Three coders run in one process, interleaved: each round runs each once (compress, then
decompress of its own file, checked against the images), in a rotating order, and the table
gives the median images per second of wall-clock time, the ratios of the medians and the load
average, so that a machine shared with other work slows all three alike.

- ``float32, reference``: ``compress(..., arithmetic="float32")``, the float model on the
  reference engine (``pixelrnn/sampling/reference_engines.py``): the codec as it was before the integer
  coding model and the native engines (its files decode only on the platform that wrote them).
- ``integer, numpy``: the default integer coding model on its numpy engine
  (``pixelrnn/codec/integer_numpy_engines.py``), run under ``pixelrnn.native.disabled()``.
- ``integer, native``: the same model on the native engine (``pixelrnn/codec/integer_native_engines.py``),
  the default where the kernels build. Its files are byte-identical to the numpy engine's.

Models are the MNIST presets with random weights (speed does not depend on the weights; file
sizes do, so they are not reported here: see ``docs/compression.md``). The images are the first
of the binarized MNIST test split (``PIXELRNN_DATA_DIR``), or random binary images where the
data is not there. ``--images`` lists the counts to code in one call: each is one chunk of that
many images (up to the default batch of 256), so the count is the batch every product runs on.
The integer coders run with the coder's default threads (the native engine: torch's thread
count, splitting batches of 64 images or more into groups; the numpy engine: one), or with
``--threads N`` (``compress(..., threads=N)``); the float32 coder always codes on one thread.
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
CODERS = {  # name: (arithmetic, native kernels on)
    "float32, reference": ("float32", False),
    "integer, numpy": ("integer", False),
    "integer, native": ("integer", True),
}


def test_images(count: int) -> tuple[np.ndarray, str]:
    try:
        from pixelrnn.data import load_dataset

        return load_dataset("binarized_mnist", "test").images[:count], "binarized MNIST test split"
    except (DatasetError, OSError):
        return np.random.default_rng(0).integers(0, 2, (count, 1, 28, 28), dtype=np.uint8), "random binary images (no data found)"


def timed(function) -> tuple[float, object]:
    start = time.perf_counter()
    result = function()
    return time.perf_counter() - start, result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", default="16,256", help="comma-separated image counts, each coded in one call")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--archs", default=",".join(ARCHS))
    parser.add_argument("--threads", type=int, help="threads of the integer coders (default: the coder's default)")
    args = parser.parse_args()
    if native.library() is None:
        parser.error("the native kernels are not available here, so there is no 'after' to time")
    counts = [int(count) for count in args.images.split(",")]
    values, source = test_images(max(counts))
    print(f"# codec speed ({source}), {cpu_name()}, {os.cpu_count()} logical CPUs, torch {torch.__version__}, "
          f"integer coders on {args.threads or 'their default'} thread(s) (torch's count: {torch.get_num_threads()}); "
          f"medians of {args.rounds} rounds, images/s of wall-clock time")
    print(f"# load average at start: {os.getloadavg()[0]:.2f}\n")
    names = list(CODERS)
    print("| preset | images | job | " + " | ".join(names) + " | native / float32 reference | native / numpy | load |")
    print("| --- | ---: | --- |" + " ---: |" * (len(names) + 3))
    for arch in args.archs.split(","):
        torch.manual_seed(0)
        model = model_from_config(PRESETS[f"mnist_{arch}"].config).eval()
        for count in counts:
            images = images_from_array(values[:count], 2)
            times = {(name, job): [] for name in names for job in ("compress", "decompress")}
            for index in range(args.rounds):
                for name in names[index % len(names):] + names[: index % len(names)]:
                    arithmetic, kernels = CODERS[name]
                    threads = args.threads if arithmetic == "integer" else None
                    with contextlib.nullcontext() if kernels else native.disabled():
                        spent, data = timed(lambda: compress(model, images, arithmetic=arithmetic, threads=threads))
                        times[name, "compress"].append(spent)
                        spent, decoded = timed(lambda: decompress(model, data, threads=threads))
                        times[name, "decompress"].append(spent)
                    assert all(np.array_equal(a.values, b.values) for a, b in zip(decoded, images))
            for job in ("compress", "decompress"):
                rate = {name: count / statistics.median(times[name, job]) for name in names}
                print(f"| mnist_{arch} | {count} | {job} | " + " | ".join(f"{rate[name]:,.0f}" for name in names)
                      + f" | {rate['integer, native'] / rate['float32, reference']:.1f}x"
                      f" | {rate['integer, native'] / rate['integer, numpy']:.1f}x | {os.getloadavg()[0]:.1f} |", flush=True)


if __name__ == "__main__":
    sys.exit(main())
