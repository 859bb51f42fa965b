"""The probabilistic base shared by every network (paper sections 2 and 3.4, Table 1).

p(x) = prod_i p(x_i,R | x_<i) p(x_i,G | x_<i, x_i,R) p(x_i,B | x_<i, x_i,R, x_i,G)   (eq. 1-2)

Each factor is a softmax over ``levels`` discrete values. A network is:

    x (B, C, H, W) integers  --scale to [-1, 1]-->  7x7 mask-A conv (C -> 2h)
      --> residual blocks (2h -> 2h), each optionally feeding a learnable 1x1 mask-B skip
      --> output stack: [ReLU, 1x1 mask-B conv] x output_layers, ReLU, 1x1 mask-B conv to C*K
      --> logits (B, C, K, H, W), channel c's K logits from colour group c only.

Subclasses provide the residual blocks; this class owns scaling, the output stack, ``nll``,
``sample`` and ``complete``.
"""

from __future__ import annotations

import contextlib
import math

import torch
import torch.nn.functional as F
from torch import nn

from ..config import ModelConfig
from ..layers.masked_conv import MaskedConv2d, channel_groups


def bits_per_dim(nats_per_image: torch.Tensor | float, dims: int) -> torch.Tensor | float:
    """Convert a negative log-likelihood in nats per image to bits per sub-pixel (H*W*C dims)."""
    return nats_per_image / (dims * math.log(2.0))


