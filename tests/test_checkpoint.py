import dataclasses
import json
import pickle

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import save_file

from hostile import address_space_bound
from pixelrnn import CheckpointError, build_model, load_model, save_model
from pixelrnn.checkpoint import read_checkpoint, read_safetensors_header, read_weights
from pixelrnn.config import ModelConfig, MultiScaleConfig
from pixelrnn.limits import using_limits
from pixelrnn.models import model_from_config


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


# --------------------------------------------------------------------- files from others
def rewritten(source, target, config=None, tensors=None, **metadata):
    """A copy of checkpoint ``source`` with config fields, tensors or metadata changed (None deletes a key)."""
    with safe_open(str(source), framework="pt") as handle:
        header, stored = dict(handle.metadata()), {name: handle.get_tensor(name) for name in handle.keys()}
    if config is not None:
        values = json.loads(header["pixelrnn.config"])
        values.update(config)
        header["pixelrnn.config"] = json.dumps(values)
    header.update({key: value for key, value in metadata.items() if value is not None})
    for key in [key for key, value in metadata.items() if value is None]:
        del header[key]
    save_file(tensors(stored) if tensors else stored, str(target), metadata=header)
    return target


@pytest.fixture
def small(tmp_path):
    torch.manual_seed(0)
    return save_model(build_model("pixelcnn", channels=1, levels=2, hidden=4, layers=1, output_hidden=4),
                      tmp_path / "small.safetensors", {"image_size": "28x28"})


def one_line(error) -> str:
    assert "\n" not in str(error.value)
    return str(error.value)


def test_a_configuration_asking_for_a_huge_network_is_refused_before_anything_is_allocated(small, tmp_path):
    evil = rewritten(small, tmp_path / "evil.safetensors", config={"hidden": 50_000_000})
    with address_space_bound(256 << 20):  # the network it asks for would take 19.6 GB
        with pytest.raises(CheckpointError) as error:
            load_model(evil)
        assert "hidden=50000000" in one_line(error) and "over the limit of 250,000,000; " in str(error.value)
        assert "PIXELRNN_MAX_PARAMETERS" in str(error.value)
        with using_limits(parameters=10**18):  # past the limit, the shapes are compared, on the meta device
            with pytest.raises(CheckpointError) as error:
                load_model(evil)
    assert one_line(error).endswith("tensor 'input_conv.weight' is [8, 1, 7, 7] in the file; its configuration (channels=1, levels=2, "
                                    "hidden=50000000, layers=1, input_kernel=7, conv_kernel=3, row_kernel=3, output_hidden=4, "
                                    "output_layers=2, condition_channels=0, classes=0) implies [100000000, 1, 7, 7]")


def test_every_tensor_mismatch_names_the_tensor(small, tmp_path):
    cases = {
        "missing": (lambda t: {k: v for k, v in t.items() if k != "blocks.0.conv.bias"}, "tensor 'blocks.0.conv.bias' of its configuration"),
        "unexpected": (lambda t: {**t, "extra": torch.zeros(2)}, "the file holds tensor 'extra', which its configuration"),
        "shape": (lambda t: {**t, "blocks.0.conv.bias": torch.zeros(5)}, "tensor 'blocks.0.conv.bias' is [5] in the file"),
        "dtype": (lambda t: {**t, "blocks.0.conv.bias": torch.zeros(4, dtype=torch.int64)}, "tensor 'blocks.0.conv.bias' has dtype I64"),
    }
    for name, (change, message) in cases.items():
        with pytest.raises(CheckpointError) as error:
            load_model(rewritten(small, tmp_path / f"{name}.safetensors", tensors=change))
        assert message in one_line(error), name
    half = rewritten(small, tmp_path / "half.safetensors", tensors=lambda t: {k: v.half() for k, v in t.items()})
    assert torch.equal(load_model(half).blocks[0].conv.bias, load_model(small).blocks[0].conv.bias.half().float())


