"""Negative log-likelihood of a dataset in the paper's units (section 5.1).

Nats per image (MNIST tables) and bits per dimension, normalised by H*W*C (CIFAR-10 and
ImageNet tables), each with the standard error of the mean over images. Averages are over
images, never over batches, so a short last batch weighs what its images weigh.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from tqdm import tqdm

from .utils import bits_per_dim


def nats_by_batch(model, images: np.ndarray | torch.Tensor, *, batch_size: int = 64, device=None, labels=None):
    """Yield the nats of ``images`` (N, C, H, W) batch by batch, float64 (B,) on the CPU; with ``labels`` (N,),
    the conditional nats -log p(x | label) of a class-conditional model.

    The model is in eval mode while this runs and goes back to its mode after, also when the
    caller stops early (training stops a validation on a signal).
    """
    device = torch.device(device) if device is not None else model.device
    was_training = model.training
    model.eval()
    try:
        for start in range(0, len(images), batch_size):
            batch = images[start : start + batch_size]
            # A numpy batch is copied on its own: a memory-mapped split is never read whole.
            batch = (batch if isinstance(batch, torch.Tensor) else torch.from_numpy(_integers(np.array(batch)))).to(device).long()
            classes = None
            if labels is not None:
                classes = torch.as_tensor(np.asarray(labels[start : start + batch_size], dtype=np.int64)).to(device)
            with torch.no_grad():
                nats = (model.nll(batch) if classes is None else model.nll(batch, classes)).double().cpu()
            yield nats
    finally:
        model.train(was_training)


def _integers(batch: np.ndarray) -> np.ndarray:
    """uint8 as it is; other integers (uint16 codes) as int64, which torch reads."""
    return batch if batch.dtype == np.uint8 else batch.astype(np.int64)


def nll_per_image(model, images: np.ndarray | torch.Tensor, *, batch_size: int = 64, device=None,
                  progress: bool = False, description: str = "evaluate", labels=None) -> np.ndarray:
    """Nats of every image, float64 (N,). ``images`` are integers (N, C, H, W); ``labels`` (N,) their classes, for a
    class-conditional model."""
    results = []
    with tqdm(total=len(images), desc=description, disable=not progress, leave=False, unit="image") as bar:
        for nats in nats_by_batch(model, images, batch_size=batch_size, device=device, labels=labels):
            results.append(nats)
            bar.update(len(nats))
    return torch.cat(results).numpy() if results else np.zeros(0)


def summarize(nats: np.ndarray, dims: int) -> dict:
    """Mean and standard error, in nats per image and bits per dimension."""
    count = len(nats)
    mean = float(np.mean(nats)) if count else float("nan")
    stderr = float(np.std(nats, ddof=1) / math.sqrt(count)) if count > 1 else float("nan")
    to_bits = bits_per_dim(1.0, dims)
    return {
        "images": count,
        "dims": dims,
        "nats_per_image": mean,
        "nats_per_image_stderr": stderr,
        "bits_per_dim": mean * to_bits,
        "bits_per_dim_stderr": stderr * to_bits,
    }


def evaluate_images(model, images, *, batch_size: int = 64, device=None, progress: bool = False,
                    description: str = "evaluate", labels=None) -> dict:
    nats = nll_per_image(model, images, batch_size=batch_size, device=device, progress=progress, description=description,
                         labels=labels)
    return summarize(nats, int(np.prod(images.shape[1:])))
