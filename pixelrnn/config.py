"""Model configuration: one frozen dataclass that rebuilds any network of the library."""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass

ARCHITECTURES = ("pixelcnn", "row_lstm", "diagonal_bilstm")


class ConfigError(ValueError):
    """A configuration value that no model accepts; the message names it and what is allowed."""


@dataclass(frozen=True)
class ModelConfig:
    """Everything needed to rebuild a single-scale network.

    arch: ``pixelcnn`` | ``row_lstm`` | ``diagonal_bilstm``.
    channels: image channels (1 grey/binary, 3 RGB); also the number of colour groups.
    levels: discrete values per sub-pixel (2 for binarized MNIST, 256 for 8-bit images).
    hidden: h of the paper; the residual stream has 2h maps.
    layers: number of residual blocks (LSTM layers or 3x3 convolution blocks).
    residual / skip: residual connections and learnable layer-to-output skip connections.
    input_kernel: size of the first, mask-A convolution (7 in the paper).
    conv_kernel: PixelCNN mask-B kernel (3x3 in the paper).
    row_kernel: Row LSTM input-to-state and state-to-state kernel width k (1 x k, k = 3).
    output_hidden / output_layers: the ReLU + 1x1 mask-B output stack (1024 maps for colour
        images, 32 for MNIST in the paper; two layers), followed by the logits layer.
    condition_channels: c of the conditioning map of a multi-scale network's conditional
        stage (section 3.6); 0 for an unconditional network.
    """

    arch: str
    channels: int
    levels: int
    hidden: int
    layers: int
    residual: bool = True
    skip: bool = True
    input_kernel: int = 7
    conv_kernel: int = 3
    row_kernel: int = 3
    output_hidden: int = 1024
    output_layers: int = 2
    condition_channels: int = 0

    def __post_init__(self) -> None:
        if self.arch not in ARCHITECTURES:
            raise ConfigError(f"unknown architecture {self.arch!r}; choose one of {', '.join(ARCHITECTURES)}")
        positive = {"channels": 1, "levels": 2, "hidden": 1, "layers": 1, "output_hidden": 1, "output_layers": 0, "condition_channels": 0}
        for name, least in positive.items():
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < least:
                raise ConfigError(f"{name}={value!r} is invalid; it must be an integer >= {least}")
        for name in ("input_kernel", "conv_kernel", "row_kernel"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1 or value % 2 == 0:
                raise ConfigError(f"{name}={value!r} is invalid; masked kernels need an odd size >= 1")
        for name in ("residual", "skip"):
            if not isinstance(getattr(self, name), bool):
                raise ConfigError(f"{name}={getattr(self, name)!r} is invalid; it must be true or false")
        if self.hidden < self.channels or self.output_hidden < self.channels:
            raise ConfigError(
                f"hidden={self.hidden} and output_hidden={self.output_hidden} must be at least channels={self.channels} "
                "so that every colour group has feature maps"
            )

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)

    @classmethod
    def from_dict(cls, values: dict) -> "ModelConfig":
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ConfigError(f"unknown model option(s) {', '.join(unknown)}; known options: {', '.join(sorted(known))}")
        required = [f.name for f in dataclasses.fields(cls) if f.default is dataclasses.MISSING and f.name not in values]
        if required:
            raise ConfigError(f"model option(s) {', '.join(required)} missing; set them (e.g. model.{required[0]}=...) or use a preset")
        return cls(**values)

    @classmethod
    def from_json(cls, text: str) -> "ModelConfig":
        return cls.from_dict(json.loads(text))
