"""Nothing lost: one process per run folder, the best checkpoint only improves, a finished run
resumed changes no byte, a full disk at any writer is one line and the run resumes exactly."""

import json
import os
import shutil
import subprocess
import sys
import time

import pytest
from safetensors import safe_open

from pixelrnn.cli import main
from pixelrnn import errors
from pixelrnn.training import RunFolder

from faults import SCHEDULE, TINY, FullDisk, fingerprint, records

pytestmark = pytest.mark.usefixtures("one_thread")


def train(*args):
    return main(["train", *TINY, *SCHEDULE, *args])


def metadata(path):
    with safe_open(str(path), framework="pt") as handle:
        return handle.metadata()


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """An uninterrupted 6-step run: validations at steps 5 and 6, checkpoints at 2, 4 and 6."""
    folder = tmp_path_factory.mktemp("reference") / "run"
    assert train("--steps", "6", "--out", str(folder)) == 0
    return folder


def test_the_state_is_saved_after_the_last_validation(reference):
    """Issue 24, failure 1: the state was written at step 6 before step 6's validation and never again."""
    state = metadata(reference / "state.safetensors")
    valid = [r for r in records(reference) if r["split"] == "valid"]
    assert [r["step"] for r in valid] == [5, 6]
    assert json.loads(state["validated_step"]) == 6
    assert json.loads(state["best_valid"]) == min(r["nats"] for r in valid)
    best = min(valid, key=lambda r: r["nats"])
    assert metadata(reference / "best.safetensors")["step"] == str(best["step"])


def test_resuming_a_finished_run_changes_no_byte(reference, tmp_path, capsys):
    """Issue 24, failure 1: each resume of a finished run added a "step 6 valid" line and rewrote best."""
    folder = tmp_path / "run"
    shutil.copytree(reference, folder)
    before = fingerprint(folder)
    time.sleep(0.01)
    for _ in range(2):
        assert main(["train", "--resume", str(folder), "-q"]) == 0
        assert "nothing to do, nothing changed" in capsys.readouterr().out
    assert fingerprint(folder) == before
    assert sorted(p.name for p in folder.iterdir()) == sorted(before)


def test_the_best_checkpoint_only_gets_better(reference, tmp_path):
    """Issue 24, failure 1: the three commands (train; resume; resume --steps +1 with a large lr)."""
    folder = tmp_path / "run"
    shutil.copytree(reference, folder)
    best_before = (folder / "best.safetensors").read_bytes()
    assert main(["train", "--resume", str(folder), "-q"]) == 0
    assert main(["train", "--resume", str(folder), "--steps", "7", "--set", "train.lr=0.5", "-q"]) == 0
    valid = [r for r in records(folder) if r["split"] == "valid"]
    assert [r["step"] for r in valid] == [5, 6, 7]
    best = min(valid, key=lambda r: r["nats"])
    assert metadata(folder / "best.safetensors")["step"] == str(best["step"])
    assert json.loads(metadata(folder / "state.safetensors")["best_valid"]) == best["nats"]
    if best["step"] != 7:
        assert (folder / "best.safetensors").read_bytes() == best_before


# ------------------------------------------------------------------------------------------ the lock
HOLDER = """
import fcntl, sys, time
handle = open(sys.argv[1], "a+b")
fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
print("locked", flush=True)
time.sleep(120)
"""


@pytest.fixture
def held(tmp_path):
    """A run folder whose lock another process holds (as a training process does)."""
    folder = tmp_path / "run"
    folder.mkdir()
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, str(folder / "train.lock")], stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline().strip() == "locked"
    yield folder, holder.pid
    holder.kill()
    holder.wait()


@pytest.mark.parametrize("how", ["--out", "--resume"])
def test_a_second_process_on_a_run_folder_gets_one_line_naming_the_first(held, reference, capsys, how):
    """Issue 24, failure 3: two `train --out X` both exited 0; a `--resume X` during training mixed steps."""
    folder, pid = held
    if how == "--resume":
        for name in ("config.json", "metrics.jsonl", "state.safetensors", "last.safetensors", "best.safetensors"):
            shutil.copy(reference / name, folder / name)
        before = fingerprint(folder)
    status = train("--steps", "6", "--out", str(folder)) if how == "--out" else main(["train", "--resume", str(folder), "-q"])
    assert status == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and f"process {pid}" in err and str(folder) in err
    if how == "--resume":
        assert fingerprint(folder) == before
    else:
        assert sorted(p.name for p in folder.iterdir()) == ["train.lock"]


