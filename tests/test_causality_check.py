"""pixelrnn.check_causality: our networks pass, and each classic mask or skew bug is caught, named exactly."""

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import pixelrnn
from pixelrnn import build_model, check_causality, native
from pixelrnn.causality import diagonal_bilstm_context, raster_rank
from pixelrnn.config import ModelConfig, MultiScaleConfig
from pixelrnn.layers import lstm, masked_conv, rules
from pixelrnn.models import model_from_config


def small(arch, channels=1, levels=2, **options):
    torch.manual_seed(0)
    options = {"hidden": 6, "layers": 2, "output_hidden": 12 if channels == 1 else 24, **options}
    return build_model(arch, channels=channels, levels=levels, **options)


@pytest.mark.parametrize("arch", pixelrnn.ARCHITECTURES)
@pytest.mark.parametrize("channels,levels", [(1, 2), (3, 4)])
def test_our_networks_pass(arch, channels, levels):
    report = check_causality(small(arch, channels, levels), (channels, 5, 6), levels)
    assert report.ok and report.leaks == [] and report.method == "jacobian"
    assert report.dependencies > 0.4 * report.earlier_pairs  # not vacuous
    assert report.promised == (arch == "diagonal_bilstm")


def test_the_diagonal_bilstm_sees_its_whole_promised_context():
    model = small("diagonal_bilstm", 3, 4, hidden=12, layers=1, output_hidden=48)
    report = check_causality(model, (3, 4, 9), trials=5)
    assert report.ok and report.missing == []
    # Asked for every earlier sub-pixel, it names the documented gap and nothing else.
    strict = check_causality(model, (3, 4, 9), trials=5, full_context=True)
    gap = {((c, i, j), (2, i - 1, 8)) for c in range(3) for i in range(1, 4) for j in range(8 - 3)}
    assert set(strict.missing) == gap and strict.ok


def test_the_multiscale_model_passes_by_differences():
    large = ModelConfig("pixelcnn", 1, 2, 6, 1, output_hidden=12, condition_channels=4)
    torch.manual_seed(0)
    model = model_from_config(MultiScaleConfig(ModelConfig("row_lstm", 1, 2, 6, 1, output_hidden=12), large))
    report = check_causality(model, (1, 6, 6))
    assert report.method == "differences" and report.ok and report.dependencies > 0


def test_the_two_methods_agree():
    model = small("row_lstm", 3, 4)
    by_jacobian = check_causality(model, (3, 4, 5), full_context=True, trials=2)
    by_differences = check_causality(model, (3, 4, 5), full_context=True, trials=2, method="differences")
    assert by_jacobian.missing == by_differences.missing and by_jacobian.dependencies == by_differences.dependencies


class Shifted(nn.Module):
    """A user's own model, not ours: logits from a 3x3 convolution of the image shifted down (2 rows: causal)."""

    def __init__(self, shift: int):
        super().__init__()
        self.shift = shift
        self.conv = nn.Conv2d(1, 4, 3, padding=1)

    def forward(self, x):
        shifted = F.pad(x.float(), (0, 0, self.shift, 0))[:, :, : x.shape[2]]
        return self.conv(shifted).unsqueeze(1)  # (B, 1, 4, H, W)


def test_any_module_is_checked_and_a_leak_is_named_exactly():
    assert check_causality(Shifted(2), (1, 4, 4), 4).leaks == []  # only rows above: causal
    report = check_causality(Shifted(0), (1, 4, 4), 4)
    assert not report.ok and report.method == "differences"
    assert ((0, 0, 0), (0, 0, 0)) in report.leaks and ((0, 0, 0), (0, 1, 1)) in report.leaks
    assert ((0, 1, 1), (0, 0, 0)) not in report.leaks
    assert "leak: output (0, 0, 0) depends on input (0, 0, 0)" in report.summary()


# ----------------------------------------------------------------------------- broken models
def test_mask_a_swapped_for_b_is_caught(monkeypatch):
    original = masked_conv.build_mask
    monkeypatch.setattr(masked_conv, "build_mask", lambda kind, *rest: original("B", *rest))
    report = check_causality(small("pixelcnn", 1, 2), (1, 4, 4))
    assert not report.ok
    assert {(out, source) for out, source in report.leaks} >= {((0, i, j), (0, i, j)) for i in range(4) for j in range(4)}
    assert all(out == source for out, source in report.leaks)  # only the centre: each pixel sees itself


def test_a_colour_group_seeing_its_own_channel_is_caught(monkeypatch):
    original = masked_conv.build_mask

    def green_sees_green(kind, kernel, in_groups, out_groups):
        mask = original(kind, kernel, in_groups, out_groups)
        if kind == "A":
            ci, cj = rules.kernel_centre(*kernel)
            mask[:, :, ci, cj] += ((out_groups[:, None] == 1) & (in_groups[None, :] == 1)).to(mask.dtype)
        return mask

    monkeypatch.setattr(masked_conv, "build_mask", green_sees_green)
    report = check_causality(small("row_lstm", 3, 4), (3, 4, 4))
    assert not report.ok
    assert {(out, source) for out, source in report.leaks} == {((1, i, j), (1, i, j)) for i in range(4) for j in range(4)}


def test_a_skew_off_by_one_is_caught(monkeypatch):
    original = lstm.unskew

    def unskew_one_column_late(skewed, width):  # reads column i + j + 1 of the skewed map: the state of (i, j + 1)
        return original(F.pad(skewed, (0, 1))[..., 1:], width)

    monkeypatch.setattr(lstm, "unskew", unskew_one_column_late)
    monkeypatch.setattr(lstm.DiagonalBiLSTM, "forward", lambda self, x, condition_gates=None: self.forward_reference(x))
    report = check_causality(small("diagonal_bilstm", 1, 2), (1, 4, 5))
    assert not report.ok
    assert ((0, 0, 0), (0, 0, 1)) in report.leaks  # pixel (0, 0) reads the state of (0, 1), which saw (0, 1)


def test_the_right_to_left_direction_not_shifted_down_is_caught(monkeypatch):
    monkeypatch.setattr(rules, "REVERSE_SHIFT_ROWS", 0)
    with native.disabled():  # the native layer shifts in C++; the PyTorch scan reads the rule
        report = check_causality(small("diagonal_bilstm", 1, 2), (1, 4, 5))
    assert not report.ok
    # Pixel (i, j) now receives the right-to-left state of its own row: later pixels of that row.
    assert ((0, 1, 0), (0, 1, 3)) in report.leaks  # (0, 1, 4) itself only ever enters the next row (mask A)
    assert all(source[1] == out[1] for out, source in report.leaks)


def test_the_promised_context_and_order():
    rank = raster_rank(3, 2, 2)
    assert rank[0, 0, 0] == 0 and rank[2, 0, 0] == 2 and rank[0, 0, 1] == 3
    promise = diagonal_bilstm_context(1, 3, 6, input_kernel=3)
    assert not promise[0, 1, 0, 0, 0, 5] and promise[0, 1, 4, 0, 0, 5] and promise[0, 2, 0, 0, 0, 5]


def test_arguments_are_checked():
    model = small("pixelcnn")
    with pytest.raises(pixelrnn.ConfigError, match="shape"):
        check_causality(model, (4, 4))
    with pytest.raises(pixelrnn.ConfigError, match="method"):
        check_causality(model, (1, 4, 4), method="guess")
    with pytest.raises(pixelrnn.ConfigError, match="levels"):
        check_causality(Shifted(2), (1, 4, 4))
