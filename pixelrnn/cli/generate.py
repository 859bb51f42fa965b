"""``pixelrnn sample`` and ``pixelrnn complete``: images drawn from a model, as a PNG grid and an npz (written in chunks: :mod:`.streaming`).

Without ``--out`` the files go into the run folder (else the current folder) under the next free
number, ``samples-001.png``, ``samples-002.png``, ...; an ``--out`` that exists is replaced only
with ``--force``. Grids are enlarged by nearest neighbour (``--scale``; by default until a tile
is at least 96 pixels across); the npz holds the model's values, never enlarged.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
from pathlib import Path

import numpy as np
import torch

from ..checkpoint import load_model_with_metadata
from ..data import DATASETS
from ..data.preprocess import Preprocessing, to_channels
from ..errors import ConfigError
from ..images import (GROUP_GAP, auto_scale, completion_grid, fit_channels, load_npz_images, model_values, read_image, save_grid,
                      save_png)
from ..limits import check_limit, current_limits
from ..models import MultiScalePixelRNN
from ..sampling import complete, sample, sample_stages
from ..training import RunFolder, resolve_checkpoint
from .classes import describe, resolve_class, sample_labels
from .common import (UserError, add_checkpoint_argument, add_dataset_split_arguments, device, load_split_for, run_preprocessing,
                     show_bars, user_errors)
from .streaming import FIGURE_IMAGES, check_png_dir, chunk_size, stream


MAX_SIDE = 16384  # --height and --width, as for the images of a compressed file
MAX_SCALE = 256  # --scale
MAX_COMPLETIONS = 10_000  # -k
MAX_SAMPLES = 10_000_000  # -n: memory stays flat, but the npz and the time grow with it


def _load_checkpoint(path, device_name):
    checkpoint = resolve_checkpoint(path)
    model, metadata = load_model_with_metadata(checkpoint, device(device_name))
    return model, metadata, checkpoint


def _image_size(metadata: dict, height: int | None, width: int | None) -> tuple[int, int]:
    trained = metadata.get("image_size")
    if trained:
        try:
            trained_height, trained_width = (int(v) for v in trained.lower().split("x"))
        except ValueError:
            raise UserError(f"the checkpoint's image_size {trained!r} is not HxW; pass --height and --width") from None
        height, width = height or trained_height, width or trained_width
    if not height or not width:
        raise UserError("the checkpoint does not record its image size; pass --height and --width (a model saved with "
                        "save_pretrained(folder, metadata={'image_size': 'HxW'}) records it)")
    if not (1 <= height <= MAX_SIDE and 1 <= width <= MAX_SIDE):
        raise UserError(f"--height and --width must lie in 1..{MAX_SIDE}; got {height}x{width}")
    check_limit("image_pixels", height * width, f"an image of {height}x{width}", ConfigError)
    return height, width


def figure_scale(count: int, height: int, width: int, columns: int, scale: int | None) -> int:
    """The enlargement of a grid of ``count`` tiles in ``columns`` columns: ``--scale``, whose figure
    must stay within the image_pixels limit (one line otherwise), or by default the auto scale,
    made smaller until the figure fits (so that a large ``-n`` draws a plain figure, not a huge one)."""
    rows = -(-count // columns)
    pixels = lambda s: (GROUP_GAP + rows * (height + GROUP_GAP)) * (GROUP_GAP + columns * (width + GROUP_GAP)) * s * s
    limit = current_limits().image_pixels
    if scale is None:
        scale = auto_scale(height, width)
        while scale > 1 and pixels(scale) > limit:
            scale -= 1
    if pixels(scale) > limit:
        raise UserError(f"the figure of {count} image(s) of {height}x{width} at --scale {scale} would be {pixels(scale):,} "
                        f"pixels, over the limit of {limit:,}; lower --scale, -n or -k (or raise PIXELRNN_MAX_IMAGE_PIXELS)")
    return scale


def _generator(seed: int | None, on) -> tuple[torch.Generator, int]:
    seed = int.from_bytes(os.urandom(4), "little") if seed is None else seed
    return torch.Generator(device=on).manual_seed(seed), seed


def _companions(png: Path) -> list[Path]:
    """Every file a command writes for the figure ``png``: itself, the npz, a multi-scale stages grid."""
    return [png, png.with_suffix(".npz"), png.with_name(png.stem + "_stages.png")]


def output_path(args, checkpoint: Path, stem: str) -> Path:
    """Where the figure goes: ``--out`` (an existing one only with ``--force``), else the next free
    ``STEM-NNN.png`` in the run folder, or in the current folder for a checkpoint outside a run
    (a pretrained model's folder included: it may be part of the installed package)."""
    if args.out is None:
        folder = checkpoint.parent if RunFolder(checkpoint.parent).is_run() else Path.cwd()
        number = 1
        while any(path.exists() for path in _companions(folder / f"{stem}-{number:03d}.png")):
            number += 1
        return folder / f"{stem}-{number:03d}.png"
    path = Path(args.out)
    if path.suffix.lower() != ".png":
        raise UserError(f"--out must name a .png file (the .npz goes beside it); got {args.out}")
    existing = [str(p) for p in _companions(path) if p.exists()]
    if existing and not args.force:
        raise UserError(f"{', '.join(existing)} already {'exist' if len(existing) > 1 else 'exists'}; pass --force to replace it, or leave out --out for a new name")
    return path


def _check_common(args) -> None:
    if not args.temperature > 0:
        raise UserError(f"--temperature must be a finite number > 0; got {args.temperature}")
    if args.batch_size is not None and args.batch_size < 1:
        raise UserError(f"--batch-size must be >= 1; got {args.batch_size}")
    if args.scale is not None and not 1 <= args.scale <= MAX_SCALE:
        raise UserError(f"--scale must be a whole number in 1..{MAX_SCALE}; got {args.scale}")
    if not math.isfinite(args.temperature):
        raise UserError(f"--temperature must be a finite number > 0; got {args.temperature}")
    if getattr(args, "nrow", None) is not None and args.nrow < 1:
        raise UserError(f"--nrow must be >= 1; got {args.nrow}")


def _add_common(parser: argparse.ArgumentParser, stem: str) -> None:
    parser.add_argument("--out", help=f"PNG to write; the values go to the .npz of the same stem (default: the next free "
                                      f"{stem}-NNN.png in the run folder)")
    parser.add_argument("--force", action="store_true", help="replace an existing --out")
    parser.add_argument("--scale", type=int, help="enlarge the PNG this many times, nearest neighbour (default: until a tile "
                                                  "is at least 96 pixels across; 1 keeps one pixel per value)")
    parser.add_argument("--seed", type=int, help="random seed (default: a fresh one, printed)")
    parser.add_argument("--temperature", type=float, default=1.0, help="sample from softmax(logits / T) (default 1)")
    parser.add_argument("--batch-size", type=int, help="images sampled, and held in memory, at once; each batch is written "
                                                       "as soon as it is drawn (default 1024)")
    parser.add_argument("--naive", action="store_true", help="rerun the whole network per sub-pixel (slow; same samples)")
    parser.add_argument("--device", help="auto (default), cpu, cuda or cuda:N")
    parser.add_argument("--png-dir", metavar="DIR", help="also write every image as its own PNG into DIR, numbered, at the model's "
                                                         "resolution (not enlarged; the folder reads back as folder:DIR)")
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress bar")


def add_sample_parser(subparsers) -> argparse.ArgumentParser:
    """``pixelrnn sample RUN_DIR_OR_CHECKPOINT -n 64 --out samples.png ...``"""
    parser = subparsers.add_parser("sample", help="draw images from a trained model",
                                   description="Draw images sub-pixel by sub-pixel; writes a PNG grid and the integers as .npz beside it.")
    add_checkpoint_argument(parser)
    parser.add_argument("-n", type=int, default=64, help="number of images (default 64)")
    parser.add_argument("--height", type=int, help="image height (default: the checkpoint's image_size)")
    parser.add_argument("--width", type=int, help="image width (default: the checkpoint's image_size)")
    parser.add_argument("--nrow", type=int, help="images per grid row (default: a square grid)")
    parser.add_argument("--class", dest="cls", metavar="CLASS", help="a class-conditional model draws this class: a number, or a "
                                                                     "class name recorded in the checkpoint (default: every class in turn)")
    parser.add_argument("--per-class", type=int, metavar="N", help="a class-conditional model draws N images of every class: "
                                                                    "one grid row per class (replaces -n)")
    _add_common(parser, "samples")
    parser.set_defaults(func=user_errors(cmd_sample))
    return parser


def cmd_sample(args: argparse.Namespace) -> None:
    _check_common(args)
    if not 1 <= args.n <= MAX_SAMPLES:
        raise UserError(f"-n must lie in 1..{MAX_SAMPLES:,}; got {args.n}")
    model, metadata, checkpoint = _load_checkpoint(args.checkpoint, args.device)
    height, width = _image_size(metadata, args.height, args.width)
    labels, args.n, per_row, drawn = sample_labels(model, args.n, args.cls, args.per_class)
    shown = min(args.n, FIGURE_IMAGES)
    columns = args.nrow or per_row or max(1, int(np.ceil(np.sqrt(shown))))
    multiscale = isinstance(model, MultiScalePixelRNN)
    scale = figure_scale(shown * (2 if multiscale else 1), height, width, columns * (2 if multiscale else 1), args.scale)
    out = output_path(args, checkpoint, "samples")
    digits = max(4, len(str(args.n - 1)))
    names = [f"{i:0{digits}d}.png" for i in range(args.n)] if args.png_dir else None
    png_dir = check_png_dir(args.png_dir, names, args.force) if args.png_dir else None
    generator, seed = _generator(args.seed, model.device)
    chunk = chunk_size(args.n, args.batch_size)
    print(f"sampling {args.n} images {model.config.channels}x{height}x{width} from {checkpoint} "
          f"({'naive' if args.naive else 'incremental'}, seed {seed}, temperature {args.temperature})"
          + (f"; {drawn}" if drawn else "") + (f"; written {chunk} at a time" if chunk < args.n else ""), file=sys.stderr)
    model.eval()
    options = dict(temperature=args.temperature, generator=generator, naive=args.naive, batch_size=chunk,
                   progress=show_bars(args) and chunk >= args.n)
    figure, stages = [], []

    def draw(start: int, stop: int) -> torch.Tensor:
        part = None if labels is None else labels[start:stop]
        if not multiscale:
            return sample(model, stop - start, height, width, labels=part, **options)
        small, images = sample_stages(model, stop - start, height, width, labels=part, **options)
        if start < shown:
            stages.append(small[: shown - start].cpu().clone())
        return images

    def keep(start: int, images: torch.Tensor) -> None:
        if start < shown:  # a copy: even an empty view would hold the whole chunk's memory
            figure.append(images[: shown - start].clone())

    npz = stream(draw, (args.n, model.config.channels, height, width), model.config.levels, out.with_suffix(".npz"), chunk,
                 keep=keep, png_dir=png_dir, png_names=names, progress=show_bars(args))
    images = torch.cat(figure)
    if multiscale:  # the small image beside the large one (Figure 8)
        factor = model.config.factor
        enlarged = torch.cat(stages).repeat_interleave(factor, 2).repeat_interleave(factor, 3)[:, :, :height, :width]
        pairs = torch.stack([enlarged, images], dim=1).flatten(0, 1)  # small_0, large_0, small_1, ...
        save_grid(pairs, model.config.levels, _companions(out)[2], nrow=2 * columns, scale=scale, group=2)
        print(f"wrote {_companions(out)[2]} (each sample: the small stage enlarged, then the full image)")
    save_grid(images, model.config.levels, out, nrow=columns, scale=scale)
    print(f"wrote {out}" + (f" (the first {shown} of {args.n} images)" if shown < args.n else "") + f" and {npz}")
    if png_dir is not None:
        print(f"wrote {args.n} PNG(s) into {png_dir}")


def add_complete_parser(subparsers) -> argparse.ArgumentParser:
    """``pixelrnn complete CHECKPOINT (--image FILE | --npz FILE --index I) --keep-rows R -k 8 --out completions.png``"""
    parser = subparsers.add_parser(
        "complete", help="complete the bottom of images (keep the top rows, sample the rest)",
        description="Keep the top --keep-rows rows of each source image and sample the rest k times. "
                    "The figure has one row per source: occluded input, the k completions, the original.")
    add_checkpoint_argument(parser)
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--image", help="an image file (grey -> 1 channel, colour -> 3); 8-bit samples become model values as for compress "
                        "(0/255 -> 0/1 for binary models, values already below levels kept), else v*levels//256")
    source.add_argument("--npz", help="an npz with an 'images' array (N, C, H, W) of model values, as written by `sample`")
    source.add_argument("--dataset", help=f"a dataset, with --split and --index: {', '.join(DATASETS)}, folder:PATH or npz:PATH")
    add_dataset_split_arguments(parser)
    parser.add_argument("--index", type=int, action="append", help="with --npz or --dataset: which image (repeatable; default 0)")
    parser.add_argument("--keep-rows", type=int, required=True, help="rows kept from the top")
    parser.add_argument("-k", type=int, default=8, help="completions per image (default 8)")
    parser.add_argument("--class", dest="cls", metavar="CLASS", help="a class-conditional model completes as this class: a number "
                                                                     "or a class name of the checkpoint (default with --dataset: "
                                                                     "each image's own label)")
    _add_common(parser, "completions")
    parser.set_defaults(func=user_errors(cmd_complete))
    return parser


