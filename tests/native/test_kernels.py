"""The native kernels build on first use, and where they cannot, everything falls back with one warning."""

import os
import subprocess
import sys
import textwrap
import warnings
from pathlib import Path

import pytest
import torch

from pixelrnn import native
from pixelrnn.sampling import ENGINES, make_engine, sample
from pixelrnn.models import build_model

ROOT = Path(__file__).resolve().parents[2]

# Run in a fresh interpreter: the kernels' state is per process. Prints the number of warnings,
# whether the kernels loaded, and the images and a Diagonal BiLSTM's output as seen from each path.
SCRIPT = textwrap.dedent("""
    import warnings
    import torch
    from pixelrnn import native
    from pixelrnn.models import build_model
    from pixelrnn.sampling import make_engine, sample
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        torch.manual_seed(0)
        model = build_model("diagonal_bilstm", channels=1, levels=2, hidden=4, layers=2)
        images = sample(model, 2, 4, 4, generator=torch.Generator().manual_seed(1))
        out = model(images).sum()
        out.backward()
        engine = type(make_engine(model)).__name__
        loaded = native.library() is not None
    kernel_warnings = [w for w in caught if issubclass(w.category, native.NativeKernelsWarning)]
    print(len(kernel_warnings), loaded, engine, images.flatten().tolist(), float(out))
""")


def run_fresh(environment: dict) -> list[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT), **environment}
    done = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True, env=env, timeout=600)
    assert done.returncode == 0, done.stderr
    return done.stdout.split(maxsplit=3)


def test_without_a_compiler_everything_falls_back_with_one_warning(tmp_path):
    """A compiler that is not there: one warning, the reference engines and scans, the same samples."""
    fallback = run_fresh({"CXX": str(tmp_path / "no-such-compiler"), "TORCH_EXTENSIONS_DIR": str(tmp_path / "cache")})
    assert fallback[:3] == ["1", "False", "DiagonalBiLSTMEngine"]
    switched_off = run_fresh({"PIXELRNN_NATIVE": "0"})  # off on purpose: no build, no warning
    assert switched_off == ["0", "False", "DiagonalBiLSTMEngine", fallback[3]]


@pytest.mark.skipif(native.library() is None, reason="the native kernels cannot be built here")
def test_with_the_kernels_the_same_samples_come_out():
    native_run = run_fresh({})
    reference = run_fresh({"PIXELRNN_NATIVE": "0"})
    assert native_run[:3] == ["0", "True", "NativeDiagonalBiLSTMEngine"]
    images, out = native_run[3].rsplit(maxsplit=1)
    reference_images, reference_out = reference[3].rsplit(maxsplit=1)
    assert images == reference_images and abs(float(out) - float(reference_out)) <= 1e-4 * abs(float(reference_out))


def test_a_failed_build_warns_once_and_every_caller_takes_the_pytorch_path(monkeypatch):
    def failing_build():
        raise OSError("no C++ compiler found")

    monkeypatch.setattr(native, "_build", failing_build)
    monkeypatch.setitem(native._state, "tried", False)
    monkeypatch.setitem(native._state, "library", None)
    monkeypatch.setitem(native._state, "enabled", True)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert native.library() is None and native.library() is None
        torch.manual_seed(0)
        model = build_model("row_lstm", channels=1, levels=2, hidden=4, layers=1)
        assert type(make_engine(model)) in ENGINES.values()
        sample(model, 1, 2, 2)
        model(torch.zeros(1, 1, 3, 3, dtype=torch.long)).sum().backward()
    assert [str(w.message) for w in caught if issubclass(w.category, native.NativeKernelsWarning)] == [
        "pixelrnn: native kernels unavailable (no C++ compiler found); using the slower PyTorch paths. "
        "Install a C++ compiler and ninja to build them."]


def test_disabled_turns_the_kernels_off_for_its_block_only():
    before = native.library()
    with native.disabled():
        assert native.library() is None and native.kernel("pixelrnn_run", torch.float32) is None
    assert native.library() is before


def test_the_build_is_keyed_by_the_sources_and_the_instruction_set():
    name = native.extension_name()
    assert name.startswith(f"pixelrnn_native_{torch.backends.cpu.get_cpu_capability().lower()}_")
    assert all((native.SOURCE_DIR / source).is_file() for source in native.SOURCES + native.HEADERS)


def test_two_checkouts_of_the_same_sources_build_apart(monkeypatch, tmp_path):
    """A build records its sources' paths; sharing a name, two checkouts would rebuild each other's build."""
    import shutil

    name = native.extension_name()
    copy = tmp_path / "native"
    shutil.copytree(native.SOURCE_DIR, copy)
    monkeypatch.setattr(native, "SOURCE_DIR", copy)
    in_copy = native.extension_name()
    assert in_copy != name
    (copy / native.SOURCES[0]).write_text((copy / native.SOURCES[0]).read_text() + "\n")
    assert native.extension_name() not in (name, in_copy)  # and an edited source is another build


@pytest.mark.skipif(native.library() is None, reason="the native kernels cannot be built here")
def test_a_compiler_without_openmp_still_builds_the_kernels(monkeypatch, tmp_path):
    """The OpenMP flag makes the build fail: the kernels are built again without it and work."""
    monkeypatch.setenv("TORCH_EXTENSIONS_DIR", str(tmp_path))  # a build of its own, the cache untouched
    monkeypatch.setattr(native, "_openmp_flags", lambda: ["-fno-such-openmp-option"])
    library = native._build()
    assert "_openmp" not in Path(library._name).stem
    levels = torch.arange(2, dtype=torch.int64)
    table = torch.tensor([10.0, 20.0], dtype=torch.float64)
    out = torch.zeros(2, dtype=torch.float64)
    assert library.pixelrnn_write_f64(levels.data_ptr(), 1, table.data_ptr(), 2, out.data_ptr(), 1, 2) == 0
    assert out.tolist() == [10.0, 20.0]
