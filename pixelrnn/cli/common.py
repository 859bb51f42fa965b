"""What every command shares: the user's error, the device, dataset arguments and the fit checks."""

from __future__ import annotations

import argparse
import functools

from ..data import load_dataset
from ..errors import PixelRNNError
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


def device(name: str | None):
    return choose_device(name or "auto")


def load_split(dataset: str, split: str, data_dir, download: bool = False, *, cache: bool = True, progress: bool = True):
    return load_dataset(dataset, split, data_dir=data_dir, download=download, cache=cache, progress=progress)


def add_dataset_split_arguments(parser: argparse.ArgumentParser) -> None:
    """``--split`` and ``--data-dir``, for a command that can read its images from ``--dataset NAME``."""
    parser.add_argument("--split", default="test", help="with --dataset: the split (default test)")
    parser.add_argument("--data-dir", help="with --dataset: folder with the dataset files")


def load_split_for(model, dataset: str, split: str, data_dir, download: bool = False):
    """A dataset split whose channels and levels are the model's (a one-line error otherwise)."""
    image_set = load_split(dataset, split, data_dir, download)
    check_channels_and_levels(model, image_set.images, image_set.levels, f"{dataset}/{split}")
    return image_set


def check_channels_and_levels(model, images, levels: int, source: str) -> None:
    cfg = model.config
    if images.shape[1] != cfg.channels or levels != cfg.levels:
        raise UserError(f"{source} has {images.shape[1]} channels and {levels} levels; the model wants {cfg.channels} and {cfg.levels}")


def check_images_fit(model, images, levels: int, metadata: dict, source: str) -> None:
    check_channels_and_levels(model, images, levels, source)
    trained = metadata.get("image_size")
    if trained and trained != f"{images.shape[2]}x{images.shape[3]}":
        raise UserError(f"{source} images are {images.shape[2]}x{images.shape[3]}; the model was trained on {trained}")
