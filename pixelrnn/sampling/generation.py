"""Generation: sample, complete and fill images sub-pixel by sub-pixel (paper section 2, Figures 1, 7-9).

Every unknown sub-pixel is drawn in raster order (row i, column j, then R, G, B) from the
model's conditional p(x_i | x_<i) (eq. 1-2). ``fill(model, images, known)`` is the general
form: known sub-pixels anywhere are kept, and conditioned on where they come earlier;
``sample`` starts from nothing and ``complete`` keeps the top rows (Figures 1 and 9).

By default the exact incremental engine of :mod:`pixelrnn.sampling.reference_engines` computes each
conditional; ``naive=True`` reruns the whole network per sub-pixel instead. Both draw one
uniform per sub-pixel in the same order, so with the same ``generator`` state they return the
same images. The Multi-Scale PixelRNN (section 3.6, Figure 8) samples its small image first,
then the large one around the pixels the small image fixes.
"""

from __future__ import annotations

import contextlib

import torch

from .. import native
from ..models import MultiScalePixelRNN, PixelModel
from .factory import make_engine


def sample_categorical(logits: torch.Tensor, temperature: float, generator: torch.Generator | None,
                       out: torch.Tensor | None = None, uniform: torch.Tensor | None = None) -> torch.Tensor:
    """Inverse-CDF draw from softmax(logits / T) with one uniform per row: (N, K) -> (N,), into ``out`` if given.

    One uniform per sub-pixel, drawn in a fixed order, makes two engines that compute the same
    logits draw the same samples from the same seed; ``uniform`` (N,) float64 gives them
    instead of drawing from ``generator``. The native kernels do the same arithmetic in one
    call where they run (:mod:`pixelrnn.native`, ``draw.cpp``).
    """
    if uniform is None:
        uniform = torch.rand(logits.shape[0], generator=generator, device=logits.device, dtype=torch.float64)
    uniform = uniform.reshape(-1, 1)
    draw = native.kernel("pixelrnn_draw", logits.dtype) if logits.device.type == "cpu" and logits.stride(-1) == 1 else None
    if draw is not None:
        out = torch.empty(logits.shape[0], dtype=torch.long) if out is None else out
        draw(logits.data_ptr(), logits.stride(0), logits.shape[1], logits.shape[0], uniform.data_ptr(), float(temperature),
             out.data_ptr(), out.stride(0))
        return out
    scaled = logits.double() if temperature == 1.0 else logits.double() / temperature  # x / 1.0 == x: skip the op
    probs = torch.softmax(scaled, dim=-1)
    cdf = probs.cumsum(-1)
    drawn = (cdf < uniform).sum(-1).clamp_max(probs.shape[-1] - 1)
    return drawn if out is None else out.copy_(drawn)


@torch.no_grad()
def sample(model, n: int, height: int, width: int, *, labels=None, temperature: float = 1.0,
           generator: torch.Generator | None = None, naive: bool = False, batch_size: int | None = None,
           progress: bool = False) -> torch.Tensor:
    """Draw ``n`` images (n, C, H, W) from ``model`` sub-pixel by sub-pixel in raster order.

    ``labels``: the class of each image, (n,) integers or one int for all, for a class-conditional
    model (``model.config.classes`` > 0). ``batch_size`` splits the ``n`` images into chunks
    sampled one after the other (the draws then follow the chunks: another batch size gives other
    images); ``progress`` shows a bar over rows.
    """
    options = dict(temperature=temperature, generator=generator, naive=naive, batch_size=batch_size, progress=progress)
    if n < 1 or height < 1 or width < 1:
        raise ValueError(f"n, height and width must be >= 1; got {n}, {height}, {width}")
    labels = _labels(model, labels, n)
    if isinstance(model, MultiScalePixelRNN):
        return sample_stages(model, n, height, width, labels=labels, **options)[1]
    images = torch.zeros(n, model.config.channels, height, width, dtype=torch.long, device=model.device)
    return _fill(model, images, torch.zeros_like(images, dtype=torch.bool), labels=labels, **options)


