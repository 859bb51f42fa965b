"""The causality check: which input sub-pixels each output's logits depend on, found exactly.

An autoregressive image model maps integer images (B, C, H, W) to logits (B, C, K, H, W), the
logits at (c, i, j) predicting sub-pixel (c, i, j) from the sub-pixels before it: the rows
above, the pixels to the left in its row, the colours before c at its own pixel (R, then G, then
B). A **leak** is an output that depends on its own sub-pixel or a later one: the model then
reads what it should predict, its likelihood is too good to be true and its samples are noise.
A **missing** dependency is an earlier sub-pixel that an output does not see although the
architecture promises the whole context (the Diagonal BiLSTM; a PixelCNN or a Row LSTM
promises no such thing, its field is bounded).

:func:`check_causality` finds every dependency of every output, one of two ways:

- ``jacobian`` (networks with ``scale`` and ``logits_from_scaled``, as this library's): the
  integers are scaled to floats, and one backward pass per batch of outputs gives the exact
  Jacobian of each output's logits (projected on a random vector) with respect to every input.
  A masked weight contributes exact zeros, so a zero in the Jacobian is a true absence.
- ``differences`` (any ``nn.Module``): each input sub-pixel in turn is changed to another value,
  and every output whose logits change at all depends on it. The reference logits are computed
  in a batch of the same size, item for item, so an output that does not depend on the change
  comes out bit for bit the same.

Either way, a dependency can vanish at one image by chance (a ReLU that is off, a gate at 0), so
the check takes the union over ``trials`` random images; a leak cannot hide behind this (an
output that depends on a later input at one image is reported), a missing dependency might
(run more trials). Items of a batch must be independent (no batch normalisation in training
mode): the module is copied and put in eval mode. Run it on the CPU: GPU kernels may choose
different algorithms between calls, and the comparison of ``differences`` is exact.

A multi-scale model (section 3.6) generates the subsampled image first: its positions precede
every other, and the large stage's logits at those positions, never used, are not checked.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field

import torch
from torch import nn

from .errors import ConfigError
from .models import DiagonalBiLSTMNetwork

Position = tuple[int, int, int]  # (channel, row, column)
METHODS = ("auto", "jacobian", "differences")


@dataclass(frozen=True)
class CausalityReport:
    """What :func:`check_causality` found; ``ok`` is true when no output depends on its own or a later sub-pixel."""

    shape: tuple[int, int, int]
    levels: int
    method: str
    trials: int
    leaks: list[tuple[Position, Position]]
    """(output position, input position): the output's logits depend on an input at or after it."""
    missing: list[tuple[Position, Position]]
    """(output position, input position): an earlier input the promised context holds and the output does not see."""
    promised: bool
    """Whether missing dependencies were looked for (the architecture promises a context)."""
    dependencies: int = field(repr=False)
    """Dependencies found on earlier sub-pixels (the check is not vacuous when this is large)."""
    earlier_pairs: int = field(repr=False)
    """(output, earlier input) pairs: the most a model can depend on."""

    @property
    def ok(self) -> bool:
        return not self.leaks

    def summary(self, limit: int = 10) -> str:
        """Several lines: the verdict, then the first ``limit`` leaks and missing dependencies."""
        channels, height, width = self.shape
        how = (f"{channels}x{height}x{width} images of {self.levels} levels, {self.trials} random image(s), "
               f"{'exact Jacobian' if self.method == 'jacobian' else 'one sub-pixel changed at a time'}")
        lines = [f"{'no leak' if self.ok else f'{len(self.leaks)} leak(s)'}: {how}; outputs depend on "
                 f"{self.dependencies:,} of {self.earlier_pairs:,} (output, earlier input) pairs"]
        for name, pairs in (("leak", self.leaks), ("missing", self.missing)):
            for output, source in pairs[:limit]:
                relation = "depends on" if name == "leak" else "does not see"
                lines.append(f"  {name}: output {output} {relation} input {source}")
            if len(pairs) > limit:
                lines.append(f"  ... and {len(pairs) - limit} more {name} pair(s)")
        if self.promised:
            lines.append(f"missing dependencies of the promised context: {len(self.missing)}")
        return "\n".join(lines)


# ----------------------------------------------------------------------------- order and promises
def raster_rank(channels: int, height: int, width: int) -> torch.Tensor:
    """(C, H, W) position of each sub-pixel in the generation order: row by row, pixel by pixel, R then G then B."""
    c, i, j = torch.meshgrid(torch.arange(channels), torch.arange(height), torch.arange(width), indexing="ij")
    return (i * width + j) * channels + c


def _multiscale_factor(model: nn.Module) -> int | None:
    factor = getattr(getattr(model, "config", None), "factor", None)
    return factor if isinstance(factor, int) and hasattr(model, "subsample") else None


def generation_rank(model: nn.Module, shape: tuple[int, int, int]) -> torch.Tensor:
    """The order in which ``model`` generates the sub-pixels of a (C, H, W) image (multi-scale: the small image first)."""
    channels, height, width = shape
    rank = raster_rank(channels, height, width)
    factor = _multiscale_factor(model)
    if factor is not None:
        fixed = torch.zeros(height, width, dtype=torch.bool)
        fixed[::factor, ::factor] = True
        rank = rank + (~fixed).long() * channels * height * width  # the small image's sub-pixels come first
    return rank


