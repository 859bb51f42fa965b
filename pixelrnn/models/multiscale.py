"""Multi-Scale PixelRNN (paper section 3.6, Figure 2 middle, Figure 8).

An unconditional network models an s x s image subsampled from the n x n image; a conditional
network models the n x n image given it. The conditional network is any of the three single-
scale networks whose every layer's input-to-state map is biased by a 1x1 unmasked convolution
of a c x n x n conditioning map (``ModelConfig.condition_channels``); the map comes from an
upsampling network of transposed convolutions applied to the small image.

The small image is the pixel at the top-left of every f x f block (f = n / s), so it is a
function of the large image and the likelihood is exact::

    -log p(x) = -log p_small(x[::f, ::f]) - sum over the sub-pixels NOT in x[::f, ::f] of
                 log p_large(x_i | x_<i, x[::f, ::f])

Positions fixed by the small image are not predicted a second time; sampling copies them.
NLL is reported over all n x n x C dimensions, so it compares directly with single-scale
models. Deviation: the paper does not say how the small image is obtained; subsampling (rather
than averaging) is what makes the factorisation above exact.
"""

from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass

import torch
from torch import nn

from ..config import ConfigError, ModelConfig
from .base import PixelModel, bits_per_dim, subpixel_nll


@dataclass(frozen=True)
class MultiScaleConfig:
    small: ModelConfig
    large: ModelConfig
    factor: int = 2
    arch: str = "multiscale"

    def __post_init__(self) -> None:
        if self.arch != "multiscale":
            raise ConfigError(f"a multi-scale configuration has arch 'multiscale', not {self.arch!r}")
        if not isinstance(self.factor, int) or self.factor < 2 or self.factor & (self.factor - 1):
            raise ConfigError(f"factor={self.factor!r} is invalid; the subsampling factor must be a power of two >= 2")
        if (self.small.channels, self.small.levels) != (self.large.channels, self.large.levels):
            raise ConfigError("the small and large networks must model the same channels and levels")
        if self.small.condition_channels:
            raise ConfigError("the small (unconditional) network takes no condition: drop small.condition_channels")
        if not self.large.condition_channels:
            raise ConfigError("the large (conditional) network needs condition_channels >= 1 (the c of section 3.6)")

    channels = property(lambda self: self.large.channels)
    levels = property(lambda self: self.large.levels)

    def to_dict(self) -> dict:
        return {"arch": self.arch, "factor": self.factor, "small": self.small.to_dict(), "large": self.large.to_dict()}

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)

    KEYS = ("arch", "factor", "small", "large")

    @classmethod
    def check_keys(cls, values: dict) -> None:
        """Only multi-scale keys, and a section for each stage (one-line errors)."""
        unknown = sorted(set(values) - set(cls.KEYS))
        if unknown:
            raise ConfigError(f"unknown key(s) model.{', model.'.join(unknown)} for a multi-scale model; known: {', '.join(cls.KEYS)}")
        for stage in ("small", "large"):
            if not isinstance(values.get(stage), dict):
                raise ConfigError(f"a multi-scale model needs a [model.{stage}] section")

    @classmethod
    def from_dict(cls, values: dict) -> "MultiScaleConfig":
        cls.check_keys(values)
        return cls(small=ModelConfig.from_dict(values["small"]), large=ModelConfig.from_dict(values["large"]),
                   factor=values.get("factor", 2), arch=values.get("arch", "multiscale"))


class Upsampler(nn.Module):
    """Small image (B, C, s, s), scaled -> conditioning map (B, c, f*s, f*s).

    log2(f) transposed convolutions (kernel 4, stride 2), each followed by a ReLU, then a 3x3
    convolution. Unmasked: the whole small image is given.
    """

    def __init__(self, channels: int, maps: int, factor: int):
        super().__init__()
        layers: list[nn.Module] = []
        previous = channels
        for _ in range(int(math.log2(factor))):
            layers += [nn.ConvTranspose2d(previous, maps, 4, stride=2, padding=1), nn.ReLU()]
            previous = maps
        layers.append(nn.Conv2d(maps, maps, 3, padding=1))
        self.net = nn.Sequential(*layers)

    def forward(self, small: torch.Tensor) -> torch.Tensor:
        return self.net(small)


