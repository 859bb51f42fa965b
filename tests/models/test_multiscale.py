"""Multi-Scale PixelRNN (section 3.6): causality, exact normalisation, checkpoints, sampling."""

import itertools
from pathlib import Path

import numpy as np

import pytest
import torch

from pixelrnn import load_model, save_model
from pixelrnn.config import ConfigError, ModelConfig, MultiScaleConfig
from pixelrnn.images import GRID_PADDING, GROUP_GAP, PADDING_VALUE, to_uint8
from pixelrnn.models import model_from_config
from pixelrnn.sampling import complete, sample, sample_stages

from dependency import dependency_map, earlier_mask


def tiny_multiscale(arch="row_lstm", channels=1, levels=2, large_arch=None):
    torch.manual_seed(0)
    common = dict(channels=channels, levels=levels, hidden=4 * channels, layers=2, output_hidden=12 * channels)
    config = MultiScaleConfig(small=ModelConfig(arch=arch, **common),
                              large=ModelConfig(arch=large_arch or arch, condition_channels=4, **common), factor=2)
    return model_from_config(config).double()


class ConditionalStage:
    """The conditional network with its condition held fixed, seen as a plain model."""

    def __init__(self, model, small):
        self.model, self.small = model, small
        self.config = model.large.config
        self.scale = model.large.scale

    def logits_from_scaled(self, scaled):
        condition = self.model.condition(self.small, scaled.shape[2], scaled.shape[3])
        return self.model.large.logits_from_scaled(scaled, condition.expand(len(scaled), -1, -1, -1))


@pytest.mark.parametrize("arch", ["pixelcnn", "row_lstm", "diagonal_bilstm"])
@pytest.mark.parametrize("channels,levels", [(1, 2), (3, 4)])
def test_conditional_stage_is_causal_in_the_large_image_and_sees_all_of_the_small_one(arch, channels, levels):
    model = tiny_multiscale(arch, channels, levels)
    height, width = 4, 6
    x = torch.randint(0, levels, (1, channels, height, width))
    small = model.subsample(x)
    found = dependency_map(ConditionalStage(model, small), x[0])
    assert not (found & ~earlier_mask(channels, height, width)).any()
    # the first pixel's logits see small pixel (1, 1), i.e. large pixel (2, 2): a later pixel,
    # given through the condition (checked over a few inputs: a ReLU can hide it at one)
    seen = 0.0
    for trial in range(4):
        x = torch.randint(0, levels, (1, channels, height, width), generator=torch.Generator().manual_seed(trial))
        small_scaled = model.small.scale(model.subsample(x)).requires_grad_(True)
        condition = model.upsample(small_scaled)[:, :, :height, :width]
        logits = model.large.logits_from_scaled(model.large.scale(x), condition)[0, :, :, 0, 0]
        (logits * torch.randn_like(logits)).sum().backward()
        seen += small_scaled.grad[0, :, 1, 1].abs().sum().item()
    assert seen > 0


def every_image(height, width):
    values = torch.tensor(list(itertools.product(range(2), repeat=height * width)))
    return values.reshape(-1, 1, height, width)


@pytest.mark.parametrize("arch,large_arch", [("pixelcnn", "diagonal_bilstm"), ("row_lstm", "pixelcnn")])
def test_probabilities_of_all_4x4_binary_images_sum_to_one(arch, large_arch):
    model = tiny_multiscale(arch, 1, 2, large_arch)
    images = every_image(4, 4)  # 65536 images, 2x2 subsample
    with torch.no_grad():
        total = sum(torch.exp(-model.nll(chunk)).sum().item() for chunk in images.split(8192))
    assert abs(total - 1.0) < 1e-9


def test_fixed_pixels_are_not_counted_twice():
    model = tiny_multiscale()
    x = torch.randint(0, 2, (3, 1, 4, 6))
    with torch.no_grad():
        logits = model.conditional_logits(x)
        per = torch.nn.functional.cross_entropy(logits.transpose(1, 2), x, reduction="none")
        free = per[:, :, 1::2, :].sum((1, 2, 3)) + per[:, :, ::2, 1::2].sum((1, 2, 3))
        assert torch.allclose(model.conditional_nll(x), free)
        assert torch.allclose(model.nll(x), model.small.nll(x[:, :, ::2, ::2]) + free)


def test_checkpoint_round_trip(tmp_path):
    model = tiny_multiscale("diagonal_bilstm", 3, 4)
    path = save_model(model, tmp_path / "multiscale.safetensors")
    restored = load_model(path).double()
    assert restored.config == model.config
    x = torch.randint(0, 4, (2, 3, 4, 4))
    assert torch.equal(restored.nll(x), model.nll(x))


