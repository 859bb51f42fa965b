"""What a training run (section 5.2) shows while it runs: a bar on a terminal, plain lines in a log.

On a terminal (stderr is a tty) a tqdm bar shows the step, the training loss as the mean of the
last ``window`` steps (nats/image and bits/dim) and images/s; validation has a bar of its own.
Where stderr is not a terminal (a cluster job's log file), a plain line is printed at the first
step, then at most every ``every_seconds`` and at the last step: no carriage returns. Each
validation prints one line in both cases, naming the EMA weights where the run validates them (they lag
the trained weights early in a run, so a short run validates worse than it trains). Only the process
that prints (rank 0) makes one.
"""

from __future__ import annotations

import math
import sys
import time
from collections import deque

from tqdm import tqdm

from ..utils import bits_per_dim


class WindowedMean:
    """Mean of the last ``size`` values added (all of them while fewer were added)."""

    def __init__(self, size: int):
        self.values: deque[float] = deque(maxlen=size)

    def add(self, value: float) -> None:
        self.values.append(value)

    @property
    def mean(self) -> float:
        return sum(self.values) / len(self.values) if self.values else float("nan")


class TrainingProgress:
    """The bar or the lines of one run from step ``initial`` to ``total``; ``dims`` = C*H*W."""

    def __init__(self, total: int, initial: int, dims: int, *, enabled: bool = True, stream=None,
                 interactive: bool | None = None, every_seconds: float = 30.0, window: int = 100, clock=time.monotonic,
                 ema_decay: float = 0.0):
        self.stream = stream if stream is not None else sys.stderr
        self.enabled = enabled
        self.interactive = self.stream.isatty() if interactive is None else interactive
        self.total, self.dims, self.every_seconds, self.clock = total, dims, every_seconds, clock
        self.ema_decay = ema_decay  # validation scores the EMA weights: its lines say so
        self.loss = WindowedMean(window)
        self.speed = float("nan")
        self.last_line = None
        self.bar = None
        if enabled and self.interactive:
            self.bar = tqdm(total=total, initial=initial, desc="train", unit="step", dynamic_ncols=True, file=self.stream)

    def summary(self, step: int) -> str:
        nats = self.loss.mean
        speed = "" if math.isnan(self.speed) else f", {self.speed:.0f} images/s"  # no figure before the first log step
        return (f"step {step}/{self.total}: train {nats:.3f} nats/image, {bits_per_dim(nats, self.dims):.4f} bits/dim "
                f"(mean of the last {len(self.loss.values)} steps){speed}")

    def step(self, step: int, nats: float, images_per_second: float | None = None) -> None:
        """Step ``step`` is done with loss ``nats``; ``images_per_second`` when a new figure is measured."""
        self.loss.add(nats)
        if images_per_second is not None:
            self.speed = images_per_second
        if not self.enabled:
            return
        if self.bar is not None:
            if images_per_second is not None:
                self.bar.set_postfix(nats=f"{self.loss.mean:.2f}", bpd=f"{bits_per_dim(self.loss.mean, self.dims):.3f}",
                                     img_s=f"{self.speed:.0f}")
            self.bar.update(1)
            return
        now = self.clock()
        if self.last_line is None or now - self.last_line >= self.every_seconds or step == self.total:
            self.last_line = now
            self.write(self.summary(step))

    def validation(self, images: int):
        """A bar over the validation images (a bar that shows nothing where stderr is no terminal)."""
        return tqdm(total=images, desc="valid", unit="image", leave=False, dynamic_ncols=True, file=self.stream,
                    disable=self.bar is None)

    def validated(self, record: dict) -> None:
        weights = f", EMA weights (decay {self.ema_decay}): they lag the trained ones early in a run" if self.ema_decay else ""
        self.write(f"step {record['step']}/{self.total}: valid {record['nats']:.3f} nats/image, "
                   f"{record['bits_per_dim']:.4f} bits/dim ({record['images']} images{weights})")

    def write(self, line: str) -> None:
        if not self.enabled:
            return
        if self.bar is not None:
            self.bar.write(line, file=self.stream)
        else:
            print(line, file=self.stream, flush=True)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
