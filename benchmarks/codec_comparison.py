"""The model codec against standard lossless codecs: bits/dim and images/s, compressing and decompressing.

    pip install -e ".[bench]"      # imagecodecs (JPEG-XL) and zstandard; a codec whose package is missing is skipped, with a note
    PIXELRNN_DATA_DIR=/path/to/data python benchmarks/codec_comparison.py --mnist RUN_MNIST --cifar RUN_CIFAR [--limit 2000]
        [--binarized pretrained:binarized_mnist/pixelcnn ...] [--batch-size 256] [--threads 1] [--json FILE]

Test splits of three datasets: ``binarized_mnist`` (2 levels), ``mnist`` (the 8-bit IDX files)
and ``cifar10_subset`` (its 1,000 test images). ``--limit N`` takes N images evenly spaced over
each split (0: all): the binarized MNIST test file is sorted by digit, so its first N images
would be zeros and ones only.

Codecs, each checked by decoding (decoded == original, or the row says FAILED):

- ours: ``pixelrnn.codec.compress`` / ``decompress`` with a checkpoint (the integer coding
  model, the default of ``pixelrnn compress``) of the whole set in one file; its size includes
  the file's header and digests;
- PNG (Pillow, ``optimize=True``, level 9; 2-level data as 1-bit PNG), WebP lossless (Pillow,
  method 6; 2-level data as 0/255 grey), JPEG-XL lossless (imagecodecs, effort 9; 2-level data
  as 0/255 grey): once per image (a file each; on 28x28 images the headers dominate) and once
  as a mosaic of the whole set (the images side by side in one picture, the fair comparison
  with our one file);
- xz -9e (lzma preset 9 | PRESET_EXTREME), zstd -19 (zstandard) and bzip2 -9 of the raw uint8
  values (one byte per sub-pixel, (C, H, W) per image): per image, and the whole set as one stream.

Speed is images/s of wall-clock time on ``--threads`` threads (default 1), with the load average
printed beside it. Prints markdown tables with the hardware and the software versions.
"""

from __future__ import annotations

import argparse
import bz2
import io
import json
import lzma
import math
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from pixelrnn import codec as compression  # noqa: E402
from pixelrnn.data import load_dataset  # noqa: E402
from pixelrnn.training import load_model_from  # noqa: E402
from compression import png_bytes, same_values, versions, webp_available, webp_bytes, xz  # noqa: E402
from machine import hardware  # noqa: E402

DATASETS = ("binarized_mnist", "mnist", "cifar10_subset")


# --------------------------------------------------------------------- optional codecs
def optional(module: str):
    try:
        return __import__(module)
    except ImportError:
        return None


imagecodecs, zstandard = optional("imagecodecs"), optional("zstandard")
NOTES: list[str] = []


def jxl_available() -> bool:
    return imagecodecs is not None and bool(getattr(imagecodecs, "JPEGXL", None) and imagecodecs.JPEGXL.available)


# --------------------------------------------------------------------- picture codecs: (C, H, W) values <-> bytes
def as_picture(values: np.ndarray, levels: int) -> np.ndarray:
    """(H, W) or (H, W, 3) uint8 samples: 2-level data as 0/255 (the picture codecs have no 1-bit grey of their own but PNG's)."""
    samples = values * np.uint8(255) if levels == 2 else values
    return samples[0] if samples.shape[0] == 1 else np.ascontiguousarray(samples.transpose(1, 2, 0))


def from_picture(pixels: np.ndarray, levels: int, channels: int) -> np.ndarray:
    pixels = np.asarray(pixels)
    values = pixels[None] if pixels.ndim == 2 else pixels.transpose(2, 0, 1)
    values = values[:1] if channels == 1 else values  # WebP has no grey: it decodes grey as three equal channels
    return (values > 0).astype(np.uint8) if levels == 2 else values.astype(np.uint8)


def pillow_decode(data: bytes, levels: int, channels: int) -> np.ndarray:
    from PIL import Image

    with Image.open(io.BytesIO(data)) as image:
        image.load()
        return from_picture(np.asarray(image.convert("L") if image.mode == "1" else image), levels, channels)


def jxl_encode(values: np.ndarray, levels: int) -> bytes:
    return bytes(imagecodecs.jpegxl_encode(as_picture(values, levels), lossless=True, effort=9, numthreads=1))


def jxl_decode(data: bytes, levels: int, channels: int) -> np.ndarray:
    return from_picture(imagecodecs.jpegxl_decode(data, numthreads=1), levels, channels)