def test_config_errors():
    small = ModelConfig(arch="pixelcnn", channels=1, levels=2, hidden=2, layers=1)
    with pytest.raises(ConfigError, match="condition_channels"):
        MultiScaleConfig(small=small, large=small)
    with pytest.raises(ConfigError, match="power of two"):
        MultiScaleConfig(small=small, large=ModelConfig(arch="pixelcnn", channels=1, levels=2, hidden=2, layers=1, condition_channels=2), factor=3)


@pytest.mark.parametrize("arch", ["pixelcnn", "row_lstm", "diagonal_bilstm"])
def test_conditional_engine_matches_the_full_pass_and_sampling_keeps_the_small_image(arch):
    from pixelrnn.sampling import make_engine

    model = tiny_multiscale(arch, 3, 4)
    height, width = 4, 5
    x = torch.randint(0, 4, (2, 3, height, width))
    condition = model.condition(model.subsample(x), height, width)
    full = model.large.logits_from_scaled(model.large.scale(x), condition)
    engine = make_engine(model.large)
    engine.reset(2, height, width, condition=condition)
    for i, j, c in itertools.product(range(height), range(width), range(3)):
        assert torch.allclose(engine.logits(i, j, c), full[:, c, :, i, j], rtol=0, atol=1e-9)
        engine.advance(i, j, c, x[:, c, i, j])

    fast_small, fast = sample_stages(model, 2, height, width, generator=torch.Generator().manual_seed(3))
    slow = sample(model, 2, height, width, generator=torch.Generator().manual_seed(3), naive=True)
    assert torch.equal(fast, slow)
    assert torch.equal(fast[:, :, ::2, ::2], fast_small)
    completed = complete(model, x, keep_rows=2, generator=torch.Generator().manual_seed(4))
    assert torch.equal(completed[:, :, :2], x[:, :, :2])


def test_sample_command_shows_both_stages(tmp_path):
    from PIL import Image

    from pixelrnn.cli import main

    model = tiny_multiscale("pixelcnn", 1, 2).float()
    checkpoint = save_model(model, tmp_path / "m.safetensors", {"image_size": "6x4"})
    assert main(["sample", str(checkpoint), "-n", "3", "--out", str(tmp_path / "s.png"), "--seed", "1", "-q", "--scale", "1"]) == 0
    images = np.load(tmp_path / "s.npz")["images"]
    assert images.shape == (3, 1, 6, 4)
    # Pairs in a grid of 2 * ceil(sqrt(3)) = 4 columns: the small stage enlarged, then the full sample;
    # a wider gap (GROUP_GAP) between the pairs.
    stages = np.asarray(Image.open(tmp_path / "s_stages.png").convert("L"))
    lefts = [GRID_PADDING + column * (4 + GRID_PADDING) + (column // 2) * (GROUP_GAP - GRID_PADDING) for column in range(4)]
    assert stages.shape[1] == lefts[-1] + 4 + GRID_PADDING and (stages[:, lefts[1] + 4 : lefts[2]] == PADDING_VALUE).all()
    for k in range(3):
        small = images[k, 0, ::2, ::2].repeat(2, axis=0).repeat(2, axis=1)
        for tile, expected in ((2 * k, small), (2 * k + 1, images[k, 0])):
            row, column = divmod(tile, 4)
            top, left = GRID_PADDING + row * (6 + GRID_PADDING), lefts[column]
            assert np.array_equal(stages[top : top + 6, left : left + 4], to_uint8(expected, 2)), (k, tile)


def test_figures_of_one_network_refuse_a_multiscale_model_clearly(tmp_path):
    from pixelrnn.figures import plot_dependency_field, plot_softmax_distributions

    model = tiny_multiscale("pixelcnn", 1, 2).float()
    image = torch.zeros(1, 6, 4, dtype=torch.long)
    with pytest.raises(ValueError, match="model.small"):
        plot_softmax_distributions(model, image, [(0, 1, 1)], tmp_path / "f.png")
    with pytest.raises(ValueError, match="model.small"):
        plot_dependency_field(model, image, (2, 2), tmp_path / "d.png")


def test_a_stage_must_be_a_single_network():
    from pixelrnn.training import build_run_config

    with pytest.raises(ConfigError, match="model.small.arch"):
        build_run_config(Path(__file__).resolve().parents[2] / "configs" / "mnist_multiscale.toml", ["model.small.arch='multiscale'"])
    with pytest.raises(ConfigError, match="model.sizes for a multi-scale model"):
        build_run_config(Path(__file__).resolve().parents[2] / "configs" / "mnist_multiscale.toml", ["model.sizes=3"])