def source_images(args: argparse.Namespace, model, checkpoint: Path, metadata: dict) -> torch.Tensor:
    """The source images of ``pixelrnn complete``, (N, C, H, W), from --image, --npz or --dataset."""
    cfg = model.config
    if args.image:
        if args.index:
            raise UserError("--index goes with --npz, not with --image")
        return image_for_model(args.image, cfg.channels, cfg.levels, run_preprocessing(checkpoint))
    if args.dataset:
        dataset = load_split_for(model, checkpoint, metadata, args)
        indices = args.index or [0]
        for index in indices:
            if not 0 <= index < len(dataset):
                raise UserError(f"--index {index} is outside {args.dataset}/{args.split}, which holds {len(dataset)} images")
        args.source_labels = None if dataset.labels is None else torch.from_numpy(dataset.labels[indices])
        return torch.from_numpy(dataset.images[indices].astype(np.int64))
    return load_npz_images(args.npz, args.index or [0], cfg.channels, cfg.levels)


def image_for_model(path, channels: int, levels: int, preprocessing: dict) -> torch.Tensor:
    """An image file as a (1, C, H, W) LongTensor of model values, with the run's preprocessing: its channels and size,
    then ``quantise`` (v * levels // 256) or, under ``exact``, the exact mapping where one fits (else equal bins)."""
    prep = Preprocessing(levels, preprocessing.get("mapping", "exact"), preprocessing.get("size"), preprocessing.get("resize", "crop"))
    samples = read_image(path).samples
    samples = prep.image(to_channels(samples, channels) if preprocessing.get("channels") else fit_channels(samples, channels, path))
    values = prep.quantised(samples, 256) if prep.mapping == "quantise" else model_values(samples, levels)[0]
    return torch.from_numpy(values.astype(np.int64))[None]


