"""compress and decompress on a full disk: one line naming the file and the space it needs; the old files stay."""

import numpy as np
from PIL import Image

from faults import FullDisk
from pixelrnn.cli import main

PRETRAINED = "pretrained:binarized_mnist/pixelcnn"


def test_compress_and_decompress_on_a_full_disk(tmp_path, monkeypatch, capsys):
    """Issue 24, failure 2: a full disk during compress or decompress gave tracebacks."""
    image = tmp_path / "a.png"
    Image.fromarray((np.arange(28 * 28).reshape(28, 28) % 3 == 0).astype(np.uint8) * 255).save(image)
    out = tmp_path / "a.pxr"
    out.write_bytes(b"old")
    with monkeypatch.context() as patch:
        FullDisk(patch, "a.pxr")
        assert main(["compress", PRETRAINED, str(image), "-o", str(out), "--force", "-q"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "a.pxr" in err and "disk is full" in err and "needs" in err
    assert out.read_bytes() == b"old" and sorted(p.name for p in tmp_path.iterdir()) == ["a.png", "a.pxr"]
    assert main(["compress", PRETRAINED, str(image), "-o", str(out), "--force", "-q"]) == 0
    folder = tmp_path / "restored"
    with monkeypatch.context() as patch:
        FullDisk(patch, "a.png")
        assert main(["decompress", PRETRAINED, str(out), "-o", str(folder), "-q"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "a.png" in err and "disk is full" in err
    assert list(folder.iterdir()) == []
