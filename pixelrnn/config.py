"""Model configuration: frozen dataclasses that rebuild any network of the library.

:class:`ModelConfig` describes one of the three networks of section 3 (PixelCNN, Row LSTM,
Diagonal BiLSTM); :class:`MultiScaleConfig` pairs two of them as the Multi-Scale PixelRNN of
section 3.6. Both serialise to JSON, which checkpoints carry beside the weights.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass

from .errors import ConfigError

ARCHITECTURES = ("pixelcnn", "row_lstm", "diagonal_bilstm")
# The least value of each integer field of ModelConfig (kernel sizes: odd, >= 1).
MODEL_MINIMUMS = {"channels": 1, "levels": 2, "hidden": 1, "layers": 1, "output_hidden": 1, "output_layers": 0, "condition_channels": 0,
                  "classes": 0}
KERNELS = ("input_kernel", "conv_kernel", "row_kernel")


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
    classes: K of a class-conditional network p(x | y), y in [0, K): a learned vector per class
        is added to every layer's input-to-state map and to every layer of the output stack
        (Conditional PixelCNN, van den Oord et al. 2016, eq. 4); 0 for an unconditional network,
        whose saved configuration then has no ``classes`` key (the format of earlier releases).
    class_names: the name of each class (e.g. the dataset's sub-folders), empty or ``classes`` long;
        ``sample --class NAME`` looks names up here.
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
    classes: int = 0
    class_names: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.arch not in ARCHITECTURES:
            raise ConfigError(f"unknown architecture {self.arch!r}; choose one of {', '.join(ARCHITECTURES)}")
        for name, least in MODEL_MINIMUMS.items():
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < least:
                raise ConfigError(f"{name}={value!r} is invalid; it must be an integer >= {least}")
        for name in KERNELS:
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1 or value % 2 == 0:
                raise ConfigError(f"{name}={value!r} is invalid; masked kernels need an odd size >= 1")
        for name in ("residual", "skip"):
            if not isinstance(getattr(self, name), bool):
                raise ConfigError(f"{name}={getattr(self, name)!r} is invalid; it must be true or false")
        if isinstance(self.class_names, list):  # from JSON
            object.__setattr__(self, "class_names", tuple(self.class_names))
        if not isinstance(self.class_names, tuple) or not all(isinstance(name, str) and name for name in self.class_names):
            raise ConfigError(f"class_names={self.class_names!r} is invalid; it must be a list of non-empty names")
        if self.class_names and len(self.class_names) != self.classes:
            raise ConfigError(f"class_names has {len(self.class_names)} names for classes={self.classes}; give one name per class")
        if len(set(self.class_names)) != len(self.class_names):
            raise ConfigError("class_names must be distinct")
        if self.hidden < self.channels or self.output_hidden < self.channels:
            raise ConfigError(
                f"hidden={self.hidden} and output_hidden={self.output_hidden} must be at least channels={self.channels} "
                "so that every colour group has feature maps"
            )

    def to_dict(self) -> dict:
        values = dataclasses.asdict(self)
        values["class_names"] = list(self.class_names)
        if not self.classes:  # unconditional: the configuration (and the codec's fingerprint) of earlier releases
            del values["classes"]
        if not self.class_names:
            del values["class_names"]
        return values

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)

    @classmethod
    def from_dict(cls, values: dict) -> "ModelConfig":
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = [key if key.isprintable() else repr(key) for key in sorted(set(values) - known)]
        if unknown:
            raise ConfigError(f"unknown model option(s) {', '.join(unknown)}; known options: {', '.join(sorted(known))}")
        required = [f.name for f in dataclasses.fields(cls) if f.default is dataclasses.MISSING and f.name not in values]
        if required:
            raise ConfigError(f"model option(s) {', '.join(required)} missing; set them (e.g. model.{required[0]}=...) or use a preset")
        return cls(**values)

    @classmethod
    def from_json(cls, text: str) -> "ModelConfig":
        return cls.from_dict(json.loads(text))


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
        if self.small.classes != self.large.classes:
            raise ConfigError(f"both stages take the same classes; got small.classes={self.small.classes}, "
                              f"large.classes={self.large.classes}")

    channels = property(lambda self: self.large.channels)
    levels = property(lambda self: self.large.levels)
    classes = property(lambda self: self.large.classes)
    class_names = property(lambda self: self.large.class_names)

    def to_dict(self) -> dict:
        return {"arch": self.arch, "factor": self.factor, "small": self.small.to_dict(), "large": self.large.to_dict()}

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)

    KEYS = ("arch", "factor", "small", "large")

    @classmethod
    def check_keys(cls, values: dict) -> None:
        """Only multi-scale keys, and a section for each stage (one-line errors)."""
        unknown = [key if key.isprintable() else repr(key) for key in sorted(set(values) - set(cls.KEYS))]
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


def default_output_hidden(channels: int, hidden) -> int:
    """The output stack's width when neither the config nor a preset gives it: 32 for one channel (the paper's MNIST),
    8h for colour, at least 32 and at most the paper's 1024 (its CIFAR-10 networks have h = 128: 8h = 1024), so that
    a small colour network is not mostly output stack."""
    if channels == 1 or not isinstance(hidden, int):
        return 32 if channels == 1 else 1024
    return max(32, min(1024, 8 * hidden))


def config_from_dict(values: dict) -> ModelConfig | MultiScaleConfig:
    if not isinstance(values, dict):
        raise ConfigError(f"a model configuration is a mapping of options, not a {type(values).__name__}")
    return MultiScaleConfig.from_dict(values) if values.get("arch") == "multiscale" else ModelConfig.from_dict(values)


def config_from_json(text: str) -> ModelConfig | MultiScaleConfig:
    return config_from_dict(json.loads(text))
