"""Class-conditional against unconditional, at the same budget, on digits, MNIST or the CIFAR-10 subset.

    python benchmarks/conditional_comparison.py --dataset digits [--arch pixelcnn] [--steps 1500] [--per-class 100]
    PIXELRNN_DATA_DIR=/path/to/data python benchmarks/conditional_comparison.py --dataset mnist --steps 1500
    PIXELRNN_DATA_DIR=/path/to/data python benchmarks/conditional_comparison.py --dataset cifar10_subset --steps 400 --ema 0.98

Two networks of the same shape (h = 16, 3 layers, output stack 32 unless changed) train for the
same number of steps on the same batches: one unconditional, one with ``model.classes = 10`` (the
class as the condition). Printed: the test NLL of each (the conditional one is -log p(x | y)) and
their difference on the same test images with its paired standard error; for each class, the
fraction of ``--per-class`` samples drawn with that label that a logistic regression trained on
the real training images assigns to it; the sampling speed with labels and without; the machine,
its load and this process's share of a core.

Data per dataset (``DATASETS``): scikit-learn's 8x8 digits at their 17 levels; MNIST's IDX files
quantised to two levels as the bundled conditional Row LSTM has them (a pixel is 1 from 128 on);
the CIFAR-10 subset at its own 256 levels and 3 channels.
"""

from __future__ import annotations

import argparse
import os
import shlex
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from machine import hardware  # noqa: E402

from pixelrnn.data import load_dataset  # noqa: E402
from pixelrnn.evaluation import nll_per_image, summarize  # noqa: E402
from pixelrnn.sampling import sample  # noqa: E402
from pixelrnn.training import Trainer, build_run_config  # noqa: E402

# batch: images per step. eval_every 0: no validation. On MNIST and CIFAR it would cost a sizeable
# part of a CPU budget and change nothing that is reported (the scored network is the final EMA
# one, not the best on validation); digits keeps the recipe its published figures came from.
DATASETS = {
    "digits": dict(load={}, batch=32, eval_every=250, data="scikit-learn's 8x8 digits, 17 levels"),
    "mnist": dict(load={"levels": 2, "mapping": "quantise"}, batch=16, eval_every=0,
                  data="MNIST IDX files, 28x28, quantised to 2 levels (1 from 128 on)"),
    "cifar10_subset": dict(load={}, batch=16, eval_every=0, data="CIFAR-10 subset, 3x32x32, 256 levels"),
}


def recipe(steps: int, classes: int, *, batch: int, eval_every: int, hidden: int, layers: int, seed: int,
           ema: float = 0.995) -> list[str]:
    return [f"model.classes={classes}", f"model.hidden={hidden}", f"model.layers={layers}", "model.output_hidden=32",
            f"train.steps={steps}", f"train.batch_size={batch}", "train.optimizer='adam'", "train.lr=2e-3", "train.schedule='cosine'",
            "train.warmup_steps=50", f"train.ema_decay={ema}", f"train.eval_every={eval_every or steps}", "train.eval_images=1000",
            "train.checkpoint_every=100000", "train.log_every=50", f"train.seed={seed}"]


def train(args, classes: int, folder: Path, train_set, valid_set):
    """The final EMA network and the seconds it took; the batches follow ``train.seed`` alone, so both runs see the same."""
    setting = DATASETS[args.dataset]
    overrides = recipe(args.steps, classes, batch=setting["batch"], eval_every=setting["eval_every"], hidden=args.hidden,
                       layers=args.layers, seed=args.seed, ema=args.ema)
    config = build_run_config(None, overrides, **{"model.arch": args.arch, "data.dataset": args.dataset})
    labels = {"train_labels": train_set.labels, "valid_labels": valid_set.labels, "class_names": train_set.class_names}
    valid_images = valid_set.images if setting["eval_every"] else None
    trainer = Trainer(config, folder, train_set.images, valid_images, train_set.levels, dataset_name=args.dataset,
                      progress=False, **(labels if classes else {}))
    start = time.perf_counter()
    trainer.train()
    return trainer.eval_model.eval(), time.perf_counter() - start


