"""Exact causality of every network: no logit depends on its own or any later sub-pixel."""

import pytest
import torch

from pixelrnn import ARCHITECTURES, build_model

from dependency import dependency_map, earlier_mask

CONNECTIONS = [(True, True), (True, False), (False, True), (False, False)]
SHAPES = [(3, 256, 5, 6), (1, 2, 6, 4), (1, 256, 3, 7)]


@pytest.mark.parametrize("arch", ARCHITECTURES)
@pytest.mark.parametrize("residual,skip", CONNECTIONS)
@pytest.mark.parametrize("channels,levels,height,width", SHAPES)
def test_no_logit_sees_its_own_or_a_later_subpixel(arch, residual, skip, channels, levels, height, width):
    torch.manual_seed(0)
    model = build_model(arch, channels=channels, levels=levels, hidden=6, layers=2, residual=residual,
                        skip=skip, output_hidden=24).double()
    allowed = earlier_mask(channels, height, width)
    generator = torch.Generator().manual_seed(1)
    seen = torch.zeros_like(allowed)
    for trial in range(3):
        images = torch.randint(0, levels, (channels, height, width), generator=generator)
        found = dependency_map(model, images, seed=trial)
        leaks = (found & ~allowed).nonzero().tolist()
        assert not leaks, f"logit (c,i,j) depends on a later input (c',i',j'): first leaks {leaks[:5]}"
        seen |= found
    # The check is not vacuous: most earlier sub-pixels are actually reached.
    assert seen.sum() > 0.5 * allowed.sum()


def test_dependency_map_detects_a_leak():
    """The helper itself must see a leak when one exists: drop mask A's centre rule."""
    torch.manual_seed(0)
    model = build_model("pixelcnn", channels=3, levels=4, hidden=6, layers=1, output_hidden=9).double()
    model.input_conv.mask[:, :, 3, 3] = 1.0  # every colour now sees itself at its own pixel
    found = dependency_map(model, torch.randint(0, 4, (3, 4, 4)))
    assert (found & ~earlier_mask(3, 4, 4)).any()
