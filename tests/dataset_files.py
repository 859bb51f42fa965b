"""Dataset files in the official formats, written for the tests of pixelrnn.data; and their shared guards."""

from __future__ import annotations

import gzip
import io
import pickle
import tarfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import settings

FAST = settings(max_examples=15, deadline=None)


@pytest.fixture(autouse=True)
def _private_cache(tmp_path_factory, monkeypatch):
    """Never read or write the user's real cache dir."""
    monkeypatch.setenv("PIXELRNN_CACHE_DIR", str(tmp_path_factory.mktemp("cache")))


def one_line_error(excinfo) -> str:
    msg = str(excinfo.value)
    assert msg and "\n" not in msg
    return msg


def write_amat(path: Path, x: np.ndarray, newline: str = "\n") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    rows = x.reshape(len(x), -1)
    path.write_text("".join(" ".join(map(str, r)) + newline for r in rows), newline="")
    return path


def idx_bytes(x: np.ndarray) -> bytes:
    header = bytes([0, 0, 8, x.ndim]) + b"".join(d.to_bytes(4, "big") for d in x.shape)
    return header + np.ascontiguousarray(x, dtype=np.uint8).tobytes()


def write_idx_gz(path: Path, x: np.ndarray) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(gzip.compress(idx_bytes(x)))
    return path


def cifar_batch(x: np.ndarray, protocol: int | str = 2) -> bytes:
    """A pickled batch shaped like the official one; x is (N, 3, 32, 32).

    protocol "numpy1" names the array globals as numpy 1.x did (numpy.core.multiarray),
    which is what the official files, written by Python 2 and numpy 1, contain.
    """
    n = len(x)
    batch = {b"batch_label": b"training batch 1 of 5", b"labels": [i % 10 for i in range(n)],
             b"data": x.reshape(n, 3072).copy(),
             b"filenames": [b"img_%d.png" % i for i in range(n)]}
    if protocol == "numpy1":
        raw = pickle.dumps(batch, protocol=2)  # GLOBAL opcodes are newline-terminated text
        assert b"numpy._core.multiarray\n" in raw
        return raw.replace(b"numpy._core.multiarray\n", b"numpy.core.multiarray\n")
    return pickle.dumps(batch, protocol=protocol)


def write_cifar(root: Path, batches: dict[str, bytes], archive: bool) -> None:
    if archive:
        root.mkdir(parents=True, exist_ok=True)
        with tarfile.open(root / "cifar-10-python.tar.gz", "w:gz") as tar:
            for name, raw in batches.items():
                info = tarfile.TarInfo(f"cifar-10-batches-py/{name}")
                info.size = len(raw)
                tar.addfile(info, io.BytesIO(raw))
    else:
        folder = root / "cifar-10-batches-py"
        folder.mkdir(parents=True, exist_ok=True)
        for name, raw in batches.items():
            (folder / name).write_bytes(raw)


def rand_u8(rng, shape, high=256):
    return rng.integers(0, high, size=shape, dtype=np.uint8)
