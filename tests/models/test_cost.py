"""The multiply-adds counted from a description are those the float network runs (torch's own flop counter)."""

import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

from pixelrnn import native
from pixelrnn.models import build_model
from pixelrnn.models.cost import multiply_adds, products, skip_terms, training_multiply_adds


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


def test_the_products_are_listed_in_the_order_they_run_with_their_shapes():
    model = build_model("diagonal_bilstm", channels=1, levels=2, hidden=4, layers=1, output_hidden=8)
    # input 7x7 mask A over the 4 x 7 taps its mask can reach (1 map) -> 2h; input-to-state 1x1 2h -> 2 x 4h; two 2x1
    # state-to-state 2h -> 4h; output 1x1 h -> 2h; one skip 2h -> 2h; the output stack 2h -> 8 -> 8 -> 2 logits
    assert products(model.description) == [(28, 8), (8, 32), (8, 16), (8, 16), (4, 8), (8, 8), (8, 8), (8, 8), (8, 2)]


@pytest.mark.parametrize("skip", [True, False])
def test_the_skips_sum_one_stream_per_block_as_the_walk_hands_them(skip):
    model = build_model("row_lstm", channels=1, levels=2, hidden=4, layers=3, output_hidden=8, skip=skip)
    assert skip_terms(model.description) == (3 if skip else 0)