@pytest.mark.parametrize("config,message", [
    ({"layers": 10**6}, "its configuration's layers is 1,000,000 layers, over the limit of 256"),
    ({"output_layers": 300}, "its configuration's output_layers is 300 layers"),
    ({"hidden": 10**12}, "its configuration's hidden is 1,000,000,000,000 parameters"),
    ({"input_kernel": 2**40 + 1}, "its configuration's input_kernel is"),
    ({"hidden": "16"}, "hidden='16' is invalid"),
    ({"levels": 1.5}, "levels=1.5 is invalid"),
    ({"arch": ["pixelcnn"]}, "unknown architecture ['pixelcnn']"),
    ({"skip": "yes"}, "skip='yes' is invalid"),
    ({"surprise": 1}, "unknown model option(s) surprise"),
])
def test_configuration_fields_and_ranges_come_first(small, tmp_path, config, message):
    with pytest.raises(CheckpointError) as error:
        read_checkpoint(rewritten(small, tmp_path / "bad.safetensors", config=config))
    assert message in one_line(error)


@pytest.mark.parametrize("text,message", [
    ("[1, 2]", "a mapping of options, not a list"), ("null", "not a NoneType"), ("{", "no valid model configuration"),
    ("[" * 100_000 + "]" * 100_000, "no valid model configuration"), ("1" * 5000, "no valid model configuration"),
    ('{"arch": "multiscale", "small": 1, "large": {}}', "needs a [model.small] section"),
])
def test_a_configuration_of_any_shape_is_one_line(small, tmp_path, text, message):
    with pytest.raises(CheckpointError) as error:
        read_checkpoint(rewritten(small, tmp_path / "bad.safetensors", **{"pixelrnn.config": text}))
    assert message in one_line(error)


def test_a_multiscale_factor_is_bounded_by_the_layer_limit(tmp_path):
    stage = dict(channels=1, levels=2, hidden=2, layers=1, output_hidden=2)
    model = model_from_config(MultiScaleConfig(small=ModelConfig("pixelcnn", **stage), large=ModelConfig("pixelcnn", **stage, condition_channels=1)))
    path = save_model(model, tmp_path / "multiscale.safetensors")
    assert load_model(path).config == model.config
    with pytest.raises(CheckpointError) as error:
        load_model(rewritten(path, tmp_path / "deep.safetensors", config={"factor": 2**400}))
    assert "log2(factor) is 400 layers, over the limit of 256" in one_line(error)


def test_image_size_metadata_is_bounded(small, tmp_path):
    assert read_checkpoint(small)[2]["image_size"] == "28x28"
    with pytest.raises(CheckpointError) as error:
        read_checkpoint(rewritten(small, tmp_path / "wide.safetensors", image_size="100000x100000"))
    assert "image_size 100000x100000 is 10,000,000,000 pixels" in one_line(error) and "PIXELRNN_MAX_IMAGE_PIXELS" in str(error.value)
    with pytest.raises(CheckpointError, match="image_size 99999999999999999999x1 is 1,000,000,000,000,000,000 pixels"):
        read_checkpoint(rewritten(small, tmp_path / "long.safetensors", image_size="9" * 5000 + "x1"))  # past int()'s digits
    # Text that is not HxW is the caller's to judge (the command line asks for --height and --width).
    assert read_checkpoint(rewritten(small, tmp_path / "odd.safetensors", image_size="square"))[2]["image_size"] == "square"


def test_the_limits_can_be_lowered_and_raised_deliberately(small, monkeypatch):
    parameters = sum(p.numel() for p in load_model(small).parameters())
    with using_limits(parameters=parameters - 1):
        with pytest.raises(CheckpointError, match=f"is {parameters:,} parameters, over the limit of {parameters - 1:,}"):
            load_model(small)
    monkeypatch.setenv("PIXELRNN_MAX_PARAMETERS", str(parameters - 1))
    with pytest.raises(CheckpointError, match="PIXELRNN_MAX_PARAMETERS"):
        load_model(small)
    monkeypatch.setenv("PIXELRNN_MAX_PARAMETERS", str(parameters))
    assert load_model(small).config.hidden == 4


def test_read_weights_checks_a_configuration_kept_elsewhere(small):
    model = load_model(small)
    tensors = read_weights(small, model.config)
    assert all(torch.equal(tensors[name], value) for name, value in model.state_dict().items())
    with pytest.raises(CheckpointError, match="tensor 'input_conv.weight' is \\[8, 1, 7, 7\\] in the file"):
        read_weights(small, dataclasses.replace(model.config, hidden=5))
    metadata, specs = read_safetensors_header(small)
    assert specs["input_conv.weight"] == ("F32", (8, 1, 7, 7)) and metadata["format"] == "pixelrnn.checkpoint.v1"
