"""A model's weights in a safetensors file: written, read and loaded without unpickling anything.

A weights file holds the tensors of ``state_dict()``; its metadata holds ``format`` and
``pixelrnn.config`` (the JSON of the model's configuration), so the model rebuilds from the file
alone, plus any string metadata the writer adds (step, dataset, image size). Files are written to
a temporary name and renamed into place.

This is the one reader of model weights: single-file checkpoints (:mod:`pixelrnn.checkpoint`)
and pretrained folders (:mod:`.pretrained`) both load through :func:`load_weights`, so a check
made here holds for both. It sits beside the networks so that their own ``save_pretrained`` and
``from_pretrained`` need nothing from the floors above.

A weights file may come from someone else, so reading one allocates nothing that the file's
metadata merely asks for (see :mod:`pixelrnn.limits`):

1. the safetensors header alone: names, dtypes and shapes, no weights;
2. the configuration's fields and ranges, each integer within the limits;
3. the network built on PyTorch's ``meta`` device (shapes, no memory): its parameter count
   within the limit, and every tensor name and shape it implies equal to the file's;
4. only then the weights.

Every refusal is one :class:`CheckpointError` line naming the field or tensor.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import os
import re
from pathlib import Path

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file

from ..config import ModelConfig, MultiScaleConfig, config_from_json
from ..errors import CheckpointError, ConfigError, PixelRNNError, one_line
from ..limits import check_limit
from ..utils import atomic_write
from .registry import model_from_config

FORMAT = "pixelrnn.checkpoint.v1"
WEIGHT_DTYPES = ("F16", "BF16", "F32", "F64")  # safetensors' names of the floating types
DEPTH_FIELDS = ("layers", "output_layers")

TensorSpec = tuple[str, tuple[int, ...]]  # (safetensors dtype, shape)


def write_weights(model, path: str | os.PathLike, metadata: dict[str, str] | None = None) -> Path:
    """The model's weights, configuration and ``metadata`` (strings) as one safetensors file."""
    tensors = {name: value.detach().contiguous().cpu() for name, value in model.state_dict().items()}
    header = {"format": FORMAT, "pixelrnn.config": model.config.to_json(), **(metadata or {})}
    atomic_write(path, lambda temp: save_file(tensors, temp, metadata=header))
    return Path(path)


@contextlib.contextmanager
def _opened(path: Path):
    """A safetensors handle; a missing, damaged or foreign file is a one-line CheckpointError."""
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} does not exist")
    try:
        with safe_open(str(path), framework="pt") as handle:
            yield handle
    except PixelRNNError:
        raise
    except MemoryError:
        raise CheckpointError(f"{path}: not enough memory to read its tensors") from None
    except (SafetensorError, OSError, ValueError, RuntimeError, TypeError, OverflowError) as error:
        raise CheckpointError(f"{path} is not a readable safetensors checkpoint ({one_line(error)})") from None


def read_safetensors_header(path: str | os.PathLike) -> tuple[dict[str, str], dict[str, TensorSpec]]:
    """Metadata and each tensor's (dtype, shape), without reading any tensor's data."""
    with _opened(Path(path)) as handle:
        specs = {}
        for name in handle.keys():
            view = handle.get_slice(name)
            specs[name] = (view.get_dtype(), tuple(view.get_shape()))
        return handle.metadata() or {}, specs


def read_safetensors(path: str | os.PathLike) -> tuple[dict[str, str], dict[str, torch.Tensor]]:
    """Metadata and tensors of a safetensors file, unchecked (the caller knows what it holds)."""
    with _opened(Path(path)) as handle:
        return handle.metadata() or {}, {key: handle.get_tensor(key) for key in handle.keys()}


def read_metadata(path: str | os.PathLike) -> dict[str, str]:
    """The metadata of a safetensors file, without reading its tensors."""
    return read_safetensors_header(path)[0]


def _stages(config: ModelConfig | MultiScaleConfig) -> list[tuple[str, ModelConfig]]:
    return [("small.", config.small), ("large.", config.large)] if isinstance(config, MultiScaleConfig) else [("", config)]


def _summary(config: ModelConfig | MultiScaleConfig) -> str:
    """The configuration's values that set tensor sizes, for a one-line message."""
    parts = [f"factor={config.factor}"] if isinstance(config, MultiScaleConfig) else []
    for prefix, stage in _stages(config):
        parts += [f"{prefix}{f.name}={getattr(stage, f.name)}" for f in dataclasses.fields(stage)
                  if isinstance(getattr(stage, f.name), int) and not isinstance(getattr(stage, f.name), bool)]
    return ", ".join(parts)


