"""The multiply-adds counted from a description are those the float network runs (torch's own flop counter)."""

import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

from pixelrnn import native
from pixelrnn.models import build_model
from pixelrnn.models.cost import multiply_adds, training_multiply_adds


@pytest.mark.parametrize("residual, skip", [(True, True), (False, False)])
@pytest.mark.parametrize("arch", ["pixelcnn", "row_lstm", "diagonal_bilstm"])
def test_the_count_is_what_the_float_network_computes(arch, residual, skip):
    model = build_model(arch, channels=3, levels=7, hidden=6, layers=3, output_hidden=10, residual=residual, skip=skip)
    images = torch.randint(0, 7, (2, 3, 5, 4))
    # The PyTorch scans run their products as torch operations, which the flop counter sees (the native ones it cannot).
    with native.disabled(), torch.no_grad(), FlopCounterMode(display=False) as counter:
        model(images)
    assert counter.get_total_flops() == 2 * 2 * multiply_adds(model.description, 5, 4)


def test_a_training_step_costs_three_forward_passes():
    model = build_model("pixelcnn", channels=1, levels=2, hidden=4, layers=2, output_hidden=8)
    assert training_multiply_adds(model.description, 28, 28) == 3 * multiply_adds(model.description, 28, 28)
    images = torch.randint(0, 2, (1, 1, 6, 6))
    with native.disabled(), FlopCounterMode(display=False) as counter:  # the native 1x1 products are hidden from it
        model.nll(images).sum().backward()
    # The backward pass skips the input image's gradient: a little under three forward passes.
    forward = 2 * multiply_adds(model.description, 6, 6)
    assert 2.5 * forward < counter.get_total_flops() <= 3 * forward
