"""Where a pretrained model's folder is: a local folder, a model bundled with the package, or a Hub repository.

A name is looked up in that order:

1. an existing folder (the Hugging Face layout: ``config.json``, ``model.safetensors``, ``README.md``);
2. a model bundled with the package (:data:`BUNDLED`), under ``pixelrnn/pretrained/<name>/``;
3. a Hugging Face Hub repository ``owner/name``, fetched through ``huggingface_hub`` when it is
   installed (``pip install 'pixelrnn[hub]'``): its cache, its ``HF_HUB_OFFLINE=1`` and its token.

Only the three files of the layout are fetched; nothing else of a repository is downloaded.
"""

from __future__ import annotations

import difflib
import os
import re
from pathlib import Path

from .errors import CheckpointError

CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"
CARD_NAME = "README.md"
PREFIX = "pretrained:"  # marks a pretrained name where a run folder or checkpoint is expected

BUNDLED_ROOT = Path(__file__).resolve().with_name("pretrained")
BUNDLED = ("binarized_mnist/pixelcnn", "binarized_mnist/row_lstm", "binarized_mnist/diagonal_bilstm", "mnist/row_lstm_conditional")
HUB_REPOSITORY = re.compile(r"[A-Za-z0-9][\w.-]*/[\w.-]+")


def checked_folder(folder: Path) -> Path:
    """``folder``, once it is seen to hold a config.json (one clear error otherwise)."""
    if not (folder / CONFIG_NAME).is_file():
        raise CheckpointError(f"{folder} has no {CONFIG_NAME}; a pretrained folder holds {CONFIG_NAME}, {WEIGHTS_NAME} and {CARD_NAME}")
    return folder


def bundled_folder(name: str) -> Path:
    """The folder of a bundled model; a one-line error when this installation lacks it."""
    folder = BUNDLED_ROOT / name
    if not (folder / CONFIG_NAME).is_file():
        raise CheckpointError(f"the bundled model {name!r} is not in this installation ({folder} holds no {CONFIG_NAME})")
    return folder


def installed_bundled() -> list[str]:
    """The bundled names whose folders this installation holds."""
    return [name for name in BUNDLED if (BUNDLED_ROOT / name / CONFIG_NAME).is_file()]


def pretrained_folder(name_or_directory: str | os.PathLike, *, revision: str | None = None, cache_dir: str | os.PathLike | None = None,
                      local_files_only: bool = False) -> Path:
    """The local folder holding ``name_or_directory``: a folder, a bundled name or a Hub repository id."""
    name = str(name_or_directory)
    if name and Path(name).is_dir():  # an empty name would be the working directory
        return checked_folder(Path(name))
    if name in BUNDLED:
        return bundled_folder(name)
    if not HUB_REPOSITORY.fullmatch(name):
        raise CheckpointError(f"{name!r} is not a folder, a bundled model ({', '.join(BUNDLED)}) or a Hub repository id (owner/name)")
    return hub_snapshot(name, revision=revision, cache_dir=cache_dir, local_files_only=local_files_only)


def hub_snapshot(repo_id: str, *, revision: str | None = None, cache_dir: str | os.PathLike | None = None,
                 local_files_only: bool = False) -> Path:
    """The cached snapshot of a Hub repository's three files, downloaded if needed and allowed."""
    try:
        from huggingface_hub import snapshot_download
    except ImportError:
        near = difflib.get_close_matches(repo_id, BUNDLED, n=1, cutoff=0.8)
        if near:  # a typo of a bundled name, not a Hub repository
            raise CheckpointError(f"{repo_id!r} is not a bundled model; did you mean {near[0]!r}? (bundled: {', '.join(BUNDLED)})") from None
        raise CheckpointError(f"{repo_id!r} is not a folder or a bundled model ({', '.join(BUNDLED)}); to fetch it from the "
                              "Hugging Face Hub, install huggingface_hub: pip install 'pixelrnn[hub]'") from None
    try:
        snapshot = Path(snapshot_download(repo_id, revision=revision, cache_dir=cache_dir, local_files_only=local_files_only,
                                          allow_patterns=[CONFIG_NAME, WEIGHTS_NAME, CARD_NAME], library_name="pixelrnn"))
    except (OSError, ValueError) as error:  # huggingface_hub's errors (HTTP, offline cache miss, bad id) derive from these
        reason = " ".join(line.strip() for line in str(error).splitlines() if line.strip()) or type(error).__name__
        raise CheckpointError(f"cannot fetch {repo_id!r} from the Hugging Face Hub: {reason}") from None
    return checked_folder(snapshot)
