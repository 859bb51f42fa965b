"""Lossless compression with a trained model: the integer coding model against the float one, PNG, WebP, gzip, bzip2, xz.

    PIXELRNN_DATA_DIR=/path/to/data python benchmarks/compression.py runs/benchmark_binarized_mnist/pixelcnn
    python benchmarks/compression.py CHECKPOINT [CHECKPOINT ...] [--dataset binarized_mnist] [--split test]
                                    [--limit N] [--speed-images 512] [--data-dir DIR] [--batch-size 256]
                                    [--no-baselines] [--json FILE]

For each checkpoint (a file or a run folder) and a dataset split (default: the dataset the
checkpoint was trained on, else binarized MNIST; split test, all images unless ``--limit``):

- rate of the integer coding model (the default of ``pixelrnn compress``): realised bits/dim of
  the payload and of the whole file, against the float model's NLL (``model.nll``, the batched
  forward pass) and against the coding model's own NLL (the ideal code length of its integer
  frequencies, sum of -log2 p); the decode is checked bit for bit;
- speed, before (the float32 coding model, format version 1's) against after (the integer one):
  compress and decompress images/s on the first ``--speed-images`` images, the two measured
  alternately in this one process, twice, with the load average printed beside each figure
  (on a shared machine only the ratio means something). ``--before DIR`` takes "before" from an
  earlier source tree instead (``DIR/pixelrnn``, e.g. ``git archive REV pixelrnn | tar -x -C DIR``),
  imported under another name: its own loader, model and ``compress(..., dtype=torch.float32)``;
- PNG (Pillow, ``optimize=True, compress_level=9``) and WebP lossless (Pillow, ``lossless=True,
  quality=100, method=6``; if Pillow has WebP) of each image: 2-level data as a 1-bit PNG
  (mode ``1``, the smallest PNG of such data) and as WebP of the 0/255 grey image; other data
  as 8-bit grey / RGB of the raw values;
- gzip / bzip2 / xz (Python's standard library, highest level) of the raw uint8 value arrays
  (C, H, W), per image and for the whole set concatenated.

Per-image figures are the sum of the per-image file sizes in bits over all sub-pixels; "whole
set" compresses everything at once. Prints markdown tables with the hardware, thread count and
library versions.
"""

from __future__ import annotations

import argparse
import bz2
import gzip
import io
import json
import lzma
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from pixelrnn import codec as compression  # noqa: E402
from pixelrnn.checkpoint import read_checkpoint  # noqa: E402
from pixelrnn.training import load_model_from, resolve_checkpoint  # noqa: E402
from pixelrnn.data import load_dataset  # noqa: E402
from machine import hardware  # noqa: E402


def versions() -> str:
    from importlib.metadata import version

    import PIL

    return (f"torch {torch.__version__} ({torch.backends.cpu.get_cpu_capability()}), constriction {version('constriction')}, "
            f"Pillow {PIL.__version__}, numpy {np.__version__}, Python {platform.python_version()}")


# --------------------------------------------------------------------- baselines
def png_bytes(values: np.ndarray, levels: int) -> bytes:
    from PIL import Image

    buffer = io.BytesIO()
    if levels == 2 and values.shape[0] == 1:
        picture = Image.fromarray(values[0].astype(bool))  # mode "1": one bit per pixel
    elif values.shape[0] == 1:
        picture = Image.fromarray(values[0], mode="L")
    else:
        picture = Image.fromarray(np.ascontiguousarray(values.transpose(1, 2, 0)), mode="RGB")
    picture.save(buffer, format="PNG", optimize=True, compress_level=9)
    return buffer.getvalue()


def webp_bytes(values: np.ndarray, levels: int) -> bytes:
    from PIL import Image

    samples = values * np.uint8(255) if levels == 2 else values  # WebP has no 1-bit mode; it palettises by itself
    picture = Image.fromarray(samples[0], mode="L") if values.shape[0] == 1 else \
        Image.fromarray(np.ascontiguousarray(samples.transpose(1, 2, 0)), mode="RGB")
    buffer = io.BytesIO()
    picture.save(buffer, format="WEBP", lossless=True, quality=100, method=6)
    return buffer.getvalue()


