"""Sampling and image completion for users: image grids, sample files, figures, CLI commands.

- ``save_grid`` / ``save_samples_npz``: samples as a PNG grid and as integers in an ``.npz``.
- ``complete_images`` / ``completion_grid``: completions of occluded images (paper Figures 1
  and 9: the top rows are kept, the rest is sampled), laid out one source image per row.
- ``plot_softmax_distributions`` (Figure 6: the 256-way softmax of chosen sub-pixels),
  ``plot_dependency_field`` (Figures 2 and 4: which input sub-pixels a pixel's
  distribution depends on, from the gradient of its log-probability), ``plot_training_curve``.
- ``add_sample_parser`` / ``add_complete_parser``: the ``pixelrnn sample`` and
  ``pixelrnn complete`` subcommands.

Sampling itself is ``PixelModel.sample`` / ``PixelModel.complete``, which use the exact
incremental engines of :mod:`pixelrnn.incremental` (or the naive path on request).

Every file is written to a temporary name in its folder and renamed into place, so an
interrupted run never leaves a truncated PNG or npz under the requested name.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
from pathlib import Path

import numpy as np
import torch

from .errors import UserError

GRID_PADDING = 2
PADDING_VALUE = 128  # mid grey between tiles
UNKNOWN_DARK, UNKNOWN_LIGHT = 96, 160  # checkerboard marking the sub-pixels to be completed


# --------------------------------------------------------------------- arrays and files
def to_uint8(images: torch.Tensor | np.ndarray, levels: int) -> np.ndarray:
    """Integer images in [0, levels) to uint8 in [0, 255]: value v -> round(255 v / (levels - 1)).

    Binary images (levels = 2) become black (0) and white (255); 8-bit images are unchanged.
    """
    if levels < 2:
        raise ValueError(f"levels must be >= 2; got {levels}")
    array = images.detach().cpu().numpy() if isinstance(images, torch.Tensor) else np.asarray(images)
    if array.size and (array.min() < 0 or array.max() >= levels):
        raise ValueError(f"values must lie in [0, {levels}); got min {array.min()}, max {array.max()}")
    return np.rint(array.astype(np.float64) * (255.0 / (levels - 1))).astype(np.uint8)


def tile(rows: list[list[np.ndarray]], padding: int = GRID_PADDING, value: int = PADDING_VALUE) -> np.ndarray:
    """Lay out uint8 tiles (C, H, W), all the same shape, as a (H', W', C) image, ``padding`` apart."""
    channels, height, width = rows[0][0].shape
    columns = max(len(row) for row in rows)
    grid = np.full((padding + len(rows) * (height + padding), padding + columns * (width + padding), channels), value, np.uint8)
    for r, row in enumerate(rows):
        for c, image in enumerate(row):
            top, left = padding + r * (height + padding), padding + c * (width + padding)
            grid[top : top + height, left : left + width] = image.transpose(1, 2, 0)  # (C, H, W) -> (H, W, C)
    return grid


def grid_array(images, levels: int, nrow: int | None = None, padding: int = GRID_PADDING) -> np.ndarray:
    """(N, C, H, W) integer images as one uint8 (H', W', C) grid with ``nrow`` images per row.

    ``nrow`` defaults to ceil(sqrt(N)); tile k sits at grid row k // nrow, column k % nrow.
    """
    pixels = to_uint8(images, levels)
    if pixels.ndim != 4 or pixels.shape[0] == 0:
        raise ValueError(f"expected a non-empty batch of images (N, C, H, W); got shape {pixels.shape}")
    nrow = nrow or math.ceil(math.sqrt(len(pixels)))
    return tile([list(pixels[start : start + nrow]) for start in range(0, len(pixels), nrow)], padding)


def _atomic(path: str | os.PathLike, write) -> Path:
    from .checkpoint import atomic_write

    atomic_write(path, write)
    return Path(path)


def save_png(array: np.ndarray, path: str | os.PathLike) -> Path:
    """Write a uint8 (H, W, 1 or 3) array as a PNG (grey or RGB), atomically."""
    from PIL import Image

    image = Image.fromarray(array[..., 0] if array.shape[-1] == 1 else array, mode="L" if array.shape[-1] == 1 else "RGB")
    return _atomic(path, lambda temp: image.save(temp, format="PNG"))


def save_grid(images, levels: int, path: str | os.PathLike, nrow: int | None = None) -> Path:
    """Save (N, C, H, W) integer images in [0, levels) as a PNG grid (values scaled to 0..255)."""
    return save_png(grid_array(images, levels, nrow), path)


def save_samples_npz(images, path: str | os.PathLike) -> Path:
    """Save (N, C, H, W) integer images under the key ``images`` (uint8 when the values fit)."""
    array = images.detach().cpu().numpy() if isinstance(images, torch.Tensor) else np.asarray(images)
    if array.ndim != 4:
        raise ValueError(f"expected images of shape (N, C, H, W); got {array.shape}")
    if array.size and array.min() >= 0 and array.max() < 256:
        array = array.astype(np.uint8)

    def write(temp):
        with open(temp, "wb") as handle:  # a file object: numpy would append ".npz" to a temp name
            np.savez_compressed(handle, images=array)

    return _atomic(path, write)


def load_samples_npz(path: str | os.PathLike) -> torch.Tensor:
    """The ``images`` array of an npz written by :func:`save_samples_npz`, as a LongTensor (N, C, H, W)."""
    with np.load(path, allow_pickle=False) as data:
        if "images" not in data.files:
            raise KeyError(f"{path} has no 'images' array (it has {', '.join(data.files) or 'none'})")
        array = data["images"]
    if array.ndim != 4:
        raise ValueError(f"{path}: 'images' has shape {array.shape}, expected (N, C, H, W)")
    return torch.from_numpy(array.astype(np.int64))


# --------------------------------------------------------------------- completion
def complete_images(model, images: torch.Tensor, keep_rows: int, k: int, *, temperature: float = 1.0,
                    generator: torch.Generator | None = None, naive: bool = False, batch_size: int | None = None,
                    progress: bool = False) -> torch.Tensor:
    """``k`` completions of each source image (N, C, H, W): (N, k, C, H, W); rows < keep_rows kept.

    All N*k completions are one batch for ``model.complete`` (image n's copies are items
    n*k .. n*k + k - 1), split into chunks of ``batch_size`` if given.
    """
    if k < 1:
        raise ValueError(f"k must be >= 1; got {k}")
    count = images.shape[0]
    copies = images.repeat_interleave(k, dim=0)  # (N*k, C, H, W)
    completed = model.complete(copies, keep_rows, temperature=temperature, generator=generator, naive=naive,
                               batch_size=batch_size, progress=progress)
    return completed.view(count, k, *images.shape[1:])


def completion_grid(occluded, completions, original, *, levels: int, known=None, padding: int = GRID_PADDING) -> np.ndarray:
    """The completion figure as a uint8 (H', W', C) array, one source image per row.

    Row n: ``occluded[n]`` with its unknown sub-pixels shown as a grey checkerboard, the k
    ``completions[n]``, then ``original[n]``. ``occluded`` and ``original`` are (N, C, H, W)
    integers, ``completions`` (N, k, C, H, W). ``known`` (bool, broadcastable to (N, C, H, W))
    marks the kept sub-pixels; without it, negative values of ``occluded`` mark the unknown ones.
    """
    occluded = torch.as_tensor(occluded)
    completions = torch.as_tensor(completions)
    original = torch.as_tensor(original)
    if completions.dim() != 5 or occluded.shape != original.shape or completions.shape[0] != occluded.shape[0] \
            or completions.shape[2:] != occluded.shape[1:]:
        raise ValueError(f"shapes do not match: occluded {tuple(occluded.shape)}, completions {tuple(completions.shape)} "
                         f"(expected N, k, C, H, W), original {tuple(original.shape)}")
    known = (occluded >= 0) if known is None else torch.as_tensor(known, dtype=torch.bool).expand_as(occluded)
    shown = to_uint8(torch.where(known, occluded, torch.zeros_like(occluded)), levels)
    _, _, height, width = occluded.shape
    checker = np.where((np.arange(height)[:, None] // 2 + np.arange(width)[None, :] // 2) % 2 == 0, UNKNOWN_DARK, UNKNOWN_LIGHT)
    shown = np.where(known.cpu().numpy(), shown, checker.astype(np.uint8)[None, None])
    samples, sources = to_uint8(completions, levels), to_uint8(original, levels)
    rows = [[shown[n], *samples[n], sources[n]] for n in range(len(shown))]
    return tile(rows, padding)


# --------------------------------------------------------------------- figures
def _new_figure(width: float, height: float):
    """A matplotlib Figure on the Agg canvas, without pyplot's global state."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(width, height), dpi=100, layout="constrained")
    FigureCanvasAgg(figure)
    return figure


