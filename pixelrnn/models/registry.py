"""The one registry of architectures: name -> model class (sections 3 and 3.6).

Each model class enters under its architecture name with :func:`register`, where it is defined;
the package's face imports every model module, so the registry is complete before anything is
built from it. The registry imports no model module, which lets the shared base (and the
save/load methods it inherits) build a model by name without an import cycle.
"""

from __future__ import annotations

from ..config import ARCHITECTURES, ModelConfig, MultiScaleConfig

MULTISCALE = "multiscale"
KNOWN = (*ARCHITECTURES, MULTISCALE)  # the ``arch`` values a configuration can hold

MODELS: dict[str, type] = {}


def register(arch: str):
    """Class decorator: the class builds configurations whose ``arch`` is ``arch``."""
    if arch not in KNOWN:
        raise ValueError(f"cannot register {arch!r}: the configuration knows only {', '.join(KNOWN)}")

    def enter(cls: type) -> type:
        MODELS[arch] = cls
        return cls

    return enter


def model_class(arch: str) -> type:
    return MODELS[arch]


def model_from_config(config: ModelConfig | MultiScaleConfig):
    """The network (or multi-scale pair) a configuration describes, freshly initialised."""
    return MODELS[config.arch](config)


def network_from_config(config: ModelConfig):
    """A single-scale network (one stage of a multi-scale model)."""
    if config.arch not in ARCHITECTURES:
        raise ValueError(f"a single-scale network has arch {' | '.join(ARCHITECTURES)}, not {config.arch!r}")
    return model_from_config(config)