def webp_available() -> bool:
    from PIL import features

    return bool(features.check("webp"))


def xz(raw: bytes) -> bytes:
    """xz -9e, its dictionary cut to the input's size: the same stream size for inputs that fit in it.

    (The full 64 MiB dictionary costs an allocation per call that makes per-image xz ~100x slower.)
    """
    lzma2 = {"id": lzma.FILTER_LZMA2, "preset": 9 | lzma.PRESET_EXTREME, "dict_size": max(1 << 12, min(len(raw), 64 << 20))}
    return lzma.compress(raw, format=lzma.FORMAT_XZ, filters=[lzma2])


STREAM_CODECS = {
    "gzip -9": lambda raw: gzip.compress(raw, compresslevel=9, mtime=0),
    "bzip2 -9": lambda raw: bz2.compress(raw, compresslevel=9),
    "xz -9e": xz,
}


def baselines(values: np.ndarray, levels: int) -> list[dict]:
    """Bits/dim per image and for the whole set, and encode speed, of every baseline codec."""
    count, dims = len(values), values.size
    rows = []
    image_codecs = {"PNG (optimize, level 9)": png_bytes}
    if webp_available():
        image_codecs["WebP lossless (method 6)"] = webp_bytes
    for name, encode in image_codecs.items():
        start = time.perf_counter()
        size = sum(len(encode(image, levels)) for image in values)
        seconds = time.perf_counter() - start
        rows.append({"codec": name, "per_image_bits_per_dim": 8 * size / dims, "whole_set_bits_per_dim": None,
                     "encode_images_per_s": count / seconds})
    for name, encode in STREAM_CODECS.items():
        start = time.perf_counter()
        size = sum(len(encode(image.tobytes())) for image in values)
        seconds = time.perf_counter() - start
        whole = len(encode(np.ascontiguousarray(values).tobytes()))
        rows.append({"codec": f"{name} (raw uint8)", "per_image_bits_per_dim": 8 * size / dims,
                     "whole_set_bits_per_dim": 8 * whole / dims, "encode_images_per_s": count / seconds})
    return rows


# --------------------------------------------------------------------- the model's coder
def timed(function):
    start = time.perf_counter()
    result = function()
    return result, time.perf_counter() - start, os.getloadavg()[0]


def same_values(decoded, images) -> bool:
    return len(decoded) == len(images) and all(np.array_equal(a.values, b.values) for a, b in zip(decoded, images))


def import_before(folder: str):
    """The package ``folder``/pixelrnn imported as ``pixelrnn_before`` (its imports are relative)."""
    import importlib.util

    root = Path(folder) / "pixelrnn"
    spec = importlib.util.spec_from_file_location("pixelrnn_before", root / "__init__.py", submodule_search_locations=[str(root)])
    module = importlib.util.module_from_spec(spec)
    sys.modules["pixelrnn_before"] = module
    spec.loader.exec_module(module)
    import pixelrnn_before.codec  # noqa: F401  (the submodules the coder needs)
    import pixelrnn_before.training  # noqa: F401
    return module


def before_coder(checkpoint, before, batch_size: int):
    """compress / decompress of the float32 coder: this version's, or an earlier tree's (``--before``)."""
    if before is None:
        model = load_model_from(checkpoint, "cpu").eval()
        return (lambda images: compression.compress(model, images, batch_size=batch_size, arithmetic="float32"),
                lambda data: compression.decompress(model, data))
    model = before.training.load_model_from(checkpoint, "cpu").eval()
    codec = before.codec
    as_before = lambda images: [codec.CodedImage(i.name, i.values, i.mode, i.mapping) for i in images]  # noqa: E731
    return (lambda images: codec.compress(model, as_before(images), batch_size=batch_size, dtype=torch.float32),
            lambda data: codec.decompress(model, data))


