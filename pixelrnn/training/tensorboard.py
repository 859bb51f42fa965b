"""Optional TensorBoard logging of a run (``train.tensorboard = true``, extra ``[tensorboard]``).

Written to ``RUN_DIR/tensorboard``: bits/dim of the training batches and of each validation
(the paper's unit, section 5.1), the learning rate and images/s, and a grid of samples drawn at
each validation (sampling as in section 2, with a generator of its own, so that the run's random
state, and with it exact resume, is the same with TensorBoard on or off). ``metrics.jsonl``
stays the record of the run; this is a view of it.
"""

from __future__ import annotations

from pathlib import Path

import torch

from ..errors import TrainingError
from ..images import grid_array
from ..sampling import sample

SAMPLES = 16  # images in the grid drawn at each validation
SAMPLE_SEED = 0  # the same noise at every validation, so that the grids show the model changing


class TensorBoardLog:
    """A SummaryWriter in ``folder``; scalars and sample grids by step."""

    def __init__(self, folder: str | Path):
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:
            raise TrainingError('train.tensorboard needs the tensorboard package: pip install "pixelrnn[tensorboard]"') from None
        self.writer = SummaryWriter(str(folder))

    def scalars(self, step: int, values: dict[str, float]) -> None:
        for tag, value in values.items():
            self.writer.add_scalar(tag, value, step)

    def samples(self, step: int, model, height: int, width: int) -> torch.Tensor:
        """Draw SAMPLES images from ``model`` and add them as one grid; returns them (N, C, H, W)."""
        was_training = model.training
        model.eval()
        try:
            generator = torch.Generator(device=model.device).manual_seed(SAMPLE_SEED)
            images = sample(model, SAMPLES, height, width, generator=generator)
        finally:
            model.train(was_training)
        self.writer.add_image("samples", grid_array(images, model.config.levels), step, dataformats="HWC")
        return images

    def close(self) -> None:
        self.writer.close()
