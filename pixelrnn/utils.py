"""Small utilities shared across the library: files, threads, devices and units (section 5.1).

- :func:`atomic_write`: every file the library writes goes to a temporary name in its folder
  and is renamed into place, so an interruption never leaves a truncated file under the name;
  the file's mode follows the umask, as for any ``open``.
- :func:`remove_stale_temporaries`: the temporary files of a process that was killed outright.
- :func:`regular_file`: a file a reader may open: regular, and not (through a link) in /proc, /dev or /sys.
- :func:`torch_threads`: a block run with a given number of CPU threads, the setting restored.
- :func:`choose_device`: ``auto``, ``cpu``, ``cuda`` or ``cuda:N``.
- :func:`bits_per_dim`: nats per image to bits per sub-pixel, the paper's unit for colour images.
"""

from __future__ import annotations

import contextlib
import errno
import math
import os
import re
import shutil
import stat
import tempfile
from pathlib import Path

VERSION = "0.1.0"  # this release: pyproject.toml's version (tests/test_reference_pages.py compares them)

import torch

from .errors import ConfigError, DatasetError, DiskFullError


def current_umask() -> int:
    """The process's file mode creation mask (read by setting it and setting it back)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


FULL_DISK = (errno.ENOSPC, errno.EDQUOT)
_TEMPORARY = re.compile(r"^\..+\.(\d+)\.[A-Za-z0-9_]+\.tmp$")  # .NAME.PID.RANDOM.tmp


def atomic_write(path: str | os.PathLike, write, size: int | None = None) -> None:
    """Call ``write(temp_path)`` then rename the result onto ``path``, durably.

    The temporary file (``.NAME.PID.RANDOM.tmp`` in the same folder) is flushed to disk before
    the rename and the folder after it, so a power cut leaves the old file or the new one, never
    an empty one. The file gets the mode an ordinary ``open`` would give it (0o666 less the
    umask: 0o644 under 022), not the 0o600 of the private temporary file, so run folders can be
    shared and served. A full disk (or quota) is a :class:`DiskFullError` naming the file and the
    space it needs (``size`` when the caller knows it); the previous file stays as it was.
    """
    path = Path(path)
    temp = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, temp = tempfile.mkstemp(prefix=f".{path.name}.{os.getpid()}.", suffix=".tmp", dir=path.parent)
        os.close(fd)
        write(temp)
        _fsync(temp)
        os.chmod(temp, 0o666 & ~current_umask())
        os.replace(temp, path)
        temp = None
        _fsync(path.parent)
    except Exception as error:  # noqa: BLE001 - only a full disk is turned into the one-line error
        if not is_full_disk(error):
            raise
        written = _size_of(temp)
        raise disk_full(path, size if size is not None else written, exact=size is not None) from None
    finally:
        if temp is not None:
            Path(temp).unlink(missing_ok=True)


def is_full_disk(error: BaseException) -> bool:
    """An OSError of a full disk or quota, or a library's error that wraps one (safetensors says "os error 28")."""
    if isinstance(error, OSError):
        return error.errno in FULL_DISK
    text = str(error)
    return any(f"(os error {code})" in text for code in FULL_DISK)


def _size_of(path) -> int:
    try:
        return os.stat(path).st_size if path is not None else 0
    except OSError:
        return 0


def _fsync(path) -> None:
    """Flush a file or a folder to disk (a file system that cannot sync a folder is left as it is)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    except OSError as error:
        if error.errno in FULL_DISK:
            raise
    finally:
        os.close(fd)


def disk_full(path, needed: int, exact: bool = True) -> DiskFullError:
    """The one-line error of a write that found the disk full: the file, the space it needs, the space free."""
    path = Path(path)
    try:
        free = f"; {shutil.disk_usage(path.parent).free:,} bytes are free"
    except OSError:
        free = ""
    need = f"needs {needed:,} bytes" if exact else f"needs more than the {needed:,} bytes written before it filled"
    return DiskFullError(f"cannot write {path}: the disk is full ({need}{free}); free some space and run the command again, "
                         "nothing written before was lost", path, needed)


def remove_stale_temporaries(folder: str | os.PathLike, *, every: bool = False) -> list[Path]:
    """Remove the temporary files :func:`atomic_write` left in ``folder`` when its process was killed.

    A temporary file names the process that wrote it; it is removed when that process is gone.
    ``every=True`` (for a caller that holds the folder's lock, so that nobody else writes there)
    also removes those of this process and those without a process id (older versions' names).
    """
    removed = []
    try:
        entries = list(Path(folder).glob(".*.tmp"))
    except OSError:
        return removed
    for entry in entries:
        match = _TEMPORARY.match(entry.name)
        if not every and (match is None or _alive(int(match.group(1)))):
            continue
        try:
            if entry.is_file() and not entry.is_symlink():
                entry.unlink()
                removed.append(entry)
        except OSError:
            pass
    return removed


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError, ValueError):
        return True
    return True


SYSTEM_FOLDERS = ("/proc", "/dev", "/sys")


def regular_file(path: str | os.PathLike, what: str = "", error: type = DatasetError) -> Path:
    """``path`` when it is a regular file outside /proc, /dev and /sys (symbolic links followed to
    check), else ``error`` (one line). Readers of datasets call it before they open a file: a
    link to ``/proc/self/pagemap`` would be read forever, one to ``/proc/self/mem`` fail midway."""
    path = Path(path)
    label = f"{what}: " if what else ""
    real = os.path.realpath(path)
    if any(real == folder or real.startswith(folder + "/") for folder in SYSTEM_FOLDERS):
        raise error(f"{label}{path} leads to {real}, a system file; only regular files are read as data")
    try:
        status = os.stat(path)
    except FileNotFoundError:
        raise error(f"{label}{path} does not exist" + (f" (a link to the missing {real})" if path.is_symlink() else "")) from None
    except OSError as failure:
        raise error(f"{label}{path} cannot be read: {failure.strerror or failure}") from None
    if not stat.S_ISREG(status.st_mode):
        raise error(f"{label}{path} is not a regular file (a device, pipe, socket or folder); only regular files are read as data")
    return path


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