def model_coder(checkpoint, values: np.ndarray, levels: int, batch_size: int, speed_images: int, before=None) -> dict:
    model = load_model_from(checkpoint, "cpu").eval()
    images = compression.images_from_array(values, levels)
    report: dict = {}
    data, encode_seconds, encode_load = timed(lambda: compression.compress(model, images, batch_size=batch_size, report=report))
    decoded, decode_seconds, decode_load = timed(lambda: compression.decompress(model, data))
    stats = compression.compression_stats(model, images, data)
    dims, nll_bits = stats["subpixels"], stats["nll_bits_per_dim"] * stats["subpixels"]
    payload_bits = 8 * stats["payload_bytes"]
    row = {
        "arch": model.config.arch, "parameters": sum(p.numel() for p in model.parameters()), **stats,
        "coding_model": compression.integer_model(model).describe(),
        "coding_model_nll_bits_per_dim": report["ideal_bits"] / dims,
        "overhead_vs_coding_model_percent": 100.0 * (payload_bits - report["ideal_bits"]) / report["ideal_bits"],
        "coding_model_vs_float_percent": 100.0 * (report["ideal_bits"] - nll_bits) / nll_bits,
        "compress_images_per_s": len(images) / encode_seconds, "decompress_images_per_s": len(images) / decode_seconds,
        "load": [encode_load, decode_load], "bit_exact": same_values(decoded, images), "batch_size": batch_size,
    }
    # Before (float32, format version 1's coding model) against after (integer), alternately, twice.
    subset = images[:speed_images]
    coders = {"float32": before_coder(checkpoint, before, batch_size),
              "integer": (lambda images: compression.compress(model, images, batch_size=batch_size), lambda data: compression.decompress(model, data))}
    speed = {name: [] for name in coders}
    for _ in range(2):
        for name, (encode, decode) in coders.items():
            coded, seconds_in, load_in = timed(lambda: encode(subset))
            back, seconds_out, load_out = timed(lambda: decode(coded))
            speed[name].append({"compress_images_per_s": len(subset) / seconds_in, "decompress_images_per_s": len(subset) / seconds_out,
                                "load": [load_in, load_out], "bit_exact": same_values(back, subset), "file_bytes": len(coded)})
    row["speed"] = {"images": len(subset), "before": "float32 of " + (before.__file__ if before else "this version"), **speed}
    return row


