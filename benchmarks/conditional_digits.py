"""Class-conditional against unconditional, at the same budget, on scikit-learn's 8x8 digits.

    python benchmarks/conditional_digits.py [--arch pixelcnn] [--steps 1500] [--per-class 100]

Two networks of the same shape (configs/digits_demo.toml's recipe) train for the same number of
steps on the same batches: one unconditional, one with ``model.classes = 10`` (the digit as the
condition). Printed: the test NLL of each (the conditional one is -log p(x | y)); for each class,
the fraction of ``--per-class`` samples drawn with that label that a logistic regression trained
on the real training digits assigns to it; the sampling speed with labels and without; the
machine and its load.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from machine import hardware  # noqa: E402

from pixelrnn.data import load_dataset  # noqa: E402
from pixelrnn.evaluation import evaluate_images  # noqa: E402
from pixelrnn.sampling import sample  # noqa: E402
from pixelrnn.training import Trainer, build_run_config  # noqa: E402


def recipe(arch: str, steps: int, classes: int) -> list[str]:
    return [f"model.classes={classes}", "model.hidden=16", "model.layers=3", "model.output_hidden=32", f"train.steps={steps}",
            "train.batch_size=32", "train.optimizer='adam'", "train.lr=2e-3", "train.schedule='cosine'", "train.warmup_steps=50",
            "train.ema_decay=0.995", "train.eval_every=250", "train.checkpoint_every=100000", "train.log_every=50", "train.seed=0"]


def train(arch: str, steps: int, classes: int, folder: Path, train_set, valid_set):
    config = build_run_config(None, recipe(arch, steps, classes), **{"model.arch": arch, "data.dataset": "digits"})
    labels = {"train_labels": train_set.labels, "valid_labels": valid_set.labels, "class_names": train_set.class_names}
    trainer = Trainer(config, folder, train_set.images, valid_set.images, train_set.levels, dataset_name="digits", progress=False,
                      **(labels if classes else {}))
    start = time.perf_counter()
    trainer.train()
    return trainer.eval_model.eval(), time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--arch", default="pixelcnn")
    parser.add_argument("--steps", type=int, default=1500)
    parser.add_argument("--per-class", type=int, default=100)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    torch.manual_seed(args.seed)
    from sklearn.linear_model import LogisticRegression

    train_set, valid_set, test_set = (load_dataset("digits", split) for split in ("train", "valid", "test"))
    print(f"machine: {hardware()}; torch threads {torch.get_num_threads()}; load average before {os.getloadavg()}")
    with tempfile.TemporaryDirectory() as folder:
        unconditional, seconds_u = train(args.arch, args.steps, 0, Path(folder) / "u", train_set, valid_set)
        conditional, seconds_c = train(args.arch, args.steps, 10, Path(folder) / "c", train_set, valid_set)
    nll_u = evaluate_images(unconditional, test_set.images)
    nll_c = evaluate_images(conditional, test_set.images, labels=test_set.labels)

    classifier = LogisticRegression(max_iter=5000).fit(train_set.images.reshape(len(train_set), -1), train_set.labels)
    real_accuracy = classifier.score(test_set.images.reshape(len(test_set), -1), test_set.labels)
    generator = torch.Generator().manual_seed(args.seed)
    labels = torch.arange(10).repeat_interleave(args.per_class)
    sample(conditional, 10, 8, 8, labels=torch.arange(10), generator=generator)  # warm-up: engines built, caches filled
    sample(unconditional, 10, 8, 8, generator=generator)
    start = time.perf_counter()
    drawn = sample(conditional, len(labels), 8, 8, labels=labels, generator=generator)
    speed_c = len(labels) / (time.perf_counter() - start)
    start = time.perf_counter()
    sample(unconditional, len(labels), 8, 8, generator=generator)
    speed_u = len(labels) / (time.perf_counter() - start)
    predicted = classifier.predict(drawn.reshape(len(drawn), -1).numpy())
    recognised = [(predicted[labels.numpy() == k] == k).mean() for k in range(10)]

    print(f"\ncommand: python benchmarks/conditional_digits.py --arch {args.arch} --steps {args.steps} --per-class {args.per_class}")
    print(f"{args.arch}, {args.steps} steps of 32 images each (unconditional {seconds_u:.0f} s, conditional {seconds_c:.0f} s of training)\n")
    print("| model | test NLL (nats/image) | bits/dim | sampling (images/s) |")
    print("| --- | --- | --- | --- |")
    print(f"| unconditional p(x) | {nll_u['nats_per_image']:.2f} ± {nll_u['nats_per_image_stderr']:.2f} | {nll_u['bits_per_dim']:.4f} | {speed_u:.0f} |")
    print(f"| conditional p(x given y) | {nll_c['nats_per_image']:.2f} ± {nll_c['nats_per_image_stderr']:.2f} | {nll_c['bits_per_dim']:.4f} | {speed_c:.0f} |")
    print(f"\nlogistic regression on the real training digits: {real_accuracy:.3f} accuracy on the real test digits")
    print(f"samples recognised as the class they were drawn for ({args.per_class} per class):\n")
    print("| class | " + " | ".join(str(k) for k in range(10)) + " | all |")
    print("| --- " * 12 + "|")
    print("| recognised | " + " | ".join(f"{r:.2f}" for r in recognised) + f" | {np.mean(recognised):.3f} |")
    print(f"\nload average after {os.getloadavg()}")


if __name__ == "__main__":
    main()
