"""Table 4 (binarized MNIST) from this library's own long runs: where each run stands and how far it is from the paper.

    python benchmarks/table4.py [--runs benchmarks/table4_runs] [--figure docs/images/table4_curves.png] \\
        [--extra "PixelCNN, 15 layers=benchmarks/table4_runs_15_layers/pixelcnn"] [--at 240000 --at 960000] [--context]

The runs are benchmarks/pretrained_mnist.py's with a long budget, stopped and resumed session
after session (each resume is exact; docs/reproduction.md gives the command). For each run folder
RUNS/<arch> this prints the images seen, the wall-clock minutes of training (the sessions its
log records), the best validation NLL (the first 1000 validation images, EMA weights) with its
standard error, the paper's figure and the goal (the paper's figure + 1 nat). It then fits the
validation curve, once it has 8 points after the first, with nats(n) = a + b n^(-c) over images seen n (for each asymptote a on a grid
of 0.05 nats, least squares of log(nats - a) against log n; the a with the least squared error in
nats), and gives the fitted asymptote and the images at which the fitted curve reaches the goal
("not determined yet" while the best asymptote is the grid's lowest, 40 nats: the curve still
falls too steeply for its floor to show).
The fit only describes the curve so far: early in a run, with a constant or slowly decaying
learning rate, it is a rough guide, not a forecast. The next column says how far to trust it: the
same fit made on the first half of the curve (by images seen), its value at the last validation
beside the nats measured there (a forecast over twice the images, checked). The last column needs no
floor: the slope of a straight line through the validations of the last 160,000 images, and the
further images at which that line reaches the goal, a lower bound while the curve flattens, as
these curves do. The figure draws
every run's curve, its fit extrapolated to 100 times the images seen, and the paper's figure. ``--extra LABEL=FOLDER`` adds
a further run folder (another size of one of the networks) as a row and a curve of its own.
``--at IMAGES`` (repeatable) adds a second table that compares the runs at equal images seen: each
run's images per wall-clock minute, and its validation NLL at each IMAGES (the last validation at
or before it; "not there yet" where the run has not seen that many). ``--context`` adds a table of
how much of the context each run's network sees: the (output, earlier input) pairs of a 28x28
image on which its best checkpoint's logits depend, found exactly by ``pixelrnn.check_causality``
(pooled over 3 random images). A PixelCNN's field is bounded by its depth; the LSTMs see more.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from binarized_mnist import PAPER_NATS, ROOT  # noqa: E402
from pretrained_mnist import minutes_spent  # noqa: E402

from pixelrnn.causality import check_causality  # noqa: E402
from pixelrnn.checkpoint import load_model_with_metadata  # noqa: E402
from pixelrnn.figures import plot_nll_against_images, run_metrics  # noqa: E402
from pixelrnn.training import RunFolder, resolve_checkpoint  # noqa: E402

# Three parameters from fewer points follow the noise of single validations (± 0.65 nats on 1000 images).
MIN_FIT_POINTS = 8
LOWEST_ASYMPTOTE = 40.0  # nats: far below any binarized-MNIST result, the lower end of the fit's grid
GOAL_MARGIN = 1.0  # nats above the paper's figure that count as reproducing it (the goal)
# The recent slope's window: ten validations at batch 16, long enough for the EMA's wobble to average out.
RECENT_IMAGES = 160_000
NAMES = {"pixelcnn": "PixelCNN", "row_lstm": "Row LSTM", "diagonal_bilstm": "Diagonal BiLSTM"}


def run_label(arch: str, run: Path) -> str:
    """A run's name in the tables and the legend, with its depth: the runs of one network may differ in it."""
    return f"{NAMES[arch]}, {RunFolder(run).read_config()['model']['layers']} layers"


def validation_curve(run: Path) -> tuple[int, np.ndarray, np.ndarray, np.ndarray]:
    """(images seen by the run, and of its validation records in step order: images seen, nats, standard errors)."""
    batch = RunFolder(run).read_config()["train"]["batch_size"]
    everything = run_metrics(run)
    records = sorted((r for r in everything if r["split"] == "valid"), key=lambda r: r["step"])
    return (max(r["step"] for r in everything) * batch, np.array([r["step"] * batch for r in records], dtype=float),
            np.array([r["nats"] for r in records]), np.array([r.get("nats_stderr", 0.0) for r in records]))


