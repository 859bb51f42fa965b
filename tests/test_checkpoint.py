import pickle

import pytest
import torch

from pixelrnn import CheckpointError, build_model, load_model, save_model


@pytest.mark.parametrize("arch", ["pixelcnn", "row_lstm", "diagonal_bilstm"])
def test_checkpoint_rebuilds_the_model_alone(tmp_path, arch):
    torch.manual_seed(0)
    model = build_model(arch, channels=3, levels=16, hidden=6, layers=2, output_hidden=12, skip=False, row_kernel=5)
    path = save_model(model, tmp_path / "model.safetensors")
    restored = load_model(path)
    assert restored.config == model.config
    x = torch.randint(0, 16, (2, 3, 4, 5))
    assert torch.equal(restored(x), model(x))
    assert not list(tmp_path.glob("*.tmp"))
    assert not restored.training  # ready for evaluation and sampling


def test_a_run_folder_loads_in_eval_mode(tmp_path):
    from pixelrnn import load_model_from

    save_model(build_model("pixelcnn", channels=1, levels=2, hidden=4, layers=1).train(), tmp_path / "best.safetensors")
    model = load_model_from(tmp_path)
    assert not any(module.training for module in model.modules())


def test_bad_files_give_one_line_errors(tmp_path):
    missing = tmp_path / "none.safetensors"
    with pytest.raises(CheckpointError, match="does not exist"):
        load_model(missing)

    model = build_model("pixelcnn", channels=1, levels=2, hidden=4, layers=1)
    good = save_model(model, tmp_path / "good.safetensors")
    truncated = tmp_path / "truncated.safetensors"
    truncated.write_bytes(good.read_bytes()[: len(good.read_bytes()) // 2])
    with pytest.raises(CheckpointError, match="not a readable"):
        load_model(truncated)

    # a pickle that would run code when unpickled is never unpickled
    marker = tmp_path / "pwned"

    class Exploit:
        def __reduce__(self):
            return (open, (str(marker), "w"))

    evil = tmp_path / "evil.safetensors"
    evil.write_bytes(pickle.dumps(Exploit()))
    with pytest.raises(CheckpointError):
        load_model(evil)
    assert not marker.exists()

    foreign = tmp_path / "foreign.safetensors"
    from safetensors.torch import save_file
    save_file({"w": torch.zeros(2)}, str(foreign))
    with pytest.raises(CheckpointError, match="not a pixelrnn checkpoint"):
        load_model(foreign)


def test_saving_over_a_checkpoint_is_atomic(tmp_path, monkeypatch):
    model = build_model("pixelcnn", channels=1, levels=2, hidden=4, layers=1)
    path = save_model(model, tmp_path / "model.safetensors")
    before = path.read_bytes()

    import pixelrnn.models.weights as weights  # the one writer of weights files

    def failing_save(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(weights, "save_file", failing_save)
    with pytest.raises(OSError):
        save_model(model, path)
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["model.safetensors"]
