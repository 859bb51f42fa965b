"""Pretrained folders in the Hugging Face layout, and the ``save_pretrained``/``from_pretrained`` of every model class.

A folder::

    config.json        {"format": "pixelrnn.pretrained.v1", "model": <the configuration>, "metadata": {...}}
    model.safetensors  the weights, carrying the same configuration and metadata (it is a checkpoint too)
    README.md          the model card

``config.json`` decides which network is built (through the one architecture registry); the
weights file repeats the configuration, so that every command taking a checkpoint takes the
folder as well, and the two must agree. A folder can be uploaded to a Hub repository as it is;
names are resolved by :mod:`pixelrnn.hub`. Nothing is unpickled: weights come only from
``model.safetensors``, through the one reader of :mod:`.weights`, and a ``pytorch_model.bin``
(a pickle) is refused without being opened.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import torch

from ..config import ModelConfig, MultiScaleConfig, config_from_dict
from ..errors import CheckpointError, ConfigError, one_line
from ..hub import CARD_NAME, CONFIG_NAME, WEIGHTS_NAME, checked_folder, pretrained_folder
from ..utils import VERSION, atomic_write, choose_device
from .registry import model_class
from .weights import config_from_metadata, load_weights, read_metadata, write_weights

PRETRAINED_FORMAT = "pixelrnn.pretrained.v1"
PICKLED_WEIGHTS = ("pytorch_model.bin", "model.pt", "model.pth", "model.ckpt")
# The test likelihood a model card reports, as metadata keys (`pixelrnn pretrained` lists them): the
# whole test split, and its first SUBSET_IMAGES images (a figure quick enough to check in every test run).
TEST_NATS, TEST_NATS_STDERR, TEST_IMAGES = "test_nats_per_image", "test_nats_per_image_stderr", "test_images"
SUBSET_IMAGES = 500
TEST_SUBSET_NATS = f"test_first_{SUBSET_IMAGES}_nats_per_image"
TITLES = {"pixelcnn": "PixelCNN", "row_lstm": "Row LSTM", "diagonal_bilstm": "Diagonal BiLSTM", "multiscale": "Multi-Scale PixelRNN"}


def save_pretrained(model, directory: str | os.PathLike, *, metadata: dict[str, str] | None = None, card: str | None = None) -> Path:
    """Write ``model`` into ``directory`` as config.json, model.safetensors and README.md (``card``, else a short one).

    ``metadata`` (strings: dataset, image_size, test NLL, ...) goes into both config.json and the
    weights file, where the commands read it (e.g. ``image_size`` for ``pixelrnn sample``); a model
    that was loaded from a file keeps that file's metadata (``model.metadata``) beneath it.
    """
    folder = Path(directory)
    # What the model was loaded with (its image size, dataset, ...), then what the caller gives.
    metadata = {**getattr(model, "metadata", {}), **(metadata or {})}
    metadata = dict(sorted(metadata.items()))  # config.json and the card then read the same on every save
    if not all(isinstance(key, str) and isinstance(value, str) for key, value in metadata.items()):
        raise ConfigError("metadata must map strings to strings (it is stored in the safetensors header)")
    if {"format", "pixelrnn.config"} & set(metadata):
        raise ConfigError("metadata may not set 'format' or 'pixelrnn.config': the weights file writes its own")
    write_weights(model, folder / WEIGHTS_NAME, metadata)
    description = {"format": PRETRAINED_FORMAT, "model": model.config.to_dict(), "metadata": metadata}
    atomic_write(folder / CONFIG_NAME, lambda temp: Path(temp).write_text(json.dumps(description, indent=2) + "\n"))
    text = card if card is not None else model_card(model, metadata)
    atomic_write(folder / CARD_NAME, lambda temp: Path(temp).write_text(text))
    return folder


def read_pretrained_config(folder: str | os.PathLike) -> tuple[ModelConfig | MultiScaleConfig, dict[str, str]]:
    """The configuration and metadata of a pretrained folder's config.json (one-line errors)."""
    path = checked_folder(Path(folder)) / CONFIG_NAME
    try:
        description = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise CheckpointError(f"{path} is not valid JSON ({error})") from None
    except RecursionError:
        raise CheckpointError(f"{path} nests its JSON too deeply to be a pixelrnn configuration") from None
    found = description.get("format") if isinstance(description, dict) else None
    if found != PRETRAINED_FORMAT:
        raise CheckpointError(f"{path} is not a pixelrnn configuration (format {found!r}, expected {PRETRAINED_FORMAT!r})")
    metadata = description.get("metadata", {})
    if not isinstance(metadata, dict) or not all(isinstance(v, str) for v in metadata.values()):
        raise CheckpointError(f"{path}: 'metadata' must map names to strings")
    try:
        return config_from_dict(description["model"]), metadata
    except (KeyError, TypeError, AttributeError, ConfigError, RecursionError) as error:
        raise CheckpointError(f"{path} holds no valid model configuration ({one_line(error)})") from None


