import contextlib

import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

from pixelrnn import native

from pixelrnn.layers.masked_conv import MaskedConv2d, build_mask, channel_groups, gate_groups, sum_of_pointwise
from pixelrnn.layers.rules import kernel_extent

RGB = torch.tensor([0, 1, 2])


def assert_same_values_and_gradients(out, expected, inputs):
    """``out`` and ``expected`` agree, and so do the gradients of ``inputs`` through each; returns those through ``out``."""
    torch.testing.assert_close(out, expected, rtol=1e-12, atol=1e-12)
    upstream = torch.randn_like(expected)
    grads = torch.autograd.grad(out, inputs, upstream)
    for found, wanted in zip(grads, torch.autograd.grad(expected, inputs, upstream)):
        torch.testing.assert_close(found, wanted, rtol=1e-12, atol=1e-12)
    return grads


def test_mask_a_and_b_tables_for_three_colours_entry_by_entry():
    a = build_mask("A", (3, 3), RGB, RGB)
    b = build_mask("B", (3, 3), RGB, RGB)
    for mask in (a, b):
        assert (mask[:, :, 0, :] == 1).all()  # row above: everything
        assert (mask[:, :, 1, 0] == 1).all()  # left neighbour: everything
        assert (mask[:, :, 1, 2] == 0).all()  # right neighbour: nothing
        assert (mask[:, :, 2, :] == 0).all()  # row below: nothing
    # centre, rows: output colour R G B, columns: input colour R G B
    assert a[:, :, 1, 1].tolist() == [[0, 0, 0], [1, 0, 0], [1, 1, 0]]
    assert b[:, :, 1, 1].tolist() == [[1, 0, 0], [1, 1, 0], [1, 1, 1]]


@pytest.mark.parametrize("kernel", [(1, 5), (5, 1), (7, 7), (1, 1), (3, 5)])
def test_masks_for_any_odd_kernel_shape(kernel):
    kh, kw = kernel
    mask = build_mask("B", kernel, RGB, RGB)
    ci, cj = kh // 2, kw // 2
    for r in range(kh):
        for s in range(kw):
            entry = mask[:, :, r, s]
            if r < ci or (r == ci and s < cj):
                assert (entry == 1).all()
            elif r == ci and s == cj:
                assert entry.tolist() == [[1, 0, 0], [1, 1, 0], [1, 1, 1]]
            else:
                assert (entry == 0).all()


def test_even_kernel_and_unknown_type_are_refused():
    with pytest.raises(ValueError, match="odd"):
        build_mask("A", (2, 1), RGB, RGB)
    with pytest.raises(ValueError, match="mask type"):
        build_mask("C", (3, 3), RGB, RGB)


def test_groups_are_contiguous_and_balanced():
    assert channel_groups(3, 3).tolist() == [0, 1, 2]
    assert channel_groups(8, 3).tolist() == [0, 0, 0, 1, 1, 1, 2, 2]
    assert channel_groups(5, 1).tolist() == [0] * 5
    # gate maps [o|f|i|g] repeat the hidden units' groups
    assert gate_groups(3, 3).tolist() == [0, 1, 2] * 4
    with pytest.raises(ValueError, match="colour groups"):
        channel_groups(2, 3)


def test_masked_weights_never_reach_the_output():
    torch.manual_seed(0)
    groups = channel_groups(6, 3)
    conv = MaskedConv2d(6, 6, 3, "A", groups, groups).double()
    x = torch.randn(2, 6, 5, 5, dtype=torch.float64)
    before = conv(x)
    with torch.no_grad():  # whatever an optimiser writes into the masked entries is ignored
        conv.weight.add_((1 - conv.mask) * 100.0)
    assert torch.equal(before, conv(x))
    # and the masked entries get no gradient
    conv(x).sum().backward()
    assert (conv.weight.grad[conv.mask == 0] == 0).all()


@pytest.mark.parametrize("memory_format", [torch.contiguous_format, torch.channels_last])
@pytest.mark.parametrize("mask_type", ["A", "B"])
def test_a_one_by_one_kernel_is_the_convolution_as_a_matrix_product(mask_type, memory_format):
    """The 1x1 path (a product over channels) gives the convolution's values and every gradient."""
    torch.manual_seed(0)
    in_groups, out_groups = channel_groups(6, 3), gate_groups(12, 3)
    conv = MaskedConv2d(6, 48, 1, mask_type, in_groups, out_groups).double()
    x = torch.randn(2, 6, 5, 7, dtype=torch.float64).contiguous(memory_format=memory_format).requires_grad_()
    out = conv(x)
    expected = torch.nn.functional.conv2d(x, conv.weight * conv.mask, conv.bias)
    assert out.shape == expected.shape == (2, 48, 5, 7)
    assert out.is_contiguous(memory_format=torch.channels_last)  # the product's layout, which the scans read without a copy
    grads = assert_same_values_and_gradients(out, expected, (x, conv.weight, conv.bias))
    assert (grads[1][conv.mask == 0] == 0).all()


