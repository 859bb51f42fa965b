"""Dataset readers open regular files only: a link into /proc or /dev is one line, never a hang."""

import os
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

pytestmark = pytest.mark.skipif(not os.path.exists("/proc/self/pagemap"), reason="needs Linux's /proc")


def folder_with(tmp_path, target: str):
    folder = tmp_path / "images"
    folder.mkdir()
    for k in range(3):
        Image.fromarray(np.full((4, 4), 255 * (k % 2), np.uint8)).save(folder / f"{k}.png")
    os.symlink(target, folder / "z.png")
    return folder


@pytest.mark.parametrize("cache", ["true", "false"])
@pytest.mark.parametrize("target", ["/proc/self/pagemap", "/proc/self/mem", "/dev/zero"])
def test_a_link_into_proc_or_dev_is_one_line(tmp_path, target, cache):
    """Issue 24, failure 5: a link to /proc/self/pagemap hung in the cache's sha256, one to /proc/self/mem gave EIO."""
    folder = folder_with(tmp_path, target)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PIXELRNN_CACHE_DIR": str(tmp_path / "cache")}
    result = subprocess.run([sys.executable, "-m", "pixelrnn", "train", "--dataset", f"folder:{folder}", "--arch", "pixelcnn",
                             "--set", "model.hidden=2", "--set", "model.layers=1", "--set", f"data.cache={cache}",
                             "--steps", "1", "--out", str(tmp_path / "run"), "-q"],
                            capture_output=True, text=True, timeout=120, env=env)
    assert result.returncode == 2, result.stderr[-2000:]
    assert len(result.stderr.strip().splitlines()) == 1 and "z.png" in result.stderr
    assert "system file" in result.stderr or "not a regular file" in result.stderr


def test_an_npz_link_into_proc_is_one_line(tmp_path):
    from pixelrnn.data import DatasetError, load_dataset

    os.symlink("/proc/self/pagemap", tmp_path / "data.npz")
    with pytest.raises(DatasetError, match="system file"):
        load_dataset(f"npz:{tmp_path / 'data.npz'}", "train", cache=False)


def test_an_image_to_compress_that_links_into_proc_is_one_line(tmp_path, capsys):
    from pixelrnn.cli import main

    os.symlink("/proc/self/mem", tmp_path / "a.png")
    assert main(["compress", "pretrained:binarized_mnist/pixelcnn", str(tmp_path / "a.png"), "-o", str(tmp_path / "a.pxr"), "-q"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "system file" in err
