"""save_pretrained / from_pretrained (pixelrnn.models.pretrained): the Hugging Face folder, exact round trips, refusals."""

import json
import pickle

import pytest
import torch

import pixelrnn
from pixelrnn import CheckpointError, build_model, from_pretrained, save_pretrained
from pixelrnn.config import ModelConfig, MultiScaleConfig
from pixelrnn.models import MultiScalePixelRNN, PixelCNN, PixelModel, RowLSTMNetwork, model_from_config
from pixelrnn.models.pretrained import model_card, read_pretrained_config

pytestmark = pytest.mark.usefixtures("one_thread")

ARCHS = ("pixelcnn", "row_lstm", "diagonal_bilstm")


def tiny(arch, seed=0, channels=1, levels=2):
    torch.manual_seed(seed)
    return build_model(arch, channels=channels, levels=levels, hidden=4 * channels, layers=2, output_hidden=8 * channels)


def tiny_multiscale(seed=0):
    torch.manual_seed(seed)
    common = dict(channels=1, levels=2, hidden=4, layers=1, output_hidden=8)
    return model_from_config(MultiScaleConfig(small=ModelConfig(arch="pixelcnn", **common),
                                              large=ModelConfig(arch="row_lstm", condition_channels=3, **common)))


def images(levels=2, channels=1, seed=1):
    return torch.randint(0, levels, (3, channels, 6, 5), generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("arch", ARCHS)
def test_round_trip_gives_identical_outputs(tmp_path, arch):
    model = tiny(arch, channels=3, levels=5)
    x = images(levels=5, channels=3)
    folder = model.save_pretrained(tmp_path / arch, metadata={"image_size": "6x5"})
    assert sorted(p.name for p in folder.iterdir()) == ["README.md", "config.json", "model.safetensors"]
    for restored in (from_pretrained(folder), type(model).from_pretrained(folder), PixelModel.from_pretrained(folder)):
        assert type(restored) is type(model) and restored.config == model.config and not restored.training
        assert torch.equal(restored(x), model.eval()(x))


def test_multiscale_round_trip_gives_identical_outputs(tmp_path):
    model = tiny_multiscale().eval()
    x = images()
    save_pretrained(model, tmp_path / "ms")
    for restored in (from_pretrained(tmp_path / "ms"), MultiScalePixelRNN.from_pretrained(tmp_path / "ms")):
        assert isinstance(restored, MultiScalePixelRNN) and restored.config == model.config
        assert torch.equal(restored.nll(x), model.nll(x))
        assert all(torch.equal(a, b) for a, b in zip(restored(x), model(x)))


def test_the_folder_is_a_checkpoint_too_and_its_files_agree(tmp_path):
    model = tiny("row_lstm")
    folder = model.save_pretrained(tmp_path / "m", metadata={"image_size": "6x5", "dataset": "binarized_mnist"})
    config, metadata = read_pretrained_config(folder)
    assert config == model.config and metadata == {"image_size": "6x5", "dataset": "binarized_mnist"}
    as_checkpoint, header = pixelrnn.checkpoint.load_model_with_metadata(pixelrnn.resolve_checkpoint(folder))
    assert header["image_size"] == "6x5" and torch.equal(as_checkpoint.eval()(images()), model.eval()(images()))
    card = (folder / "README.md").read_text()
    assert card.startswith("---\nlibrary_name: pixelrnn\n") and f"{sum(p.numel() for p in model.parameters()):,} parameters" in card


def test_from_pretrained_places_the_model_on_the_device_in_eval_mode(tmp_path):
    model = tiny("pixelcnn").train()
    model.save_pretrained(tmp_path / "m")
    restored = from_pretrained(tmp_path / "m", device=torch.device("cpu"))
    assert restored.device == torch.device("cpu") and not restored.training
    assert all(not module.training for module in restored.modules())


def test_a_class_loads_only_its_own_architecture(tmp_path):
    tiny("row_lstm").save_pretrained(tmp_path / "row")
    tiny_multiscale().save_pretrained(tmp_path / "ms")
    with pytest.raises(CheckpointError, match="holds a row_lstm model .*not a PixelCNN"):
        PixelCNN.from_pretrained(tmp_path / "row")
    with pytest.raises(CheckpointError, match="holds a multiscale model .*not a PixelModel"):
        PixelModel.from_pretrained(tmp_path / "ms")
    assert isinstance(RowLSTMNetwork.from_pretrained(tmp_path / "row"), RowLSTMNetwork)


class Payload:
    """Unpickling this would create the file it names: proof that a pickle was executed."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (open, (str(self.marker), "w"))


def test_a_pickle_in_place_of_the_weights_is_refused_unopened(tmp_path):
    folder = tiny("pixelcnn").save_pretrained(tmp_path / "m")
    marker = tmp_path / "executed"
    torch.save({"weights": Payload(marker)}, folder / "model.safetensors")
    with pytest.raises(CheckpointError, match="model.safetensors is not a readable safetensors checkpoint"):
        from_pretrained(folder)
    # A folder offering only the pickled weights file of other libraries.
    (folder / "model.safetensors").unlink()
    (folder / "pytorch_model.bin").write_bytes(pickle.dumps(Payload(marker)))
    with pytest.raises(CheckpointError, match=r"has no model.safetensors \(pytorch_model.bin is a pickle, which pixelrnn never loads\)"):
        from_pretrained(folder)
    assert not marker.exists()


def test_a_missing_config_is_one_clear_error(tmp_path):
    folder = tiny("pixelcnn").save_pretrained(tmp_path / "m")
    (folder / "config.json").unlink()
    with pytest.raises(CheckpointError) as caught:
        from_pretrained(folder)
    assert str(caught.value) == f"{folder} has no config.json; a pretrained folder holds config.json, model.safetensors and README.md"


@pytest.mark.parametrize("text, match", [
    ("{not json", "is not valid JSON"),
    ('{"format": "other"}', "is not a pixelrnn configuration"),
    ('{"format": "pixelrnn.pretrained.v1", "model": {"arch": "pixelcnn"}}', "holds no valid model configuration"),
    ('{"format": "pixelrnn.pretrained.v1", "model": {}, "metadata": {"step": 3}}', "'metadata' must map names to strings"),
])
def test_a_bad_config_is_one_clear_error(tmp_path, text, match):
    folder = tiny("pixelcnn").save_pretrained(tmp_path / "m")
    (folder / "config.json").write_text(text)
    with pytest.raises(CheckpointError, match=match) as caught:
        from_pretrained(folder)
    assert "\n" not in str(caught.value)


def test_config_and_weights_that_disagree_are_refused(tmp_path):
    folder = tiny("pixelcnn").save_pretrained(tmp_path / "m")
    description = json.loads((folder / "config.json").read_text())
    description["model"]["hidden"] = 8
    (folder / "config.json").write_text(json.dumps(description))
    with pytest.raises(CheckpointError, match="carries another configuration than"):
        from_pretrained(folder)


def test_weights_without_pixelrnn_metadata_load_by_config_json(tmp_path):
    """A folder whose weights were re-saved by other tools (plain safetensors) loads from config.json alone."""
    from safetensors.torch import save_file

    model = tiny("diagonal_bilstm")
    folder = model.save_pretrained(tmp_path / "m")
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, folder / "model.safetensors", metadata={"format": "pt"})
    assert torch.equal(from_pretrained(folder)(images()), model.eval()(images()))
    save_file({"input_conv.weight": torch.zeros(1)}, folder / "model.safetensors")
    with pytest.raises(CheckpointError, match=r"of its configuration \(.*\) is not in the file"):
        from_pretrained(folder)


def test_metadata_must_be_strings_and_leave_the_files_own_keys(tmp_path):
    with pytest.raises(pixelrnn.ConfigError, match="metadata must map strings to strings"):
        tiny("pixelcnn").save_pretrained(tmp_path / "m", metadata={"step": 3})
    with pytest.raises(pixelrnn.ConfigError, match="may not set 'format' or 'pixelrnn.config'"):
        tiny("pixelcnn").save_pretrained(tmp_path / "m", metadata={"format": "pt"})
    assert not (tmp_path / "m").exists()


def test_model_card_sections_follow_the_header():
    card = model_card(tiny("row_lstm"), {"dataset": "digits"}, name="owner/repo", sections=(("Results", "| a | b |"),))
    assert "# Row LSTM on digits" in card and 'pixelrnn.from_pretrained("owner/repo")' in card
    assert card.index("## Configuration") < card.index("## Metadata") < card.index("## Results")


def test_a_deeply_nested_configuration_is_one_line(tmp_path):
    from pixelrnn import CheckpointError
    from pixelrnn.models import from_pretrained as load_folder

    folder = tmp_path / "nested"
    folder.mkdir()
    (folder / "config.json").write_text('{"format": "pixelrnn.pretrained.v1", "model": ' + "[" * 100_000 + "]" * 100_000 + "}")
    with pytest.raises(CheckpointError) as error:
        load_folder(folder)
    assert "\n" not in str(error.value) and "config.json" in str(error.value)


def test_a_re_exported_model_keeps_its_image_size(tmp_path):
    """A model loaded from a checkpoint or a pretrained folder and saved again keeps what the file recorded."""
    from pixelrnn import build_model, load_model, save_model
    from pixelrnn.models import from_pretrained as load_folder
    from pixelrnn.models.pretrained import read_pretrained_config

    path = save_model(build_model("pixelcnn", channels=1, levels=2, hidden=4, layers=1, output_hidden=8), tmp_path / "m.safetensors",
                      metadata={"image_size": "5x6", "dataset": "digits"})
    folder = load_model(path).save_pretrained(tmp_path / "exported")
    assert read_pretrained_config(folder)[1] == {"dataset": "digits", "image_size": "5x6"}
    again = load_folder(folder).save_pretrained(tmp_path / "again", metadata={"dataset": "mine"})
    assert read_pretrained_config(again)[1] == {"dataset": "mine", "image_size": "5x6"}