def picture_codecs() -> dict:
    codecs = {"PNG (Pillow, optimize, level 9)": (png_bytes, pillow_decode)}
    if webp_available():
        codecs["WebP lossless (Pillow, method 6)"] = (webp_bytes, pillow_decode)
    else:
        NOTES.append("WebP lossless: skipped, this Pillow has no WebP")
    if jxl_available():
        codecs["JPEG-XL lossless (libjxl, effort 9)"] = (jxl_encode, jxl_decode)
    else:
        NOTES.append("JPEG-XL lossless: skipped, imagecodecs with JPEG-XL is not installed (pip install imagecodecs)")
    return codecs


def stream_codecs() -> dict:
    codecs = {"xz -9e": (xz, lzma.decompress), "bzip2 -9": (lambda raw: bz2.compress(raw, 9), bz2.decompress)}
    if zstandard is not None:
        compressor, decompressor = zstandard.ZstdCompressor(level=19), zstandard.ZstdDecompressor()
        codecs["zstd -19"] = (compressor.compress, decompressor.decompress)
    else:
        NOTES.append("zstd -19: skipped, zstandard is not installed (pip install zstandard)")
    return codecs


def mosaic(values: np.ndarray) -> tuple[np.ndarray, int]:
    """The images (N, C, H, W) side by side in one (C, rows*H, columns*W) picture, zeros after the last; and the column count."""
    count, channels, height, width = values.shape
    columns = math.ceil(math.sqrt(count))
    rows = math.ceil(count / columns)
    padded = np.zeros((rows * columns, channels, height, width), np.uint8)
    padded[:count] = values
    picture = padded.reshape(rows, columns, channels, height, width).transpose(2, 0, 3, 1, 4).reshape(channels, rows * height, columns * width)
    return picture, columns


def unmosaic(picture: np.ndarray, count: int, columns: int, height: int, width: int) -> np.ndarray:
    channels = picture.shape[0]
    rows = picture.shape[1] // height
    tiles = picture.reshape(channels, rows, height, columns, width).transpose(1, 3, 0, 2, 4).reshape(rows * columns, channels, height, width)
    return tiles[:count]


# --------------------------------------------------------------------- measuring
def clock(function):
    start = time.perf_counter()
    result = function()
    return result, time.perf_counter() - start, os.getloadavg()[0]


def row(codec: str, how: str, size: int, values: np.ndarray, seconds_in: float, seconds_out: float, exact: bool, load: float) -> dict:
    return {"codec": codec, "how": how, "bytes": size, "bits_per_dim": 8 * size / values.size,
            "compress_images_per_s": len(values) / seconds_in, "decompress_images_per_s": len(values) / seconds_out,
            "exact": bool(exact), "load": round(load, 2)}


def standard_rows(values: np.ndarray, levels: int) -> list[dict]:
    rows = []
    _, channels, height, width = values.shape
    for name, (encode, decode) in picture_codecs().items():
        files, seconds_in, _ = clock(lambda: [encode(image, levels) for image in values])
        back, seconds_out, load = clock(lambda: [decode(data, levels, channels) for data in files])
        exact = all(np.array_equal(a, b) for a, b in zip(back, values))
        rows.append(row(name, "per image", sum(map(len, files)), values, seconds_in, seconds_out, exact, load))
        picture, columns = mosaic(values)
        data, seconds_in, _ = clock(lambda: encode(picture, levels))
        back, seconds_out, load = clock(lambda: unmosaic(decode(data, levels, channels), len(values), columns, height, width))
        rows.append(row(name, "whole set (mosaic)", len(data), values, seconds_in, seconds_out, np.array_equal(back, values), load))
    for name, (encode, decode) in stream_codecs().items():
        files, seconds_in, _ = clock(lambda: [encode(image.tobytes()) for image in values])
        back, seconds_out, load = clock(lambda: [decode(data) for data in files])
        exact = all(b == image.tobytes() for b, image in zip(back, values))
        rows.append(row(name + " (raw uint8)", "per image", sum(map(len, files)), values, seconds_in, seconds_out, exact, load))
        raw = np.ascontiguousarray(values).tobytes()
        data, seconds_in, _ = clock(lambda: encode(raw))
        back, seconds_out, load = clock(lambda: decode(data))
        rows.append(row(name + " (raw uint8)", "whole set (one stream)", len(data), values, seconds_in, seconds_out, back == raw, load))
    return rows


