"""The bundled binarized-MNIST models: train each network, score it on the whole test set, write its folder.

    PIXELRNN_DATA_DIR=/path/to/data python benchmarks/pretrained_mnist.py --runs runs/pretrained \\
        --minutes 110 --seed 0 --threads 1 [--archs pixelcnn,row_lstm,diagonal_bilstm] [--out pixelrnn/pretrained]

For each network of configs/mnist_<arch>.toml (7 layers, h = 16; deeper with ``--set model.layers=N``):

1. **Train** into ``RUNS/<arch>`` for ``--minutes`` of wall-clock time with the recipe of
   benchmarks/binarized_mnist.py (Adam, lr 1e-3, batch 16, EMA 0.995, the best checkpoint on
   1000 validation images), the seed, one validation every ``--eval-every`` steps and ``--set``
   overrides. Output goes to ``RUNS/<arch>.log``. A finished run (its log ends with ``stopped at
   step N (budget|finished)`` at the step of its state) is used as it is: nothing is trained and
   nothing in it changes. An interrupted run is resumed for the minutes of its budget not yet
   spent (sessions this script timed, in the log). A run made with another recipe is refused.
2. **Evaluate** its best checkpoint on all 10000 test images (cached in ``RUNS/<arch>.test.json``
   against the checkpoint's SHA-256, so a second call reuses it).
3. **Write** ``OUT/binarized_mnist/<arch>/``: config.json, model.safetensors and a model card with
   the architecture, parameter count, data, recipe, budget, commands, the test NLL ± standard
   error beside the paper's figure, and the hardware.
4. **Draw** ``--grid`` (docs/images/binarized_mnist_samples.png): one row of ``--per-network``
   samples from each bundled network in OUT, with the seed.

``--only-if-better`` keeps a bundled folder whose card's test figure is already as good as the
run's: the run's best checkpoint is scored, both figures are printed, and nothing is written for
that network (a resumed run whose best checkpoint is no better cannot replace a better model).

``--export-only`` skips step 1: it writes the folders from the runs as they stand, a run still
in progress included (its best checkpoint is first copied to ``RUNS/<arch>.exported.safetensors``,
so that the training cannot replace it while it is scored; the card gives the wall-clock time and
the images seen so far, and says that the run goes on).

Never point ``--runs`` at runs that another process is still training, except with ``--export-only``.
"""

from __future__ import annotations

import argparse
import datetime
import hashlib
import json
import os
import re
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from binarized_mnist import PAPER_NATS, ROOT, train_command  # noqa: E402
from machine import hardware  # noqa: E402
import pixelrnn  # noqa: E402
from pixelrnn.presets import PRESETS  # noqa: E402
from pixelrnn.checkpoint import load_model_with_metadata  # noqa: E402
from pixelrnn.data import load_dataset  # noqa: E402
from pixelrnn.evaluation import nll_per_image, summarize  # noqa: E402
from pixelrnn.hub import CONFIG_NAME  # noqa: E402
from pixelrnn.models.pretrained import (SUBSET_IMAGES, TEST_IMAGES, TEST_NATS, TEST_NATS_STDERR, TEST_SUBSET_NATS,  # noqa: E402
                                       model_card, read_pretrained_config, save_pretrained)
from pixelrnn.images import save_grid  # noqa: E402
from pixelrnn.models.weights import read_metadata  # noqa: E402
from pixelrnn.sampling import sample  # noqa: E402
from pixelrnn.training import RunFolder, build_run_config, resolve_checkpoint  # noqa: E402
from pixelrnn.utils import atomic_write  # noqa: E402

STOPPED = re.compile(r"^stopped at step (\d+) \(([^)]*)\)", re.MULTILINE)
SESSION = re.compile(r"^pretrained_mnist: session of ([0-9.]+) minutes", re.MULTILINE)
SESSION_START = re.compile(r"^pretrained_mnist: session started at (\S+)$", re.MULTILINE)
DATA = ("Binarized MNIST with the fixed binarization of Larochelle & Murray (2011): 50000 training images; "
        "the first 1000 of the 10000 validation images choose the best checkpoint; scored on all 10000 test images. "
        "Images are 28x28, one channel, 2 levels.")


def train_overrides(args: argparse.Namespace) -> tuple[str, ...]:
    return (f"train.eval_every={args.eval_every}", f"train.num_threads={args.threads}", f"train.seed={args.seed}", *args.set)


def recipe_command(args: argparse.Namespace, arch: str, run_dir: Path) -> list[str]:
    config = Path("configs") / f"mnist_{arch}.toml"  # relative: the command runs from the repository root
    return train_command(config, run_dir, args.minutes, args.device, train_overrides(args))


