"""What every command shares: the user's error, the device, dataset arguments and the fit checks."""

from __future__ import annotations

import argparse
import functools
import sys
from pathlib import Path

from ..data import load_dataset
from ..errors import PixelRNNError
from ..training import RunFolder
from ..utils import choose_device


class UserError(Exception):
    """A mistake in the command line or its files; printed as one line without a traceback."""


def user_errors(command):
    """The command with the library's errors turned into the user's error (same message)."""

    @functools.wraps(command)
    def run(args: argparse.Namespace) -> None:
        try:
            command(args)
        except PixelRNNError as error:
            raise UserError(str(error)) from None

    return run


def show_bars(args: argparse.Namespace) -> bool:
    """Progress bars only on a terminal: in a log file a bar is a stream of carriage returns (results still print)."""
    return not args.quiet and sys.stderr.isatty()


def device(name: str | None):
    return choose_device(name or "auto")


def load_split(dataset: str, split: str, data_dir, download: bool = False, levels: int | None = None, *,
               cache: bool = True, progress: bool = True, **preprocessing):
    return load_dataset(dataset, split, data_dir=data_dir, download=download, levels=levels, cache=cache, progress=progress,
                        **preprocessing)


def run_preprocessing(checkpoint: Path) -> dict:
    """The preprocessing of the run a checkpoint belongs to (``data.mapping``, ``size``, ``resize``, ``channels``; none
    outside a run folder), as keyword arguments of ``load_dataset``; its ``levels`` stay with the caller."""
    data = RunFolder(checkpoint.parent).data_settings()
    return {"mapping": data.get("mapping", "exact"), "size": tuple(data["size"]) if data.get("size") else None,
            "resize": data.get("resize", "crop"), "channels": data.get("channels") or None}


def add_checkpoint_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("checkpoint", metavar="RUN_DIR_OR_CHECKPOINT",
                        help="a run folder (its best checkpoint, else its last), a checkpoint file, a pretrained folder, "
                             "or pretrained:NAME (a bundled model, `pixelrnn pretrained` lists them, or a Hub repository owner/name)")


def add_dataset_split_arguments(parser: argparse.ArgumentParser) -> None:
    """``--split``, ``--data-dir`` and ``--download``: where a command finds the images of ``--dataset``."""
    parser.add_argument("--split", default="test", help="the split of the dataset (default test)")
    parser.add_argument("--data-dir", help="folder with the dataset files (default: the run's data.data_dir, then "
                                           "$PIXELRNN_DATA_DIR, then the cache)")
    parser.add_argument("--download", action="store_true", help="download missing dataset files into the cache")


def load_split_for(model, checkpoint: Path, metadata: dict, args: argparse.Namespace, dataset: str | None = None,
                   split: str | None = None):
    """A split that fits the model (channels, levels, image size; a one-line error otherwise).

    Its files are looked for where the run found its data: ``--data-dir``, else the run folder's
    ``data.data_dir``; the run's preprocessing (``data.mapping``, ``size``, ``resize``, ``channels``)
    applies. A ``folder:`` or ``npz:`` dataset, and any dataset of a run that set ``data.levels``,
    is read with the model's levels. The preparation bar follows ``-q`` and the terminal.
    """
    dataset, split = dataset or args.dataset, split or args.split
    settings = RunFolder(checkpoint.parent).data_settings()
    data_dir = args.data_dir if args.data_dir is not None else settings.get("data_dir")
    levels = model.config.levels if dataset.startswith(("folder:", "npz:")) or settings.get("levels") else None
    image_set = load_split(dataset, split, data_dir, args.download, levels, progress=show_bars(args), **run_preprocessing(checkpoint))
    check_images_fit(model, image_set.images, image_set.levels, metadata, f"{dataset}/{split}")
    return image_set


def check_channels_and_levels(model, images, levels: int, source: str) -> None:
    cfg = model.config
    if images.shape[1] != cfg.channels or levels != cfg.levels:
        raise UserError(f"{source} has {images.shape[1]} channels and {levels} levels; the model wants {cfg.channels} and {cfg.levels}")


def check_images_fit(model, images, levels: int, metadata: dict, source: str) -> None:
    check_channels_and_levels(model, images, levels, source)
    trained = metadata.get("image_size")
    if trained and trained != f"{images.shape[2]}x{images.shape[3]}":
        raise UserError(f"{source} images are {images.shape[2]}x{images.shape[3]}; the model was trained on {trained}"
                        + (f" ({metadata['dataset']})" if metadata.get("dataset") else ""))
