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


def test_atomic_write_flushes_the_file_before_the_rename_and_the_folder_after(tmp_path, monkeypatch):
    """Issue 24, failure 8: atomic_write never called fsync, so a power cut could leave a renamed file empty."""
    events, real_fsync, real_replace = [], os.fsync, os.replace

    def fsync(fd):
        events.append(("fsync", os.path.basename(os.readlink(f"/proc/self/fd/{fd}"))))
        return real_fsync(fd)

    def replace(source, target):
        events.append(("rename", os.path.basename(target)))
        return real_replace(source, target)

    monkeypatch.setattr(os, "fsync", fsync)
    monkeypatch.setattr(os, "replace", replace)
    atomic_write(tmp_path / "file.txt", lambda temp: open(temp, "w").write("x"))
    assert [kind for kind, _ in events] == ["fsync", "rename", "fsync"]
    assert events[0][1].startswith(".file.txt.") and events[1][1] == "file.txt" and events[2][1] == tmp_path.name


def test_a_full_disk_is_one_line_naming_the_file_and_the_old_file_stays(tmp_path, monkeypatch):
    import errno

    from pixelrnn.errors import DiskFullError

    target = tmp_path / "file.txt"
    target.write_text("old")

    def fail(temp):
        open(temp, "w").write("half")
        raise OSError(errno.ENOSPC, "No space left on device")

    with pytest.raises(DiskFullError, match=r"file.txt.*disk is full.*needs"):
        atomic_write(target, fail)
    assert target.read_text() == "old" and [p.name for p in tmp_path.iterdir()] == ["file.txt"]


def test_temporary_files_of_dead_processes_are_removed(tmp_path):
    """Issue 24, failure 6: leftover `.NAME.*.tmp` files piled up after kills."""
    import subprocess
    import sys

    from pixelrnn.utils import remove_stale_temporaries

    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True).stdout.strip()
    stale, live, legacy = (tmp_path / f".a.bin.{dead}.abcdefgh.tmp", tmp_path / f".b.bin.{os.getpid()}.abcdefgh.tmp",
                           tmp_path / ".c.bin.abcdefgh.tmp")
    for path in (stale, live, legacy):
        path.write_text("x")
    assert remove_stale_temporaries(tmp_path) == [stale]
    assert live.exists() and legacy.exists()
    assert sorted(remove_stale_temporaries(tmp_path, every=True)) == sorted([live, legacy])