def check_recipe(args: argparse.Namespace, arch: str, folder: RunFolder) -> None:
    """A reused run must have been made with this recipe, seed and budget; else its card would lie."""
    command = recipe_command(args, arch, folder.path)
    overrides = [command[i + 1] for i, word in enumerate(command) if word == "--set"] + ["train.steps=10000000"]
    wanted = build_run_config(ROOT / "configs" / f"mnist_{arch}.toml", overrides).to_dict()
    saved = folder.read_config()
    for section in ("model", "data", "train"):
        for key, value in wanted[section].items():
            # A key the saved config lacks is an option newer than the run, whose default is what the run did.
            # The budget is kept in the log (sessions), and each resume records what was left of it.
            if key not in ("device", "data_dir", "max_minutes") and key in saved.get(section, {}) and saved[section][key] != value:
                sys.exit(f"{folder.path} was trained with {section}.{key}={saved.get(section, {}).get(key)!r}, not {value!r}; "
                         "give the arguments it was made with, or another --runs")


def minutes_spent(log_text: str, state: Path) -> float:
    """Wall-clock minutes of a run's sessions: the finished ones, and one still going on up to the last save of ``state``."""
    spent = sum(float(minutes) for minutes in SESSION.findall(log_text))
    started, ended = list(SESSION_START.finditer(log_text)), list(SESSION.finditer(log_text))
    if started and (not ended or started[-1].start() > ended[-1].start()):  # its "session of" line is written when it stops
        began = datetime.datetime.fromisoformat(started[-1].group(1)).timestamp()
        spent += max(state.stat().st_mtime - began, 0.0) / 60
    return spent


def state_step(folder: RunFolder) -> int:
    return int(read_metadata(folder.state)["step"])


def minutes_left(args: argparse.Namespace, folder: RunFolder, log: Path) -> float:
    """The budget not yet spent; 0 once the run's last session stopped on its budget or its step count."""
    text = log.read_text() if log.exists() else ""
    stops = STOPPED.findall(text)
    if stops and stops[-1][1] in ("budget", "finished") and int(stops[-1][0]) == state_step(folder):
        return 0.0
    return max(args.minutes - sum(float(m) for m in SESSION.findall(text)), 0.0)


def train(args: argparse.Namespace, arch: str, run_dir: Path) -> None:
    folder, log = RunFolder(run_dir), run_dir.parent / f"{arch}.log"
    if folder.holds_run():
        check_recipe(args, arch, folder)
        left = minutes_left(args, folder, log)
        if left <= 0:
            print(f"{arch}: {run_dir} is finished (step {state_step(folder)}); used as it is", flush=True)
            return
        command = [sys.executable, "-m", "pixelrnn", "train", "--resume", str(run_dir), "-q", "--set", f"train.max_minutes={left:.2f}"]
    else:
        command = recipe_command(args, arch, run_dir)
    print("$", shlex.join(command), f">> {log}", flush=True)
    run_dir.parent.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    with open(log, "a") as output:
        output.write(f"pretrained_mnist: session started at {datetime.datetime.now(datetime.timezone.utc).isoformat(timespec='seconds')}\n")
        output.flush()
        try:
            finished = subprocess.run(command, stdout=output, stderr=subprocess.STDOUT, cwd=ROOT)
        finally:
            output.write(f"pretrained_mnist: session of {(time.monotonic() - started) / 60:.2f} minutes\n")
    if finished.returncode in (128 + signal.SIGINT, 128 + signal.SIGTERM):  # saved at the step in hand: the next call resumes it
        sys.exit(f"{arch}: stopped by a signal at step {state_step(folder)}; run the same command again to resume")
    if finished.returncode:
        sys.exit(f"{arch}: training failed (exit status {finished.returncode}); see {log}")


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_score(args: argparse.Namespace, arch: str, checkpoint: Path, runs: Path) -> dict:
    """NLL of the checkpoint on the 10000 test images, cached in RUNS/<arch>.test.json against the checkpoint's digest."""
    cache = runs / f"{arch}.test.json"
    cached = json.loads(cache.read_text()) if cache.exists() else {}
    if cached.get("sha256") == digest(checkpoint) and "subset_nats_per_image" in cached:
        return cached
    model, _ = load_model_with_metadata(checkpoint)
    images = load_dataset("binarized_mnist", "test").images
    torch.set_num_threads(args.threads)
    started = time.monotonic()
    nats = nll_per_image(model, images, batch_size=100)
    summary = summarize(nats, int(images[0].size))
    summary.update(sha256=digest(checkpoint), seconds=time.monotonic() - started, load=os.getloadavg()[0],
                   subset_nats_per_image=float(nats[:SUBSET_IMAGES].mean()))
    cache.write_text(json.dumps(summary, indent=2) + "\n")
    return summary


