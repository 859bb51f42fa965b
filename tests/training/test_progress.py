"""What a run shows: the windowed mean of the loss, a bar on a terminal, plain lines in a log."""

import io
import math

import pytest

from pixelrnn.training.progress import TrainingProgress, WindowedMean


class Terminal(io.StringIO):
    def isatty(self):
        return True


class Clock:
    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now


def test_windowed_mean_forgets_old_values():
    mean = WindowedMean(3)
    assert math.isnan(mean.mean)
    for value in (400.0, 300.0, 100.0, 110.0, 120.0):
        mean.add(value)
    assert mean.mean == pytest.approx(110.0)  # the first losses of a run no longer weigh on it


def test_a_log_file_gets_plain_periodic_lines():
    stream, clock = io.StringIO(), Clock()
    progress = TrainingProgress(total=50, initial=0, dims=10, stream=stream, every_seconds=30.0, window=4, clock=clock)
    assert progress.bar is None
    for step in range(1, 51):
        clock.now = step  # one second a step: lines at step 1, then every 30 s, and at the last step
        progress.step(step, nats=float(step), images_per_second=16.0)
    progress.validated({"step": 50, "nats": 7.0, "bits_per_dim": 1.0, "images": 12})
    progress.close()
    lines = stream.getvalue().splitlines()
    assert "\r" not in stream.getvalue()
    assert [line.split(":")[0] for line in lines] == ["step 1/50", "step 31/50", "step 50/50", "step 50/50"]
    assert "train 48.500 nats/image" in lines[2] and "mean of the last 4 steps" in lines[2] and "16 images/s" in lines[2]
    assert "valid 7.000 nats/image, 1.0000 bits/dim (12 images)" in lines[3]


def test_a_terminal_gets_a_bar_with_the_windowed_mean():
    stream = Terminal()
    progress = TrainingProgress(total=5, initial=0, dims=10, stream=stream, window=2)
    for step, nats in enumerate((400.0, 300.0, 120.0), start=1):
        progress.step(step, nats, images_per_second=8.0)
    progress.close()
    shown = stream.getvalue()
    assert "\r" in shown and "nats=210.00" in shown  # (300 + 120) / 2, not a running average started at 400


def test_nothing_is_shown_when_disabled():
    stream = Terminal()
    progress = TrainingProgress(total=5, initial=0, dims=10, stream=stream, enabled=False)
    progress.step(1, 3.0, 1.0)
    progress.validated({"step": 1, "nats": 1.0, "bits_per_dim": 1.0, "images": 1})
    with progress.validation(10) as bar:
        bar.update(10)
    progress.close()
    assert stream.getvalue() == ""
