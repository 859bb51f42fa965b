"""The training state file read back: damaged metadata is one TrainingError line, never a traceback."""

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import save_file

from pixelrnn import build_model
from pixelrnn.errors import TrainingError
from pixelrnn.training import TrainingState


def state(seed=0):
    torch.manual_seed(seed)
    model = build_model("pixelcnn", channels=1, levels=2, hidden=2, layers=1, output_hidden=2)
    return TrainingState(model, None, torch.optim.Adam(model.parameters()), step=7, best_valid=1.5)


@pytest.mark.parametrize("key,value", [("model_config", None), ("model_config", "[1]"), ("optimizer", "{"), ("optimizer", '{"scalars": []}'),
                                       ("step", "seven"), ("best_valid", "{")])
def test_damaged_metadata_is_one_line(tmp_path, key, value):
    saved = state()
    saved.optimizer.zero_grad()
    saved.model.nll(torch.zeros(1, 1, 3, 3, dtype=torch.long)).sum().backward()
    saved.optimizer.step()  # the optimizer now has state tensors to save
    path = tmp_path / "state.safetensors"
    saved.save(path, saved.model.config)
    restored = state(seed=1)
    restored.load(path, saved.model.config, torch.device("cpu"))
    assert restored.step == 7 and torch.equal(restored.model.input_conv.weight, saved.model.input_conv.weight)
    with safe_open(str(path), framework="pt") as handle:
        metadata, tensors = handle.metadata(), {name: handle.get_tensor(name) for name in handle.keys()}
    if value is None:
        del metadata[key]
    else:
        metadata[key] = value
    save_file(tensors, str(path), metadata=metadata)
    with pytest.raises(TrainingError) as error:
        state().load(path, saved.model.config, torch.device("cpu"))
    assert str(error.value).startswith(f"cannot resume: {path}") and "\n" not in str(error.value)
