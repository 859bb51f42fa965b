"""Figures of the paper from a trained model, drawn with matplotlib (extra ``[plots]``).

- :func:`plot_softmax_distributions`: Figure 6, the softmax over the discrete values of chosen
  sub-pixels.
- :func:`dependency_field` / :func:`plot_dependency_field`: Figures 2 and 4, which input
  sub-pixels a pixel's distribution depends on, from the gradient of its log-probability.
- :func:`plot_training_curve`: a run's learning curve (``pixelrnn plot``), bits/dim and nats against step
  and images seen, from its folder or its metrics log.
- :func:`plot_nll_against_images`: several runs' validation NLL against images seen, each beside its
  target and a fitted extrapolation (``benchmarks/table4.py``).

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


def run_metrics(run_or_metrics) -> list[dict]:
    """The records of a run folder's ``metrics.jsonl``, or of a metrics file given itself."""
    path = Path(run_or_metrics)
    return read_metrics(path / "metrics.jsonl" if path.is_dir() else path)


def _train_settings(run_or_metrics) -> dict:
    """The ``[train]`` section of the run whose folder holds the log ({} where no config.json says)."""
    path = Path(run_or_metrics)
    config = (path if path.is_dir() else path.parent) / "config.json"
    try:
        settings = json.loads(config.read_text()).get("train", {})
    except (OSError, ValueError, AttributeError):
        return {}
    return settings if isinstance(settings, dict) else {}


def plot_training_curve(run_or_metrics, path) -> Path:
    """The learning curve of a run: train and valid bits/dim against step, nats/image on the right axis and
    images seen on the top axis (from the run's ``train.batch_size``).

    ``run_or_metrics``: a run folder or its ``metrics.jsonl``. Logs without bits/dim plot nats alone.
    """
    records = run_metrics(run_or_metrics)
    with_both = [r for r in records if isinstance(r.get("bits_per_dim"), (int, float)) and isinstance(r.get("nats"), (int, float))
                 and r["bits_per_dim"] > 0]
    key = "bits_per_dim" if records and all("bits_per_dim" in r for r in records) else "nats"
    figure = _new_figure(7.0, 4.6)
    axes = figure.add_subplot(1, 1, 1)
    train = _train_settings(run_or_metrics)
    # Validation scores the EMA weights where the run keeps them: the label says so (they lag in a short run).
    valid_label = f"valid (EMA weights, decay {train['ema_decay']})" if train.get("ema_decay") else "valid"
    for split, label, style in (("train", "train", dict(color="tab:blue", linewidth=1, alpha=0.8)),
                                ("valid", valid_label, dict(color="tab:orange", marker="o"))):
        points = sorted((r["step"], r[key]) for r in records if r["split"] == split and isinstance(r.get(key), (int, float)))
        if points:
            steps, values = zip(*points)
            axes.plot(steps, values, label=label, **style)
    axes.set_xlabel("step")
    axes.set_ylabel("bits/dim" if key == "bits_per_dim" else "nats/image")
    path_name = Path(run_or_metrics)
    axes.set_title(f"learning curve of {path_name.name if path_name.is_dir() else path_name.parent.name}", fontsize=10)
    if key == "bits_per_dim" and with_both:
        ratio = with_both[0]["nats"] / with_both[0]["bits_per_dim"]  # nats per image in one bit per dimension: dims * ln 2
        right = axes.secondary_yaxis("right", functions=(lambda bits: bits * ratio, lambda nats: nats / ratio))
        right.set_ylabel("nats/image")
    batch = train.get("batch_size")
    if isinstance(batch, int) and batch > 0:
        top = axes.secondary_xaxis("top", functions=(lambda step: step * batch, lambda seen: seen / batch))
        top.set_xlabel(f"images seen (batch {batch})")
    axes.grid(alpha=0.3)
    if records:
        axes.legend()
    return _save_figure(figure, path)


def plot_nll_against_images(curves: dict, path, *, references: dict | None = None, fits: dict | None = None,
                            title: str = "validation NLL against images seen") -> Path:
    """Learning curves of several runs in nats/image against images seen (log scale).

    ``curves``: label -> (images seen, nats, standard errors), drawn with error bars; ``references``:
    label -> a target in nats (e.g. the paper's figure), a dashed line in the run's colour; ``fits``:
    label -> (images, nats) of a fitted extrapolation, a dotted line.
    """
    figure = _new_figure(7.0, 4.6)
    axes = figure.add_subplot(1, 1, 1)
    for index, (label, (images, nats, errors)) in enumerate(curves.items()):
        colour = f"C{index}"
        axes.errorbar(images, nats, yerr=errors, color=colour, marker="o", markersize=3, linewidth=1, label=label)
        if fits and label in fits:
            axes.plot(*fits[label], color=colour, linestyle=":", linewidth=1, label=f"{label}: fitted, extrapolated")
        if references and label in references:
            axes.axhline(references[label], color=colour, linestyle="--", linewidth=1, label=f"{label}: paper, {references[label]:.2f}")
    axes.set_xscale("log")
    axes.set_xlabel("images seen")
    axes.set_ylabel("nats/image")
    axes.set_title(title, fontsize=10)
    axes.grid(alpha=0.3, which="both")
    axes.legend(fontsize=8)
    return _save_figure(figure, path)
