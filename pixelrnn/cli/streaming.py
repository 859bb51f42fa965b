"""The outputs of ``sample`` and ``complete`` written while the images are drawn, in chunks.

Only one chunk of images is in memory at a time, whatever ``-n`` or ``-k``: each chunk goes into
the npz (:func:`pixelrnn.images.write_samples_npz`) and into ``--png-dir`` as soon as it is drawn,
and the figure keeps the first :data:`FIGURE_IMAGES` images only (a grid of 100,000 tiles shows
nothing). The chunk is ``--batch-size``, by default :data:`CHUNK`; the draws follow the chunks
(as :func:`pixelrnn.sampling.sample` with ``batch_size``), so up to :data:`CHUNK` images are the
ones an unchunked run draws from the same seed.
"""

from __future__ import annotations

import contextlib
import sys
from pathlib import Path
from typing import Callable, Iterator

import torch

from ..images import save_png, to_uint8, write_samples_npz
from .common import UserError

CHUNK = 1024  # images drawn, and held, at once by default
FIGURE_IMAGES = 1024  # images a figure shows at most; the npz and --png-dir hold all


def chunk_size(total: int, batch_size: int | None) -> int:
    return min(total, batch_size or CHUNK)


def check_png_dir(folder: str, names: list[str], force: bool) -> Path:
    """``--png-dir``: a folder (made if missing) that holds none of ``names``, unless ``force``; checked before anything is drawn."""
    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise UserError(f"--png-dir {folder} is a file, not a folder")
    existing = [name for name in names if (folder / name).exists()] if folder.is_dir() else []
    if existing and not force:
        raise UserError(f"--png-dir {folder} already holds {existing[0]}" + (f" and {len(existing) - 1} more" if len(existing) > 1 else "")
                        + "; pass --force to replace them, or choose another folder")
    return folder


def write_pngs(images: torch.Tensor, levels: int, folder: Path, names: list[str]) -> None:
    """One PNG per image (N, C, H, W) at the model's resolution, each written atomically."""
    for name, image in zip(names, to_uint8(images, levels)):
        save_png(image.transpose(1, 2, 0), folder / name)


@contextlib.contextmanager
def image_bar(total: int, chunk: int, enabled: bool) -> Iterator[Callable[[int], None] | None]:
    """A bar over images when there are several chunks (the sampler's own bar, over rows, covers one)."""
    if not enabled or chunk >= total:
        yield None
        return
    from tqdm.auto import tqdm

    bar = tqdm(total=total, unit="image", desc="sampling", file=sys.stderr)
    try:
        yield bar.update
    finally:
        bar.close()


def stream(draw: Callable[[int, int], torch.Tensor], shape: tuple[int, ...], levels: int, npz: Path, chunk: int, *,
           keep: Callable[[int, torch.Tensor], None], png_dir: Path | None = None, png_names: list[str] | None = None,
           progress: bool = False) -> Path:
    """Write ``draw(start, stop)`` (images start..stop-1 on the CPU) for every chunk of ``shape[0]`` into ``npz``.

    ``keep(start, images)`` sees every chunk (for the figure: it keeps what it shows); ``png_dir``
    gets each image under ``png_names`` as it comes.
    """
    total = shape[0]

    def chunks():
        with image_bar(total, chunk, progress) as advance:
            for start in range(0, total, chunk):
                stop = min(total, start + chunk)
                images = draw(start, stop).cpu()
                keep(start, images)
                if png_dir is not None:
                    write_pngs(images, levels, png_dir, png_names[start:stop])
                if advance is not None:
                    advance(stop - start)
                yield images

    return write_samples_npz(chunks(), shape, levels, npz)