def _save_figure(figure, path) -> Path:
    return _atomic(path, lambda temp: figure.savefig(temp, format="png", bbox_inches="tight"))


def _single_image(model, image) -> torch.Tensor:
    if not hasattr(model, "logits_from_scaled"):
        raise ValueError(f"these figures read one network's logits; {type(model).__name__} has none "
                         "(for a multi-scale model, pass its unconditional stage, model.small)")
    image = torch.as_tensor(image)
    if image.dim() == 3:
        image = image[None]
    model.check_input(image)
    if image.shape[0] != 1:
        raise ValueError(f"expected one image (C, H, W); got a batch of {image.shape[0]}")
    return image.to(model.device, torch.long)


def plot_softmax_distributions(model, image, positions, path) -> torch.Tensor:
    """Figure 6: the predicted distribution of chosen sub-pixels of ``image`` (C, H, W).

    ``positions``: (c, i, j) sub-pixels (or (i, j) pixels: channel 0). One panel each, the
    observed value marked. Returns the probabilities (len(positions), levels).
    """
    image = _single_image(model, image)
    with torch.no_grad():
        probs = torch.softmax(model(image)[0].double(), dim=1)  # (C, K, H, W)
    names = "RGB" if model.config.channels == 3 else ("V",) * model.config.channels
    chosen = []
    for position in positions:
        c, i, j = (0, *position) if len(position) == 2 else position
        chosen.append((c, i, j, probs[c, :, i, j].cpu()))
    columns = min(3, len(chosen))
    grid_rows = math.ceil(len(chosen) / columns)
    figure = _new_figure(4.0 * columns, 2.6 * grid_rows)
    levels = model.config.levels
    for index, (c, i, j, distribution) in enumerate(chosen):
        axes = figure.add_subplot(grid_rows, columns, index + 1)
        axes.bar(np.arange(levels), distribution.numpy(), width=1.0, color="tab:blue")
        observed = int(image[0, c, i, j])
        axes.axvline(observed, color="tab:red", linewidth=1, label=f"observed {observed}")
        axes.set_title(f"{names[c]} at row {i}, column {j}", fontsize=9)
        axes.set_xlim(-0.5, levels - 0.5)
        axes.set_xlabel("value", fontsize=8)
        axes.set_ylabel("probability", fontsize=8)
        axes.legend(fontsize=7, loc="upper right")
    figure.suptitle("predicted distributions p(x | earlier sub-pixels)", fontsize=10)
    _save_figure(figure, path)
    return torch.stack([distribution for *_, distribution in chosen])


