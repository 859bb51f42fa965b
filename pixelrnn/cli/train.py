"""``pixelrnn presets``, ``configs``, ``train`` and ``evaluate``: the paper's networks, trained and scored."""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import os
import sys
import signal
import time
from pathlib import Path

from ..checkpoint import load_model_with_metadata
from ..config import ARCHITECTURES
from ..data import DATASETS
from ..evaluation import evaluate_images
from ..presets import PRESETS
from ..training import RunFolder, Trainer, build_run_config, resolve_checkpoint
from ..training.run_config import describe_config, preprocessing, shipped_configs
from ..utils import atomic_write
from .common import UserError, add_checkpoint_argument, add_dataset_split_arguments, device, load_split, load_split_for, show_bars, user_errors


LARGE_SPLIT = 10_000  # evaluate says how many images it scores above this (--train: 50,000 for MNIST)


def cmd_presets(args: argparse.Namespace) -> None:
    print(f"{'preset':32s} {'arch':16s} {'layers':>6s} {'h':>5s} {'image':>9s} {'parameters':>12s}")
    for name, preset in PRESETS.items():
        cfg = preset.config
        size = f"{cfg.channels}x{preset.image_size[0]}x{preset.image_size[1]}"
        print(f"{name:32s} {cfg.arch:16s} {cfg.layers:6d} {cfg.hidden:5d} {size:>9s} {preset.parameters:12,d}")
        if args.verbose:
            print(f"    {preset.description}")


def cmd_configs(args: argparse.Namespace) -> None:
    for name, path in shipped_configs().items():
        print(f"{name:30s} {describe_config(path)}")
        if args.verbose:
            print(f"    {path}")


def cmd_train(args: argparse.Namespace) -> None:
    overrides = list(args.set or [])
    if args.steps is not None:
        overrides.append(f"train.steps={args.steps}")
    if args.device is not None:
        overrides.append(f"train.device={args.device!r}")
    if args.resume:
        if args.config or args.dataset or args.arch or args.data_dir:
            raise UserError("--resume continues a run with its saved config; only --steps, --device and --set train.KEY=VALUE may change")
        run_dir = Path(args.resume)
        if not RunFolder(run_dir).config.is_file():
            raise UserError(f"cannot resume: {RunFolder(run_dir).config} does not exist")
        config = None
    else:
        config = build_run_config(args.config, overrides, **{"data.dataset": args.dataset, "model.arch": args.arch, "data.data_dir": args.data_dir,
                                                             "data.download": True if args.download else None})
        run_dir = Path(args.out) if args.out else Path("runs") / time.strftime(f"{config.data.dataset.replace(':', '_').replace('/', '_')}-%Y%m%d-%H%M%S")
    # One process trains a run folder: the lock is held from before its files are read to the end
    # (under torchrun, rank 0 holds it for all).
    if not args.resume and not RunFolder(run_dir).lock.exists():
        _check_out(run_dir)  # before a lock file is made there (in a pretrained folder, say)
    created = not run_dir.exists()
    try:
        with RunFolder(run_dir).locked() if int(os.environ.get("RANK", "0")) == 0 else contextlib.nullcontext():
            if args.resume:
                config = RunFolder(run_dir).resume_config(overrides)
            else:
                _check_out(run_dir)  # again under the lock: a process that began meanwhile
            _train(args, config, run_dir)
    except BaseException:
        if created and run_dir.is_dir() and [p.name for p in run_dir.iterdir()] == ["train.lock"]:
            with contextlib.suppress(OSError):  # a run that never began leaves no folder behind
                RunFolder(run_dir).lock.unlink()
                run_dir.rmdir()
        raise


def _check_out(run_dir: Path) -> None:
    """``--out`` must not hold a run or a model (a pretrained folder): training would write over them."""
    if RunFolder(run_dir).holds_run():
        raise UserError(f"{run_dir} already holds a run; continue it with --resume {run_dir} or choose another --out")
    if RunFolder(run_dir).holds_model():
        raise UserError(f"{run_dir} already holds a model (its config.json and weights would be replaced); choose another --out")


