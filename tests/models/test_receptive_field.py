"""Dependency fields as in Figure 4 of the paper, computed exactly and compared with Jacobians."""

import itertools

import pytest
import torch

from pixelrnn import build_model

from dependency import earlier_mask, union_dependency_map


def masked_field(i, j, radius, include_centre, height, width):
    """Pixels a masked (2r+1)x(2r+1) kernel at (i, j) reads, for one colour group."""
    rows = [(a, b) for a in range(i - radius, i) for b in range(j - radius, j + radius + 1)]
    rows += [(i, b) for b in range(j - radius, j)] + ([(i, j)] if include_centre else [])
    return {(a, b) for a, b in rows if 0 <= a < height and 0 <= b < width}


def as_map(fields, height, width):
    """{(i, j): set of input pixels} -> boolean (1, H, W, 1, H, W)."""
    out = torch.zeros(1, height, width, 1, height, width, dtype=torch.bool)
    for (i, j), pixels in fields.items():
        for a, b in pixels:
            out[0, i, j, 0, a, b] = True
    return out


def test_pixelcnn_field_grows_with_depth_as_stacked_masked_kernels():
    height, width = 9, 9
    previous = None
    for layers in (1, 2, 3):
        torch.manual_seed(layers)
        model = build_model("pixelcnn", channels=1, levels=2, hidden=8, layers=layers, output_hidden=16).double()
        found = union_dependency_map(model, 1, height, width, inputs=4)
        expected = {}
        for i, j in itertools.product(range(height), range(width)):
            reach = {(i, j)}
            for _ in range(layers):  # each block's 3x3 mask-B kernel, the residual keeps the centre
                reach = set().union(*(masked_field(a, b, 1, True, height, width) for a, b in reach))
            expected[(i, j)] = set().union(*(masked_field(a, b, 3, False, height, width) for a, b in reach))
        assert torch.equal(found, as_map(expected, height, width)), f"{layers} layers"
        if previous is not None:
            assert (found & ~previous).any() and not (previous & ~found).any()
        previous = found
    # The blind spot of Figure 4 (left): far to the right of the row above stays out of reach.
    assert not found[0, 4, 2, 0, 3, 8]


def test_row_lstm_field_is_the_triangle_above_plus_left_neighbours():
    height, width = 6, 12
    torch.manual_seed(0)
    model = build_model("row_lstm", channels=1, levels=2, hidden=8, layers=1, output_hidden=16).double()
    found = union_dependency_map(model, 1, height, width, inputs=4)

    def reach(i, j):  # positions whose input-conv features the LSTM state at (i, j) reads
        here = {(i, b) for b in (j - 1, j) if 0 <= b < width}  # 1x3 mask B input-to-state
        if i > 0:
            for b in (j - 1, j, j + 1):  # 1x3 state-to-state over the row above
                if 0 <= b < width:
                    here |= reach(i - 1, b)
        return here

    expected = {
        (i, j): set().union(*(masked_field(a, b, 3, False, height, width) for a, b in reach(i, j) | {(i, j)}))
        for i, j in itertools.product(range(height), range(width))
    }
    assert torch.equal(found, as_map(expected, height, width))
    # Part of the available context stays out of reach (Figure 4 centre): one row up, the
    # pixel 4 columns to the right precedes (5, 6) but is outside the triangle.
    assert earlier_mask(1, height, width)[0, 5, 6, 0, 4, 10] and not found[0, 5, 6, 0, 4, 10]
    assert found[0, 5, 6, 0, 4, 9]


@pytest.mark.parametrize("channels,levels,layers", [(1, 2, 1), (3, 4, 1), (1, 2, 2), (3, 4, 3)])
def test_diagonal_bilstm_sees_all_earlier_subpixels_but_one_inherent_gap(channels, levels, layers):
    height, width = 4, 9
    torch.manual_seed(0)
    model = build_model("diagonal_bilstm", channels=channels, levels=levels, hidden=12, layers=layers, output_hidden=48).double()
    found = union_dependency_map(model, channels, height, width, inputs=5)
    expected = earlier_mask(channels, height, width)
    # The gap, at any depth: the last sub-pixel of row i-1 (last colour, column W-1) is hidden
    # by mask A from every feature of row i-1, so it enters the network only through the 7x7
    # input convolution of row i, at columns j >= W-1-3. From there the left-to-right scan
    # carries it right and down; the right-to-left scan would carry it left, but its output
    # is shifted down a row. So (i, j < W-4) never sees it; row i+1 does, through row i.
    for i in range(1, height):
        for j in range(width - 1 - 3):
            expected[:, i, j, channels - 1, i - 1, width - 1] = False
    assert torch.equal(found, expected)
