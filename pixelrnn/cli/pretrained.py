"""``pixelrnn pretrained``: the models bundled with the package, each with the test NLL of its model card."""

from __future__ import annotations

import argparse

from ..errors import CheckpointError
from ..hub import BUNDLED, CARD_NAME, PREFIX, bundled_folder
from ..models import model_from_config
from ..models.pretrained import TEST_IMAGES, TEST_NATS, TEST_NATS_STDERR, read_pretrained_config
from .common import user_errors


def cmd_pretrained(args: argparse.Namespace) -> None:
    print(f"{'name':32s} {'arch':16s} {'parameters':>10s} {'test NLL (nats/image)':>22s} {'test images':>11s}")
    for name in BUNDLED:
        try:
            folder = bundled_folder(name)
        except CheckpointError:
            print(f"{name:32s} (not in this installation)")
            continue
        config, metadata = read_pretrained_config(folder)
        parameters = sum(p.numel() for p in model_from_config(config).parameters())
        nll = f"{float(metadata[TEST_NATS]):.2f} ± {float(metadata[TEST_NATS_STDERR]):.2f}" if TEST_NATS in metadata else "not measured"
        print(f"{name:32s} {config.arch:16s} {parameters:10,d} {nll:>22s} {metadata.get(TEST_IMAGES, ''):>11s}")
        if args.verbose:
            print(f"    model card: {folder / CARD_NAME}")
    print(f"\nuse one wherever a run folder goes, e.g.: pixelrnn sample {PREFIX}binarized_mnist/diagonal_bilstm -n 16 --out digits.png;"
          f"\na class-conditional one takes the class: pixelrnn sample {PREFIX}mnist/row_lstm_conditional --class 7 -n 16 --out sevens.png")


def add_parser(sub) -> None:
    parser = sub.add_parser("pretrained", help="list the pretrained models bundled with the package, with their test NLL",
                            description=f"Models shipped inside the package; pass {PREFIX}NAME wherever a run folder or "
                                        "checkpoint is accepted (sample, complete, evaluate, compress, decompress).")
    parser.add_argument("-v", "--verbose", action="store_true", help="also print where each model card is")
    parser.set_defaults(func=user_errors(cmd_pretrained))
