"""Small utilities shared across the library: files, threads, devices and units (section 5.1).

- :func:`atomic_write`: every file the library writes goes to a temporary name in its folder
  and is renamed into place, so an interruption never leaves a truncated file under the name;
  the file's mode follows the umask, as for any ``open``.
- :func:`torch_threads`: a block run with a given number of CPU threads, the setting restored.
- :func:`choose_device`: ``auto``, ``cpu``, ``cuda`` or ``cuda:N``.
- :func:`bits_per_dim`: nats per image to bits per sub-pixel, the paper's unit for colour images.
"""

from __future__ import annotations

import contextlib
import math
import os
import tempfile
from pathlib import Path

import torch

from .errors import ConfigError


def current_umask() -> int:
    """The process's file mode creation mask (read by setting it and setting it back)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def atomic_write(path: str | os.PathLike, write) -> None:
    """Call ``write(temp_path)`` then rename the result onto ``path``.

    The file gets the mode an ordinary ``open`` would give it (0o666 less the umask: 0o644 under
    022), not the 0o600 of the private temporary file, so run folders can be shared and served.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, temp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        write(temp)
        os.chmod(temp, 0o666 & ~current_umask())
        os.replace(temp, path)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise


@contextlib.contextmanager
def torch_threads(count: int | None):
    """Run the block with ``count`` torch CPU threads (None: leave the setting); restored after."""
    if count is None:
        yield
        return
    previous = torch.get_num_threads()
    torch.set_num_threads(count)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def choose_device(name: str | None = "auto") -> torch.device:
    """``auto`` (CUDA when present), ``cpu``, ``cuda`` or ``cuda:N``."""
    if name is None or name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise ConfigError(f"unknown device {name!r}; use auto, cpu, cuda or cuda:N") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"device {name!r} was asked for but CUDA is not available here; use --device cpu")
    return device


def bits_per_dim(nats_per_image, dims: int):
    """Convert a negative log-likelihood in nats per image to bits per sub-pixel (H*W*C dims)."""
    return nats_per_image / (dims * math.log(2.0))


def nats_to_bits(nats):
    return nats / math.log(2.0)