def dependency_field(model, image, pixel) -> torch.Tensor:
    """|d log p(x_pixel | context) / d input|, (C, H, W), for ``pixel`` = (i, j) or (c, i, j).

    Computed from ``model.logits_from_scaled`` on the scaled input (the network's actual
    input), at the observed value of the sub-pixel; (i, j) means all its channels' log-probs
    summed, i.e. log p of the whole pixel. Causality makes it zero at the pixel's own later
    channels and at every later pixel.
    """
    image = _single_image(model, image)
    channels = model.config.channels
    c_list, (i, j) = ((range(channels), pixel) if len(pixel) == 2 else ([pixel[0]], pixel[1:]))
    with torch.enable_grad():
        scaled = model.scale(image).detach().requires_grad_(True)
        log_probs = torch.log_softmax(model.logits_from_scaled(scaled)[0], dim=1)  # (C, K, H, W)
        total = sum(log_probs[c, image[0, c, i, j], i, j] for c in c_list)
        (gradient,) = torch.autograd.grad(total, scaled)
    return gradient[0].abs().detach()


def plot_dependency_field(model, image, pixel, path) -> torch.Tensor:
    """Figures 2 and 4: heat map of :func:`dependency_field` summed over channels, pixel marked.

    Returns the (C, H, W) gradient magnitudes.
    """
    field = dependency_field(model, image, pixel)
    i, j = pixel[-2:]
    heat = field.sum(0).cpu().double().numpy()
    from matplotlib import colormaps
    from matplotlib.patches import Rectangle

    figure = _new_figure(5.0, 4.2)
    axes = figure.add_subplot(1, 1, 1)
    colours = colormaps["viridis"].with_extremes(bad="lightgrey")  # exactly zero: no dependency at all
    with np.errstate(divide="ignore"):
        shown = axes.imshow(np.ma.masked_equal(np.log10(heat), -np.inf), cmap=colours, interpolation="nearest")
    axes.add_patch(Rectangle((j - 0.5, i - 0.5), 1, 1, fill=False, edgecolor="red", linewidth=2))
    figure.colorbar(shown, ax=axes, label="log10 |d log p / d input| (grey: exactly 0)")
    what = f"channel {pixel[0]} of " if len(pixel) == 3 else ""
    axes.set_title(f"dependency field of {what}pixel ({i}, {j})", fontsize=10)
    _save_figure(figure, path)
    return field