@torch.no_grad()
def sample_stages(model: MultiScalePixelRNN, n: int, height: int, width: int, *, labels=None,
                  **options) -> tuple[torch.Tensor, torch.Tensor]:
    """A multi-scale model's (small, large) samples, for showing both stages side by side (Figure 8)."""
    factor = model.config.factor
    labels = _labels(model, labels, n)
    small = sample(model.small, n, -(-height // factor), -(-width // factor), labels=labels, **options)
    large = torch.zeros(n, model.config.channels, height, width, dtype=torch.long, device=model.device)
    return small, _fill_large(model, large, small, 0, labels=labels, **options)


@torch.no_grad()
def complete(model, images: torch.Tensor, keep_rows: int, *, labels=None, temperature: float = 1.0,
             generator: torch.Generator | None = None, naive: bool = False, batch_size: int | None = None,
             progress: bool = False) -> torch.Tensor:
    """Keep the top ``keep_rows`` rows of each image and sample the rest (Figures 1 and 9).

    The kept sub-pixels are returned unchanged; the options are those of :func:`sample`.
    """
    options = dict(temperature=temperature, generator=generator, naive=naive, batch_size=batch_size, progress=progress)
    model.check_input(images)
    options["labels"] = _labels(model, labels, images.shape[0])
    if not 0 <= keep_rows <= images.shape[2]:
        raise ValueError(f"keep_rows must lie in [0, {images.shape[2]}] for images of height {images.shape[2]}; got {keep_rows}")
    images = images.to(model.device, torch.long).clone()
    if isinstance(model, MultiScalePixelRNN):
        # The small image's unknown pixels are sampled first, then the rest.
        small = complete(model.small, model.subsample(images), -(-keep_rows // model.config.factor), **options)
        return _fill_large(model, images, small, keep_rows, **options)
    known = torch.zeros_like(images, dtype=torch.bool)
    known[:, :, :keep_rows] = True
    return _fill(model, images, known, **options)


@torch.no_grad()
def fill(model: PixelModel, images: torch.Tensor, known: torch.Tensor, *, condition: torch.Tensor | None = None,
         labels=None, temperature: float = 1.0, generator: torch.Generator | None = None, naive: bool = False,
         batch_size: int | None = None, progress: bool = False) -> torch.Tensor:
    """Sample every sub-pixel of ``images`` where ``known`` (same shape, bool) is False.

    The general form of ``sample`` and ``complete`` for one network: known sub-pixels anywhere
    are kept and conditioned on where they come earlier. ``condition`` is the conditioning map
    of a multi-scale network's conditional stage (section 3.6); ``labels`` the classes of a
    class-conditional network, as for :func:`sample`.
    """
    model.check_input(images)
    return _fill(model, images.to(model.device, torch.long).clone(), known.to(model.device), condition=condition,
                 labels=_labels(model, labels, images.shape[0]), temperature=temperature, generator=generator, naive=naive,
                 batch_size=batch_size, progress=progress)


def complete_images(model, images: torch.Tensor, keep_rows: int, k: int, **options) -> torch.Tensor:
    """``k`` completions of each source image (N, C, H, W): (N, k, C, H, W); rows < keep_rows kept.

    All N*k completions are one batch for :func:`complete` (image n's copies are items
    n*k .. n*k + k - 1), split into chunks of ``batch_size`` if given; ``options`` are those of
    :func:`sample`.
    """
    if k < 1:
        raise ValueError(f"k must be >= 1; got {k}")
    copies = images.repeat_interleave(k, dim=0)  # (N*k, C, H, W)
    labels = options.pop("labels", None)
    if labels is not None:
        options["labels"] = _labels(model, labels, images.shape[0]).repeat_interleave(k)
    return complete(model, copies, keep_rows, **options).view(images.shape[0], k, *images.shape[1:])


def _fill_large(model: MultiScalePixelRNN, images, small, keep_rows: int, **options) -> torch.Tensor:
    """The conditional stage: ``small`` copied into its fixed pixels, the top ``keep_rows`` kept, the rest sampled."""
    factor = model.config.factor
    height, width = images.shape[2:]
    images[:, :, ::factor, ::factor] = small
    known = model.fixed_positions(height, width).expand_as(images).clone()
    known[:, :, :keep_rows] = True
    return fill(model.large, images, known, condition=model.condition(small, height, width), **options)


def _labels(model, labels, count: int) -> torch.Tensor | None:
    """``labels`` as (count,) int64 on the model's device (one int: for every image), checked against the model."""
    if labels is not None:
        labels = torch.as_tensor(labels, device=model.device)
        if labels.dim() == 0 and not labels.dtype.is_floating_point:
            labels = labels.expand(count)
        if not labels.dtype.is_floating_point and labels.dtype != torch.bool:
            labels = labels.long()
    model.check_labels(labels, count)
    return labels


def _fill(model, images, known, *, temperature=1.0, generator=None, naive=False, batch_size=None, progress=False, condition=None,
          labels=None):
    """Sample every unknown sub-pixel of ``images`` in place, chunk by chunk of the batch."""
    if temperature <= 0:
        raise ValueError(f"temperature must be > 0; got {temperature}")
    count, _, height, _ = images.shape
    batch_size = count if batch_size is None else batch_size
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1; got {batch_size}")
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=-(-count // batch_size) * height, unit="row", desc="naive" if naive else "sampling")
    try:
        for start in range(0, count, batch_size):
            part = slice(start, start + batch_size)  # views: the chunk is filled in place
            _fill_chunk(model, images[part], known[part], temperature, generator, naive, bar.update if bar is not None else None,
                        condition=None if condition is None else condition[part], labels=None if labels is None else labels[part])
    finally:
        if bar is not None:
            bar.close()
    return images


def _fill_chunk(model, images, known, temperature, generator, naive, row_done=None, condition=None, labels=None):
    """One chunk, in raster order (i, j, c): one uniform drawn per sub-pixel not known in every image.

    naive: one full forward pass per sub-pixel. Otherwise the incremental engine: the same
    conditionals from cached activations, fed every sub-pixel (drawn or known) in order.
    """
    _, channels, height, width = images.shape
    # (C, H, W) Python bools, so that the loop does not wait on the device per sub-pixel.
    known_everywhere = known.all(dim=0).tolist()
    known_somewhere = known.any(dim=0).tolist()
    if naive:
        def conditional(i, j, c):
            return model.logits_from_scaled(model.scale(images), condition, labels)[:, c, :, i, j]

        def feed(i, j, c, values):
            pass

        threads = contextlib.nullcontext()
    else:
        engine = make_engine(model)
        with engine.compute_threads():  # the setup's many small operations too: a thread hand-off each costs more
            engine.reset(images.shape[0], height, width, condition=condition, labels=labels)
        conditional, feed, threads = engine.logits, engine.advance, engine.compute_threads()
    # Native engines draw, fix and advance in one step, from uniforms drawn a row at a time: the
    # CPU generator gives n values in one call exactly as in n calls (tests/sampling).
    step = getattr(engine, "draw", None) if not naive else None
    uniforms, drawn = None, 0
    with threads:
        for i in range(height):
            if step is not None:
                count = sum(not known_everywhere[c][i][j] for j in range(width) for c in range(channels))
                uniforms, drawn = torch.rand(count, images.shape[0], generator=generator, dtype=torch.float64), 0
                if count == channels * width and not any(known_somewhere[c][i][j] for j in range(width) for c in range(channels)):
                    engine.sample_row(i, uniforms, temperature, images)  # nothing of the row known: one native call
                    if row_done is not None:
                        row_done(1)
                    continue
            for j in range(width):
                for c in range(channels):
                    here = images[:, c, i, j]  # a view: draws are written into the images in place
                    if known_everywhere[c][i][j]:
                        feed(i, j, c, here)
                        continue
                    uniform = None if uniforms is None else uniforms[drawn]
                    drawn += 1
                    if known_somewhere[c][i][j]:
                        choice = sample_categorical(conditional(i, j, c), temperature, generator, uniform=uniform)
                        feed(i, j, c, here.copy_(torch.where(known[:, c, i, j], here, choice)))
                    elif step is not None:
                        step(i, j, c, uniform, temperature, here)
                    else:
                        sample_categorical(conditional(i, j, c), temperature, generator, out=here)
                        feed(i, j, c, here)
            if row_done is not None:
                row_done(1)
    return images
