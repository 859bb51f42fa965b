"""The network description (pixelrnn.models.description): what it states, and that every executor reads it.

The last tests change a network in one place, its description, into one that no configuration
can produce, and check that every executor computes the changed network: the float network, the
reference and native incremental engines, the integer batched pass and the integer engines.
"""

from dataclasses import replace

import numpy as np
import pytest
import torch

from pixelrnn import native
from pixelrnn.codec import integer_logits, integer_model
from pixelrnn.codec.integer_numpy_engines import ENGINES as INTEGER_ENGINES
from pixelrnn.codec.factory import make_integer_engine
from pixelrnn.config import ModelConfig
from pixelrnn.models import build_model
from pixelrnn.models.description import Block, MaskedSum, class_entries, describe, walk
from pixelrnn.sampling import make_engine
from codec_cases import teacher_forced_logits

ARCHS = ["pixelcnn", "row_lstm", "diagonal_bilstm"]


def test_describe_states_the_layers_in_order():
    config = ModelConfig(arch="row_lstm", channels=3, levels=256, hidden=6, layers=4, output_hidden=12, output_layers=2,
                         row_kernel=5, input_kernel=7, residual=False, skip=True)
    network = describe(config)
    assert (network.arch, network.channels, network.levels, network.condition_channels, network.classes) == ("row_lstm", 3, 256, 0, 0)
    assert network.input == MaskedSum(3, 12, (7, 7), "A")
    assert network.blocks == (Block("row_lstm", 12, 6, 5, False),) * 4 and network.blocks[0].condition_width == 24
    assert network.skip and network.maps == 12
    assert network.output == (MaskedSum(12, 12, (1, 1), "B"), MaskedSum(12, 12, (1, 1), "B"), MaskedSum(12, 3 * 256, (1, 1), "B"))
    assert [block.condition_entry for block in network.blocks] == ["input_to_state"] * 4
    pixelcnn = describe(replace(config, arch="pixelcnn", conv_kernel=3))
    assert pixelcnn.blocks[0] == Block("pixelcnn", 12, 6, 3, False) and pixelcnn.blocks[0].condition_entry == "convolution"
    assert pixelcnn.blocks[0].condition_width == 6
    diagonal = describe(replace(config, arch="diagonal_bilstm"))
    assert diagonal.blocks[0] == Block("diagonal_bilstm", 12, 6, 1, False) and diagonal.blocks[0].directions == 2
    assert diagonal.blocks[0].condition_width == 48


def test_conditioning_is_part_of_the_description():
    config = ModelConfig(arch="pixelcnn", channels=1, levels=2, hidden=4, layers=2, output_hidden=8, output_layers=1)
    assert class_entries(describe(config)) == ([], [])
    staged = describe(replace(config, condition_channels=3))
    assert (staged.condition_channels, staged.classes) == (3, 0)
    labelled = describe(replace(config, classes=5))
    assert (labelled.condition_channels, labelled.classes) == (0, 5)
    # a class vector at each block's convolution (h maps) and at each output layer's output
    assert class_entries(labelled) == ([4, 4], [8, 2])


class Recorder:
    """An executor whose values are the names of what produced them."""

    def __init__(self):
        self.calls = []

    def input(self, x):
        self.calls.append(("input", x))
        return "s0"

    def block(self, index, block, stream):
        self.calls.append(("block", index, stream))
        return f"y{index}"

    def stream(self, index, branch, previous):
        self.calls.append(("stream", index, branch, previous))
        return f"s{index + 1}"

    def skip_sum(self, streams):
        self.calls.append(("skip", tuple(streams)))
        return "z"

    def output(self, index, layer, features):
        self.calls.append(("output", index, layer.out_maps, features))
        return f"o{index}"


@pytest.mark.parametrize("residual, skip", [(True, True), (False, False)])
def test_walk_is_the_wiring_of_table_1(residual, skip):
    network = describe(ModelConfig(arch="pixelcnn", channels=1, levels=2, hidden=4, layers=2, output_layers=1, output_hidden=8,
                                   residual=residual, skip=skip))
    recorder = Recorder()
    assert walk(network, recorder, "x") == "o1"
    previous = (lambda name: name) if residual else (lambda name: None)
    expected = [("input", "x"), ("block", 0, "s0"), ("stream", 0, "y0", previous("s0")), ("block", 1, "s1"),
                ("stream", 1, "y1", previous("s1"))]
    expected += [("skip", ("s1", "s2")), ("output", 0, 8, "z")] if skip else [("output", 0, 8, "s2")]
    assert recorder.calls == expected + [("output", 1, 2, "o0")]


def made_up(model, skip: bool):
    """The model with residual connections on its even blocks only, which no configuration describes."""
    blocks = tuple(replace(block, residual=index % 2 == 0) for index, block in enumerate(model.description.blocks))
    return replace(model.description, blocks=blocks, skip=skip and model.config.skip)


def network(arch, channels, levels, skip):
    torch.manual_seed(1)
    model = build_model(arch, channels=channels, levels=levels, hidden=max(4, channels), layers=3, output_hidden=8,
                        skip=skip).double().eval()
    with torch.no_grad():  # large enough weights that the residual stream matters
        for parameter in model.parameters():
            parameter.mul_(2.0)
    return model


@pytest.mark.parametrize("skip", [True, False])
@pytest.mark.parametrize("arch", ARCHS)
def test_a_made_up_description_is_computed_by_every_float_executor(arch, skip):
    model = network(arch, 3, 5, skip)
    images = np.random.default_rng(0).integers(0, 5, size=(2, 3, 4, 5))
    configured = model(torch.as_tensor(images)).detach().numpy()
    model.description = made_up(model, skip)
    expected = model(torch.as_tensor(images)).detach().numpy()
    assert not np.allclose(expected, configured, atol=1e-3)  # the change is one the logits show
    reference = teacher_forced_logits(make_engine(model, native_kernels=False), images, 5)
    np.testing.assert_allclose(reference, expected, atol=1e-9)
    if not native.usable(model.input_conv.weight):
        pytest.skip("the native kernels are not built here")
    np.testing.assert_allclose(teacher_forced_logits(make_engine(model, native_kernels=True), images, 5), expected, atol=1e-9)


@pytest.mark.parametrize("skip", [True, False])
@pytest.mark.parametrize("arch", ARCHS)
def test_a_made_up_description_is_computed_by_every_integer_executor(arch, skip):
    model = network(arch, 3, 5, skip).float()
    images = np.random.default_rng(0).integers(0, 5, size=(2, 3, 4, 5))
    configured = integer_logits(integer_model(model), images).numpy()
    model.description = made_up(model, skip)
    coding = integer_model(model)
    assert coding.description == model.description
    batched = integer_logits(coding, images).numpy()
    assert not np.array_equal(batched, configured)
    # The integer logits follow the float network they quantise (within the quantisation's error).
    float_logits = model(torch.as_tensor(images)).detach().numpy()
    assert np.abs(batched * 2.0 ** -coding.fixed.table_bits - float_logits).max() < 0.05
    assert np.array_equal(teacher_forced_logits(INTEGER_ENGINES[arch](coding), images, 5), batched)
    if native.plain_kernel("pixelrnn_integer_run") is None:
        pytest.skip("the native kernels are not built here")
    assert np.array_equal(teacher_forced_logits(make_integer_engine(coding, native_kernels=True), images, 5), batched)
