"""sample and complete write their outputs chunk by chunk (pixelrnn.cli.streaming): the same images, flat memory, no partial file."""

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from pixelrnn import build_model, save_model
from pixelrnn.cli import UserError, generate, streaming
from pixelrnn.images import load_samples_npz, to_uint8
from pixelrnn.sampling import complete_images, sample

from pictures import read_png

pytestmark = pytest.mark.usefixtures("one_thread")
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def model_file(tmp_path_factory):
    torch.manual_seed(2)
    model = build_model("pixelcnn", channels=1, levels=5, hidden=4, layers=1, output_hidden=8)
    path = tmp_path_factory.mktemp("model") / "model.safetensors"
    save_model(model, path, metadata={"image_size": "4x3"})
    return model.eval(), path


def run(argv):
    parser = argparse.ArgumentParser(prog="pixelrnn")
    sub = parser.add_subparsers(dest="command", required=True)
    generate.add_sample_parser(sub)
    generate.add_complete_parser(sub)
    args = parser.parse_args(argv)
    args.func(args)


def seeded(seed):
    return torch.Generator().manual_seed(seed)


def test_streamed_samples_are_the_images_drawn_in_memory(tmp_path, model_file, monkeypatch):
    model, path = model_file
    monkeypatch.setattr(streaming, "FIGURE_IMAGES", 4)
    monkeypatch.setattr(generate, "FIGURE_IMAGES", 4)
    out = tmp_path / "s.png"
    run(["sample", str(path), "-n", "11", "--batch-size", "3", "--seed", "7", "--out", str(out), "--scale", "1", "-q",
         "--device", "cpu", "--png-dir", str(tmp_path / "pngs")])
    expected = sample(model, 11, 4, 3, generator=seeded(7), batch_size=3)
    with np.load(tmp_path / "s.npz") as npz:  # numpy reads it as any npz
        assert list(npz.keys()) == ["images"] and npz["images"].dtype == np.uint8
        assert np.array_equal(npz["images"], expected.numpy())
    assert torch.equal(load_samples_npz(tmp_path / "s.npz"), expected)
    # The figure shows the first FIGURE_IMAGES images; every one goes to --png-dir.
    assert read_png(out)[1].shape == (2 + 2 * (4 + 2), 2 + 2 * (3 + 2))
    assert sorted(p.name for p in (tmp_path / "pngs").iterdir()) == [f"{i:04d}.png" for i in range(11)]
    assert np.array_equal(read_png(tmp_path / "pngs" / "0010.png")[1], to_uint8(expected[10:], 5)[0, 0])
    # Without --batch-size the default chunk is CHUNK: up to it, the images of one unchunked draw.
    run(["sample", str(path), "-n", "11", "--seed", "7", "--out", str(tmp_path / "one.png"), "-q", "--device", "cpu"])
    assert torch.equal(load_samples_npz(tmp_path / "one.npz"), sample(model, 11, 4, 3, generator=seeded(7)))


def test_streamed_completions_are_the_completions_drawn_in_memory(tmp_path, model_file):
    model, path = model_file
    sources = torch.randint(0, 5, (3, 1, 4, 3), generator=seeded(0))
    np.savez(tmp_path / "src.npz", images=sources.numpy().astype(np.uint8))
    run(["complete", str(path), "--npz", str(tmp_path / "src.npz"), "--index", "0", "--index", "1", "--index", "2", "--keep-rows", "2",
         "-k", "4", "--batch-size", "5", "--seed", "3", "--out", str(tmp_path / "c.png"), "-q", "--device", "cpu"])
    expected = complete_images(model, sources, 2, 4, generator=seeded(3), batch_size=5)  # (3, 4, 1, 4, 3)
    assert torch.equal(load_samples_npz(tmp_path / "c.npz"), expected.flatten(0, 1))
    assert torch.equal(expected[:, :, :, :2], sources[:, None, :, :2].expand(3, 4, 1, 2, 3))


def test_an_interrupted_run_leaves_no_partial_file(tmp_path, model_file, monkeypatch):
    _, path = model_file
    out = tmp_path / "s.png"
    out.with_suffix(".npz").write_bytes(b"earlier")
    calls = []

    def interrupted(model, n, height, width, **options):
        calls.append(n)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return torch.zeros(n, 1, height, width, dtype=torch.long)

    monkeypatch.setattr(generate, "sample", interrupted)
    with pytest.raises(KeyboardInterrupt):
        run(["sample", str(path), "-n", "10", "--batch-size", "4", "--out", str(out), "--force", "-q", "--device", "cpu"])
    assert calls == [4, 4]
    # The earlier file is as it was, and neither a figure nor a temporary file is left.
    assert sorted(p.name for p in tmp_path.iterdir()) == ["s.npz"] and out.with_suffix(".npz").read_bytes() == b"earlier"


def test_png_dir_is_checked_before_anything_is_drawn(tmp_path, model_file, monkeypatch):
    _, path = model_file
    (tmp_path / "pngs").mkdir()
    (tmp_path / "pngs" / "0003.png").write_bytes(b"mine")
    monkeypatch.setattr(generate, "sample", lambda *a, **k: pytest.fail("drew images before checking --png-dir"))
    with pytest.raises(UserError, match="already holds 0003.png"):
        run(["sample", str(path), "-n", "5", "--out", str(tmp_path / "s.png"), "-q", "--device", "cpu", "--png-dir", str(tmp_path / "pngs")])
    assert not (tmp_path / "s.npz").exists()


CHILD = """
import json, resource, sys
import torch
torch.set_num_threads(1)
from pixelrnn.cli import main, streaming
streaming.CHUNK = 64
peaks = []
for n in sys.argv[2:]:  # the smaller count first: the process is warm before the larger one
    main(["sample", sys.argv[1], "-n", n, "--seed", "0", "--scale", "1", "-q", "--device", "cpu", "--force", "--out", sys.argv[1] + ".png"])
    peaks.append(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
print(json.dumps(peaks))
"""


@pytest.mark.skipif(sys.platform != "linux", reason="ru_maxrss in KiB is Linux's")
def test_peak_memory_does_not_grow_with_the_number_of_images(tmp_path):
    # A model with a large sampling state per image (about 30 KB): holding 1,024 images at once
    # raised the peak by about 29 MiB over 128 (58 MiB for 2,048).
    torch.manual_seed(0)
    model = build_model("pixelcnn", channels=1, levels=2, hidden=64, layers=1, output_hidden=8)
    save_model(model, tmp_path / "model.safetensors", metadata={"image_size": "8x8"})
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    done = subprocess.run([sys.executable, "-c", CHILD, str(tmp_path / "model.safetensors"), "128", "1024"], env=env,
                          capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stderr
    small, large = json.loads(done.stdout.strip().splitlines()[-1])
    assert large - small < 12, (small, large)
    assert load_samples_npz(tmp_path / "model.safetensors.npz").shape == (1024, 1, 8, 8)