def load_pretrained_folder(folder: str | os.PathLike, expected: type | None = None) -> tuple[torch.nn.Module, dict[str, str]]:
    """The model of a local pretrained folder (on the CPU, in training mode) and its metadata.

    ``expected``: the class the caller asked for; a folder holding another architecture is refused.
    """
    folder = Path(folder)
    config, metadata = read_pretrained_config(folder)
    built = model_class(config.arch)
    if expected is not None and not issubclass(built, expected):
        raise CheckpointError(f"{folder} holds a {config.arch} model ({built.__name__}), not a {expected.__name__}; "
                              "load it with pixelrnn.from_pretrained")
    weights = folder / WEIGHTS_NAME
    if not weights.is_file():
        pickled = [name for name in PICKLED_WEIGHTS if (folder / name).exists()]
        refusal = f" ({', '.join(pickled)} is a pickle, which pixelrnn never loads)" if pickled else ""
        raise CheckpointError(f"{folder} has no {WEIGHTS_NAME}{refusal}; weights are read only from {WEIGHTS_NAME}")
    header = read_metadata(weights)
    if "pixelrnn.config" in header and config_from_metadata(header, weights) != config:
        raise CheckpointError(f"{weights} carries another configuration than {folder / CONFIG_NAME}; the folder is inconsistent")
    return load_weights(config, weights), metadata


def from_pretrained(name_or_directory: str | os.PathLike, device: str | torch.device = "cpu", *, revision: str | None = None,
                    cache_dir: str | os.PathLike | None = None, local_files_only: bool = False, expected: type | None = None):
    """A pretrained model in eval mode on ``device``: a folder, a bundled name or a Hub repository id.

    ``revision``, ``cache_dir`` and ``local_files_only`` go to ``huggingface_hub`` for Hub
    repositories (which also honours ``HF_HUB_OFFLINE=1`` and ``HF_HUB_CACHE``).
    """
    folder = pretrained_folder(name_or_directory, revision=revision, cache_dir=cache_dir, local_files_only=local_files_only)
    model, metadata = load_pretrained_folder(folder, expected)
    model.metadata = dict(metadata)  # kept by a later save_pretrained
    return model.to(choose_device(device)).eval()


def model_card(model, metadata: dict[str, str], *, name: str = "path/to/this/folder", sections: tuple[tuple[str, str], ...] = ()) -> str:
    """A model card in Markdown with the Hub's YAML header: the network, its size, how to load it, then ``sections``."""
    config = model.config
    parameters = sum(p.numel() for p in model.parameters())
    dataset = metadata.get("dataset", "")
    title = TITLES[config.arch] + (f" on {dataset}" if dataset else "")
    lines = ["---", "library_name: pixelrnn", "tags:", "- pixel-rnn", "- image-generation", f"- {config.arch.replace('_', '-')}", "---", "",
             f"# {title}", "",
             f"A `{config.arch}` model of Pixel Recurrent Neural Networks (van den Oord et al., ICML 2016), "
             f"{parameters:,} parameters, saved by pixelrnn {VERSION}.", "",
             "```python", "import pixelrnn", f'model = pixelrnn.from_pretrained("{name}")', "```", "",
             "## Configuration", "", "```json", json.dumps(config.to_dict(), indent=2), "```", ""]
    if metadata:
        lines += ["## Metadata", "", "| key | value |", "| --- | --- |", *[f"| {key} | {value} |" for key, value in sorted(metadata.items())], ""]
    for heading, body in sections:
        lines += [f"## {heading}", "", body.rstrip(), ""]
    return "\n".join(lines)


class Pretrained:
    """``save_pretrained`` and ``from_pretrained`` for a model class (mixed into every network and the multi-scale pair)."""

    def save_pretrained(self, directory: str | os.PathLike, *, metadata: dict[str, str] | None = None, card: str | None = None) -> Path:
        """Write this model into ``directory`` in the Hugging Face layout (see :func:`save_pretrained`)."""
        return save_pretrained(self, directory, metadata=metadata, card=card)

    @classmethod
    def from_pretrained(cls, name_or_directory: str | os.PathLike, device: str | torch.device = "cpu", *, revision: str | None = None,
                        cache_dir: str | os.PathLike | None = None, local_files_only: bool = False):
        """The pretrained model of this class, in eval mode on ``device`` (see :func:`from_pretrained`)."""
        return from_pretrained(name_or_directory, device, revision=revision, cache_dir=cache_dir,
                               local_files_only=local_files_only, expected=cls)