def _train(args: argparse.Namespace, config, run_dir: Path) -> None:
    data = config.data
    loading = {"cache": data.cache, "progress": show_bars(args), **preprocessing(data)}
    train_set = load_split(data.dataset, data.train_split, data.data_dir, data.download, **loading)
    valid_set = load_split(data.dataset, data.valid_split, data.data_dir, data.download, **loading) if data.valid_split else None
    trainer = Trainer(config, run_dir, train_set.images, None if valid_set is None else valid_set.images, train_set.levels,
                      dataset_name=data.dataset, resume=bool(args.resume), progress=not args.quiet, train_labels=train_set.labels,
                      valid_labels=None if valid_set is None else valid_set.labels, class_names=train_set.class_names)
    say = print if trainer.dist.is_main else (lambda *_: None)  # under torchrun, rank 0 speaks for all
    if args.resume and trainer.finished:
        say(f"{run_dir} finished at step {trainer.step} (train.steps={config.train.steps}); nothing to do, nothing changed. "
            f"To train longer: pixelrnn train --resume {run_dir} --steps N")
        return
    if args.resume:
        changed = changed_settings(RunFolder(run_dir).read_config().get("train", {}), config.train)
        if changed and trainer.dist.is_main:  # the run goes on with them: its config.json says so from now on
            RunFolder(run_dir).write_config(config, trainer.model_config)
        for key, (before, after) in changed.items():
            say(f"resuming with train.{key} = {after!r} (was {before!r}) from step {trainer.step}; config.json updated")
    params = sum(p.numel() for p in trainer.model.parameters())
    say(f"{trainer.model_config.arch}: {params:,} parameters on {trainer.device}; {len(train_set)} training images "
        f"{train_set.channels}x{train_set.height}x{train_set.width}, {train_set.levels} levels"
        + (f", conditioned on {trainer.model_config.classes} classes" if trainer.model_config.classes else "") + f"; run folder {run_dir}"
        + (f" (resuming at step {trainer.step})" if args.resume else ""))
    if config.train.ema_decay and valid_set is not None:
        say(f"validation scores the EMA (Polyak) average of the weights (train.ema_decay = {config.train.ema_decay}); "
            "early in a run it lags the trained weights, so validation reads worse than training")
    result = trainer.train()
    best = "" if result.best_valid_nats is None else f"; best validation {result.best_valid_nats:.3f} nats/image"
    say(f"stopped at step {result.step} ({result.stopped}){best}; run folder {run_dir}")
    if result.stopped.startswith("signal:"):
        say(f"resume with: pixelrnn train --resume {run_dir}")
        raise SystemExit(128 + int(getattr(signal, result.stopped.split(":")[1])))


def changed_settings(saved: dict, train) -> dict:
    """{key: (saved value, new value)} of the ``[train]`` keys a resume changes."""
    now = dataclasses.asdict(train)
    return {key: (saved[key], value) for key, value in now.items() if key in saved and saved[key] != value}


def cmd_evaluate(args: argparse.Namespace) -> None:
    if not 1 <= args.batch_size <= 1 << 20:
        raise UserError(f"--batch-size must lie in 1..{1 << 20}; got {args.batch_size}")
    if args.limit < 0:
        raise UserError(f"--limit must be >= 0 (0: every image); got {args.limit}")
    path = resolve_checkpoint(args.checkpoint)
    model, metadata = load_model_with_metadata(path, device(args.device))
    dataset = args.dataset or metadata.get("dataset")
    if not dataset:
        raise UserError(f"{path} does not say which dataset it was trained on; pass --dataset NAME")
    report = {"checkpoint": str(path), "dataset": dataset, "step": int(metadata.get("step", -1))}
    splits = [args.split] + (["train"] if args.train else [])
    for split in splits:
        images = load_split_for(model, path, metadata, args, dataset, split)
        chosen = images.images[: args.limit] if args.limit else images.images
        if len(chosen) > LARGE_SPLIT and not args.quiet:
            print(f"scoring {len(chosen):,} images of {dataset}/{split} (--limit N scores the first N)", file=sys.stderr)
        labels = None
        if model.config.classes:  # p(x | class): the split's labels are the condition
            if images.labels is None:
                raise UserError(f"the model is class-conditional ({model.config.classes} classes) and {dataset}/{split} has no labels; "
                                "evaluate it on a labelled split (mnist, cifar10, digits, folder: with sub-folders, npz: with labels)")
            labels = images.labels[: len(chosen)]
            if len(labels) and int(labels.max()) >= model.config.classes:
                raise UserError(f"{dataset}/{split} has label {int(labels.max())}; the model has classes 0..{model.config.classes - 1}")
        summary = evaluate_images(model, chosen, batch_size=args.batch_size, progress=show_bars(args), description=split, labels=labels)
        summary["conditional"] = labels is not None
        report[split] = summary
        print(f"{dataset}/{split}: {'conditional ' if labels is not None else ''}{summary['nats_per_image']:.3f} +- {summary['nats_per_image_stderr']:.3f} nats/image, "
              f"{summary['bits_per_dim']:.4f} +- {summary['bits_per_dim_stderr']:.4f} bits/dim ({summary['images']} images)")
    main = report[args.split]
    report.update(split=args.split, nats_per_image=main["nats_per_image"], bits_per_dim=main["bits_per_dim"])
    if args.train:
        report["train_bits_per_dim"] = report["train"]["bits_per_dim"]
        print(f"as in the paper's tables: {main['bits_per_dim']:.2f} ({report['train_bits_per_dim']:.2f}) bits/dim, "
              f"{main['nats_per_image']:.2f} ({report['train']['nats_per_image']:.2f}) nats")
    if args.json:
        atomic_write(args.json, lambda temp: Path(temp).write_text(json.dumps(report, indent=2) + "\n"))