def model_row(checkpoint: str, values: np.ndarray, levels: int, batch_size: int) -> dict:
    model = load_model_from(checkpoint, "cpu").eval()
    images = compression.images_from_array(values, levels)
    data, seconds_in, _ = clock(lambda: compression.compress(model, images, batch_size=batch_size))
    decoded, seconds_out, load = clock(lambda: compression.decompress(model, data))
    parameters = sum(p.numel() for p in model.parameters())
    name = f"ours: `{checkpoint}` ({model.config.arch}, {parameters:,} params)"
    return row(name, "whole set (one file)", len(data), values, seconds_in, seconds_out, same_values(decoded, images), load)


def evenly_spaced(count: int, limit: int) -> np.ndarray:
    return np.arange(count) if not limit or limit >= count else (np.arange(limit) * count) // limit


def print_table(dataset: str, values: np.ndarray, rows: list[dict]) -> None:
    count, channels, height, width = values.shape
    print(f"\n### {dataset}, test split: {count:,} images {channels}x{height}x{width} ({values.size:,} sub-pixels)\n")
    print("| codec | how | bits/dim | compress img/s | decompress img/s | exact | load |")
    print("|---|---|---:|---:|---:|---|---:|")
    for r in sorted(rows, key=lambda r: r["bits_per_dim"]):
        print(f"| {r['codec']} | {r['how']} | {r['bits_per_dim']:.4f} | {r['compress_images_per_s']:,.0f} | {r['decompress_images_per_s']:,.0f} "
              f"| {'yes' if r['exact'] else 'FAILED'} | {r['load']:.1f} |")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--binarized", nargs="*", default=["pretrained:binarized_mnist/pixelcnn"],
                        help="checkpoints for binarized MNIST (default: the bundled PixelCNN)")
    parser.add_argument("--mnist", nargs="*", default=[], help="checkpoints for 8-bit MNIST (runs trained on `mnist`)")
    parser.add_argument("--cifar", nargs="*", default=[], help="checkpoints for the CIFAR-10 subset")
    parser.add_argument("--datasets", nargs="*", default=list(DATASETS), choices=DATASETS)
    parser.add_argument("--limit", type=int, default=2000, help="images per split, evenly spaced (default 2000; 0: all)")
    parser.add_argument("--batch-size", type=int, default=compression.DEFAULT_BATCH_SIZE, help="our codec's batch")
    parser.add_argument("--threads", type=int, default=1, help="torch threads for our codec (default 1)")
    parser.add_argument("--data-dir", help="dataset folder (default: PIXELRNN_DATA_DIR)")
    parser.add_argument("--json", help="also write the results as JSON")
    args = parser.parse_args(argv)
    if args.limit < 0:
        parser.error(f"--limit must be >= 0; got {args.limit}")

    torch.set_num_threads(args.threads)
    checkpoints = {"binarized_mnist": args.binarized, "mnist": args.mnist, "cifar10_subset": args.cifar}
    started, report = time.perf_counter(), {}
    print(f"# codec comparison; {hardware()}; our codec on {args.threads} thread(s), the others single-threaded; "
          f"load average at start {os.getloadavg()[0]:.2f}")
    for dataset in args.datasets:
        image_set = load_dataset(dataset, "test", data_dir=args.data_dir)
        values = np.ascontiguousarray(image_set.images[evenly_spaced(len(image_set.images), args.limit)])
        print(f"{dataset}: {len(values)} of {len(image_set.images)} test images", file=sys.stderr, flush=True)
        rows = [model_row(checkpoint, values, image_set.levels, args.batch_size) for checkpoint in checkpoints[dataset]]
        rows += standard_rows(values, image_set.levels)
        print_table(dataset, values, rows)
        report[dataset] = {"images": len(values), "of": len(image_set.images), "rows": rows}
    codecs = f", imagecodecs {imagecodecs.__version__} ({imagecodecs.jpegxl_version()})" if jxl_available() else ""
    codecs += f", zstandard {zstandard.__version__}" if zstandard is not None else ""
    print(f"\nSoftware: {versions()}{codecs}. Took {time.perf_counter() - started:.0f} s; load average at the end {os.getloadavg()[0]:.2f}.")
    for note in dict.fromkeys(NOTES):
        print(f"Note: {note}.")
    if args.json:
        from pixelrnn.utils import atomic_write

        report = {"hardware": hardware(), "software": versions() + codecs, "limit": args.limit, "threads": args.threads, "results": report}
        atomic_write(args.json, lambda temp: Path(temp).write_text(json.dumps(report, indent=2) + "\n"))


if __name__ == "__main__":
    main()
