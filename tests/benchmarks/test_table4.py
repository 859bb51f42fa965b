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
