"""Command-line interface: ``pixelrnn <command> ...``; errors for users are one line, exit 2."""

from __future__ import annotations

import argparse
import sys

import torch


class UserError(Exception):
    """A mistake in the command line or its files; printed as one line without a traceback."""


def cmd_presets(args: argparse.Namespace) -> None:
    from .models import model_from_config
    from .presets import PRESETS

    print(f"{'preset':32s} {'arch':16s} {'layers':>6s} {'h':>5s} {'image':>9s} {'parameters':>12s}")
    for name, preset in PRESETS.items():
        cfg = preset.config
        count = sum(p.numel() for p in model_from_config(cfg).parameters())
        size = f"{cfg.channels}x{preset.image_size[0]}x{preset.image_size[1]}"
        print(f"{name:32s} {cfg.arch:16s} {cfg.layers:6d} {cfg.hidden:5d} {size:>9s} {count:12,d}")
        if args.verbose:
            print(f"    {preset.description}")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="pixelrnn", description="Pixel Recurrent Neural Networks: train, evaluate, sample.")
    sub = parser.add_subparsers(dest="command", required=True)
    presets = sub.add_parser("presets", help="list the paper's networks with their parameter counts")
    presets.add_argument("-v", "--verbose", action="store_true", help="also print each preset's description")
    presets.set_defaults(func=cmd_presets)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        args.func(args)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except UserError as error:
        print(f"pixelrnn {args.command}: error: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