def fit_power_law(images: np.ndarray, nats: np.ndarray) -> tuple[float, float, float] | None:
    """(a, b, c) of nats = a + b images^(-c), c > 0, or None with fewer than MIN_FIT_POINTS points or no decreasing fit.

    Also None when the best asymptote is the grid's lowest (LOWEST_ASYMPTOTE): the curve still falls too
    steeply for its asymptote to show, and any lower bound would have been "found" as well.
    """
    if len(images) < MIN_FIT_POINTS:
        return None
    best, best_error = None, np.inf
    for asymptote in np.arange(LOWEST_ASYMPTOTE, nats.min() - 0.05, 0.05):
        slope, intercept = np.polyfit(np.log(images), np.log(nats - asymptote), 1)
        if slope >= 0:
            continue
        predicted = asymptote + np.exp(intercept) * images**slope
        error = float(((predicted - nats) ** 2).sum())
        if error < best_error:
            best, best_error = (float(asymptote), float(np.exp(intercept)), float(-slope)), error
    return None if best is None or best[0] <= LOWEST_ASYMPTOTE else best


def images_to_reach(fit: tuple[float, float, float], target: float) -> float | None:
    asymptote, scale, exponent = fit
    return None if asymptote >= target else (scale / (target - asymptote)) ** (1.0 / exponent)


def half_curve_forecast(images: np.ndarray, nats: np.ndarray) -> tuple[float, float] | None:
    """(the value at the last validation of the fit to the first half of the curve, by images seen;
    that validation's nats), or None where the first half gives no fit: how far the fit's
    extrapolation can be trusted."""
    half = images <= images[-1] / 2
    fit = fit_power_law(images[half], nats[half])
    return None if fit is None else (fit[0] + fit[1] * images[-1] ** -fit[2], float(nats[-1]))


def recent_slope(images: np.ndarray, nats: np.ndarray, goal: float) -> str:
    """The least-squares slope of the validations of the last RECENT_IMAGES images seen, per 100,000 images, and the
    further images that slope would need to reach ``goal``: a lower bound while the curve keeps flattening."""
    recent = images >= images[-1] - RECENT_IMAGES if len(images) else np.zeros(0, dtype=bool)
    if recent.sum() < 3:
        return "too few points"
    slope = float(np.polyfit(images[recent], nats[recent], 1)[0])
    per_100k = round(slope * 1e5, 2) + 0.0  # as printed; + 0.0 turns -0.0 into 0.0
    if nats[-1] <= goal:
        return f"{per_100k:+.2f}; goal reached"
    if per_100k >= 0:
        return f"{per_100k:+.2f}; not falling"
    return f"{per_100k:+.2f}; {(nats[-1] - goal) / -slope:,.0f} more at least"


def validation_at(images: np.ndarray, nats: np.ndarray, errors: np.ndarray, seen: int, at: int) -> str:
    """The text of the last validation at or before ``at`` images seen, or "not there yet" when the run has seen fewer."""
    taken = np.flatnonzero(images <= at)
    if seen < at or not len(taken):
        return "not there yet"
    last = taken[-1]
    return f"{nats[last]:.2f} ± {errors[last]:.2f} ({images[last]:,.0f})"


def context_row(run: Path, name: str, size: int = 28) -> str:
    """The --context table's row: the (output, earlier input) pairs the run's best checkpoint depends on."""
    model, _ = load_model_with_metadata(resolve_checkpoint(run))
    report = check_causality(model, (model.config.channels, size, size), model.config.levels, full_context=False)
    return (f"| {name} | {model.config.layers} | {report.dependencies:,} of {report.earlier_pairs:,} | "
            f"{report.dependencies / report.earlier_pairs:.0%} |")


def session_minutes(run: Path) -> float:
    log = run.parent / f"{run.name}.log"
    return minutes_spent(log.read_text(), RunFolder(run).state) if log.exists() else float("nan")


