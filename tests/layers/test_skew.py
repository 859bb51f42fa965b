import pytest
import torch
from hypothesis import given, settings, strategies as st

from pixelrnn.layers.skew import skew, unskew


@settings(max_examples=50, deadline=None)
@given(st.integers(1, 7), st.integers(1, 7), st.integers(1, 3))
def test_skew_places_row_i_at_offset_i_and_unskew_inverts(height, width, lead):
    x = torch.randn(lead, 2, height, width)
    skewed = skew(x)
    assert skewed.shape == (lead, 2, height, width + height - 1)
    for i in range(height):
        assert torch.equal(skewed[..., i, i : i + width], x[..., i, :])
        assert (skewed[..., i, :i] == 0).all() and (skewed[..., i, i + width :] == 0).all()
    assert torch.equal(unskew(skewed, width), x)


def test_unskew_checks_the_width():
    with pytest.raises(ValueError) as caught:
        unskew(torch.zeros(3, 5), 4)
    assert str(caught.value) == "a skewed map of height 3 and width 4 has 6 columns, not 5"
