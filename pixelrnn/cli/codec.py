"""``pixelrnn compress`` and ``pixelrnn decompress``: image files to one compressed file and back."""

from __future__ import annotations

import argparse
import dataclasses
import sys
import time
import warnings
from pathlib import Path

import numpy as np

from ..checkpoint import load_model_with_metadata
from ..codec import (ARITHMETIC_CHOICES, DEFAULT_BATCH_SIZE, MAX_BATCH, CodedImage, EnvironmentWarning, compress, compression_stats,
                     decompress, image_files, image_from_file, image_path, images_from_array, save_images, save_npz)
from ..codec.container import MODE_CODES
from ..codec.coding_model import check_model
from ..data.preprocess import Preprocessing
from ..images import fit_channels, read_image, samples_to_values
from ..errors import CompressionError
from ..training import load_model_from, resolve_checkpoint
from ..utils import atomic_write
from .classes import accepted, resolve_class
from .common import UserError, add_checkpoint_argument, add_dataset_split_arguments, load_split_for, run_preprocessing, show_bars, user_errors


def add_compress_parser(subparsers) -> argparse.ArgumentParser:
    """``pixelrnn compress RUN_DIR_OR_CHECKPOINT INPUT... -o FILE`` (or ``--dataset NAME --split SPLIT``)."""
    parser = subparsers.add_parser(
        "compress", help="losslessly compress images with a trained model",
        description="Entropy-code images with the model's conditionals (range coding). Inputs are image files "
                    "(mode 1, L or RGB) and folders of them, or a dataset split. See docs/compression.md.")
    add_checkpoint_argument(parser)
    parser.add_argument("inputs", nargs="*", metavar="INPUT", help="image files, or folders (their image files, sorted by name)")
    parser.add_argument("-o", "--out", required=True, help="compressed file to write (an existing one only with --force)")
    parser.add_argument("--force", action="store_true", help="replace an existing --out")
    parser.add_argument("--dataset", help="compress a dataset split instead of files (name as for `pixelrnn train`)")
    add_dataset_split_arguments(parser)
    parser.add_argument("--limit", type=int, default=0, help="with --dataset: only the first N images")
    parser.add_argument("--batch-size", type=int, default=DEFAULT_BATCH_SIZE, help=f"images coded at once (default {DEFAULT_BATCH_SIZE}; stored in the file)")
    parser.add_argument("--arithmetic", choices=ARITHMETIC_CHOICES, default="integer",
                        help="coding model: integer (default; the file decodes on any machine) or float32/float64 "
                             "(the float model; the file decodes only on the platform that wrote it)")
    parser.add_argument("--class", dest="cls", metavar="CLASS", help="a class-conditional model codes every file as this class (a number "
                                                                     "or a class name); default: a dataset's labels, or each file's "
                                                                     "sub-folder name when it is a class name of the model")
    parser.add_argument("--stats", action="store_true", help="print achieved bits/dim, the model's NLL and the overhead")
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    parser.set_defaults(func=user_errors(cmd_compress))
    return parser


def add_decompress_parser(subparsers) -> argparse.ArgumentParser:
    """``pixelrnn decompress RUN_DIR_OR_CHECKPOINT FILE -o DIR``"""
    parser = subparsers.add_parser(
        "decompress", help="restore images compressed by `pixelrnn compress`",
        description="Decode a file written by `pixelrnn compress` with the same model; writes one PNG per image into DIR "
                    "(16-bit grey PNGs for codes of more than 256 levels), or all images into one FILE.npz.")
    add_checkpoint_argument(parser)
    parser.add_argument("file", metavar="FILE", help="a file written by `pixelrnn compress`")
    parser.add_argument("-o", "--out", required=True, metavar="DIR", help="folder for the PNGs (created; PNGs of the same names "
                                                                         "are replaced only with --force), or a path ending in "
                                                                         ".npz: one array 'images' (N, C, H, W), and 'labels'")
    parser.add_argument("--force", action="store_true", help="replace PNGs of the same names in DIR, or an existing .npz")
    parser.add_argument("--by-class", action="store_true",
                        help="write each image into DIR/<its class name>/ (a class-conditional model's file), the layout "
                             "folder: datasets read labels from")
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    parser.set_defaults(func=user_errors(cmd_decompress))
    return parser