def run_row(run: Path, name: str, curves: dict, fits: dict, references: dict) -> str:
    """The table's row of one run folder (its network read from its config.json); its curve and fit go into the dicts."""
    arch = RunFolder(run).read_config()["model"]["arch"]
    seen, images, nats, errors = validation_curve(run)
    goal = PAPER_NATS[arch] + GOAL_MARGIN
    curves[name], references[name] = (images, nats, errors), PAPER_NATS[arch]
    best = int(np.argmin(nats)) if len(nats) else None
    fit = fit_power_law(images[1:], nats[1:])  # the first validation is taken before the EMA has caught up
    if fit:
        extended = np.geomspace(images[1], images[-1] * 100, 200)
        fits[name] = (extended, fit[0] + fit[1] * extended ** -fit[2])
        needed = images_to_reach(fit, goal)
        fitted = f"{fit[0]:.2f}"
        to_goal = "not reached by the fit" if needed is None else f"{needed:,.0f}"
    else:
        fitted = to_goal = "too few points" if len(images) - 1 < MIN_FIT_POINTS else "not determined yet"
    forecast = half_curve_forecast(images[1:], nats[1:]) if len(images) > 1 else None
    backtest = "no fit" if forecast is None else f"{forecast[0]:.2f} (measured {forecast[1]:.2f})"
    best_text = f"{nats[best]:.2f} ± {errors[best]:.2f}" if best is not None else "none yet"
    return (f"| {name} | {seen:,} | {session_minutes(run):.0f} | {best_text} | {PAPER_NATS[arch]:.2f} | {goal:.2f} | {fitted} | "
            f"{to_goal} | {backtest} | {recent_slope(images[1:], nats[1:], goal)} |")


def extra_run(text: str) -> tuple[str, Path]:
    """``LABEL=FOLDER`` of --extra: a run folder with a metrics.jsonl and a config.json."""
    label, _, folder = text.rpartition("=")  # the label may hold "=" ("h = 32"), a folder seldom does
    if not label or not folder or not (Path(folder) / "metrics.jsonl").exists() or not (Path(folder) / "config.json").exists():
        raise argparse.ArgumentTypeError(f"--extra {text!r}: expected LABEL=FOLDER, a run folder holding metrics.jsonl and config.json")
    return label, Path(folder)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", default=str(ROOT / "benchmarks" / "table4_runs"), help="the folder of the run folders RUNS/<arch>")
    parser.add_argument("--extra", action="append", type=extra_run, default=[], metavar="LABEL=FOLDER",
                        help="a further run folder (e.g. another size of a network) as a row and a curve of its own")
    parser.add_argument("--figure", default=str(ROOT / "docs" / "images" / "table4_curves.png"))
    parser.add_argument("--context", action="store_true", help="a table of how much of the context each run's network sees")
    parser.add_argument("--at", action="append", type=int, default=[], metavar="IMAGES",
                        help="compare the runs at this many images seen (repeatable): a second table")
    args = parser.parse_args()
    runs = [(run_label(arch, Path(args.runs) / arch), Path(args.runs) / arch)
            for arch in PAPER_NATS if (Path(args.runs) / arch / "metrics.jsonl").exists()]
    if not runs:
        sys.exit(f"no run folders with a metrics.jsonl under {args.runs} (expected {', '.join(PAPER_NATS)})")
    curves, fits, references = {}, {}, {}
    print("| network | images seen | training (wall-clock minutes) | best validation NLL (nats) | paper (test) | goal | "
          "fitted asymptote | images to the goal (fit) | the first half's fit at the last validation | "
          f"slope of the last {RECENT_IMAGES:,} images (nats per 100,000): images to the goal at it |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for name, run in [*runs, *args.extra]:
        print(run_row(run, name, curves, fits, references))
    if args.at:
        print("\n| network | images per minute | " + " | ".join(f"validation NLL at {at:,} images (seen at)" for at in args.at) + " |")
        print("| --- | ---: |" + " ---: |" * len(args.at))
        for name, run in [*runs, *args.extra]:
            seen, images, nats, errors = validation_curve(run)
            cells = " | ".join(validation_at(images, nats, errors, seen, at) for at in args.at)
            print(f"| {name} | {seen / session_minutes(run):,.0f} | {cells} |")
    if args.context:
        print("\n| network | layers | (output, earlier input) pairs its logits depend on, 28x28 | share |\n| --- | ---: | ---: | ---: |")
        for name, run in [*runs, *args.extra]:
            print(context_row(run, name), flush=True)
    figure = plot_nll_against_images(curves, args.figure, references=references, fits=fits,
                                     title="binarized MNIST: validation NLL (1000 images) against images seen")
    print(f"\nwrote {figure}")


if __name__ == "__main__":
    main()
