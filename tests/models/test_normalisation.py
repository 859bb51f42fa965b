"""The model is a distribution: probabilities of every image of a tiny space sum to one."""

import itertools

import pytest
import torch

from pixelrnn import ARCHITECTURES, build_model


def every_image(channels, levels, height, width):
    values = torch.tensor(list(itertools.product(range(levels), repeat=channels * height * width)))
    return values.reshape(-1, height, width, channels).permute(0, 3, 1, 2).contiguous()


@pytest.mark.parametrize("arch", ARCHITECTURES)
@pytest.mark.parametrize("channels,levels,height,width", [(1, 2, 3, 3), (3, 3, 1, 2), (1, 3, 2, 3)])
def test_probabilities_of_all_images_sum_to_one(arch, channels, levels, height, width):
    torch.manual_seed(0)
    model = build_model(arch, channels=channels, levels=levels, hidden=6, layers=2, output_hidden=12).double()
    images = every_image(channels, levels, height, width)
    assert len(images) == levels ** (channels * height * width)
    with torch.no_grad():
        total = torch.exp(-model.nll(images)).sum().item()
    assert abs(total - 1.0) < 1e-9


def test_sum_is_not_one_when_a_mask_leaks():
    """Guard on the test itself: a model that peeks at its own sub-pixel is not normalised."""
    torch.manual_seed(0)
    model = build_model("pixelcnn", channels=1, levels=2, hidden=6, layers=1, output_hidden=12).double()
    model.input_conv.mask[:, :, 3, 3] = 1.0
    with torch.no_grad():
        total = torch.exp(-model.nll(every_image(1, 2, 3, 3))).sum().item()
    assert abs(total - 1.0) > 1e-3
