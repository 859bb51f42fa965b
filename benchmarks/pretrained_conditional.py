"""The bundled class-conditional model: a Row LSTM of p(image | digit) on MNIST at two levels.

    PIXELRNN_DATA_DIR=/path/to/data python benchmarks/pretrained_conditional.py --runs runs/conditional \\
        --minutes 50 --seed 0 --threads 1 [--out pixelrnn/pretrained] [--grid docs/images/conditional_mnist_samples.png]

1. **Train** RUNS/row_lstm as benchmarks/pretrained_mnist.py trains its runs (the same recipe,
   budget, resume and log; configs/mnist_row_lstm.toml: 7 layers, h = 16), with the digit's label
   as the condition (``model.classes = 10``) on MNIST's IDX files quantised to two levels
   (``data.levels = 2``, ``data.mapping = 'quantise'``: a pixel is 1 from 128 on). Binarized
   MNIST has no labels, hence MNIST itself.
2. **Evaluate** the best checkpoint on all 10000 test images, each with its label: -log p(x | y).
3. **Write** OUT/mnist/row_lstm_conditional/ (config.json with the class names, model.safetensors,
   a model card) and a grid of samples, one row per digit, drawn with a fixed seed.
"""

from __future__ import annotations

import argparse
import os
import shlex
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from machine import hardware  # noqa: E402
from binarized_mnist import ROOT  # noqa: E402
from pretrained_mnist import train  # noqa: E402

from pixelrnn.checkpoint import load_model_with_metadata  # noqa: E402
from pixelrnn.data import load_dataset  # noqa: E402
from pixelrnn.evaluation import nll_per_image, summarize  # noqa: E402
from pixelrnn.images import save_grid  # noqa: E402
from pixelrnn.models.pretrained import (SUBSET_IMAGES, TEST_IMAGES, TEST_NATS, TEST_NATS_STDERR, TEST_SUBSET_NATS,  # noqa: E402
                                       model_card, save_pretrained)
from pixelrnn.models.weights import read_metadata  # noqa: E402
from pixelrnn.sampling import sample  # noqa: E402
from pixelrnn.training import RunFolder, resolve_checkpoint  # noqa: E402
from pixelrnn.utils import VERSION  # noqa: E402

ARCH, NAME = "row_lstm", "mnist/row_lstm_conditional"
DATA = {"data.dataset": "'mnist'", "data.levels": "2", "data.mapping": "'quantise'", "model.classes": "10"}
TEST = dict(levels=2, mapping="quantise")
DATA_TEXT = ("MNIST (the four IDX files): 50000 training images with their labels; the first 1000 of the 10000 validation "
             "images choose the best checkpoint; scored on all 10000 test images, each with its label. Quantised to two "
             "levels (`data.levels = 2`, `data.mapping = 'quantise'`: a pixel is 1 from 128 on). Images are 28x28, one channel.")


