"""``pixelrnn check``, ``show`` and ``plot``: a model's causality, a run's summary and its learning curve."""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

from ..causality import check_causality
from ..checkpoint import load_model_with_metadata
from ..figures import read_metrics, run_metrics, plot_training_curve
from ..training import RunFolder, resolve_checkpoint
from ..utils import atomic_write
from .common import UserError, add_checkpoint_argument, user_errors

LOG_LINES = 5  # the last lines of the metrics log that `show` prints


def cmd_check(args: argparse.Namespace) -> None:
    for name in ("height", "width", "trials"):
        if getattr(args, name) < 1:
            raise UserError(f"--{name} must be >= 1; got {getattr(args, name)}")
    path = resolve_checkpoint(args.checkpoint)
    model, _ = load_model_with_metadata(path, "cpu")
    full_context = {"auto": None, "yes": True, "no": False}[args.full_context]
    shape = (model.config.channels, args.height, args.width)
    report = check_causality(model, shape, model.config.levels, full_context=full_context, trials=args.trials, seed=args.seed)
    print(f"{path}: {report.summary(args.limit)}")
    if args.json:
        record = {"checkpoint": str(path), "ok": report.ok, "shape": list(shape), "levels": report.levels, "method": report.method,
                  "trials": report.trials, "leaks": report.leaks, "missing": report.missing, "dependencies": report.dependencies,
                  "earlier_pairs": report.earlier_pairs}
        atomic_write(args.json, lambda temp: Path(temp).write_text(json.dumps(record, indent=1) + "\n"))
    if not report.ok:
        raise SystemExit(1)


def _run_folder(path: str) -> RunFolder:
    folder = RunFolder(path)
    if not Path(path).is_dir():
        raise UserError(f"{path} is not a run folder (a folder written by `pixelrnn train`)")
    if not folder.config.is_file() or not folder.metrics.is_file():
        raise UserError(f"{path} is not a run folder: it has no config.json and metrics.jsonl")
    return folder


def _number(value, digits: int = 3) -> str:
    return "-" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:.{digits}f}"


def run_summary(folder: RunFolder) -> list[str]:
    """The lines of ``pixelrnn show``: dataset, model, steps, best validation with its step, speed, the log's end."""
    config = folder.read_config()
    data, train, model = config.get("data", {}), config.get("train", {}), config.get("model", {})
    records = read_metrics(folder.metrics)
    trained = [r for r in records if r["split"] == "train"]
    valid = [r for r in records if r["split"] == "valid"]
    step = max((r["step"] for r in records), default=0)
    lines = [f"run {folder.path}"]
    preprocessing = ", ".join(f"{key} {data[key]}" for key in ("levels", "mapping", "size", "resize", "channels") if data.get(key))
    lines.append(f"dataset: {data.get('dataset', '?')} (train split {data.get('train_split', '?')}, valid split "
                 f"{data.get('valid_split') or 'none'})" + (f"; preprocessing: {preprocessing}" if preprocessing else ""))
    if model.get("arch") == "multiscale":
        lines.append(f"model: multiscale, factor {model.get('factor')}: small {model['small'].get('arch')}, large {model['large'].get('arch')}")
    else:
        lines.append(f"model: {model.get('arch', '?')}, {model.get('layers', '?')} layers, h = {model.get('hidden', '?')}, "
                     f"{model.get('channels', '?')} channel(s), {model.get('levels', '?')} levels, output_hidden {model.get('output_hidden', '?')}")
    if folder.best.is_file() or folder.last.is_file():
        checkpoint = folder.best if folder.best.is_file() else folder.last
        loaded, metadata = load_model_with_metadata(checkpoint, "cpu")
        lines.append(f"parameters: {sum(p.numel() for p in loaded.parameters()):,}; image size {metadata.get('image_size', '?')}")
    lines.append(f"steps: {step} of {train.get('steps', '?')} (batch {train.get('batch_size', '?')}, {train.get('optimizer', '?')}, "
                 f"lr {train.get('lr', '?')}" + (f", EMA {train['ema_decay']}: validation scores the averaged weights" if train.get("ema_decay") else "") + ")")
    if trained:
        last = trained[-1]
        lines.append(f"last training loss: {_number(last.get('nats'))} nats/image, {_number(last.get('bits_per_dim'), 4)} bits/dim at step {last['step']}")
        speeds = [r["images_per_second"] for r in trained if isinstance(r.get("images_per_second"), (int, float))]
        if speeds:
            lines.append(f"speed: {sum(speeds) / len(speeds):.1f} images/s (mean of {len(speeds)} log lines; last {speeds[-1]:.1f})")
    if valid:
        best = min(valid, key=lambda r: r["nats"])
        lines.append(f"best validation: {_number(best['nats'])} nats/image, {_number(best.get('bits_per_dim'), 4)} bits/dim "
                     f"at step {best['step']} ({best.get('images', '?')} images); {len(valid)} validation(s)")
    else:
        lines.append("best validation: none yet")
    lines.append(f"last {min(LOG_LINES, len(records))} lines of {folder.metrics.name}:")
    for record in records[-LOG_LINES:]:
        extra = (f", lr {record['lr']:.3g}" if isinstance(record.get("lr"), (int, float)) else "") + (
            f", {record['images_per_second']:.1f} images/s" if isinstance(record.get("images_per_second"), (int, float)) else "")
        lines.append(f"  step {record['step']} {record['split']}: {_number(record.get('nats'))} nats/image, "
                     f"{_number(record.get('bits_per_dim'), 4)} bits/dim{extra}")
    return lines


