"""A run folder: the one place that names its files, and what a later command reads back from it.

A run folder holds::

    config.json          the resolved run configuration, every model field written out
    metrics.jsonl        one JSON object a line: {"step", "split", "nats", "bits_per_dim", ...}
    state.safetensors    everything needed to resume: weights, EMA weights, optimizer state,
                         RNG state, step, best validation score (JSON in the metadata)
    last.safetensors     model checkpoint of the latest step (evaluation weights)
    best.safetensors     model checkpoint with the best validation NLL (evaluation weights)
    train.lock           locked (flock) by the one process that trains the run; never written

Every file is written to a temporary name, flushed to disk and renamed, so an interruption at any
moment, a power cut included, leaves the previous version intact; the temporary files of a
process killed outright are removed by the next one that takes the lock (:meth:`RunFolder.locked`).
One process at a time trains a run: a second gets a :class:`TrainingError` naming the first's
process id. A full disk is a one-line :class:`DiskFullError` and loses nothing: a metrics line
that did not fit is taken back, and a line cut off by a kill is dropped (with a warning) when the
run is resumed. Any command that takes a checkpoint takes a run folder too
(:func:`resolve_checkpoint`: its best checkpoint, else its last one), a pretrained folder (its
``model.safetensors``) and ``pretrained:NAME``: a bundled model or a Hub repository
(:mod:`pixelrnn.hub`), resolved here for every command.
"""

from __future__ import annotations

import contextlib
import json
import os
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import torch

from ..checkpoint import load_model
from ..errors import CheckpointError, ConfigError, TrainingError, one_line
from ..hub import PREFIX, WEIGHTS_NAME, pretrained_folder
from ..utils import atomic_write, disk_full, is_full_disk, remove_stale_temporaries
from .run_config import RunConfig, build_run_config

try:
    import fcntl
except ImportError:  # not POSIX: no lock
    fcntl = None

CHECKPOINT_NAMES = ("best.safetensors", "last.safetensors", WEIGHTS_NAME)  # a run folder's, then a pretrained folder's


