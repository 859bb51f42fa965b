"""``pixelrnn pretrained`` and the ``pretrained:`` names, accepted wherever a run folder is (one resolution for every command).

The bundled folder is replaced by tiny models here, so these tests hold whether or not the
package ships trained weights (tests/test_bundled_models.py checks those).
"""

import json

import numpy as np
import pytest
import torch

from pixelrnn import build_model, hub
from pixelrnn.cli import main
from pixelrnn.images import load_samples_npz
from pixelrnn.training import resolve_checkpoint

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture
def bundled(tmp_path, monkeypatch):
    """binarized_mnist/row_lstm and /pixelcnn as tiny 6x5 binary models with card figures; diagonal_bilstm absent."""
    root = tmp_path / "bundled"
    models = {}
    for seed, arch in enumerate(("row_lstm", "pixelcnn")):
        torch.manual_seed(seed)
        models[arch] = build_model(arch, channels=1, levels=2, hidden=4, layers=1, output_hidden=8).eval()
        models[arch].save_pretrained(root / "binarized_mnist" / arch, metadata={
            "dataset": "binarized_mnist", "image_size": "6x5", "test_nats_per_image": f"{20 + seed}.5",
            "test_nats_per_image_stderr": "0.25", "test_images": "10000"})
    monkeypatch.setattr(hub, "BUNDLED_ROOT", root)
    return root, models


@pytest.fixture
def npz(tmp_path):
    path = tmp_path / "binary.npz"
    rng = np.random.default_rng(0)
    np.savez(path, test=rng.integers(0, 2, (7, 1, 6, 5), dtype=np.uint8), levels=np.array(2))
    return path


def test_pretrained_lists_the_bundled_models_with_their_test_nll(bundled, capsys):
    assert main(["pretrained", "-v"]) == 0
    out = capsys.readouterr().out
    rows = {line.split()[0]: line for line in out.splitlines() if line.startswith("binarized_mnist/")}
    assert "row_lstm" in rows["binarized_mnist/row_lstm"] and "20.50 ± 0.25" in rows["binarized_mnist/row_lstm"]
    assert "21.50 ± 0.25" in rows["binarized_mnist/pixelcnn"]
    assert f"{sum(p.numel() for p in bundled[1]['pixelcnn'].parameters()):,}" in rows["binarized_mnist/pixelcnn"]
    assert "(not in this installation)" in rows["binarized_mnist/diagonal_bilstm"]
    assert f"model card: {bundled[0] / 'binarized_mnist' / 'row_lstm' / 'README.md'}" in out


def test_a_pretrained_name_resolves_to_its_weights_file(bundled):
    root, _ = bundled
    assert resolve_checkpoint("pretrained:binarized_mnist/pixelcnn") == root / "binarized_mnist" / "pixelcnn" / "model.safetensors"
    assert resolve_checkpoint(root / "binarized_mnist" / "pixelcnn") == root / "binarized_mnist" / "pixelcnn" / "model.safetensors"


def test_every_command_takes_a_pretrained_name(bundled, npz, tmp_path, capsys):
    _, models = bundled
    name = "pretrained:binarized_mnist/row_lstm"
    # sample: the image size comes from the folder's metadata.
    assert main(["sample", name, "-n", "3", "--seed", "0", "--out", str(tmp_path / "s.png"), "-q", "--device", "cpu"]) == 0
    assert load_samples_npz(tmp_path / "s.npz").shape == (3, 1, 6, 5)
    # complete
    assert main(["complete", name, "--npz", str(tmp_path / "s.npz"), "--keep-rows", "3", "-k", "2", "--seed", "0",
                 "--out", str(tmp_path / "c.png"), "-q", "--device", "cpu"]) == 0
    completed = load_samples_npz(tmp_path / "c.npz")
    assert completed.shape == (2, 1, 6, 5) and torch.equal(completed[:, :, :3], load_samples_npz(tmp_path / "s.npz")[:1, :, :3].expand(2, -1, -1, -1))
    # evaluate: the NLL is the model's.
    assert main(["evaluate", name, "--dataset", f"npz:{npz}", "--json", str(tmp_path / "e.json"), "-q", "--device", "cpu"]) == 0
    images = torch.from_numpy(np.load(npz)["test"]).long()
    assert json.loads((tmp_path / "e.json").read_text())["nats_per_image"] == pytest.approx(models["row_lstm"].nll(images).double().mean().item(), rel=1e-6)
    # compress and decompress: a lossless round trip.
    assert main(["compress", name, "--dataset", f"npz:{npz}", "-o", str(tmp_path / "set.pxr"), "-q"]) == 0
    assert main(["decompress", name, str(tmp_path / "set.pxr"), "-o", str(tmp_path / "restored"), "-q"]) == 0
    restored = sorted((tmp_path / "restored").iterdir())
    assert len(restored) == 7
    from PIL import Image
    with Image.open(restored[0]) as first:
        assert np.array_equal(np.asarray(first) // 255, np.load(npz)["test"][0, 0])


def test_an_unknown_pretrained_name_is_one_line_with_exit_status_2(bundled, tmp_path, capsys):
    assert main(["sample", "pretrained:binarized_mnist/diagonal_bilstm", "--out", str(tmp_path / "s.png")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("pixelrnn sample: error: the bundled model 'binarized_mnist/diagonal_bilstm' is not in this installation")
    assert "\n" not in err
    assert main(["evaluate", "pretrained:nothing at all"]) == 2
    assert "is not a folder, a bundled model" in capsys.readouterr().err


def test_a_pretrained_folder_without_config_json_is_one_line_with_exit_status_2(bundled, tmp_path, capsys):
    folder = bundled[1]["pixelcnn"].save_pretrained(tmp_path / "m")
    (folder / "config.json").unlink()
    assert main(["sample", f"pretrained:{folder}", "--out", str(tmp_path / "s.png")]) == 2
    assert capsys.readouterr().err == (f"pixelrnn sample: error: {folder} has no config.json; "
                                       "a pretrained folder holds config.json, model.safetensors and README.md\n")


def test_without_out_a_pretrained_model_writes_into_the_working_folder(bundled, tmp_path, monkeypatch):
    root, _ = bundled
    before = sorted(p.name for p in (root / "binarized_mnist" / "pixelcnn").iterdir())
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    assert main(["sample", "pretrained:binarized_mnist/pixelcnn", "-n", "1", "--seed", "0", "-q", "--device", "cpu"]) == 0
    assert sorted(p.name for p in work.iterdir()) == ["samples-001.npz", "samples-001.png"]
    assert sorted(p.name for p in (root / "binarized_mnist" / "pixelcnn").iterdir()) == before  # the model's folder is left alone