def paired_difference(nats_u: np.ndarray, nats_c: np.ndarray) -> tuple[float, float]:
    """Mean of unconditional minus conditional nats over the same images, and its standard error.

    Paired: most of either NLL's spread is which image it is, and that cancels in the difference.
    """
    gain = np.asarray(nats_u, dtype=np.float64) - np.asarray(nats_c, dtype=np.float64)
    return float(gain.mean()), float(gain.std(ddof=1) / np.sqrt(len(gain))) if len(gain) > 1 else float("nan")


def agreement(predicted: np.ndarray, requested: np.ndarray, classes: int) -> list[float]:
    """For each class, the fraction of the samples drawn for it that the classifier puts in it."""
    predicted, requested = np.asarray(predicted), np.asarray(requested)
    return [float((predicted[requested == k] == k).mean()) if (requested == k).any() else float("nan") for k in range(classes)]


def features(images, levels: int) -> np.ndarray:
    # In [0, 1] whatever the levels: lbfgs converges on 0..255 CIFAR pixels as it does on 0/1 MNIST.
    return np.asarray(images, dtype=np.float32).reshape(len(images), -1) / (levels - 1)


def timed_sample(model, labels, shape, generator) -> tuple[torch.Tensor, float]:
    start = time.perf_counter()
    drawn = sample(model, len(labels), *shape, labels=labels if model.config.classes else None, generator=generator)
    return drawn, len(labels) / (time.perf_counter() - start)


def compare(args) -> dict:
    """Train both networks, score them, sample them: everything the report prints."""
    from sklearn.linear_model import LogisticRegression

    torch.manual_seed(args.seed)
    load = DATASETS[args.dataset]["load"]
    train_set, valid_set, test_set = (load_dataset(args.dataset, split, progress=False, **load) for split in ("train", "valid", "test"))
    test_images, test_labels = test_set.images, test_set.labels
    if args.test_images:
        test_images, test_labels = test_images[:args.test_images], test_labels[:args.test_images]
    classes = len(train_set.class_names) or int(train_set.labels.max()) + 1
    shape = tuple(train_set.images.shape[2:])
    load_before, cpu_before, wall_before = os.getloadavg(), time.process_time(), time.perf_counter()
    with tempfile.TemporaryDirectory() as folder:
        unconditional, seconds_u = train(args, 0, Path(folder) / "u", train_set, valid_set)
        conditional, seconds_c = train(args, classes, Path(folder) / "c", train_set, valid_set)
    nats_u = nll_per_image(unconditional, test_images, batch_size=100)
    nats_c = nll_per_image(conditional, test_images, batch_size=100, labels=test_labels)
    dims = int(np.prod(test_images.shape[1:]))

    classifier = LogisticRegression(max_iter=5000).fit(features(train_set.images, train_set.levels), train_set.labels)
    real_accuracy = classifier.score(features(test_images, test_set.levels), test_labels)
    generator = torch.Generator().manual_seed(args.seed)
    labels = torch.arange(classes).repeat_interleave(args.per_class)
    timed_sample(conditional, torch.arange(classes), shape, generator)  # warm-up: engines built, caches filled
    timed_sample(unconditional, torch.arange(classes), shape, generator)
    drawn, speed_c = timed_sample(conditional, labels, shape, generator)
    _, speed_u = timed_sample(unconditional, labels, shape, generator)
    predicted = classifier.predict(features(drawn.numpy(), train_set.levels))
    wall = time.perf_counter() - wall_before
    return {"unconditional": summarize(nats_u, dims), "conditional": summarize(nats_c, dims),
            "difference": paired_difference(nats_u, nats_c), "seconds": (seconds_u, seconds_c), "speed": (speed_u, speed_c),
            "real_accuracy": real_accuracy, "recognised": agreement(predicted, labels.numpy(), classes),
            "class_names": train_set.class_names or tuple(str(k) for k in range(classes)), "levels": train_set.levels,
            "shape": tuple(train_set.images.shape[1:]), "train_images": len(train_set), "wall": wall,
            "core_share": (time.process_time() - cpu_before) / wall, "load": (load_before, os.getloadavg())}


