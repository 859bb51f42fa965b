"""benchmarks/conditional_comparison.py: the paired difference, the per-class agreement, and a tiny run end to end."""

import argparse
import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))

from conditional_comparison import DATASETS, agreement, compare, paired_difference  # noqa: E402


def test_the_difference_is_paired_over_the_same_images():
    nats_u = np.array([80.0, 120.0, 95.0, 101.0])
    gain, stderr = paired_difference(nats_u, nats_u - np.array([2.0, 2.0, 2.0, 2.0]))
    assert gain == pytest.approx(2.0) and stderr == pytest.approx(0.0)  # the images' own spread cancels
    gain, stderr = paired_difference([10.0, 12.0, 14.0], [9.0, 12.0, 12.0])
    assert gain == pytest.approx(1.0) and stderr == pytest.approx(np.std([1.0, 0.0, 2.0], ddof=1) / np.sqrt(3))


def test_agreement_is_the_fraction_of_each_requested_class_put_in_it():
    requested = np.array([0, 0, 0, 0, 1, 1, 2, 2])
    predicted = np.array([0, 0, 1, 2, 1, 1, 0, 1])
    assert agreement(predicted, requested, 4)[:3] == [0.5, 1.0, 0.0]
    assert np.isnan(agreement(predicted, requested, 4)[3])  # nothing was drawn for class 3


def test_a_tiny_run_reports_both_networks_on_the_same_test_images():
    args = argparse.Namespace(dataset="digits", arch="pixelcnn", steps=4, hidden=4, layers=1, ema=0.995, per_class=2, test_images=30,
                              threads=1, seed=0)
    result = compare(args)
    unconditional, conditional = result["unconditional"], result["conditional"]
    assert unconditional["images"] == conditional["images"] == 30
    assert result["difference"][0] == pytest.approx(unconditional["nats_per_image"] - conditional["nats_per_image"])
    assert len(result["recognised"]) == 10 and all(0.0 <= r <= 1.0 for r in result["recognised"])
    assert all(speed > 0 for speed in result["speed"]) and 0.5 < result["real_accuracy"] <= 1.0
    assert set(DATASETS) == {"digits", "mnist", "cifar10_subset"}