def export(args: argparse.Namespace, run_dir: Path) -> Path:
    checkpoint = resolve_checkpoint(run_dir)
    model, metadata = load_model_with_metadata(checkpoint)
    model.eval()
    torch.set_num_threads(args.threads)
    test = load_dataset("mnist", "test", progress=False, **TEST)
    started = time.monotonic()
    nats = nll_per_image(model, test.images, batch_size=100, labels=test.labels)
    score = summarize(nats, int(test.images[0].size))
    seconds, load = time.monotonic() - started, os.getloadavg()[0]
    trained = int(read_metadata(RunFolder(run_dir).state)["step"])
    metadata = {**metadata, "trained_steps": str(trained), "preset": f"mnist_{ARCH}", "dataset": "mnist", "data_levels": "2",
                "data_mapping": "quantise", TEST_NATS: f"{score['nats_per_image']:.4f}",
                TEST_NATS_STDERR: f"{score['nats_per_image_stderr']:.4f}", TEST_IMAGES: str(score["images"]),
                "test_bits_per_dim": f"{score['bits_per_dim']:.6f}", TEST_SUBSET_NATS: f"{float(nats[:SUBSET_IMAGES].mean()):.4f}"}
    metadata.pop("format", None), metadata.pop("pixelrnn.config", None)

    generator = torch.Generator().manual_seed(args.seed)
    labels = torch.arange(10).repeat_interleave(args.per_class)
    drawn = sample(model, len(labels), 28, 28, labels=labels, generator=generator)
    grid = save_grid(drawn, 2, args.grid, nrow=args.per_class, scale=2)

    recipe = RunFolder(run_dir).read_config()["train"]
    settings = ", ".join(f"{key} {recipe[key]}" for key in ("optimizer", "lr", "schedule", "batch_size", "ema_decay", "grad_clip", "seed"))
    script = shlex.join(["python", "benchmarks/pretrained_conditional.py", *sys.argv[1:]])
    sections = (
        ("Data", DATA_TEXT),
        ("Training", f"Recipe: {settings}, {args.threads} thread (benchmarks/pretrained_mnist.py's recipe, with the digit as the "
                     f"condition). Budget: {args.minutes:g} minutes of wall-clock time on the CPU; it reached step {trained} "
                     f"({trained * recipe['batch_size']:,} images); the best validation checkpoint is step {metadata['step']}."),
        ("Use", "```python\nimport torch\nimport pixelrnn\nmodel = pixelrnn.from_pretrained(\"mnist/row_lstm_conditional\")\n"
                "sevens = pixelrnn.sample(model, 8, 28, 28, labels=torch.full((8,), 7))\n```\n\n"
                "or `pixelrnn sample pretrained:mnist/row_lstm_conditional --class 7 -n 8 --out sevens.png`, and `--per-class 8` for a grid "
                "with one row per digit."),
        ("Commands", f"This folder and the sample grid:\n\n```\n{script}\n```"),
        ("Results", "| | test NLL, -log p(x given its label) (nats/image) | bits/dim | images |\n| --- | ---: | ---: | ---: |\n"
                    f"| this model | {score['nats_per_image']:.2f} ± {score['nats_per_image_stderr']:.2f} | "
                    f"{score['bits_per_dim']:.4f} | {score['images']} |\n\n"
                    f"On the first {SUBSET_IMAGES} test images alone: {metadata[TEST_SUBSET_NATS]} nats/image. ± is the standard "
                    "error of the mean over test images. These images are MNIST thresholded at 128, not the fixed binarization "
                    "of the paper's Table 4, so the figure is not comparable with it.\n\n"
                    f"Trained and measured with pixelrnn {VERSION} on {hardware()}, torch {torch.__version__}; the evaluation took {seconds:.0f} s at a "
                    f"load average of {load:.1f}."),
    )
    folder = save_pretrained(model, Path(args.out) / NAME, metadata=metadata, card=model_card(model, metadata, name=NAME, sections=sections))
    print(f"{NAME}: test NLL given the label {score['nats_per_image']:.2f} ± {score['nats_per_image_stderr']:.2f} nats; "
          f"wrote {folder} and {grid}", flush=True)
    return folder


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", default="runs/conditional", help="folder of the run folder (RUNS/row_lstm) and its log")
    parser.add_argument("--out", default=str(ROOT / "pixelrnn" / "pretrained"))
    parser.add_argument("--grid", default=str(ROOT / "docs" / "images" / "conditional_mnist_samples.png"))
    parser.add_argument("--minutes", type=float, default=50.0, help="wall-clock training budget")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--eval-every", type=int, default=1000)
    parser.add_argument("--per-class", type=int, default=8, help="samples per digit in the grid")
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    if not os.environ.get("PIXELRNN_DATA_DIR"):
        sys.exit("set PIXELRNN_DATA_DIR to a folder holding mnist/*-ubyte.gz")
    args.set = [f"{key}={value}" for key, value in DATA.items()]
    run_dir = Path(args.runs).resolve() / ARCH
    train(args, ARCH, run_dir)
    export(args, run_dir)


if __name__ == "__main__":
    main()