class MultiScalePixelRNN(nn.Module):
    """p(x) = p_small(x_small) p_large(x | x_small); ``forward`` returns nats per image (B,)."""

    def __init__(self, config: MultiScaleConfig):
        super().__init__()
        from . import model_from_config

        self.config = config
        self.small: PixelModel = model_from_config(config.small)
        self.large: PixelModel = model_from_config(config.large)
        self.upsample = Upsampler(config.channels, config.large.condition_channels, config.factor)

    dtype = property(lambda self: self.large.dtype)
    device = property(lambda self: self.large.device)

    def check_input(self, x: torch.Tensor) -> None:
        self.large.check_input(x)

    def subsample(self, x: torch.Tensor) -> torch.Tensor:
        """The small image: the top-left pixel of every f x f block, (B, C, ceil(H/f), ceil(W/f))."""
        return x[:, :, :: self.config.factor, :: self.config.factor]

    def fixed_positions(self, height: int, width: int) -> torch.Tensor:
        """(H, W) bool: the positions the small image already fixes."""
        rows = torch.arange(height, device=self.device) % self.config.factor == 0
        cols = torch.arange(width, device=self.device) % self.config.factor == 0
        return rows[:, None] & cols[None, :]

    def condition(self, small: torch.Tensor, height: int, width: int) -> torch.Tensor:
        """Conditioning map (B, c, H, W) from the integer small image."""
        return self.upsample(self.small.scale(small))[:, :, :height, :width]

    def conditional_logits(self, x: torch.Tensor) -> torch.Tensor:
        """Logits (B, C, K, H, W) of the large image given its own subsample."""
        _, _, height, width = x.shape
        return self.large.logits_from_scaled(self.large.scale(x), self.condition(self.subsample(x), height, width))

    def conditional_nll(self, x: torch.Tensor) -> torch.Tensor:
        """-log p_large(x | x_small), summed over the sub-pixels the small image does not fix: (B,)."""
        per_subpixel = subpixel_nll(self.conditional_logits(x), x)  # (B, C, H, W)
        free = ~self.fixed_positions(x.shape[2], x.shape[3])
        return (per_subpixel * free).flatten(1).sum(1)

    def nll(self, x: torch.Tensor) -> torch.Tensor:
        """Nats per image (B,) over all H*W*C dimensions."""
        self.check_input(x)
        return self.small.nll(self.subsample(x)) + self.conditional_nll(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.nll(x)

    def bits_per_dim(self, x: torch.Tensor) -> torch.Tensor:
        return bits_per_dim(self.nll(x), x[0].numel())

    @torch.no_grad()
    def sample(self, n: int, height: int, width: int, **options) -> torch.Tensor:
        """Sample the small image, then the large one around its fixed pixels (Figure 8)."""
        return self.sample_stages(n, height, width, **options)[1]

    @torch.no_grad()
    def sample_stages(self, n: int, height: int, width: int, **options) -> tuple[torch.Tensor, torch.Tensor]:
        """(small, large) samples, for showing both stages side by side."""
        factor = self.config.factor
        small = self.small.sample(n, -(-height // factor), -(-width // factor), **options)
        large = torch.zeros(n, self.config.channels, height, width, dtype=torch.long, device=self.device)
        return small, self._fill_large(large, small, keep_rows=0, **options)

    @torch.no_grad()
    def complete(self, images: torch.Tensor, keep_rows: int, **options) -> torch.Tensor:
        """Keep the top rows; the small image's unknown pixels are sampled first, then the rest."""
        self.check_input(images)
        images = images.to(self.device, torch.long).clone()
        small = self.small.complete(self.subsample(images), -(-keep_rows // self.config.factor), **options)
        return self._fill_large(images, small, keep_rows, **options)

    def _fill_large(self, images: torch.Tensor, small: torch.Tensor, keep_rows: int, **options) -> torch.Tensor:
        """The conditional stage: ``small`` copied into its fixed pixels, the top ``keep_rows`` kept, the rest sampled."""
        factor = self.config.factor
        height, width = images.shape[2:]
        images[:, :, ::factor, ::factor] = small
        known = self.fixed_positions(height, width).expand_as(images).clone()
        known[:, :, :keep_rows] = True
        return self.large.fill(images, known, condition=self.condition(small, height, width), **options)


def config_from_dict(values: dict) -> ModelConfig | MultiScaleConfig:
    return MultiScaleConfig.from_dict(values) if values.get("arch") == "multiscale" else ModelConfig.from_dict(values)


def config_from_json(text: str) -> ModelConfig | MultiScaleConfig:
    return config_from_dict(json.loads(text))