def diagonal_bilstm_context(channels: int, height: int, width: int, input_kernel: int = 7) -> torch.Tensor:
    """Boolean (C, H, W, C, H, W): the context a Diagonal BiLSTM network promises (``pixelrnn/models/diagonal_bilstm.py``).

    Every earlier sub-pixel, except the one gap inherent to the design: the last sub-pixel of a
    row (last colour, last column) reaches the next row only through the mask-A input convolution,
    i.e. only at its last ``input_kernel // 2 + 1`` columns (and every later row).
    """
    rank = raster_rank(channels, height, width).flatten()
    promise = (rank[None, :] < rank[:, None]).reshape(channels, height, width, channels, height, width)
    for i in range(1, height):
        promise[:, i, : max(0, width - 1 - input_kernel // 2), channels - 1, i - 1, width - 1] = False
    return promise


def promised_context(model: nn.Module, shape: tuple[int, int, int]) -> torch.Tensor | None:
    """The context ``model`` promises to see, (C, H, W, C, H, W), or None where it promises none (a bounded field)."""
    if isinstance(model, DiagonalBiLSTMNetwork):
        return diagonal_bilstm_context(*shape, model.config.input_kernel)
    return None


# ----------------------------------------------------------------------------- the model's outputs
def _predictions(model: nn.Module, output, shape: tuple[int, int, int]) -> torch.Tensor:
    """The logits that predict each sub-pixel, (B, C, H, W, K), from what the model returned."""
    channels, height, width = shape
    if hasattr(output, "small") and hasattr(output, "large") and _multiscale_factor(model) is not None:
        factor = _multiscale_factor(model)
        large = _predictions(model, output.large, shape).clone()
        small = output.small.permute(0, 1, 3, 4, 2)
        large[:, :, ::factor, ::factor] = small[:, :, : len(range(0, height, factor)), : len(range(0, width, factor))]
        return large
    if not isinstance(output, torch.Tensor) or output.dim() != 5 or output.shape[1] != channels or output.shape[3:] != (height, width):
        got = tuple(output.shape) if isinstance(output, torch.Tensor) else type(output).__name__
        raise ConfigError(f"the model returned {got}; the check needs logits (B, {channels}, K, {height}, {width})")
    return output.permute(0, 1, 3, 4, 2)


def _jacobian_rows(model: nn.Module, image: torch.Tensor, outputs: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Boolean (len(outputs), C*H*W): which inputs the logits of each output sub-pixel (flat index) move with."""
    channels, height, width = image.shape
    scaled = model.scale(image.unsqueeze(0).expand(len(outputs), -1, -1, -1)).detach().clone().requires_grad_(True)
    predictions = _predictions(model, model.logits_from_scaled(scaled), image.shape)  # (b, C, H, W, K)
    c, i, j = outputs // (height * width), (outputs // width) % height, outputs % width
    selected = predictions[torch.arange(len(outputs), device=scaled.device), c.to(scaled.device), i.to(scaled.device), j.to(scaled.device)]
    projection = torch.randn(selected.shape[-1], generator=generator, dtype=torch.float64).to(selected)
    (gradient,) = torch.autograd.grad((selected @ projection).sum(), scaled)
    return (gradient != 0).reshape(len(outputs), -1).cpu()


def _changed(model: nn.Module, images: torch.Tensor, reference: torch.Tensor, shape) -> torch.Tensor:
    """Boolean (B, C*H*W): which outputs' logits differ, in any way, from the reference batch's."""
    with torch.no_grad():
        logits = _predictions(model, model(images), shape)
    different = (logits != reference) & ~(torch.isnan(logits) & torch.isnan(reference))
    return different.any(-1).reshape(len(images), -1).cpu()


def _difference_columns(model: nn.Module, image: torch.Tensor, inputs: torch.Tensor, levels: int,
                        generator: torch.Generator, references: dict) -> torch.Tensor:
    """Boolean (len(inputs), C*H*W): which outputs change when each input sub-pixel (flat index) takes another value."""
    count = len(inputs)
    if count not in references:  # the same batch size, item for item: an unchanged output is bit for bit the same
        with torch.no_grad():
            references[count] = _predictions(model, model(image.unsqueeze(0).expand(count, -1, -1, -1).contiguous()), image.shape)
    batch = image.unsqueeze(0).repeat(count, 1, 1, 1).flatten(1)
    step = torch.randint(1, levels, (count,), generator=generator).to(batch.device)
    rows = torch.arange(count, device=batch.device)
    batch[rows, inputs.to(batch.device)] = (batch[rows, inputs.to(batch.device)] + step) % levels
    return _changed(model, batch.view(count, *image.shape), references[count], image.shape)


# ----------------------------------------------------------------------------- the check
def _working_copy(model: nn.Module, method: str) -> nn.Module:
    """An eval-mode copy (float64 for the Jacobian, where the parameters are floating point)."""
    try:
        work = copy.deepcopy(model)
    except Exception:  # noqa: BLE001 - a module that cannot be copied is checked as it is, in eval mode
        work = model
    work.eval()
    if method == "jacobian" and any(p.is_floating_point() for p in work.parameters()):
        work = work.double() if work is not model else work
    return work


def choose_method(model: nn.Module, method: str = "auto") -> str:
    if method not in METHODS:
        raise ConfigError(f"method {method!r} is not one of {', '.join(METHODS)}")
    if method != "auto":
        return method
    differentiable = callable(getattr(model, "logits_from_scaled", None)) and callable(getattr(model, "scale", None))
    conditional = bool(getattr(getattr(model, "config", None), "condition_channels", 0))
    return "jacobian" if differentiable and not conditional else "differences"


def _pairs(mask: torch.Tensor, shape: tuple[int, int, int], rank: torch.Tensor) -> list[tuple[Position, Position]]:
    """(output, input) position pairs of a boolean (n, n) matrix, in the generation order of the output, then the input."""
    channels, height, width = shape

    def position(flat: int) -> Position:
        return (flat // (height * width), (flat // width) % height, flat % width)

    found = mask.nonzero().tolist()
    found.sort(key=lambda pair: (int(rank[pair[0]]), int(rank[pair[1]])))
    return [(position(out), position(source)) for out, source in found]


def check_causality(model: nn.Module, shape, levels: int | None = None, *, full_context: bool | torch.Tensor | None = None,
                    trials: int = 3, seed: int = 0, method: str = "auto", batch_size: int = 64) -> CausalityReport:
    """Every leak and every missing dependency of ``model`` on (C, H, W) images of ``levels`` values.

    ``model``: any ``nn.Module`` mapping integer images (B, C, H, W) to logits (B, C, K, H, W)
    (a multi-scale model's pair of logits too). ``levels``: None reads ``model.config.levels``.
    ``full_context``: None, what the model promises (this library's Diagonal BiLSTM: every earlier
    sub-pixel but the documented gap; other models nothing); True, every earlier sub-pixel;
    False, nothing (no missing dependency is looked for); or a boolean (C, H, W, C, H, W) tensor,
    ``[output, input]`` true where the output must see the input. ``method``: ``auto``
    (``jacobian`` where the model has ``scale`` and ``logits_from_scaled``, else ``differences``).
    Small images suffice: a leak of a mask, a shift or a skew shows within a few pixels.
    """
    if len(tuple(shape)) != 3 or not all(isinstance(v, int) and v >= 1 for v in shape):
        raise ConfigError(f"shape {tuple(shape)!r} is not (channels, height, width) of positive integers")
    shape = tuple(int(v) for v in shape)
    if levels is None:
        levels = getattr(getattr(model, "config", None), "levels", None)
        if levels is None:
            raise ConfigError("levels is needed: the model has no config.levels")
    if not isinstance(levels, int) or levels < 2:
        raise ConfigError(f"levels={levels!r} is invalid; it must be an integer >= 2")
    if not isinstance(trials, int) or trials < 1:
        raise ConfigError(f"trials={trials!r} is invalid; it must be an integer >= 1")
    if batch_size < 1:
        raise ConfigError(f"batch_size={batch_size!r} is invalid; it must be >= 1")
    method = choose_method(model, method)
    channels, height, width = shape
    count = channels * height * width
    rank = generation_rank(model, shape).flatten()
    earlier = rank[None, :] < rank[:, None]  # [output, input]
    if full_context is None:
        promise = promised_context(model, shape)
    elif isinstance(full_context, torch.Tensor):
        if full_context.shape != (*shape, *shape):
            raise ConfigError(f"full_context has shape {tuple(full_context.shape)}; expected {(*shape, *shape)}")
        promise = full_context.bool()
    else:
        promise = earlier.reshape(*shape, *shape) if full_context else None
    work = _working_copy(model, method)
    device = next((p.device for p in work.parameters()), torch.device("cpu"))
    generator = torch.Generator().manual_seed(seed)
    found = torch.zeros(count, count, dtype=torch.bool)
    with torch.enable_grad() if method == "jacobian" else torch.no_grad():
        for _ in range(trials):
            image = torch.randint(0, levels, shape, generator=generator).to(device)
            references: dict = {}
            for start in range(0, count, batch_size):
                chosen = torch.arange(start, min(count, start + batch_size))
                if method == "jacobian":
                    found[chosen] |= _jacobian_rows(work, image, chosen, generator)
                else:
                    found[:, chosen] |= _difference_columns(work, image, chosen, levels, generator, references).T
    leaks = found & ~earlier
    missing = (promise.reshape(count, count) & earlier & ~found) if promise is not None else torch.zeros_like(found)
    return CausalityReport(shape, levels, method, trials, _pairs(leaks, shape, rank), _pairs(missing, shape, rank),
                           promise is not None, int((found & earlier).sum()), int(earlier.sum()))


__all__ = ["CausalityReport", "check_causality", "diagonal_bilstm_context", "generation_rank", "promised_context", "raster_rank"]
