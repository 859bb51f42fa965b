"""Small utilities: files written atomically with the mode the umask asks for."""

import os
import stat

import pytest

from pixelrnn.utils import atomic_write, current_umask


def mode_of(path):
    return stat.S_IMODE(os.stat(path).st_mode)


@pytest.mark.parametrize("mask, expected", [(0o022, 0o644), (0o077, 0o600), (0o002, 0o664), (0o000, 0o666)])
def test_atomic_write_honours_the_umask(tmp_path, umask, mask, expected):
    umask(mask)
    target = tmp_path / "sub" / "file.txt"
    atomic_write(target, lambda temp: open(temp, "w").write("x"))
    assert target.read_text() == "x"
    assert mode_of(target) == expected
    assert current_umask() == mask  # reading the mask leaves it as it was
    assert [p.name for p in target.parent.iterdir()] == ["file.txt"]


def test_a_failed_write_leaves_neither_file_nor_temporary(tmp_path):
    def fail(temp):
        open(temp, "w").write("half")
        raise RuntimeError("interrupted")

    with pytest.raises(RuntimeError):
        atomic_write(tmp_path / "file.txt", fail)
    assert list(tmp_path.iterdir()) == []