def report(args, result: dict) -> None:
    setting, (u, c) = DATASETS[args.dataset], (result["unconditional"], result["conditional"])
    gain, gain_err = result["difference"]
    images_seen = args.steps * setting["batch"]
    recognised = result["recognised"]
    print(f"\ncommand: {shlex.join(['python', 'benchmarks/conditional_comparison.py', *sys.argv[1:]])}")
    print(f"data: {setting['data']}; {result['train_images']} training images, {u['images']} test images scored")
    print(f"{args.arch}, h = {args.hidden}, {args.layers} layers; {args.steps} steps of {setting['batch']} images each "
          f"({images_seen:,} images seen; unconditional {result['seconds'][0]:.0f} s, conditional {result['seconds'][1]:.0f} s of training)\n")
    print("| model | test NLL (nats/image) | bits/dim | sampling (images/s) |")
    print("| --- | --- | --- | --- |")
    for name, score, speed in (("unconditional p(x)", u, result["speed"][0]), ("conditional p(x given y)", c, result["speed"][1])):
        print(f"| {name} | {score['nats_per_image']:.2f} ± {score['nats_per_image_stderr']:.2f} | {score['bits_per_dim']:.4f} | {speed:.1f} |")
    print(f"\nknowing the class saves {gain:.2f} ± {gain_err:.2f} nats per image ({gain / u['nats_per_image']:.1%}; "
          "paired over the same test images)")
    print(f"logistic regression on the real training images: {result['real_accuracy']:.3f} accuracy on the real test images")
    print(f"samples recognised as the class they were drawn for ({args.per_class} per class):\n")
    names = result["class_names"]
    print("| class | " + " | ".join(names) + " | all |")
    print("| --- " * (len(names) + 2) + "|")
    print("| recognised | " + " | ".join(f"{r:.2f}" for r in recognised) + f" | {np.mean(recognised):.3f} |")
    print(f"\nsummary row: | {args.dataset} | {args.arch} | {args.steps} | {images_seen:,} | {u['nats_per_image']:.2f} ± "
          f"{u['nats_per_image_stderr']:.2f} ({u['bits_per_dim']:.4f}) | {c['nats_per_image']:.2f} ± {c['nats_per_image_stderr']:.2f} "
          f"({c['bits_per_dim']:.4f}) | {gain:.2f} ± {gain_err:.2f} | {np.mean(recognised):.3f} | "
          f"{result['speed'][1]:.1f} / {result['speed'][0]:.1f} |")
    before, after = result["load"]
    print(f"wall time {result['wall']:.0f} s; this process used {result['core_share']:.2f} of a core on average; "
          f"load average before {tuple(round(x, 2) for x in before)}, after {tuple(round(x, 2) for x in after)}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default="digits", choices=sorted(DATASETS))
    parser.add_argument("--arch", default="pixelcnn")
    parser.add_argument("--steps", type=int, default=1500)
    parser.add_argument("--hidden", type=int, default=16)
    parser.add_argument("--layers", type=int, default=3)
    # The average starts at the initial weights and keeps ema**steps of them: 0.995 keeps 13 % after
    # 400 steps, so a short run wants a smaller decay.
    parser.add_argument("--ema", type=float, default=0.995, help="decay of the weight average that is scored and sampled")
    parser.add_argument("--per-class", type=int, default=100)
    parser.add_argument("--test-images", type=int, default=0, help="the first N test images; 0 = all")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(f"machine: {hardware()}; torch {torch.__version__}, {torch.get_num_threads()} thread(s); "
          f"load average at start {os.getloadavg()}", flush=True)
    report(args, compare(args))


if __name__ == "__main__":
    main()
