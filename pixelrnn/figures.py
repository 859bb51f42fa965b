"""Figures of the paper from a trained model, drawn with matplotlib (extra ``[plots]``).

- :func:`plot_softmax_distributions`: Figure 6, the softmax over the discrete values of chosen
  sub-pixels.
- :func:`dependency_field` / :func:`plot_dependency_field`: Figures 2 and 4, which input
  sub-pixels a pixel's distribution depends on, from the gradient of its log-probability.
- :func:`plot_training_curve`: bits/dim against step from a run's metrics log.

Image grids of samples and completions are in :mod:`pixelrnn.images`. Figures are drawn on
matplotlib's Agg canvas without pyplot's global state and written atomically.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

import numpy as np
import torch

from .models import PixelModel
from .utils import atomic_write


def _new_figure(width: float, height: float):
    """A matplotlib Figure on the Agg canvas, without pyplot's global state."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(width, height), dpi=100, layout="constrained")
    FigureCanvasAgg(figure)
    return figure


def _save_figure(figure, path) -> Path:
    atomic_write(path, lambda temp: figure.savefig(temp, format="png", bbox_inches="tight"))
    return Path(path)


def _single_image(model, image) -> torch.Tensor:
    if not isinstance(model, PixelModel):
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