def runs_as_placeholder(argv: list[str]) -> list[str]:
    """The arguments with the value of --runs replaced by RUNS."""
    out = []
    for word in argv:
        if out and out[-1] == "--runs":
            word = "RUNS"
        elif word.startswith("--runs="):
            word = "--runs=RUNS"
        out.append(word)
    return out


def progress(args: argparse.Namespace, arch: str, run_dir: Path, recipe: dict, metadata: dict) -> str:
    """How far the run got: wall-clock time (the sessions in its log), steps and images, and whether it goes on."""
    log = run_dir.parent / f"{arch}.log"
    spent = minutes_spent(log.read_text(), RunFolder(run_dir).state) if log.exists() else float(recipe["max_minutes"])
    trained = int(metadata["trained_steps"])
    text = (f"Budget: {args.minutes:g} minutes of wall-clock time on the CPU, {recipe['num_threads']} thread, in sessions stopped and "
            f"resumed exactly; {spent:.0f} minutes spent when this checkpoint was taken, step {trained} "
            f"({trained * recipe['batch_size']:,} images seen); the best validation checkpoint is step {metadata['step']}.")
    if minutes_left(args, RunFolder(run_dir), log) > 0:
        text += " The run goes on: this is an interim checkpoint of it."
    return text + (" Its learning curve (validation NLL against images seen, beside the paper's figure) is in the "
                   "repository's docs/reproduction.md (`python benchmarks/table4.py`).")


def card(model, metadata: dict, name: str, args: argparse.Namespace, arch: str, run_dir: Path, score: dict) -> str:
    recipe = RunFolder(run_dir).read_config()["train"]
    settings = ", ".join(f"{key} {recipe[key]}" for key in ("optimizer", "lr", "schedule", "batch_size", "ema_decay", "grad_clip", "seed", "num_threads"))
    # The card names no folder of this machine: the runs' folder is RUNS, as in the module docstring.
    script = shlex.join(["python", "benchmarks/pretrained_mnist.py", *runs_as_placeholder(sys.argv[1:])])
    # As binarized_mnist.py prints it (its quotes are the config's TOML strings).
    train = " ".join(["python", *recipe_command(args, arch, Path("RUNS") / arch)[1:]])
    load = f"{score['load']:.1f}" if "load" in score else "not recorded"
    sections = (
        ("Data", DATA),
        ("Training", f"Recipe: {settings}, lr_decay {recipe.get('lr_decay', 'none')} (Adam; the paper used RMSProp).\n\n"
                     f"{progress(args, arch, run_dir, recipe, metadata)} {args.note}".rstrip()),
        ("Commands", f"This folder:\n\n```\n{script}\n```\n\nwhich trains with:\n\n```\n{train}\n```"),
        ("Results", "| | test NLL (nats/image) | bits/dim | images |\n| --- | ---: | ---: | ---: |\n"
                    f"| this model | {score['nats_per_image']:.2f} ± {score['nats_per_image_stderr']:.2f} | "
                    f"{score['bits_per_dim']:.4f} | {score['images']} |\n"
                    f"| paper, Table 4 | {PAPER_NATS[arch]:.2f} | | 10000 |\n\n"
                    f"On the first {SUBSET_IMAGES} test images alone: {score['subset_nats_per_image']:.4f} nats/image.\n\n"
                    "± is the standard error of the mean over test images. The paper's figure is for a network trained "
                    "to convergence; this one had the budget above.\n\n"
                    f"Trained and measured with pixelrnn {pixelrnn.__version__} on {hardware()}, torch {torch.__version__}; "
                    f"the load average was {load} at the end of the evaluation."),
    )
    return model_card(model, metadata, name=name, sections=sections)


def snapshot(arch: str, run_dir: Path) -> Path:
    """The run's best checkpoint, copied beside the runs so that a training still going on cannot replace it mid-export."""
    copy = run_dir.parent / f"{arch}.exported.safetensors"
    data = resolve_checkpoint(run_dir).read_bytes()
    atomic_write(copy, lambda temp: Path(temp).write_bytes(data), len(data))
    return copy


def bundled_nats(folder: Path) -> float | None:
    """The test NLL on the card of the bundled folder, or None where there is none yet (or no figure on it)."""
    if not (folder / CONFIG_NAME).exists():
        return None
    _, metadata = read_pretrained_config(folder)
    return float(metadata[TEST_NATS]) if TEST_NATS in metadata else None


