"""benchmarks/table4.py: the fit of a learning curve that says how far a run is from the paper."""

import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))

from table4 import fit_power_law, images_to_reach  # noqa: E402


def test_the_fit_recovers_a_power_law_and_the_images_it_needs():
    images = np.geomspace(16_000, 2_000_000, 12)
    nats = 78.4 + 900.0 * images**-0.35
    asymptote, scale, exponent = fit_power_law(images, nats)
    assert asymptote == pytest.approx(78.4, abs=0.05)
    assert exponent == pytest.approx(0.35, rel=0.05)
    needed = images_to_reach((asymptote, scale, exponent), 80.2)
    assert 78.4 + 900.0 * needed**-0.35 == pytest.approx(80.2, abs=0.05)


def test_a_goal_below_the_asymptote_is_never_reached_and_few_points_give_no_fit():
    assert images_to_reach((81.0, 900.0, 0.35), 80.2) is None
    few = np.geomspace(1e4, 1e5, 7)
    assert fit_power_law(few, 78.0 + 900.0 * few**-0.35) is None


def test_a_further_run_is_a_row_of_its_own_against_its_networks_paper_figure(tmp_path):
    """--extra LABEL=FOLDER: the row and the curve take the label, the paper's figure the network of the folder's config."""
    import argparse
    import json

    from table4 import extra_run, run_row

    folder = tmp_path / "pixelcnn_deeper"
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps({"model": {"arch": "pixelcnn"}, "train": {"batch_size": 16}}))
    records = [{"step": step, "split": "valid", "nats": 100.0 - step / 1000, "nats_stderr": 0.6} for step in (1000, 2000, 3000)]
    (folder / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    label, run = extra_run(f"PixelCNN, 15 layers={folder}")
    curves, fits, references = {}, {}, {}
    row = run_row(run, label, curves, fits, references)
    assert row.startswith("| PixelCNN, 15 layers | 48,000 |") and "| 97.00 ± 0.60 | 81.30 | 82.30 | too few points |" in row
    assert references == {label: 81.30} and list(curves[label][0]) == [16_000, 32_000, 48_000]
    assert extra_run(f"PixelCNN, h = 32={folder}") == ("PixelCNN, h = 32", folder)
    with pytest.raises(argparse.ArgumentTypeError, match="expected LABEL=FOLDER"):
        extra_run(f"no label={tmp_path / 'missing'}")


def test_a_main_run_is_named_by_its_network_and_depth(tmp_path):
    """RUNS/<arch> rows carry the run's depth, so that a deeper PixelCNN in RUNS is told from a 15-layer one in --extra."""
    import json

    from table4 import run_label

    for arch, layers in (("pixelcnn", 25), ("row_lstm", 7)):
        (tmp_path / arch).mkdir()
        (tmp_path / arch / "config.json").write_text(json.dumps({"model": {"arch": arch, "layers": layers}}))
    assert run_label("pixelcnn", tmp_path / "pixelcnn") == "PixelCNN, 25 layers"
    assert run_label("row_lstm", tmp_path / "row_lstm") == "Row LSTM, 7 layers"


def test_a_curve_too_steep_for_its_asymptote_to_show_gives_no_fit():
    """Still falling as a power law of the images with no floor in sight: the grid's lowest asymptote would win; no fit."""
    images = np.geomspace(16_000, 180_000, 11)
    assert fit_power_law(images, 4000.0 * images**-0.33) is None


def test_the_first_halfs_fit_is_checked_against_the_last_validation():
    """On a curve that is a power law the first half's fit foresees the end; on one that flattens, it foresees too low."""
    from table4 import half_curve_forecast

    images = np.geomspace(16_000, 2_000_000, 24)
    forecast, measured = half_curve_forecast(images, 78.4 + 900.0 * images**-0.35)
    assert measured == pytest.approx(78.4 + 900.0 * 2_000_000**-0.35) and forecast == pytest.approx(measured, abs=0.05)
    flattening = 78.4 + 900.0 * images**-0.35 + 0.5 * (images > 1_000_000)  # a late plateau the first half cannot show
    forecast, measured = half_curve_forecast(images, flattening)
    assert measured - forecast == pytest.approx(0.5, abs=0.1)
    assert half_curve_forecast(images[:10], 78.4 + 900.0 * images[:10] ** -0.35) is None  # five points: no fit


def test_runs_are_compared_at_equal_images_by_their_last_validation_before():
    """--at: the last validation at or before the images asked for, and none for a run that has not seen them."""
    from table4 import validation_at

    images, nats, errors = np.array([16_000.0, 32_000.0, 48_000.0]), np.array([95.0, 92.5, 91.0]), np.array([0.7, 0.6, 0.6])
    assert validation_at(images, nats, errors, 50_000, 40_000) == "92.50 ± 0.60 (32,000)"
    assert validation_at(images, nats, errors, 50_000, 48_000) == "91.00 ± 0.60 (48,000)"
    assert validation_at(images, nats, errors, 50_000, 60_000) == "not there yet"
    assert validation_at(images, nats, errors, 50_000, 10_000) == "not there yet"


def test_the_context_table_counts_what_a_pixelcnn_sees_and_a_deeper_one_sees_more(tmp_path):
    """--context: each masked 3x3 layer adds a row above to a PixelCNN's field, so 3 layers see fewer pairs than 6."""
    import dataclasses
    import re

    import torch
    from table4 import context_row

    from pixelrnn.checkpoint import save_model
    from pixelrnn.models import model_from_config
    from pixelrnn.presets import PRESETS

    shares = []
    for layers in (3, 6):
        run = tmp_path / f"pixelcnn_{layers}"
        run.mkdir()
        torch.manual_seed(0)
        config = dataclasses.replace(PRESETS["mnist_pixelcnn"].config, layers=layers, hidden=2, output_hidden=4)
        save_model(model_from_config(config), run / "best.safetensors")
        row = context_row(run, f"PixelCNN, {layers} layers", size=12)
        pairs, total = (int(n.replace(",", "")) for n in re.search(r"\| ([\d,]+) of ([\d,]+) \|", row).groups())
        assert row.startswith(f"| PixelCNN, {layers} layers | {layers} |") and total == sum(range(12 * 12))
        shares.append(pairs / total)
    assert 0 < shares[0] < shares[1] < 1


def test_the_recent_slope_reads_the_last_160000_images_and_the_images_it_would_need():
    """A curve that fell steeply and then by 1 nat per 100,000 images: the slope of its last 160,000 images only."""
    from table4 import recent_slope

    images = np.arange(16_000, 480_001, 16_000, dtype=float)
    nats = np.where(images < 300_000, 120.0 - 1e-4 * images, 93.0 - 1e-5 * images)
    assert recent_slope(images, nats, goal=82.3) == f"-1.00; {(nats[-1] - 82.3) / 1e-5:,.0f} more at least"
    assert recent_slope(images, np.full_like(images, 85.0), goal=82.3) == "+0.00; not falling"
    assert recent_slope(images, nats, goal=90.0) == "-1.00; goal reached"
    assert recent_slope(images[:2], nats[:2], goal=82.3) == "too few points"