def cmd_show(args: argparse.Namespace) -> None:
    print("\n".join(run_summary(_run_folder(args.run))))


def cmd_plot(args: argparse.Namespace) -> None:
    folder = _run_folder(args.run)
    if Path(args.out).suffix.lower() != ".png":
        raise UserError(f"-o must name a .png file; got {args.out}")
    if Path(args.out).exists() and not args.force:
        raise UserError(f"{args.out} already exists; pass --force to replace it")
    if not run_metrics(folder.path):
        raise UserError(f"{folder.metrics} holds no records yet; nothing to plot")
    print(f"wrote {plot_training_curve(folder.path, args.out)}")


def add_parsers(sub) -> None:
    """``check``, ``show`` and ``plot``."""
    check = sub.add_parser("check", help="check that no output of a model depends on its own or a later sub-pixel",
                           description="The causality check (docs/causality.md): every dependency of every output's logits, "
                                       "found exactly on small random images; exit status 1 when any output sees its own or a later "
                                       "sub-pixel (a leak).")
    add_checkpoint_argument(check)
    check.add_argument("--height", type=int, default=8, help="height of the test images (default 8; leaks show within a few pixels)")
    check.add_argument("--width", type=int, default=8, help="width of the test images (default 8)")
    check.add_argument("--trials", type=int, default=3, help="random images whose dependencies are pooled (default 3)")
    check.add_argument("--seed", type=int, default=0, help="seed of the random images (default 0)")
    check.add_argument("--full-context", choices=("auto", "yes", "no"), default="auto",
                       help="look for missing dependencies: auto (where the architecture promises the whole context: the Diagonal "
                            "BiLSTM, less its documented gap), yes (every earlier sub-pixel) or no")
    check.add_argument("--limit", type=int, default=10, help="pairs of each kind printed (default 10)")
    check.add_argument("--json", help="also write the report, every pair, as JSON to this file")
    check.set_defaults(func=user_errors(cmd_check))

    show = sub.add_parser("show", help="summarise a run folder: dataset, model, steps, best validation, speed, the log's end",
                          description="Print a run's summary from its config.json, checkpoint and metrics.jsonl.")
    show.add_argument("run", metavar="RUN_DIR", help="a run folder written by `pixelrnn train`")
    show.set_defaults(func=user_errors(cmd_show))

    plot = sub.add_parser("plot", help="draw a run's learning curve (train and valid; bits/dim and nats; steps and images seen)",
                          description="The learning curve of a run folder as a PNG (extra [plots]: matplotlib).")
    plot.add_argument("run", metavar="RUN_DIR", help="a run folder written by `pixelrnn train`")
    plot.add_argument("-o", "--out", required=True, help="the PNG to write")
    plot.add_argument("--force", action="store_true", help="replace an existing -o")
    plot.set_defaults(func=user_errors(cmd_plot))
