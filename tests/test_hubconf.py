"""hubconf.py: ``torch.hub.load(repo_dir, ..., source="local")`` gives the bundled networks."""

from pathlib import Path

import pytest
import torch

from pixelrnn import from_pretrained, get_preset
from pixelrnn.hub import bundled_folder, installed_bundled
from pixelrnn.models.pretrained import read_pretrained_config

ROOT = Path(__file__).resolve().parents[1]
ENTRIES = {"pixelcnn_binarized_mnist": "pixelcnn", "row_lstm_binarized_mnist": "row_lstm",
           "diagonal_bilstm_binarized_mnist": "diagonal_bilstm"}


@pytest.mark.parametrize("entry, arch", ENTRIES.items())
def test_an_entry_without_weights_is_the_bundled_network_freshly_initialised(entry, arch):
    if f"binarized_mnist/{arch}" not in installed_bundled():
        pytest.skip(f"the bundled model binarized_mnist/{arch} is not in this installation")
    model = torch.hub.load(str(ROOT), entry, source="local", pretrained=False, verbose=False)
    _, metadata = read_pretrained_config(bundled_folder(f"binarized_mnist/{arch}"))
    assert model.config == get_preset(metadata["preset"]).config and not model.training
    bundled = from_pretrained(f"binarized_mnist/{arch}")
    assert not all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), bundled.state_dict().values()))


@pytest.mark.parametrize("entry, arch", ENTRIES.items())
def test_an_entry_loads_the_bundled_weights(entry, arch):
    if f"binarized_mnist/{arch}" not in installed_bundled():
        pytest.skip(f"the bundled model binarized_mnist/{arch} is not in this installation")
    model = torch.hub.load(str(ROOT), entry, source="local", verbose=False)
    expected = from_pretrained(f"binarized_mnist/{arch}")
    assert not model.training
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), expected.state_dict().values()))


def test_the_conditional_entry_is_the_bundled_class_conditional_row_lstm():
    fresh = torch.hub.load(str(ROOT), "row_lstm_conditional_mnist", source="local", pretrained=False, verbose=False)
    assert fresh.config.classes == 10 and fresh.config.class_names == tuple("0123456789") and not fresh.training
    if "mnist/row_lstm_conditional" not in installed_bundled():
        pytest.skip("the bundled model mnist/row_lstm_conditional is not in this installation")
    model = torch.hub.load(str(ROOT), "row_lstm_conditional_mnist", source="local", verbose=False)
    assert model.config == fresh.config
    expected = from_pretrained("mnist/row_lstm_conditional")
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), expected.state_dict().values()))