def test_two_training_processes_at_once(tmp_path):
    """The literal case: a second `pixelrnn train --out X` while the first trains X."""
    folder = tmp_path / "run"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    command = [sys.executable, "-m", "pixelrnn", "train", *TINY, "--out", str(folder)]
    first = subprocess.Popen(command + ["--steps", "100000"], env=env, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 120
        while not (folder / "metrics.jsonl").exists() and time.monotonic() < deadline:
            time.sleep(0.1)
        second = subprocess.run(command + ["--steps", "3"], env=env, capture_output=True, text=True, timeout=120)
    finally:
        first.terminate()
        first.wait(timeout=60)
    assert second.returncode == 2, second.stderr
    assert f"process {first.pid}" in second.stderr and len(second.stderr.strip().splitlines()) == 1
    steps = [r["step"] for r in records(folder) if r["split"] == "train"]
    assert steps == sorted(steps) and len(steps) == len(set(steps))


def test_stale_temporary_files_are_removed_by_the_next_process(reference, tmp_path):
    """Issue 24, failure 6: `.state.safetensors.*.tmp` files of killed processes piled up."""
    folder = tmp_path / "run"
    shutil.copytree(reference, folder)
    stale = [folder / ".state.safetensors.abc123.tmp", folder / f".last.safetensors.{2**22 + 7}.k2j3h4g5.tmp"]
    for path in stale:
        path.write_bytes(b"half a file")
    assert main(["train", "--resume", str(folder), "-q"]) == 0
    assert not any(path.exists() for path in stale)


def test_train_out_into_a_pretrained_folder_is_refused(tmp_path, capsys):
    """Issue 24, failure 6: `train --out` into a copy of a pretrained folder overwrote its config.json."""
    from pixelrnn.hub import pretrained_folder

    folder = tmp_path / "copy"
    shutil.copytree(pretrained_folder("binarized_mnist/pixelcnn"), folder)
    before = fingerprint(folder)
    assert train("--steps", "2", "--out", str(folder)) == 2
    assert "already holds a model" in capsys.readouterr().err
    assert fingerprint(folder) == before


# ------------------------------------------------------------------------------------- full disks
def test_a_cut_off_metrics_line_is_dropped_on_resume_with_a_warning(reference, tmp_path, capsys):
    """Issue 24, failure 2: a cut-off last line made every resume a JSONDecodeError traceback."""
    folder = tmp_path / "run"
    shutil.copytree(reference, folder)
    state = folder / "state.safetensors"
    # The run as a kill at step 5 left it: the state of step 4 and half of a line after step 5's.
    assert main(["train", *TINY, *SCHEDULE, "--steps", "4", "--out", str(tmp_path / "four")]) == 0
    shutil.copy(tmp_path / "four" / "state.safetensors", state)
    lines = (folder / "metrics.jsonl").read_text().splitlines()
    (folder / "metrics.jsonl").write_text("".join(line + "\n" for line in lines[:6]) + lines[6][:25])
    with pytest.warns(UserWarning, match="last line was cut off"):
        assert main(["train", "--resume", str(folder), "-q"]) == 0
    assert records(folder) == records(reference)


@pytest.mark.parametrize("name, after", [("config.json", 0), ("metrics.jsonl", 4), ("state.safetensors", 1),
                                         ("last.safetensors", 1), ("best.safetensors", 0)])
def test_a_full_disk_at_each_writer_is_one_line_and_the_run_resumes_exactly(reference, tmp_path, monkeypatch, capsys,
                                                                            name, after):
    """Issue 24, failure 2: a full disk gave tracebacks, and a metrics line cut off that blocked --resume."""
    folder = tmp_path / "run"
    with monkeypatch.context() as patch:
        disk = FullDisk(patch, name, after)
        status = train("--steps", "6", "--out", str(folder))
    assert disk.failures == 1 and status == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "the disk is full" in err and name in err and "needs" in err
    assert not list(folder.glob(".*.tmp")) if folder.exists() else True
    if RunFolder(folder).holds_run():
        assert main(["train", "--resume", str(folder), "-q"]) == 0
    else:
        assert train("--steps", "6", "--out", str(folder)) == 0
    assert records(folder) == records(reference)
    for checkpoint in ("state.safetensors", "best.safetensors", "last.safetensors"):
        assert metadata(folder / checkpoint).get("step") == metadata(reference / checkpoint).get("step")


def test_append_metrics_takes_back_a_line_the_disk_has_no_room_for(tmp_path, monkeypatch):
    folder = RunFolder(tmp_path)
    folder.append_metrics({"step": 1, "split": "train", "nats": 1.0})
    before = folder.metrics.read_bytes()
    FullDisk(monkeypatch, "metrics.jsonl")
    with pytest.raises(errors.DiskFullError, match="metrics.jsonl.*needs"):
        folder.append_metrics({"step": 2, "split": "train", "nats": 2.0})
    assert folder.metrics.read_bytes() == before


@pytest.fixture
def small_disk(tmp_path):
    """A 1 MiB tmpfs (a real file system that fills up), where this machine lets the tests mount one."""
    mount_point = tmp_path / "disk"
    mount_point.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mount_point)], capture_output=True, text=True)
    if mounted.returncode:
        pytest.skip(f"cannot mount a tmpfs here ({(mounted.stderr or 'not permitted').strip()[:100]}); the other full-disk tests "
                    "simulate ENOSPC instead")
    yield mount_point
    subprocess.run(["umount", "-l", str(mount_point)], check=False)


def fill(disk, leave):
    """A file that takes all of the disk's free space but ``leave`` bytes."""
    free = shutil.disk_usage(disk).free
    filler = disk / "filler"
    with open(filler, "wb") as handle:
        handle.write(b"\0" * max(free - leave, 0))
    return filler


@pytest.mark.parametrize("leave_kib", [4, 16, 32, 48])
def test_a_real_full_disk_is_one_line_and_the_run_resumes_exactly(reference, small_disk, capsys, leave_kib):
    """Issue 24, failure 2, on a real file system: the run stops on one line wherever the space runs out; after space
    is freed it resumes to the uninterrupted run's records."""
    filler = fill(small_disk, leave_kib * 1024)
    folder = small_disk / "run"
    status = train("--steps", "6", "--out", str(folder))
    err = capsys.readouterr().err.strip()
    assert status == 2, f"the run fitted into {leave_kib} KiB; the test needs a disk that fills up"
    assert len(err.splitlines()) == 1 and "the disk is full" in err and "needs" in err
    filler.unlink()
    if RunFolder(folder).holds_run():
        assert main(["train", "--resume", str(folder), "-q"]) == 0
    else:
        assert train("--steps", "6", "--out", str(folder)) == 0
    assert records(folder) == records(reference)
    assert not list(folder.glob(".*.tmp"))