def _inputs(args: argparse.Namespace, model, checkpoint, metadata: dict) -> list[CodedImage]:
    config = model.config
    if args.dataset:
        if args.inputs:
            raise UserError("give image files/folders or --dataset, not both")
        if args.limit < 0:
            raise UserError(f"--limit must be >= 0; got {args.limit}")
        image_set = load_split_for(model, checkpoint, metadata, args)
        chosen = image_set.images[: args.limit] if args.limit else image_set.images
        images = images_from_array(chosen, image_set.levels)
        if not config.classes:
            return images
        if args.cls is not None:
            return _labelled(images, [resolve_class(model, args.cls)] * len(images))
        if image_set.labels is None:
            raise UserError(f"the model is class-conditional and {args.dataset}/{args.split} has no labels; give --class "
                            f"({accepted(model)})")
        return _labelled(images, image_set.labels[: len(images)].tolist())
    if args.limit or args.data_dir or args.download:
        raise UserError("--limit, --data-dir and --download go with --dataset")
    if not args.inputs:
        raise UserError("nothing to compress: give image files or folders, or --dataset NAME")
    paths = image_files(args.inputs)
    preprocessing = run_preprocessing(checkpoint)
    if preprocessing["size"] or preprocessing["channels"] or preprocessing["mapping"] == "quantise":
        images = [preprocessed_image(path, config.channels, config.levels, preprocessing) for path in paths]
        print(f"pixelrnn compress: coding the images as the run preprocessed its data ({describe(preprocessing)}); decompress "
              "gives these preprocessed images, not the files", file=sys.stderr)
    else:
        images = [image_from_file(path, config.channels, config.levels) for path in paths]
    _warn_of_misfits(paths, images, config, metadata)
    if config.classes:
        images = _labelled(images, _file_labels(model, paths, args.cls))
    return images


def _labelled(images: list[CodedImage], labels: list[int]) -> list[CodedImage]:
    return [dataclasses.replace(image, label=int(label)) for image, label in zip(images, labels)]


def _file_labels(model, paths: list[Path], chosen: str | None) -> list[int]:
    """The class of each file for a class-conditional model: ``--class``, else its sub-folder's name among the model's class names."""
    if chosen is not None:
        return [resolve_class(model, chosen)] * len(paths)
    names = model.config.class_names
    unknown = [path for path in paths if path.parent.name not in names]
    if unknown:
        where = (f"its sub-folder {unknown[0].parent.name!r} is not a class name of the model ({', '.join(names)})" if names
                 else "the model records no class names to match sub-folders against")
        raise UserError(f"the model is class-conditional: {unknown[0]} needs a class, and {where}; give --class ({accepted(model)}) "
                        "or put each file in a sub-folder named after its class")
    return [names.index(path.parent.name) for path in paths]


def describe(preprocessing: dict) -> str:
    parts = [f"mapping {preprocessing['mapping']}"]
    if preprocessing["size"]:
        parts.append(f"size {preprocessing['size'][0]}x{preprocessing['size'][1]} by {preprocessing['resize']}")
    if preprocessing["channels"]:
        parts.append(f"{preprocessing['channels']} channel(s)")
    return ", ".join(parts)


def preprocessed_image(path: Path, channels: int, levels: int, preprocessing: dict) -> CodedImage:
    """An image file shaped and mapped as the run's data were (its ``data.size``, ``channels``, ``mapping``), written back
    as the 8-bit scaling of its values (``quantise``) or by its exact mapping."""
    prep = Preprocessing(levels, preprocessing["mapping"], preprocessing["size"], preprocessing["resize"], channels)
    image = read_image(path)
    if image.frames != 1:
        raise UserError(f"{path}: has {image.frames} frames; only single images can be coded")
    samples = prep.image(image.samples if preprocessing["channels"] else fit_channels(image.samples, channels, path))
    if prep.mapping == "quantise":
        values, mapping = prep.quantised(samples, 256), "scaled"
    else:
        mapped = samples_to_values(samples, levels)
        if mapped is None:
            raise UserError(f"{path}: values in [{int(samples.min())}, {int(samples.max())}] cannot be coded exactly by a "
                            f"{levels}-level model (needs 0..{levels - 1} or their 8-bit scaling; the run's data.mapping is exact)")
        values, mapping = mapped
    mode = image.mode if image.mode in MODE_CODES and (image.mode == "RGB") == (channels == 3) else ("RGB" if channels == 3 else "L")
    return CodedImage(path.stem + ".png", np.ascontiguousarray(values), mode, mapping)


def _warn_of_misfits(paths, images: list[CodedImage], config, metadata: dict) -> None:
    """Say when files are not what the model was trained on: the code stays lossless, but its size is
    then no measure of the model (``evaluate`` refuses such data; ``compress`` codes it and warns)."""
    trained = f" ({metadata['dataset']})" if metadata.get("dataset") else ""
    size = metadata.get("image_size")
    other_size = [(p, i) for p, i in zip(paths, images) if size and f"{i.values.shape[1]}x{i.values.shape[2]}" != size]
    if other_size:
        path, image = other_size[0]
        print(f"pixelrnn compress: warning: {len(other_size)} of {len(images)} image(s) are not {size}, the size the model was "
              f"trained on{trained}; e.g. {path} is {image.values.shape[1]}x{image.values.shape[2]}", file=sys.stderr)
    levels = config.levels
    grey = [p for p, i in zip(paths, images) if i.mode in ("1", "L") and config.channels == 3]
    if grey:
        print(f"pixelrnn compress: warning: {len(grey)} grey image(s) (e.g. {grey[0]}) are coded by a colour model, their grey "
              "repeated to 3 channels (decompress writes them back grey)", file=sys.stderr)
    one_bit = [p for p, i in zip(paths, images) if i.mode == "1"]
    if one_bit and levels != 2:
        print(f"pixelrnn compress: warning: {len(one_bit)} image(s) are 1-bit (e.g. {one_bit[0]}); the model has {levels} "
              f"levels{trained}", file=sys.stderr)