def print_model_tables(results: list[dict]) -> None:
    print("| checkpoint | data | images | float NLL bits/dim | coding model NLL | coded bits/dim | vs float NLL | vs coding model "
          "| file bits/dim | compress img/s | decompress img/s | exact |")
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|")
    for r in results:
        print(f"| `{r['checkpoint']}` ({r['arch']}, {r['parameters']:,} params) | {r['dataset']} | {r['images']} "
              f"| {r['nll_bits_per_dim']:.5f} | {r['coding_model_nll_bits_per_dim']:.5f} | {r['bits_per_dim']:.5f} "
              f"| {r['overhead_percent']:+.3f} % | {r['overhead_vs_coding_model_percent']:+.3f} % | {r['file_bits_per_dim']:.5f} "
              f"| {r['compress_images_per_s']:.1f} | {r['decompress_images_per_s']:.1f} | {'yes' if r['bit_exact'] else 'NO'} |")
    print("\nSpeed, before (float32) and after (integer), alternately in one process (load average beside each figure):\n")
    print("| checkpoint | images | round | float32 compress | integer compress | ratio | float32 decompress | integer decompress | ratio "
          "| file bytes float32 / integer | exact |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|")
    for r in results:
        speed = r["speed"]
        for k, (before, after) in enumerate(zip(speed["float32"], speed["integer"])):
            exact = before["bit_exact"] and after["bit_exact"]
            print(f"| `{r['checkpoint']}` | {speed['images']} | {k + 1} "
                  f"| {before['compress_images_per_s']:.1f} (load {before['load'][0]:.1f}) | {after['compress_images_per_s']:.1f} (load {after['load'][0]:.1f}) "
                  f"| {after['compress_images_per_s'] / before['compress_images_per_s']:.2f} "
                  f"| {before['decompress_images_per_s']:.1f} (load {before['load'][1]:.1f}) | {after['decompress_images_per_s']:.1f} (load {after['load'][1]:.1f}) "
                  f"| {after['decompress_images_per_s'] / before['decompress_images_per_s']:.2f} | {before['file_bytes']:,} / {after['file_bytes']:,} "
                  f"| {'yes' if exact else 'NO'} |")
    for r in results:
        print(f"\n`{r['checkpoint']}`: {r['coding_model']}; before = {r['speed']['before']}")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("checkpoints", nargs="+", metavar="CHECKPOINT", help="checkpoint files or run folders")
    parser.add_argument("--dataset", help="dataset (default: the checkpoint's, else binarized_mnist)")
    parser.add_argument("--split", default="test")
    parser.add_argument("--limit", type=int, default=0, help="only the first N images (default: all)")
    parser.add_argument("--data-dir", help="dataset folder (default: PIXELRNN_DATA_DIR)")
    parser.add_argument("--batch-size", type=int, default=compression.DEFAULT_BATCH_SIZE)
    parser.add_argument("--speed-images", type=int, default=512, help="images of the before/after speed runs (default 512)")
    parser.add_argument("--no-baselines", action="store_true", help="skip PNG, WebP, gzip, bzip2 and xz")
    parser.add_argument("--before", metavar="DIR", help="take the float32 coder of DIR/pixelrnn (an earlier source tree) as 'before'")
    parser.add_argument("--json", help="also write the results as JSON")
    args = parser.parse_args(argv)

    before = import_before(args.before) if args.before else None
    results = []
    baseline_rows: dict[str, list[dict]] = {}
    for checkpoint in args.checkpoints:
        path = resolve_checkpoint(checkpoint)
        dataset = args.dataset or read_checkpoint(path)[2].get("dataset") or "binarized_mnist"
        image_set = load_dataset(dataset, args.split, data_dir=args.data_dir)
        values = image_set.images[: args.limit] if args.limit else image_set.images
        print(f"{path}: {len(values)} images of {dataset}/{args.split}", file=sys.stderr, flush=True)
        row = model_coder(path, values, image_set.levels, args.batch_size, args.speed_images, before)
        row.update(checkpoint=str(path), dataset=f"{dataset}/{args.split}")
        results.append(row)
        key = f"{dataset}/{args.split} ({len(values)} images)"
        if key not in baseline_rows and not args.no_baselines:
            baseline_rows[key] = baselines(values, image_set.levels)

    print(f"\nHardware: {hardware()}; coding on 1 thread (torch default here: {torch.get_num_threads()}); "
          f"load average at the end {os.getloadavg()[0]:.1f}.")
    print(f"Software: {versions()}.\n")
    print_model_tables(results)
    for key, rows in baseline_rows.items():
        print(f"\nBaselines on {key}:\n")
        print("| codec | bits/dim, per image | bits/dim, whole set | encode img/s |")
        print("|---|---:|---:|---:|")
        for r in rows:
            whole = "" if r["whole_set_bits_per_dim"] is None else f"{r['whole_set_bits_per_dim']:.4f}"
            print(f"| {r['codec']} | {r['per_image_bits_per_dim']:.4f} | {whole} | {r['encode_images_per_s']:.0f} |")
    if args.json:
        from pixelrnn.utils import atomic_write

        report = {"hardware": hardware(), "software": versions(), "model": results, "baselines": baseline_rows}
        atomic_write(args.json, lambda temp: Path(temp).write_text(json.dumps(report, indent=2) + "\n"))


if __name__ == "__main__":
    main()