@pytest.mark.parametrize("memory_format", [torch.contiguous_format, torch.channels_last])
@pytest.mark.parametrize("kernel, mask_type", [((3, 3), "B"), ((7, 7), "A"), ((1, 3), "B"), ((1, 5), "A"), ((5, 1), "B"), ((3, 5), "A")])
def test_a_kernel_trimmed_to_its_unmasked_part_is_the_whole_convolution(kernel, mask_type, memory_format):
    """Only the rows up to the centre (a one-row kernel: the columns up to it) are multiplied: same values, every gradient."""
    torch.manual_seed(2)
    in_groups, out_groups = channel_groups(6, 3), channel_groups(9, 3)
    conv = MaskedConv2d(6, 9, kernel, mask_type, in_groups, out_groups).double()
    x = torch.randn(2, 6, 5, 7, dtype=torch.float64).contiguous(memory_format=memory_format).requires_grad_()
    out = conv(x)
    expected = torch.nn.functional.conv2d(x, conv.weight * conv.mask, conv.bias, padding=(kernel[0] // 2, kernel[1] // 2))
    assert out.shape == expected.shape == (2, 9, 5, 7)
    assert out.is_contiguous(memory_format=torch.channels_last)  # the stream's layout, whatever the input's
    assert_same_values_and_gradients(out, expected, (x, conv.weight, conv.bias))


def test_a_one_channel_input_is_convolved_channels_last():
    """A one-channel image is both layouts at once; the convolution must still answer in the stream's (channels last)."""
    torch.manual_seed(3)
    conv = MaskedConv2d(1, 8, 7, "A", channel_groups(1, 1), channel_groups(8, 1)).double()
    x = torch.randn(3, 1, 6, 5, dtype=torch.float64)
    out = conv(x)
    expected = torch.nn.functional.conv2d(x, conv.weight * conv.mask, conv.bias, padding=3)
    assert out.stride(1) == 1  # channels innermost in memory
    assert_same_values_and_gradients(out, expected, (conv.weight, conv.bias))


@pytest.mark.parametrize("kernel, extent", [((3, 3), (2, 3)), ((7, 7), (4, 7)), ((1, 3), (1, 2)), ((1, 5), (1, 3)), ((5, 1), (3, 1)),
                                            ((3, 5), (2, 5)), ((1, 1), (1, 1))])
def test_the_extent_is_the_part_of_the_kernel_a_mask_can_leave(kernel, extent):
    assert kernel_extent(*kernel) == extent
    rows, columns = extent
    for mask_type in ("A", "B"):
        mask = build_mask(mask_type, kernel, RGB, RGB)
        assert mask[:, :, rows:].sum() == 0 and mask[:, :, :, columns:].sum() == 0
        if kernel != (1, 1):  # what is left reaches the last row and column of the extent
            assert mask[:, :, rows - 1].sum() > 0 and mask[:, :, :, columns - 1].sum() > 0


def test_an_even_width_alone_is_refused():
    with pytest.raises(ValueError, match="odd sizes so that the centre is a pixel; got 3x4"):
        build_mask("B", (3, 4), RGB, RGB)


def test_the_output_is_the_masked_weights_sum_plus_the_bias():
    torch.manual_seed(1)
    groups = channel_groups(6, 3)
    conv = MaskedConv2d(6, 6, (3, 5), "B", groups, groups).double()
    with torch.no_grad():
        conv.bias.normal_()  # large enough that a dropped bias shows
    x = torch.randn(2, 6, 4, 7, dtype=torch.float64)
    expected = torch.nn.functional.conv2d(x, conv.weight * build_mask("B", (3, 5), groups, groups).double(), conv.bias, padding=(1, 2))
    assert torch.allclose(conv(x), expected, rtol=0, atol=1e-12)
    unbiased = MaskedConv2d(6, 6, 3, "B", groups, groups, bias=False)
    assert unbiased.bias is None


def test_group_vectors_of_the_wrong_length_are_refused_each_on_its_own():
    six, five = channel_groups(6, 3), channel_groups(5, 3)
    for in_groups, out_groups in ((five, six), (six, five)):
        with pytest.raises(ValueError, match="^group vectors must have one entry per channel$"):
            MaskedConv2d(6, 6, 3, "A", in_groups, out_groups)


def test_the_mask_is_rebuilt_not_saved_and_is_named_in_the_repr():
    # Checkpoints hold the weights only: the mask follows from the configuration.
    groups = channel_groups(3, 3)
    conv = MaskedConv2d(3, 3, 3, "A", groups, groups)
    assert sorted(conv.state_dict()) == ["bias", "weight"]
    assert repr(conv).endswith("padding=(1, 1), mask=A)")


@pytest.mark.parametrize("kernels", ["native", "pytorch"])
@pytest.mark.parametrize("terms", [1, 3])
@pytest.mark.parametrize("memory_format", [torch.contiguous_format, torch.channels_last])
def test_a_sum_of_pointwise_products_is_the_sum_of_the_convolutions(terms, memory_format, kernels):
    """One product accumulating in place gives the summed convolutions' values and the gradient of every input, weight and bias."""
    torch.manual_seed(4)
    groups, wide = channel_groups(6, 3), channel_groups(16, 3)  # 16 outputs: enough for the native product
    convs = [MaskedConv2d(6, 16, 1, "B", groups, wide).double() for _ in range(terms)]
    maps = [torch.randn(2, 6, 5, 7, dtype=torch.float64).contiguous(memory_format=memory_format).requires_grad_() for _ in range(terms)]
    with native.disabled() if kernels == "pytorch" else contextlib.nullcontext():
        out = sum_of_pointwise(convs, maps)
    expected = sum(torch.nn.functional.conv2d(x, conv.weight * conv.mask, conv.bias) for conv, x in zip(convs, maps))
    assert out.is_contiguous(memory_format=torch.channels_last)
    parameters = [tensor for conv in convs for tensor in (conv.weight, conv.bias)]
    grads = assert_same_values_and_gradients(out, expected, (*maps, *parameters))
    for conv, weight_grad in zip(convs, grads[terms::2]):
        assert (weight_grad[conv.mask == 0] == 0).all()


@pytest.mark.parametrize("trained", ["maps", "convolutions", "weights"])
def test_a_sum_of_pointwise_products_computes_only_the_gradients_asked_for(trained):
    """Frozen weights cost no product and frozen maps none either; what is trained still gets its gradient.

    The PyTorch path, whose products torch's flop counter sees (the native one: tests/layers/test_native_pointwise.py).
    """
    torch.manual_seed(5)
    groups = channel_groups(6, 3)
    convs = [MaskedConv2d(6, 6, 1, "B", groups, groups).double().requires_grad_(trained == "convolutions") for _ in range(2)]
    maps = [torch.randn(2, 6, 5, 7, dtype=torch.float64).contiguous(memory_format=torch.channels_last).requires_grad_(trained == "maps")
            for _ in range(2)]
    if trained == "weights":  # the biases frozen
        inputs = [conv.weight.requires_grad_() for conv in convs]
    else:
        inputs = maps if trained == "maps" else [tensor for conv in convs for tensor in (conv.weight, conv.bias)]
    with native.disabled():
        out = sum_of_pointwise(convs, maps)
    expected = sum(torch.nn.functional.conv2d(x, conv.weight * conv.mask, conv.bias) for conv, x in zip(convs, maps))
    upstream = torch.randn_like(expected)
    with FlopCounterMode(display=False) as counter:
        grads = torch.autograd.grad(out, inputs, upstream)
    assert counter.get_total_flops() == 2 * (2 * 2 * 5 * 7 * 6 * 6)  # one product per term: the maps' or the weights' gradients
    for found, wanted in zip(grads, torch.autograd.grad(expected, inputs, upstream)):
        torch.testing.assert_close(found, wanted, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("kernels", ["native", "pytorch"])
def test_a_one_by_one_kernel_runs_as_a_product_never_as_a_convolution(kernels):
    """The 1x1 path is the speed-up of docs/performance.md: no convolution runs, forward or backward."""
    if kernels == "native" and native.library() is None:
        pytest.skip("the native kernels cannot be built here")
    groups = channel_groups(6, 3)
    conv = MaskedConv2d(6, 16, 1, "B", groups, channel_groups(16, 3))  # 16 outputs: enough for the native product
    x = torch.randn(2, 6, 5, 7).contiguous(memory_format=torch.channels_last).requires_grad_()
    with native.disabled() if kernels == "pytorch" else contextlib.nullcontext(), torch.profiler.profile() as profile:
        conv(x).sum().backward()
    names = {event.name for event in profile.events()}
    assert not {name for name in names if "convolution" in name}
    if kernels == "pytorch":
        assert {"aten::mm", "aten::addmm"} & names
    else:  # the product and its gradients in the native kernels, none in torch's
        assert "PointwiseProducts" in names and not {"aten::mm", "aten::addmm", "aten::linear"} & names


def test_a_sum_of_pointwise_products_refuses_what_it_cannot_sum():
    groups = channel_groups(6, 3)
    pointwise = MaskedConv2d(6, 6, 1, "B", groups, groups)
    refusal = "^sum_of_pointwise takes as many maps as 1x1 masked convolutions with biases, at least one$"
    for convs, maps in [([MaskedConv2d(6, 6, 3, "B", groups, groups)], [torch.randn(1, 6, 4, 4)]),
                        ([MaskedConv2d(6, 6, 1, "B", groups, groups, bias=False)], [torch.randn(1, 6, 4, 4)]),
                        ([pointwise, pointwise], [torch.randn(1, 6, 4, 4)]), ([], [])]:
        with pytest.raises(ValueError, match=refusal):
            sum_of_pointwise(convs, maps)