def add_parsers(sub) -> None:
    """``presets``, ``configs``, ``train`` and ``evaluate``."""
    presets = sub.add_parser("presets", help="list the paper's networks with their parameter counts")
    presets.add_argument("-v", "--verbose", action="store_true", help="also print each preset's description")
    presets.set_defaults(func=user_errors(cmd_presets))

    configs = sub.add_parser("configs", help="list the run configurations shipped with the package (train --config NAME)")
    configs.add_argument("-v", "--verbose", action="store_true", help="also print where each file is")
    configs.set_defaults(func=user_errors(cmd_configs))

    train = sub.add_parser("train", help="train a model (the paper's recipe by default)",
                           description="Train a network on a dataset into a run folder (config.json, metrics.jsonl, checkpoints): "
                                       "a shipped or own config (--config), shortcuts (--dataset, --arch, --steps) and any key with "
                                       "--set section.key=value, e.g. --set data.levels=16 --set data.mapping=quantise "
                                       "--set data.size=[32,32]. `pixelrnn configs` lists the shipped configs; --resume continues a run.")
    train.add_argument("--config", help="a TOML or JSON run configuration: a file, or the name of a shipped one "
                                        "(e.g. mnist_diagonal_bilstm; `pixelrnn configs` lists them)")
    train.add_argument("--dataset", help=f"dataset: {', '.join(DATASETS)}, folder:PATH or npz:PATH")
    train.add_argument("--arch", help=f"{', '.join(ARCHITECTURES)} or multiscale (a multi-scale model needs [model.small] "
                                      "and [model.large] sections: use a config)")
    train.add_argument("--data-dir", help="folder with the dataset files (offline use)")
    train.add_argument("--download", action="store_true", help="download missing dataset files into the cache")
    train.add_argument("--set", action="append", metavar="KEY=VALUE", help="override a config key, e.g. model.hidden=32 (repeatable)")
    train.add_argument("--steps", type=int, help="total optimisation steps")
    train.add_argument("--device", help="auto, cpu, cuda or cuda:N")
    train.add_argument("--out", help="run folder to create (default runs/<dataset>-<time>)")
    train.add_argument("--resume", metavar="RUN_DIR", help="continue an interrupted run exactly where it stopped")
    train.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    train.set_defaults(func=user_errors(cmd_train))

    evaluate = sub.add_parser("evaluate", help="NLL of a checkpoint on a split, in nats/image and bits/dim")
    add_checkpoint_argument(evaluate)
    evaluate.add_argument("--train", action="store_true", help="also evaluate the training split (the paper's bracketed figure; "
                                                                 "the whole split, e.g. 50,000 MNIST images: --limit N scores fewer)")
    evaluate.add_argument("--dataset", help="dataset (default: the one the checkpoint was trained on)")
    add_dataset_split_arguments(evaluate)
    evaluate.add_argument("--limit", type=int, default=0, help="evaluate only the first N images of each split")
    evaluate.add_argument("--batch-size", type=int, default=64, help="images scored at once (default 64)")
    evaluate.add_argument("--device", help="auto (default), cpu, cuda or cuda:N")
    evaluate.add_argument("--json", help="write the results as JSON to this file")
    evaluate.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    evaluate.set_defaults(func=user_errors(cmd_evaluate))