def cmd_compress(args: argparse.Namespace) -> None:
    if not 1 <= args.batch_size <= MAX_BATCH:
        raise UserError(f"--batch-size must lie in 1..{MAX_BATCH}; got {args.batch_size}")
    if args.limit < 0:
        raise UserError(f"--limit must be >= 0 (0: every image); got {args.limit}")
    out = Path(args.out)
    if out.is_dir():
        raise UserError(f"-o {out} is a folder; name the compressed file to write")
    if out.exists() and not args.force:
        raise UserError(f"{out} already exists; pass --force to replace it")
    checkpoint = resolve_checkpoint(args.checkpoint)
    model, metadata = load_model_with_metadata(checkpoint, "cpu")
    check_model(model)  # before reading the inputs, which may be a whole dataset
    images = _inputs(args, model, checkpoint, metadata)
    start = time.perf_counter()
    data = compress(model, images, batch_size=args.batch_size, arithmetic=args.arithmetic, progress=show_bars(args))
    seconds = time.perf_counter() - start
    atomic_write(out, lambda temp: Path(temp).write_bytes(data), size=len(data))
    dims = sum(image.values.size for image in images)
    print(f"compressed {len(images)} image(s), {dims:,} sub-pixels, into {args.out}: {len(data):,} bytes, "
          f"{8 * len(data) / dims:.4f} bits/dim ({len(images) / seconds:.1f} images/s)")
    if args.stats:
        stats = compression_stats(model, images, data)
        print(f"achieved {stats['bits_per_dim']:.5f} bits/dim (payload {stats['payload_bytes']:,} bytes; "
              f"whole file {stats['file_bits_per_dim']:.5f} with the {stats['header_bytes']:,}-byte header)")
        print(f"model NLL {stats['nll_bits_per_dim']:.5f} bits/dim; overhead {stats['overhead_percent']:+.3f} % "
              f"(whole file {stats['file_overhead_percent']:+.3f} %)")


def cmd_decompress(args: argparse.Namespace) -> None:
    path = Path(args.file)
    if not path.is_file():
        raise UserError(f"compressed file {path} does not exist")
    out = Path(args.out)
    to_npz = out.suffix.lower() == ".npz"
    if to_npz and (out.is_dir() or (out.exists() and not args.force)):
        raise UserError(f"-o {out} already exists" + ("" if out.is_dir() else "; pass --force to replace it"))
    if to_npz and args.by_class:
        raise UserError("--by-class writes PNG sub-folders; an .npz keeps the classes in its 'labels' array")
    if out.exists() and not out.is_dir() and not to_npz:
        raise UserError(f"-o {out} is a file; decompress writes PNGs into a folder (or one .npz): name a new or existing folder")
    data = path.read_bytes()
    model = load_model_from(args.checkpoint, "cpu")
    if args.by_class and not model.config.classes:
        raise UserError(f"--by-class needs a class-conditional model; {args.checkpoint} has no classes")
    class_names = (model.config.class_names or ()) if args.by_class else None
    try:
        start = time.perf_counter()
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", EnvironmentWarning)
            try:
                images = decompress(model, data, progress=show_bars(args))
            finally:
                for warning in caught:
                    print(f"pixelrnn decompress: warning: {warning.message}", file=sys.stderr)
        seconds = time.perf_counter() - start
    except CompressionError as error:
        raise UserError(f"{path}: {error}") from None
    if to_npz:
        try:
            save_npz(images, model.config.levels, out)
        except CompressionError as error:
            raise UserError(f"{path}: {error}") from None
        print(f"restored {len(images)} image(s) into {args.out} ({len(images) / seconds:.1f} images/s)")
        return
    try:
        existing = [target for target in (image_path(out, image, class_names) for image in images) if target.exists()]
    except CompressionError as error:
        raise UserError(f"{path}: {error}") from None
    if existing and not args.force:
        raise UserError(f"{existing[0]} already exists" + (f" (and {len(existing) - 1} more)" if len(existing) > 1 else "")
                        + "; pass --force to replace, or choose another -o")
    try:
        save_images(images, model.config.levels, out, class_names)
    except CompressionError as error:
        raise UserError(f"{path}: {error}") from None
    print(f"restored {len(images)} image(s) into {args.out} ({len(images) / seconds:.1f} images/s)")
