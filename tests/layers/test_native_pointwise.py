"""The native 1x1 products equal torch's, in values and every gradient, on any number of threads."""

import pytest
import torch

from pixelrnn import native
from pixelrnn.layers import masked_conv
from pixelrnn.layers.masked_conv import MaskedConv2d, channel_groups, sum_of_pointwise
from pixelrnn.layers.native_pointwise import PointwiseProducts, native_products_run, pointwise_products

pytestmark = pytest.mark.skipif(native.library() is None, reason="the native kernels cannot be built here")


def products_and_gradients(bias, rows, weights, upstream):
    inputs = [tensor for tensor in (bias, *rows, *weights) if tensor is not None and tensor.requires_grad]
    out = pointwise_products(bias, rows, weights)
    return out, torch.autograd.grad(out, inputs, upstream)


def reference(bias, rows, weights, upstream):
    inputs = [tensor for tensor in (bias, *rows, *weights) if tensor is not None and tensor.requires_grad]
    out = sum(x @ w.t() for x, w in zip(rows, weights)) + (0 if bias is None else bias)
    return out, torch.autograd.grad(out, inputs, upstream)


# Row counts around the kernels' blocks (256 rows to a block, 4096 to a partial sum of the weight's gradient) and
# channel counts off the vector width (8 floats, 4 doubles) and off the padded weight rows (16 columns).
@pytest.mark.parametrize("rows_count, sizes", [(1, [(3, 2)]), (255, [(16, 32)]), (257, [(33, 20), (7, 20)]),
                                               (4097, [(32, 17)]), (9000, [(5, 128), (128, 5), (16, 5)])])
@pytest.mark.parametrize("with_bias", [True, False])
def test_values_and_every_gradient_equal_torch_in_float64(rows_count, sizes, with_bias):
    torch.manual_seed(rows_count)
    n_out = sizes[0][1]
    rows = [torch.randn(rows_count, n_in, dtype=torch.float64, requires_grad=True) for n_in, _ in sizes]
    weights = [torch.randn(n_out, n_in, dtype=torch.float64, requires_grad=True) for n_in, _ in sizes]
    bias = torch.randn(n_out, dtype=torch.float64, requires_grad=True) if with_bias else None
    upstream = torch.randn(rows_count, n_out, dtype=torch.float64)
    out, grads = products_and_gradients(bias, rows, weights, upstream)
    expected, expected_grads = reference(bias, rows, weights, upstream)
    torch.testing.assert_close(out, expected, rtol=1e-12, atol=1e-12)
    assert len(grads) == len(expected_grads) == len(rows) * 2 + with_bias
    for found, wanted in zip(grads, expected_grads):
        torch.testing.assert_close(found, wanted, rtol=1e-11, atol=1e-11)


def test_no_rows_give_no_values_and_zero_gradients():
    rows = torch.randn(0, 5, dtype=torch.float64, requires_grad=True)
    weight = torch.randn(3, 5, dtype=torch.float64, requires_grad=True)
    bias = torch.randn(3, dtype=torch.float64, requires_grad=True)
    out, grads = products_and_gradients(bias, [rows], [weight], torch.randn(0, 3, dtype=torch.float64))
    assert out.shape == (0, 3) and grads[0].shape == (3,) and grads[1].shape == (0, 5)
    assert not grads[0].any() and not grads[2].any()


def test_gradcheck_across_blocks():
    torch.manual_seed(1)
    rows = torch.randn(300, 5, dtype=torch.float64, requires_grad=True)
    weight = torch.randn(3, 5, dtype=torch.float64, requires_grad=True)
    bias = torch.randn(3, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda b, x, w: PointwiseProducts.apply(b, x, w), (bias, rows, weight))


def test_float32_values_and_gradients_are_torchs_within_rounding():
    torch.manual_seed(2)
    rows = torch.randn(5000, 32, requires_grad=True)
    weight = torch.randn(16, 32, requires_grad=True)
    bias = torch.randn(16, requires_grad=True)
    upstream = torch.randn(5000, 16)
    out, grads = products_and_gradients(bias, [rows], [weight], upstream)
    expected, expected_grads = reference(bias, [rows], [weight], upstream)
    torch.testing.assert_close(out, expected)
    for found, wanted in zip(grads, expected_grads):
        torch.testing.assert_close(found, wanted, rtol=1e-4, atol=1e-3)


def test_the_results_do_not_depend_on_the_thread_count():
    torch.manual_seed(3)
    rows = torch.randn(3 * 4096 + 77, 32, requires_grad=True)
    weight = torch.randn(32, 32, requires_grad=True)
    bias = torch.randn(32, requires_grad=True)
    upstream = torch.randn(rows.shape[0], 32)
    results = []
    threads = torch.get_num_threads()
    try:
        for count in (1, 2, 3):
            torch.set_num_threads(count)
            out, grads = products_and_gradients(bias, [rows], [weight], upstream)
            results.append([out, *grads])
    finally:
        torch.set_num_threads(threads)
    for other in results[1:]:
        assert all(torch.equal(a, b) for a, b in zip(results[0], other))


@pytest.mark.parametrize("trained", ["maps", "weights", "bias"])
def test_only_the_gradients_asked_for_are_computed(trained, monkeypatch):
    """A frozen weight costs no weight-gradient product, a frozen map no input-gradient product."""
    calls = []
    kernel = native.kernel
    monkeypatch.setattr(native, "kernel", lambda name, dtype: (calls.append(name), kernel(name, dtype))[1])
    torch.manual_seed(6)
    rows = torch.randn(40, 6, dtype=torch.float64, requires_grad=trained == "maps")
    weight = torch.randn(4, 6, dtype=torch.float64, requires_grad=trained == "weights")
    bias = torch.randn(4, dtype=torch.float64, requires_grad=trained == "bias")
    upstream = torch.randn(40, 4, dtype=torch.float64)
    out, grads = products_and_gradients(bias, [rows], [weight], upstream)
    _, expected = reference(bias, [rows], [weight], upstream)
    torch.testing.assert_close(grads[0], expected[0], rtol=1e-12, atol=1e-12)
    backward_calls = calls[1:]  # after the forward product
    assert backward_calls == (["pixelrnn_linear"] if trained == "maps" else ["pixelrnn_linear_weight_grad"])


def test_masked_convolutions_and_their_sums_take_the_native_products_where_they_can(monkeypatch):
    terms = []
    monkeypatch.setattr(masked_conv, "pointwise_products",
                        lambda bias, rows, weights: (terms.append(len(rows)), pointwise_products(bias, rows, weights))[1])
    groups = channel_groups(6, 3)
    conv = MaskedConv2d(6, 18, 1, "B", groups, channel_groups(18, 3))
    x = torch.randn(2, 6, 5, 7).contiguous(memory_format=torch.channels_last)
    assert native_products_run([x], 16) and not native_products_run([x], 15)
    assert not native_products_run([x, x.double()], 16)  # operands of two dtypes
    conv(x)
    sum_of_pointwise([conv, conv], [x, x])
    assert terms == [1, 2]
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert not native_products_run([x], 16)
    assert not native_products_run([x.to(torch.bfloat16)], 16)
    with native.disabled():
        assert not native_products_run([x], 16)
        conv(x)
    few = MaskedConv2d(6, 15, 1, "B", groups, channel_groups(15, 3))
    few(x)  # fewer outputs than a tile: torch's product
    assert terms == [1, 2]