def read_metrics(path: str | os.PathLike) -> list[dict]:
    """The records of a run's metrics log (JSON lines); blank lines are skipped."""
    records = []
    for number, line in enumerate(Path(path).read_text().splitlines(), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as error:
            raise ValueError(f"{path}, line {number}: not JSON ({error.msg})") from None
        if not isinstance(record, dict) or "step" not in record or "split" not in record:
            raise ValueError(f"{path}, line {number}: a record needs 'step' and 'split'")
        records.append(record)
    return records


def plot_training_curve(metrics_jsonl_path, path) -> Path:
    """Bits/dim (or nats/image where bits/dim is missing) against step, train and valid."""
    records = read_metrics(metrics_jsonl_path)
    key = "bits_per_dim" if records and all("bits_per_dim" in r for r in records) else "nats"
    figure = _new_figure(6.0, 4.0)
    axes = figure.add_subplot(1, 1, 1)
    for split, style in (("train", dict(color="tab:blue", linewidth=1, alpha=0.8)), ("valid", dict(color="tab:orange", marker="o"))):
        points = sorted((r["step"], r[key]) for r in records if r["split"] == split and key in r)
        if points:
            steps, values = zip(*points)
            axes.plot(steps, values, label=split, **style)
    axes.set_xlabel("step")
    axes.set_ylabel("bits/dim" if key == "bits_per_dim" else "nats/image")
    axes.grid(alpha=0.3)
    if records:
        axes.legend()
    return _save_figure(figure, path)


# --------------------------------------------------------------------- command line
def _load_checkpoint(path, device):
    from .checkpoint import load_model_with_metadata, resolve_checkpoint
    from .cli import _device

    checkpoint = resolve_checkpoint(path)
    model, metadata = load_model_with_metadata(checkpoint, _device(device))
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
        raise UserError("the checkpoint does not record its image size; pass --height and --width")
    if height < 1 or width < 1:
        raise UserError(f"--height and --width must be >= 1; got {height}x{width}")
    return height, width


def _generator(seed: int | None, device) -> tuple[torch.Generator, int]:
    seed = int.from_bytes(os.urandom(4), "little") if seed is None else seed
    return torch.Generator(device=device).manual_seed(seed), seed


def _png_path(out: str) -> Path:
    path = Path(out)
    if path.suffix.lower() != ".png":
        raise UserError(f"--out must name a .png file (the .npz goes beside it); got {out}")
    return path


def _check_common(args) -> None:
    if args.temperature <= 0:
        raise UserError(f"--temperature must be > 0; got {args.temperature}")
    if args.batch_size is not None and args.batch_size < 1:
        raise UserError(f"--batch-size must be >= 1; got {args.batch_size}")


def _add_common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--seed", type=int, help="random seed (default: a fresh one, printed)")
    parser.add_argument("--temperature", type=float, default=1.0, help="sample from softmax(logits / T) (default 1)")
    parser.add_argument("--batch-size", type=int, help="images sampled at once (default: all)")
    parser.add_argument("--naive", action="store_true", help="rerun the whole network per sub-pixel (slow; same samples)")
    parser.add_argument("--device", help="auto (default), cpu, cuda or cuda:N")
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress bar")


def add_sample_parser(subparsers) -> argparse.ArgumentParser:
    """``pixelrnn sample RUN_DIR_OR_CHECKPOINT -n 64 --out samples.png ...``"""
    parser = subparsers.add_parser("sample", help="draw images from a trained model",
                                   description="Draw images sub-pixel by sub-pixel; writes a PNG grid and the integers as .npz beside it.")
    parser.add_argument("checkpoint", metavar="RUN_DIR_OR_CHECKPOINT")
    parser.add_argument("-n", type=int, default=64, help="number of images (default 64)")
    parser.add_argument("--out", default="samples.png", help="PNG grid to write; the images also go to the .npz of the same stem")
    parser.add_argument("--height", type=int, help="image height (default: the checkpoint's image_size)")
    parser.add_argument("--width", type=int, help="image width (default: the checkpoint's image_size)")
    parser.add_argument("--nrow", type=int, help="images per grid row (default: a square grid)")
    _add_common(parser)
    parser.set_defaults(func=cmd_sample)
    return parser


def cmd_sample(args: argparse.Namespace) -> None:
    out = _png_path(args.out)
    _check_common(args)
    if args.n < 1:
        raise UserError(f"-n must be >= 1; got {args.n}")
    model, metadata, checkpoint = _load_checkpoint(args.checkpoint, args.device)
    height, width = _image_size(metadata, args.height, args.width)
    generator, seed = _generator(args.seed, model.device)
    print(f"sampling {args.n} images {model.config.channels}x{height}x{width} from {checkpoint} "
          f"({'naive' if args.naive else 'incremental'}, seed {seed}, temperature {args.temperature})", file=sys.stderr)
    model.eval()
    options = dict(temperature=args.temperature, generator=generator, naive=args.naive, batch_size=args.batch_size,
                   progress=not args.quiet)
    if hasattr(model, "sample_stages"):  # multi-scale: the small image beside the large one (Figure 8)
        small, images = model.sample_stages(args.n, height, width, **options)
        factor = model.config.factor
        enlarged = small.repeat_interleave(factor, 2).repeat_interleave(factor, 3)[:, :, :height, :width]
        pairs = torch.stack([enlarged, images], dim=1).flatten(0, 1)  # small_0, large_0, small_1, ...
        columns = 2 * (args.nrow or max(1, int(np.ceil(np.sqrt(args.n)))))
        stages = save_grid(pairs, model.config.levels, out.with_name(out.stem + "_stages.png"), nrow=columns)
        print(f"wrote {stages} (each sample: the small stage enlarged, then the full image)")
    else:
        images = model.sample(args.n, height, width, **options)
    save_grid(images, model.config.levels, out, nrow=args.nrow)
    npz = save_samples_npz(images, out.with_suffix(".npz"))
    print(f"wrote {out} and {npz}")


def add_complete_parser(subparsers) -> argparse.ArgumentParser:
    """``pixelrnn complete CHECKPOINT (--image FILE | --npz FILE --index I) --keep-rows R -k 8 --out completions.png``"""
    from .cli import add_dataset_split_arguments

    parser = subparsers.add_parser(
        "complete", help="complete the bottom of images (keep the top rows, sample the rest)",
        description="Keep the top --keep-rows rows of each source image and sample the rest k times. "
                    "The figure has one row per source: occluded input, the k completions, the original.")
    parser.add_argument("checkpoint", metavar="RUN_DIR_OR_CHECKPOINT")
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--image", help="an image file (grey -> 1 channel, colour -> 3; 8-bit values v -> v*levels//256)")
    source.add_argument("--npz", help="an npz with an 'images' array (N, C, H, W) of model values, as written by `sample`")
    source.add_argument("--dataset", help="a dataset name (see `pixelrnn train --help`), with --split and --index")
    add_dataset_split_arguments(parser)
    parser.add_argument("--index", type=int, action="append",
                        help="with --npz or --dataset: which image (repeatable; default 0)")
    parser.add_argument("--keep-rows", type=int, required=True, help="rows kept from the top")
    parser.add_argument("-k", type=int, default=8, help="completions per image (default 8)")
    parser.add_argument("--out", default="completions.png", help="figure to write; the completions go to the .npz beside it")
    _add_common(parser)
    parser.set_defaults(func=cmd_complete)
    return parser


def load_image_file(path: str | os.PathLike, channels: int, levels: int) -> torch.Tensor:
    """One image file as a (1, C, H, W) LongTensor of model values.

    Grey images (PNG modes 1, L, LA, 16-bit grey, grey palettes) have one channel, colour ones
    three (alpha dropped); a colour file whose three channels are equal counts as grey. 8-bit
    values v become v * levels // 256 (equal bins; for levels = 256 unchanged, for binary
    images 0..127 -> 0 and 128..255 -> 1). Raises the CLI's UserError on mismatch.
    """
    from .data import DatasetError, read_image

    try:
        array = read_image(path)  # (C, H, W) uint8, grey-like files with C = 1
    except DatasetError as error:
        raise UserError(str(error)) from None
    if array.shape[0] == 3 and channels == 1 and (array == array[:1]).all():
        array = array[:1]  # colour file holding a grey image
    if array.shape[0] != channels:
        raise UserError(f"{path} is a {'grey' if array.shape[0] == 1 else 'colour'} image; the model wants {channels} channel(s)")
    values = array.astype(np.int64) * levels // 256
    return torch.from_numpy(values)[None]


def load_npz_images(path: str | os.PathLike, indices: list[int], channels: int, levels: int) -> torch.Tensor:
    """Images ``indices`` of an npz's ``images`` array (N, C, H, W) of model values."""
    try:
        images = load_samples_npz(path)
    except (OSError, ValueError, KeyError) as error:
        reason = error.args[0] if error.args else type(error).__name__
        raise UserError(f"cannot read {path}: {reason}") from None
    for index in indices:
        if not 0 <= index < len(images):
            raise UserError(f"--index {index} is outside {path}, which holds {len(images)} images")
    chosen = images[indices]
    if chosen.shape[1] != channels:
        raise UserError(f"{path} holds {chosen.shape[1]}-channel images; the model wants {channels}")
    if chosen.numel() and (int(chosen.min()) < 0 or int(chosen.max()) >= levels):
        raise UserError(f"{path} has values in [{int(chosen.min())}, {int(chosen.max())}]; the model's are [0, {levels})")
    return chosen


def source_images(args: argparse.Namespace, model) -> torch.Tensor:
    """The source images of ``pixelrnn complete``, (N, C, H, W), from --image or --npz/--index."""
    cfg = model.config
    if args.image:
        if args.index:
            raise UserError("--index goes with --npz, not with --image")
        return load_image_file(args.image, cfg.channels, cfg.levels)
    if args.dataset:
        from .cli import load_split_for

        dataset = load_split_for(model, args.dataset, args.split, args.data_dir)
        indices = args.index or [0]
        for index in indices:
            if not 0 <= index < len(dataset):
                raise UserError(f"--index {index} is outside {args.dataset}/{args.split}, which holds {len(dataset)} images")
        return torch.from_numpy(dataset.images[indices].astype(np.int64))
    return load_npz_images(args.npz, args.index or [0], cfg.channels, cfg.levels)


def run_completion(model, images: torch.Tensor, args: argparse.Namespace) -> tuple[Path, Path]:
    """Complete ``images`` (N, C, H, W) as the parsed ``complete`` arguments say; write figure and npz."""
    out = _png_path(args.out)
    _check_common(args)
    height = images.shape[2]
    if not 0 <= args.keep_rows <= height:
        raise UserError(f"--keep-rows must lie in [0, {height}] for images of height {height}; got {args.keep_rows}")
    if args.k < 1:
        raise UserError(f"-k must be >= 1; got {args.k}")
    generator, seed = _generator(args.seed, model.device)
    print(f"completing {len(images)} image(s) x {args.k}, keeping {args.keep_rows} of {height} rows "
          f"({'naive' if args.naive else 'incremental'}, seed {seed}, temperature {args.temperature})", file=sys.stderr)
    model.eval()
    images = images.to(model.device)
    completions = complete_images(model, images, args.keep_rows, args.k, temperature=args.temperature, generator=generator,
                                  naive=args.naive, batch_size=args.batch_size, progress=not args.quiet)
    known = torch.zeros(images.shape[2:], dtype=torch.bool)
    known[: args.keep_rows] = True
    figure = completion_grid(images.cpu(), completions.cpu(), images.cpu(), levels=model.config.levels, known=known)
    save_png(figure, out)
    npz = save_samples_npz(completions.flatten(0, 1), out.with_suffix(".npz"))
    print(f"wrote {out} and {npz}")
    return out, npz


def cmd_complete(args: argparse.Namespace) -> None:
    model, _, _ = _load_checkpoint(args.checkpoint, args.device)
    run_completion(model, source_images(args, model), args)
