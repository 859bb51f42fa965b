"""Can binarized MNIST's images be matched to MNIST's, and so borrow their labels?

    PIXELRNN_DATA_DIR=/path/to/data python benchmarks/binarized_mnist_labels.py [--split test]

Binarized MNIST (the fixed binarization of the paper's Table 4) comes without labels. Its images
were drawn from MNIST's grey levels, a pixel being 1 with probability grey / 255, so each one's
source is the MNIST image under which it is most likely. Two tests, on one split:

- **by order**: is binarized image i more likely under MNIST image i than under image i - 1?
  (About half of them, by chance, where the orders differ.)
- **by likelihood**: for every binarized image, the log-likelihood under every MNIST image of the
  same split (grey levels clamped to [1e-4, 1 - 1e-4]), one matrix product; printed are how many
  distinct MNIST images are best matches and the margin in nats between the best and second best.

A matching is only worth offering as labels where every image's best match is clearly apart from
the next; the printed quantiles say how far that holds.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import numpy as np
import torch

from pixelrnn.data import load_dataset


def log_likelihoods(binary: torch.Tensor, grey: torch.Tensor) -> torch.Tensor:
    """(N, M): log p(binary image n | MNIST image m) with independent Bernoulli pixels."""
    grey = grey.clamp(1e-4, 1 - 1e-4)
    return binary @ (torch.log(grey) - torch.log1p(-grey)).T + torch.log1p(-grey).sum(1)[None, :]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--split", default="test", choices=("train", "valid", "test"))
    args = parser.parse_args()
    if not os.environ.get("PIXELRNN_DATA_DIR"):
        sys.exit("set PIXELRNN_DATA_DIR to a folder holding binarized_mnist/*.amat and mnist/*-ubyte.gz")
    binary = torch.tensor(load_dataset("binarized_mnist", args.split, progress=False).images.reshape(-1, 784), dtype=torch.float32)
    grey = torch.tensor(load_dataset("mnist", args.split, progress=False).images.reshape(-1, 784), dtype=torch.float32) / 255.0
    print(f"# {args.split}: {len(binary)} binarized images, {len(grey)} MNIST images; torch threads {torch.get_num_threads()}, "
          f"load average {os.getloadavg()[0]:.1f}")
    started = time.perf_counter()
    order, matches, margins = [], [], []
    for first in range(0, len(binary), 2000):  # 2000 rows of scores at a time: the whole matrix of the train split is 10 GB
        scores = log_likelihoods(binary[first : first + 2000], grey)
        rows = torch.arange(len(scores))
        if len(binary) == len(grey):
            order.append(scores[rows, rows + first] > scores[rows, rows + first - 1])  # image i - 1 of MNIST (the last one for i = 0)
        best = scores.topk(2, dim=1)
        matches.append(best.indices[:, 0])
        margins.append(best.values[:, 0] - best.values[:, 1])
    margin = torch.cat(margins).numpy()
    if order:
        print(f"by order: image i more likely under MNIST image i than under i - 1 for {torch.cat(order).float().mean():.1%}")
    print(f"by likelihood ({time.perf_counter() - started:.0f} s): {len(set(torch.cat(matches).tolist()))} distinct best matches "
          f"for {len(binary)} images; margin to the second best (nats): "
          + ", ".join(f"{q:g} quantile {v:.2f}" for q, v in zip((0, 0.001, 0.01, 0.5), np.quantile(margin, (0, 0.001, 0.01, 0.5)))))

if __name__ == "__main__":
    main()