@dataclass(frozen=True)
class RunFolder:
    path: Path

    def __init__(self, path: str | os.PathLike):
        object.__setattr__(self, "path", Path(path))

    config = property(lambda self: self.path / "config.json")
    metrics = property(lambda self: self.path / "metrics.jsonl")
    state = property(lambda self: self.path / "state.safetensors")
    last = property(lambda self: self.path / "last.safetensors")
    best = property(lambda self: self.path / "best.safetensors")
    lock = property(lambda self: self.path / "train.lock")

    def holds_run(self) -> bool:
        return self.state.exists()

    def is_run(self) -> bool:
        """A folder written by training: its config and a checkpoint (a pretrained folder has a
        config.json too, but its weights are ``model.safetensors``)."""
        return self.config.is_file() and (self.best.is_file() or self.last.is_file())

    def holds_model(self) -> bool:
        """A run's state or any checkpoint (a pretrained folder's ``model.safetensors`` included):
        a folder that ``train --out`` must not write over."""
        return any(path.exists() for path in (self.state, self.best, self.last, self.path / WEIGHTS_NAME))

    # ------------------------------------------------------------- the lock
    @contextlib.contextmanager
    def locked(self) -> Iterator["RunFolder"]:
        """Hold the run folder's lock for the block: the one process that trains it.

        The lock is an ``flock`` on ``train.lock`` (created once, never written), released by the
        kernel when the process ends however it ends. Taken, it removes the temporary files that
        killed processes left. A folder that another process holds is a one-line TrainingError
        naming that process.
        """
        self.path.mkdir(parents=True, exist_ok=True)
        with open(self.lock, "a+b") as handle:  # closing the file releases the lock
            if fcntl is not None:
                try:
                    fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    holder = _lock_holder(handle.fileno())
                    who = f"process {holder}" if holder else "another process"
                    raise TrainingError(f"{self.path} is being trained by {who} (it holds {self.lock}); wait for it to "
                                        f"finish or stop it, then resume with --resume {self.path}") from None
            remove_stale_temporaries(self.path, every=True)
            yield self

    # ------------------------------------------------------------- configuration
    def write_config(self, config: RunConfig, model_config=None) -> None:
        """``config.json``: the run configuration, with every field of ``model_config`` when given."""
        text = json.dumps(config.to_dict(model_config), indent=2) + "\n"
        atomic_write(self.config, lambda temp: Path(temp).write_text(text))

    def read_config(self) -> dict:
        """The saved configuration as written (sections of plain values); a damaged one is a one-line TrainingError."""
        try:
            raw = json.loads(self.config.read_text())
        except (ValueError, RecursionError, UnicodeDecodeError) as error:
            raise TrainingError(f"{self.config} is damaged: not a JSON run configuration ({one_line(error)})") from None
        if not isinstance(raw, dict) or not all(isinstance(values, dict) for values in raw.values()):
            raise TrainingError(f"{self.config} is damaged: a run configuration is an object of sections "
                                "(model, data, train), each an object of values")
        return raw

    def data_settings(self) -> dict:
        """The ``[data]`` section the run was trained with ({} outside a run folder: a pretrained
        folder's config.json describes its model)."""
        return self.read_config().get("data", {}) if self.is_run() else {}

    def resume_config(self, overrides=()) -> RunConfig:
        """The run's saved configuration with ``train.KEY=VALUE`` overrides: the run continued."""
        if not self.config.is_file():
            raise TrainingError(f"cannot resume: {self.config} does not exist")
        for item in overrides:
            if not item.startswith("train."):
                raise TrainingError(f"cannot change {item.split('=')[0]} when resuming; only train.* keys may change")
        raw = self.read_config()
        try:
            return build_run_config(None, overrides, **{f"{section}.{key}": value for section, values in raw.items()
                                                        for key, value in values.items()})
        except ConfigError as error:
            if any(str(error).startswith(item.split("=")[0]) for item in overrides):
                raise
            raise TrainingError(f"{self.config} is damaged: {error}") from None

    # ------------------------------------------------------------- metrics log
    def reset_metrics(self) -> None:
        atomic_write(self.metrics, lambda temp: Path(temp).write_text(""))

    def append_metrics(self, record: dict) -> None:
        """One line at the end of the log; a line the disk has no room for is taken back whole."""
        line = (json.dumps(record) + "\n").encode()
        fd = os.open(self.metrics, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o666)
        try:
            size = os.fstat(fd).st_size
            try:
                written = os.write(fd, line)
                if written != len(line):
                    raise OSError(28, "No space left on device")
            except OSError as error:
                with contextlib.suppress(OSError):
                    os.ftruncate(fd, size)  # the log reads as it did before the line
                if is_full_disk(error):
                    raise disk_full(self.metrics, len(line)) from None
                raise
        finally:
            os.close(fd)

    def truncate_metrics(self, step: int) -> None:
        """Drop log lines written after ``step``, so that a resumed run's log reads as one run.

        A last line cut off by a kill or a full disk is dropped, with a warning; a damaged line
        before it is a one-line TrainingError (the log was edited).
        """
        text = self.metrics.read_text(errors="replace") if self.metrics.exists() else ""
        lines = text.splitlines()
        kept, cut = [], None
        for number, line in enumerate(lines, 1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
                line_step = record["step"]
                if not isinstance(line_step, int):
                    raise TypeError
            except (ValueError, KeyError, TypeError, RecursionError):
                if number == len(lines):
                    cut = line
                    continue
                raise TrainingError(f"cannot resume: line {number} of {self.metrics} is not a metrics record; "
                                    "remove it or restore the file") from None
            if line_step <= step:
                kept.append(line)
        if cut is not None:
            warnings.warn(f"{self.metrics}: its last line was cut off ({len(cut)} characters, by a kill or a full disk); "
                          "it is dropped", stacklevel=2)
        if kept == lines and text.endswith("\n") == bool(lines):
            return  # nothing to drop: the file stays as it is
        body = "".join(line + "\n" for line in kept)
        atomic_write(self.metrics, lambda temp: Path(temp).write_text(body), size=len(body.encode()))


def _lock_holder(fd: int) -> int | None:
    """The process that holds the flock on the open file ``fd`` (Linux: /proc/locks), or None."""
    try:
        status = os.fstat(fd)
        with open("/proc/locks") as locks:
            for entry in locks:
                fields = entry.split()
                if len(fields) >= 6 and fields[1] == "FLOCK":  # a waiter's line reads "N: -> FLOCK ..."
                    pid, where = fields[4], fields[5]
                    if where.rsplit(":", 1)[-1] == str(status.st_ino) and pid.isdigit() and int(pid) != os.getpid():
                        return int(pid)
    except (OSError, ValueError):
        pass
    return None


def resolve_checkpoint(path: str | os.PathLike) -> Path:
    """A checkpoint file, a run folder (its best checkpoint, else its last one), a pretrained folder or ``pretrained:NAME``."""
    if str(path).startswith(PREFIX):
        path = pretrained_folder(str(path)[len(PREFIX):])
    path = Path(path)
    if path.is_dir():
        for name in CHECKPOINT_NAMES:
            if (path / name).is_file():
                return path / name
        raise CheckpointError(f"run folder {path} holds no checkpoint ({' or '.join(CHECKPOINT_NAMES)})")
    if not path.exists():
        raise CheckpointError(f"checkpoint or run folder {path} does not exist")
    return path


def load_model_from(path: str | os.PathLike, device: str | torch.device = "cpu"):
    """Load from a checkpoint file or a run folder."""
    return load_model(resolve_checkpoint(path), device)