def export(args: argparse.Namespace, arch: str, run_dir: Path) -> Path | None:
    checkpoint = snapshot(arch, run_dir)
    score = test_score(args, arch, checkpoint, run_dir.parent)
    bundled = bundled_nats(Path(args.out) / "binarized_mnist" / arch)
    if args.only_if_better and bundled is not None and bundled <= score["nats_per_image"]:
        print(f"binarized_mnist/{arch}: kept, its test NLL {bundled:.2f} is no worse than the run's best checkpoint's "
              f"{score['nats_per_image']:.2f} ± {score['nats_per_image_stderr']:.2f} nats", flush=True)
        return None
    model, metadata = load_model_with_metadata(checkpoint)
    name = f"binarized_mnist/{arch}"
    # The MNIST preset the network is (for the PixelCNN trained deeper, its 25-layer one).
    presets = [preset for preset, known in PRESETS.items() if preset.startswith("mnist_") and known.config == model.config]
    assert presets, f"{run_dir} holds no MNIST preset's network"
    metadata = {**metadata, "trained_steps": str(state_step(RunFolder(run_dir))), "preset": presets[0],
                TEST_NATS: f"{score['nats_per_image']:.4f}", TEST_NATS_STDERR: f"{score['nats_per_image_stderr']:.4f}",
                TEST_IMAGES: str(score["images"]), "test_bits_per_dim": f"{score['bits_per_dim']:.6f}",
                TEST_SUBSET_NATS: f"{score['subset_nats_per_image']:.4f}",
                "paper_nats_per_image": f"{PAPER_NATS[arch]:.2f}"}
    metadata.pop("format", None), metadata.pop("pixelrnn.config", None)
    folder = save_pretrained(model.eval(), Path(args.out) / name, metadata=metadata, card=card(model, metadata, name, args, arch, run_dir, score))
    print(f"{name}: test NLL {score['nats_per_image']:.2f} ± {score['nats_per_image_stderr']:.2f} nats "
          f"(paper {PAPER_NATS[arch]:.2f}); wrote {folder}", flush=True)
    return folder


def sample_grid(out: Path, path: Path, per_network: int, seed: int) -> Path:
    """One row per bundled network (the folders in OUT), ``per_network`` samples each, drawn with a fixed seed."""
    rows = []
    for arch in PAPER_NATS:
        model, _ = load_model_with_metadata(resolve_checkpoint(out / "binarized_mnist" / arch))
        rows.append(sample(model.eval(), per_network, 28, 28, generator=torch.Generator().manual_seed(seed)))
    return save_grid(torch.cat(rows), 2, path, nrow=per_network, scale=2)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", default="runs/pretrained", help="folder of the run folders (RUNS/<arch>) and their logs")
    parser.add_argument("--out", default=str(ROOT / "pixelrnn" / "pretrained"), help="where the pretrained folders go (OUT/binarized_mnist/<arch>)")
    parser.add_argument("--archs", default="pixelcnn,row_lstm,diagonal_bilstm")
    parser.add_argument("--minutes", type=float, default=110.0, help="wall-clock training budget per network")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1, help="CPU threads per training (and for the evaluation)")
    parser.add_argument("--eval-every", type=int, default=1000, help="steps between validations (1000 images each)")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="further recipe overrides, e.g. train.lr=5e-4")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--export-only", action="store_true", help="write the folders from the runs as they stand, without training")
    parser.add_argument("--only-if-better", action="store_true",
                        help="write a network's folder only where the run's test NLL beats the bundled card's figure")
    parser.add_argument("--grid", default=str(ROOT / "docs" / "images" / "binarized_mnist_samples.png"),
                        help="where the sample grid of the bundled networks goes (one row each)")
    parser.add_argument("--per-network", type=int, default=12, help="samples per network in the grid")
    parser.add_argument("--note", default="", help="a sentence for the card's training section, e.g. what else ran on the machine")
    args = parser.parse_args()
    if not os.environ.get("PIXELRNN_DATA_DIR"):
        sys.exit("set PIXELRNN_DATA_DIR to a folder holding binarized_mnist/*.amat")
    archs = args.archs.split(",")
    unknown = sorted(set(archs) - set(PAPER_NATS))
    if unknown:
        sys.exit(f"unknown --archs {', '.join(unknown)}; choose from {', '.join(PAPER_NATS)}")
    runs = Path(args.runs).resolve()
    for arch in archs:
        if not args.export_only:
            train(args, arch, runs / arch)
    for arch in archs:
        export(args, arch, runs / arch)
    grid = sample_grid(Path(args.out), Path(args.grid), args.per_network, args.seed)
    print(f"samples of every bundled network, one row each (seed {args.seed}): {grid}", flush=True)


if __name__ == "__main__":
    main()
