"""Dependency maps of a model's outputs on its inputs, from exact Jacobians."""

from __future__ import annotations

import torch


def dependency_map(model, images: torch.Tensor, seed: int = 0, label: int | None = None) -> torch.Tensor:
    """Boolean (C, H, W, C, H, W): does any logit of sub-pixel (c, i, j) move with input (c', i', j')?

    Every output sub-pixel gets its own copy of the image in one batch (items are independent,
    which tests/test_networks.py checks separately), its K logits are projected on a random
    vector, and one backward pass gives every row of the Jacobian. Exact zeros stay exact.
    ``label``: the class of every copy, for a class-conditional model.
    """
    channels, height, width = images.shape
    levels = model.config.levels
    count = channels * height * width
    scaled = model.scale(images.unsqueeze(0).expand(count, -1, -1, -1)).clone().requires_grad_(True)
    given = {} if label is None else {"labels": torch.full((count,), label)}
    logits = model.logits_from_scaled(scaled, **given)  # (N, C, K, H, W)
    generator = torch.Generator().manual_seed(seed)
    projection = torch.randn(levels, generator=generator, dtype=logits.dtype)
    item = torch.arange(count)
    c, i, j = item // (height * width), (item // width) % height, item % width
    selected = logits[item, c, :, i, j]  # (N, K)
    (selected @ projection).sum().backward()
    return (scaled.grad != 0).reshape(channels, height, width, channels, height, width)


def union_dependency_map(model, channels, height, width, inputs=4, seed=0) -> torch.Tensor:
    """Dependencies seen at any of several random inputs (a ReLU can hide one at a single input)."""
    generator = torch.Generator().manual_seed(seed)
    total = None
    for k in range(inputs):
        images = torch.randint(0, model.config.levels, (channels, height, width), generator=generator)
        found = dependency_map(model, images, seed=seed + k)
        total = found if total is None else total | found
    return total


def earlier_mask(channels: int, height: int, width: int) -> torch.Tensor:
    """Boolean (C, H, W, C, H, W): input (c', i', j') precedes output (c, i, j) in raster order."""
    c, i, j = torch.meshgrid(torch.arange(channels), torch.arange(height), torch.arange(width), indexing="ij")
    order = (i * width + j) * channels + c  # position of each sub-pixel in the sampling order
    return order.reshape(channels, height, width, 1, 1, 1) > order.reshape(1, 1, 1, channels, height, width)