def run_completion(model, images: torch.Tensor, args: argparse.Namespace, checkpoint: Path, labels=None) -> tuple[Path, Path]:
    """Complete ``images`` (N, C, H, W) as the parsed ``complete`` arguments say; write figure and npz."""
    _check_common(args)
    out = output_path(args, checkpoint, "completions")
    height = images.shape[2]
    if not 0 <= args.keep_rows <= height:
        raise UserError(f"--keep-rows must lie in [0, {height}] for images of height {height}; got {args.keep_rows}")
    if not 1 <= args.k <= MAX_COMPLETIONS:
        raise UserError(f"-k must lie in 1..{MAX_COMPLETIONS}; got {args.k}")
    total, k = len(images) * args.k, args.k
    # The figure: every completion of the first sources, up to FIGURE_IMAGES completions in all.
    sources, shown_k = max(1, min(len(images), FIGURE_IMAGES // k)), min(k, FIGURE_IMAGES)
    scale = figure_scale(sources * (shown_k + 2), *images.shape[2:], shown_k + 2, args.scale)
    names = [f"{n:04d}-{j:02d}.png" for n in range(len(images)) for j in range(k)] if args.png_dir else None  # completion j of source n
    png_dir = check_png_dir(args.png_dir, names, args.force) if args.png_dir else None
    generator, seed = _generator(args.seed, model.device)
    chunk = chunk_size(total, args.batch_size)
    print(f"completing {len(images)} image(s) x {k}, keeping {args.keep_rows} of {height} rows "
          f"({'naive' if args.naive else 'incremental'}, seed {seed}, temperature {args.temperature})"
          + (f"; written {chunk} at a time" if chunk < total else ""), file=sys.stderr)
    model.eval()
    images = images.to(model.device)
    if labels is not None:
        labels = torch.as_tensor(labels, device=model.device)
        labels = labels.expand(len(images)) if labels.dim() == 0 else labels
    options = dict(temperature=args.temperature, generator=generator, naive=args.naive, batch_size=chunk,
                   progress=show_bars(args) and chunk >= total)
    figure = []

    def draw(start: int, stop: int) -> torch.Tensor:
        source = torch.arange(start, stop, device=images.device) // k  # item n*k + j is completion j of source n
        return complete(model, images[source], args.keep_rows, labels=None if labels is None else labels[source], **options)

    def keep(start: int, completions: torch.Tensor) -> None:
        item = torch.arange(start, start + len(completions))
        figure.append(completions[(item // k < sources) & (item % k < shown_k)])

    npz = stream(draw, (total, *images.shape[1:]), model.config.levels, out.with_suffix(".npz"), chunk, keep=keep,
                 png_dir=png_dir, png_names=names, progress=show_bars(args))
    known = torch.zeros(images.shape[2:], dtype=torch.bool)
    known[: args.keep_rows] = True
    originals = images[:sources].cpu()
    completions = torch.cat(figure).view(sources, shown_k, *images.shape[1:])
    save_png(completion_grid(originals, completions, originals, levels=model.config.levels, known=known), out, scale)
    partial = sources < len(images) or shown_k < k
    print(f"wrote {out}" + (f" (the first {shown_k} completions of the first {sources} source(s))" if partial else "") + f" and {npz}")
    if png_dir is not None:
        print(f"wrote {total} PNG(s) into {png_dir}")
    return out, npz


def cmd_complete(args: argparse.Namespace) -> None:
    model, metadata, checkpoint = _load_checkpoint(args.checkpoint, args.device)
    labels = None if args.cls is None else resolve_class(model, args.cls)
    images = source_images(args, model, checkpoint, metadata)
    if labels is None and model.config.classes:
        if args.dataset and getattr(args, "source_labels", None) is not None:
            labels = args.source_labels  # each image's own label
        else:
            raise UserError(f"the model is class-conditional ({model.config.classes} classes): give --class "
                            f"({'a number in 0..' + str(model.config.classes - 1)} or a class name), or --dataset with a labelled split")
    elif labels is not None:
        print(f"completing as {describe(model, labels)}", file=sys.stderr)
    run_completion(model, images, args, checkpoint, labels)
