"""Helpers for the run folder's tests: a full disk at one file, tiny runs, what a run folder holds."""

import errno
import hashlib
import json
import os
from pathlib import Path

TINY = ["--dataset", "digits", "--arch", "pixelcnn", "--set", "model.hidden=4", "--set", "model.layers=1",
        "--set", "model.output_hidden=4", "--set", "train.eval_images=60", "--set", "train.log_every=1", "-q"]
# checkpoint_every divides the steps and eval_every does not: the case (defaults 200/500, 600 steps), scaled down.
SCHEDULE = ["--set", "train.checkpoint_every=2", "--set", "train.eval_every=5"]


def _name_of(fd: int) -> str:
    try:
        return os.path.basename(os.readlink(f"/proc/self/fd/{fd}"))
    except OSError:
        return ""


class FullDisk:
    """Writes to the file ``name`` fail with ENOSPC after ``after`` of them succeeded.

    An atomic write fails at the fsync of its temporary file (as a delayed allocation does), after
    part of the bytes were written; an append (metrics.jsonl) writes half its line, then fails.
    """

    def __init__(self, monkeypatch, name: str, after: int = 0):
        self.name, self.left, self.failures = name, after, 0
        real_fsync, real_write = os.fsync, os.write

        def targeted(fd: int) -> bool:
            found = _name_of(fd)
            return found == name or (found.startswith(f".{name}.") and found.endswith(".tmp"))

        def due() -> bool:
            if self.left > 0:
                self.left -= 1
                return False
            self.failures += 1
            return True

        def fsync(fd):
            if targeted(fd) and due():
                raise OSError(errno.ENOSPC, "No space left on device")
            return real_fsync(fd)

        def write(fd, data):
            if targeted(fd) and due():
                real_write(fd, bytes(data)[: len(data) // 2])
                raise OSError(errno.ENOSPC, "No space left on device")
            return real_write(fd, data)

        monkeypatch.setattr(os, "fsync", fsync)
        monkeypatch.setattr(os, "write", write)


def fingerprint(folder: Path) -> dict:
    """Every file of a folder: its sha256 and modification time (ns)."""
    return {path.name: (hashlib.sha256(path.read_bytes()).hexdigest(), path.stat().st_mtime_ns)
            for path in sorted(Path(folder).iterdir()) if path.is_file()}


def records(folder: Path) -> list[dict]:
    """metrics.jsonl without its timing field (which no two runs share)."""
    lines = (Path(folder) / "metrics.jsonl").read_text().splitlines()
    return [{k: v for k, v in json.loads(line).items() if k != "images_per_second"} for line in lines]
