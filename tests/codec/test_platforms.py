"""Integer files decode bit for bit under other platforms; the same settings change the float model's logits.

The issue this answers: a file coded with float logits failed to decode under MKL's AVX2 or SSE4.2
code path, oneDNN's SSE4.1 one, ATen's default capability or another thread count. Here each
setting runs in its own process (the variables are read when the libraries load) that decodes
every integer file (each architecture, 1 and 3 channels, 2 and 256 levels) and computes the float
models' logits. The decode must give the very pixels; the float logits must differ from those of
the baseline process, or the setting tests nothing on this machine and the check says so.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from codec_cases import image_set
from pixelrnn import build_model, save_model
from pixelrnn.codec import compress

pytest.importorskip("constriction")

WORKER = Path(__file__).with_name("platform_worker.py")
VARIABLES = ("MKL_ENABLE_INSTRUCTIONS", "ONEDNN_MAX_CPU_ISA", "ATEN_CPU_CAPABILITY")
# name: (environment, torch threads, default dtype)
SETTINGS = {
    "baseline": ({}, 1, "float32"),
    "MKL_ENABLE_INSTRUCTIONS=AVX2": ({"MKL_ENABLE_INSTRUCTIONS": "AVX2"}, 1, "float32"),
    "MKL_ENABLE_INSTRUCTIONS=SSE4_2": ({"MKL_ENABLE_INSTRUCTIONS": "SSE4_2"}, 1, "float32"),
    "ONEDNN_MAX_CPU_ISA=SSE41": ({"ONEDNN_MAX_CPU_ISA": "SSE41"}, 1, "float32"),
    "ATEN_CPU_CAPABILITY=default": ({"ATEN_CPU_CAPABILITY": "default"}, 1, "float32"),
    "2 threads": ({}, 2, "float32"),
    "default dtype float64": ({}, 1, "float64"),
}
ARCHS = ("pixelcnn", "row_lstm", "diagonal_bilstm")
CASES = [(arch, channels, levels) for arch in ARCHS for channels in (1, 3) for levels in (2, 256)]


@pytest.fixture(scope="module")
def platforms(tmp_path_factory):
    """Encode here (one thread, this process's settings); decode under every setting, all processes at once."""
    folder = tmp_path_factory.mktemp("platforms")
    originals, listing = {}, {"integer": [], "probe": []}
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        for seed, (arch, channels, levels) in enumerate(CASES):
            name = f"{arch}-{channels}x{levels}"
            torch.manual_seed(seed)
            model = build_model(arch, channels=channels, levels=levels, hidden=4, layers=2, output_hidden=8).eval()
            images = image_set(channels, levels, 5, [(3, 4), (2, 2)], seed=seed)
            save_model(model, folder / f"{name}.safetensors")
            (folder / f"{name}.pxr").write_bytes(compress(model, images, batch_size=2))
            originals[name] = [image.values for image in images]
            listing["integer"].append(name)
        # The float models of the experiment: three layers of each kind, 8x8 binary images.
        probe_images = np.random.default_rng(0).integers(0, 2, size=(8, 1, 8, 8))
        np.save(folder / "probe_images.npy", probe_images)
        for arch in ARCHS:
            torch.manual_seed(100)
            model = build_model(arch, channels=1, levels=2, hidden=16, layers=3, output_hidden=32).eval()
            save_model(model, folder / f"{arch}-probe.safetensors")
            probe = image_set(1, 2, 8, [(8, 8)], seed=1)
            (folder / f"{arch}-probe.float.pxr").write_bytes(compress(model, probe, batch_size=8, arithmetic="float32"))
            listing["probe"].append(f"{arch}-probe")
    finally:
        torch.set_num_threads(previous)
    (folder / "cases.json").write_text(json.dumps(listing))
    base_env = {key: value for key, value in os.environ.items() if key not in VARIABLES}
    base_env["PYTHONPATH"] = os.pathsep.join([str(Path(__file__).resolve().parents[2]), base_env.get("PYTHONPATH", "")])
    running = {}
    for index, (setting, (variables, threads, dtype)) in enumerate(SETTINGS.items()):
        command = [sys.executable, str(WORKER), str(folder), str(folder / f"setting{index}"), str(threads), dtype]
        running[setting] = (subprocess.Popen(command, env={**base_env, **variables}, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                             text=True), folder / f"setting{index}")
    results = {}
    for setting, (process, out) in running.items():
        output, _ = process.communicate(timeout=600)
        assert process.returncode == 0, f"{setting}: {output[-3000:]}"
        with np.load(out / "results.npz") as arrays:
            results[setting] = ({key: arrays[key] for key in arrays.files}, json.loads((out / "float_files.json").read_text()))
    return originals, results


@pytest.mark.parametrize("setting", list(SETTINGS))
def test_integer_files_decode_bit_for_bit(platforms, setting):
    originals, results = platforms
    arrays, _ = results[setting]
    for name, images in originals.items():
        for k, values in enumerate(images):
            assert np.array_equal(arrays[f"decoded/{name}/{k}"], values), f"{setting}: {name} image {k}"


@pytest.mark.parametrize("setting", [name for name in SETTINGS if name != "baseline"])
def test_the_setting_changes_the_float_models_logits(platforms, setting):
    _, results = platforms
    baseline, _ = results["baseline"]
    arrays, float_files = results[setting]
    probes = [key for key in baseline if key.startswith("probe/")]
    assert probes and all(arrays[key].shape == baseline[key].shape for key in probes)
    changed = [key for key in probes if not np.array_equal(baseline[key], arrays[key])]
    for key in changed:  # in rounding only: the same function, summed in another order or width
        assert np.allclose(arrays[key], baseline[key], rtol=1e-4, atol=1e-4), f"{setting}: {key} differs beyond rounding"
    # A float file either decodes or says why, with one of the coder's errors; a float64 copy of the
    # model is another float model (its fingerprint is of the float bytes).
    allowed = {"PlatformError", "DamagedFileError"} | ({"WrongModelError"} if SETTINGS[setting][2] != "float32" else set())
    for name, outcome in float_files.items():
        assert outcome == "decoded" or outcome.split(":")[0] in allowed, (setting, name, outcome)
    if not changed:
        pytest.skip(f"{setting} does not change the float models' logits on this machine "
                    f"({torch.backends.cpu.get_cpu_capability()}), so here it shows nothing about platforms")