def subpixel_nll(logits: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """Nats of every sub-pixel (B, C, H, W) from logits (B, C, K, H, W) and integers x (B, C, H, W)."""
    if logits.dtype not in (torch.float32, torch.float64):  # half-precision logits: the softmax in float32
        logits = logits.float()
    return F.cross_entropy(logits.transpose(1, 2), x.long(), reduction="none")


def nll_from_logits(logits: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """Nats per image (B,) from logits (B, C, K, H, W) and the observed integers x (B, C, H, W)."""
    return subpixel_nll(logits, x).flatten(1).sum(1)


class OutputStack(nn.Module):
    """ReLU + 1x1 mask-B convolutions, then C*K logits grouped by colour (Table 1)."""

    def __init__(self, in_channels: int, width: int, layers: int, image_channels: int, levels: int):
        super().__init__()
        convs = []
        previous = in_channels
        for _ in range(layers):
            convs.append(MaskedConv2d(previous, width, 1, "B", channel_groups(previous, image_channels), channel_groups(width, image_channels)))
            previous = width
        # Logit channel c*K + k belongs to colour group c: contiguous groups of K.
        convs.append(MaskedConv2d(previous, image_channels * levels, 1, "B", channel_groups(previous, image_channels), channel_groups(image_channels * levels, image_channels)))
        self.convs = nn.ModuleList(convs)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for conv in self.convs:
            x = conv(F.relu(x))
        return x


class PixelModel(nn.Module):
    """Base class: an exact-likelihood autoregressive model over discrete sub-pixels."""

    def __init__(self, config: ModelConfig):
        super().__init__()
        self.config = config
        channels, maps = config.channels, 2 * config.hidden
        self.input_conv = MaskedConv2d(
            channels, maps, config.input_kernel, "A", channel_groups(channels, channels), channel_groups(maps, channels)
        )
        self.blocks = nn.ModuleList(self.build_blocks())
        groups = channel_groups(maps, channels)
        self.skips = nn.ModuleList(
            [MaskedConv2d(maps, maps, 1, "B", groups, groups) for _ in self.blocks] if config.skip else []
        )
        self.output_stack = OutputStack(maps, config.output_hidden, config.output_layers, channels, config.levels)
        # Multi-scale conditioning (section 3.6): per layer, a 1x1 unmasked map from the c-channel
        # conditioning map to a bias of that layer's input-to-state map. Unmasked: the condition
        # is given, not generated, so any position of it may be seen.
        self.condition_maps = nn.ModuleList(
            [nn.Conv2d(config.condition_channels, block.condition_width, 1) for block in self.blocks]
            if config.condition_channels else []
        )

    def build_blocks(self) -> list[nn.Module]:
        raise NotImplementedError

    # ----------------------------------------------------------------- forward pass
    @property
    def dtype(self) -> torch.dtype:
        return self.input_conv.weight.dtype

    @property
    def device(self) -> torch.device:
        return self.input_conv.weight.device

    def scale(self, x: torch.Tensor) -> torch.Tensor:
        """Integers in [0, K) to floats in [-1, 1] (the paper's 'scaling and centring')."""
        return x.to(self.dtype) * (2.0 / (self.config.levels - 1)) - 1.0

    def check_input(self, x: torch.Tensor) -> None:
        cfg = self.config
        if x.dim() != 4 or x.shape[1] != cfg.channels:
            raise ValueError(f"expected images of shape (batch, {cfg.channels}, height, width); got {tuple(x.shape)}")
        if x.dtype.is_floating_point or x.dtype == torch.bool:
            raise ValueError(f"expected an integer tensor of values in [0, {cfg.levels}); got dtype {x.dtype}")
        if x.numel() and (int(x.min()) < 0 or int(x.max()) >= cfg.levels):
            raise ValueError(f"pixel values must lie in [0, {cfg.levels}); got min {int(x.min())}, max {int(x.max())}")

    def features(self, scaled: torch.Tensor, condition: torch.Tensor | None = None) -> torch.Tensor:
        """Input conv and residual blocks, summed through the skip connections: (B, 2h, H, W)."""
        if (condition is None) != (not self.config.condition_channels):
            raise ValueError(f"this network takes a {self.config.condition_channels}-channel condition map" if condition is None
                             else "this network is unconditional; it takes no condition map")
        y = self.input_conv(scaled)
        skip_sum = None
        for index, block in enumerate(self.blocks):
            y = block(y) if condition is None else block(y, self.condition_maps[index](condition))
            if self.config.skip:
                contribution = self.skips[index](y)
                skip_sum = contribution if skip_sum is None else skip_sum + contribution
        return skip_sum if self.config.skip else y

    def logits_from_scaled(self, scaled: torch.Tensor, condition: torch.Tensor | None = None) -> torch.Tensor:
        """Logits (B, C, K, H, W) from already scaled inputs; differentiable in the input.

        ``condition`` (B, c, H, W) is the conditioning map of a multi-scale network's
        conditional stage (section 3.6); unconditional networks take none.
        """
        batch, channels, height, width = scaled.shape
        logits = self.output_stack(self.features(scaled, condition))  # (B, C*K, H, W)
        return logits.view(batch, channels, self.config.levels, height, width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits (B, C, K, H, W) of p(x_{c,i,j} = k | earlier sub-pixels) for integer images x."""
        self.check_input(x)
        return self.logits_from_scaled(self.scale(x))

    def nll(self, x: torch.Tensor) -> torch.Tensor:
        """Negative log-likelihood of each image in nats, shape (B,)."""
        return nll_from_logits(self(x), x)

    def bits_per_dim(self, x: torch.Tensor) -> torch.Tensor:
        return bits_per_dim(self.nll(x), x[0].numel())

    # ----------------------------------------------------------------- generation
    @torch.no_grad()
    def sample(
        self,
        n: int,
        height: int,
        width: int,
        *,
        temperature: float = 1.0,
        generator: torch.Generator | None = None,
        naive: bool = False,
        batch_size: int | None = None,
        progress: bool = False,
    ) -> torch.Tensor:
        """Draw ``n`` images (n, C, H, W) sub-pixel by sub-pixel in raster order (R, then G, then B).

        By default the exact incremental engine of :mod:`pixelrnn.incremental` computes each
        conditional; ``naive=True`` reruns the whole network per sub-pixel instead. Both draw
        one uniform per sub-pixel in the same order, so with the same ``generator`` state they
        return the same images. ``batch_size`` splits the ``n`` images into chunks sampled one
        after the other (the draws then follow the chunks: another batch size gives other
        images); ``progress`` shows a bar over rows.
        """
        if n < 1 or height < 1 or width < 1:
            raise ValueError(f"n, height and width must be >= 1; got {n}, {height}, {width}")
        images = torch.zeros(n, self.config.channels, height, width, dtype=torch.long, device=self.device)
        known = torch.zeros_like(images, dtype=torch.bool)
        return self._fill(images, known, temperature, generator, naive=naive, batch_size=batch_size, progress=progress)

    @torch.no_grad()
    def complete(
        self,
        images: torch.Tensor,
        keep_rows: int,
        *,
        temperature: float = 1.0,
        generator: torch.Generator | None = None,
        naive: bool = False,
        batch_size: int | None = None,
        progress: bool = False,
    ) -> torch.Tensor:
        """Keep the top ``keep_rows`` rows of each image and sample the rest (Figures 1 and 9).

        The kept sub-pixels are returned unchanged; the options are those of :meth:`sample`.
        """
        self.check_input(images)
        if not 0 <= keep_rows <= images.shape[2]:
            raise ValueError(f"keep_rows must lie in [0, {images.shape[2]}] for images of height {images.shape[2]}; got {keep_rows}")
        known = torch.zeros_like(images, dtype=torch.bool)
        known[:, :, :keep_rows] = True
        return self._fill(images.to(self.device, torch.long).clone(), known.to(self.device), temperature, generator,
                          naive=naive, batch_size=batch_size, progress=progress)

    @torch.no_grad()
    def fill(self, images: torch.Tensor, known: torch.Tensor, *, condition: torch.Tensor | None = None,
             temperature: float = 1.0, generator: torch.Generator | None = None, naive: bool = False,
             batch_size: int | None = None, progress: bool = False) -> torch.Tensor:
        """Sample every sub-pixel of ``images`` where ``known`` (same shape, bool) is False.

        The general form of ``sample`` and ``complete``: known sub-pixels anywhere are kept and
        conditioned on where they come earlier. ``condition`` is the conditioning map of a
        multi-scale network's conditional stage (section 3.6).
        """
        self.check_input(images)
        return self._fill(images.to(self.device, torch.long).clone(), known.to(self.device), temperature, generator,
                          naive=naive, batch_size=batch_size, progress=progress, condition=condition)

    def _fill(self, images, known, temperature, generator, *, naive=False, batch_size=None, progress=False, condition=None):
        """Sample every unknown sub-pixel of ``images`` in place, chunk by chunk of the batch."""
        if temperature <= 0:
            raise ValueError(f"temperature must be > 0; got {temperature}")
        count, _, height, _ = images.shape
        batch_size = count if batch_size is None else batch_size
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1; got {batch_size}")
        bar = None
        if progress:
            from tqdm.auto import tqdm

            bar = tqdm(total=-(-count // batch_size) * height, unit="row", desc="naive" if naive else "sampling")
        try:
            for start in range(0, count, batch_size):
                part = slice(start, start + batch_size)  # views: the chunk is filled in place
                self._fill_chunk(images[part], known[part], temperature, generator, naive, bar.update if bar is not None else None,
                                 condition=None if condition is None else condition[part])
        finally:
            if bar is not None:
                bar.close()
        return images

    def _fill_chunk(self, images, known, temperature, generator, naive, row_done=None, condition=None):
        """One chunk, in raster order (i, j, c): one uniform drawn per sub-pixel not known in every image.

        naive: one full forward pass per sub-pixel. Otherwise the incremental engine: the same
        conditionals from cached activations, fed every sub-pixel (drawn or known) in order.
        """
        _, channels, height, width = images.shape
        # (C, H, W) Python bools, so that the loop does not wait on the device per sub-pixel.
        known_everywhere = known.all(dim=0).tolist()
        known_somewhere = known.any(dim=0).tolist()
        if naive:
            def conditional(i, j, c):
                return self.logits_from_scaled(self.scale(images), condition)[:, c, :, i, j]

            def feed(i, j, c, values):
                pass

            threads = contextlib.nullcontext()
        else:
            from ..incremental import make_engine

            engine = make_engine(self)
            engine.reset(images.shape[0], height, width, condition=condition)
            conditional, feed, threads = engine.logits, engine.advance, engine.compute_threads()
        with threads:
            for i in range(height):
                for j in range(width):
                    for c in range(channels):
                        if not known_everywhere[c][i][j]:
                            drawn = sample_categorical(conditional(i, j, c), temperature, generator)
                            if known_somewhere[c][i][j]:
                                drawn = torch.where(known[:, c, i, j], images[:, c, i, j], drawn)
                            images[:, c, i, j] = drawn
                            feed(i, j, c, drawn)
                        else:
                            feed(i, j, c, images[:, c, i, j])
                if row_done is not None:
                    row_done(1)
        return images


def sample_categorical(logits: torch.Tensor, temperature: float, generator: torch.Generator | None) -> torch.Tensor:
    """Inverse-CDF draw from softmax(logits / T) with one uniform per row: (N, K) -> (N,).

    One uniform per sub-pixel, drawn in a fixed order, makes two engines that compute the same
    logits draw the same samples from the same seed.
    """
    scaled = logits.double() if temperature == 1.0 else logits.double() / temperature  # x / 1.0 == x: skip the op
    probs = torch.softmax(scaled, dim=-1)
    uniform = torch.rand(probs.shape[0], 1, generator=generator, device=probs.device, dtype=probs.dtype)
    cdf = probs.cumsum(-1)
    return (cdf < uniform).sum(-1).clamp_max(probs.shape[-1] - 1)