def check_config_limits(config: ModelConfig | MultiScaleConfig, source) -> dict[str, tuple[int, ...]]:
    """The tensor shapes a configuration implies, once its fields and size are within the limits.

    Every integer field first (a width cannot exceed the parameter count it implies, and depth
    is the one thing the ``meta`` build spends time on), then the network on the ``meta`` device.
    """
    for prefix, stage in _stages(config):
        for field in dataclasses.fields(stage):
            value = getattr(stage, field.name)
            if isinstance(value, int) and not isinstance(value, bool):
                kind = "layers" if field.name in DEPTH_FIELDS else "parameters"
                check_limit(kind, value, f"{source}: its configuration's {prefix}{field.name}", CheckpointError)
    if isinstance(config, MultiScaleConfig):
        check_limit("layers", int(math.log2(config.factor)), f"{source}: its configuration's log2(factor)", CheckpointError)
    with torch.device("meta"):
        shapes = {name: tuple(tensor.shape) for name, tensor in model_from_config(config).state_dict().items()}
    check_limit("parameters", sum(math.prod(shape) for shape in shapes.values()),
                f"{source}: its configuration ({_summary(config)}) asks for a network whose size", CheckpointError)
    return shapes


def check_tensors_match(config, implied: dict[str, tuple[int, ...]], found: dict[str, TensorSpec], source) -> None:
    """The file's tensors are exactly those the configuration implies: names, shapes, floating dtypes."""
    missing = sorted(set(implied) - set(found))
    if missing:
        raise CheckpointError(f"{source}: tensor {missing[0]!r} of its configuration ({_summary(config)}) is not in the file "
                              f"({len(missing)} missing)")
    unexpected = sorted(set(found) - set(implied))
    if unexpected:
        raise CheckpointError(f"{source}: the file holds tensor {unexpected[0]!r}, which its configuration ({_summary(config)}) "
                              f"does not have ({len(unexpected)} unexpected)")
    for name, shape in implied.items():
        dtype, stored = found[name]
        if stored != shape:
            raise CheckpointError(f"{source}: tensor {name!r} is {list(stored)} in the file; its configuration "
                                  f"({_summary(config)}) implies {list(shape)}")
        if dtype not in WEIGHT_DTYPES:
            raise CheckpointError(f"{source}: tensor {name!r} has dtype {dtype}; weights are one of {', '.join(WEIGHT_DTYPES)}")


def read_weights(path: str | os.PathLike, config: ModelConfig | MultiScaleConfig,
                 found: dict[str, TensorSpec] | None = None) -> dict[str, torch.Tensor]:
    """The tensors of a safetensors file, read only once they are exactly what ``config`` implies."""
    path = Path(path)
    found = read_safetensors_header(path)[1] if found is None else found
    check_tensors_match(config, check_config_limits(config, path), found, path)
    return read_safetensors(path)[1]


def check_image_size(metadata: dict[str, str], path) -> None:
    """``image_size`` (HxW) within the image limit; a text that is not HxW is left to the caller."""
    match = re.fullmatch(r"\s*(\d+)\s*[xX]\s*(\d+)\s*", metadata.get("image_size", ""))
    if match:
        height, width = (int(side) if len(side) <= 18 else 10**18 for side in match.groups())  # int() refuses 4300 digits
        check_limit("image_pixels", height * width, f"{path}: its image_size {match[1]:.20}x{match[2]:.20}", CheckpointError)


def config_from_metadata(metadata: dict[str, str], path: str | os.PathLike) -> ModelConfig | MultiScaleConfig:
    """The configuration a pixelrnn weights file carries (one-line errors for foreign files)."""
    if metadata.get("format") != FORMAT:
        raise CheckpointError(f"{path} is a safetensors file but not a pixelrnn checkpoint (format {metadata.get('format')!r}, expected {FORMAT!r})")
    try:
        config = config_from_json(metadata["pixelrnn.config"])
    except KeyError:
        raise CheckpointError(f"{path} holds no model configuration (metadata key 'pixelrnn.config')") from None
    except (ValueError, TypeError, RecursionError, ConfigError) as error:  # JSONDecodeError is a ValueError
        raise CheckpointError(f"{path} holds no valid model configuration ({one_line(error)})") from None
    check_image_size(metadata, path)
    return config


def load_weights(config: ModelConfig | MultiScaleConfig, path: str | os.PathLike, found: dict[str, TensorSpec] | None = None):
    """The model ``config`` describes, with the weights of the file at ``path``, checked before they are read."""
    tensors = read_weights(path, config, found)
    model = model_from_config(config)
    try:
        model.load_state_dict(tensors, strict=True)
    except RuntimeError as error:
        raise CheckpointError(f"{path}: weights do not match its configuration ({one_line(error)})") from None
    return model
