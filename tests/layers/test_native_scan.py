"""The native scans equal the step-by-step reference: values, input gradients, every parameter gradient."""

import pytest
import torch

from pixelrnn import native
from pixelrnn.layers.lstm import DiagonalBiLSTM, RowLSTM
from pixelrnn.layers import native_scan
from pixelrnn.layers.native_scan import NativeDiagonalLayer, NativeDiagonalScan, NativeRowScan
from pixelrnn.layers.scan import DiagonalScan, direction_gates

pytestmark = pytest.mark.skipif(native.library() is None, reason="the native kernels cannot be built here")


def layer_of(kind, channels=1, size=3):
    torch.manual_seed(0)
    layer = {"row": lambda: RowLSTM(6, size * channels, channels, kernel=3), "row5": lambda: RowLSTM(6, size * channels, channels, kernel=5),
             "diagonal": lambda: DiagonalBiLSTM(6, size * channels, channels)}[kind]().double()
    with torch.no_grad():  # non-zero learned initial states, so that their gradients are exercised
        layer.initial_hidden.normal_()
        layer.initial_cell.normal_()
    return layer


def values_and_gradients(layer, forward, x, upstream):
    layer.zero_grad()
    x.grad = None
    out = forward(x)
    (out * upstream).sum().backward()
    return out.detach(), x.grad.clone(), {name: p.grad.clone() for name, p in layer.named_parameters()}


@pytest.mark.parametrize("kind", ["row", "row5", "diagonal"])
@pytest.mark.parametrize("channels", [1, 3])
@pytest.mark.parametrize("shape", [(2, 4, 5), (1, 6, 3), (3, 1, 4), (2, 5, 1), (11, 3, 4)])
def test_native_layers_match_the_step_by_step_reference(kind, channels, shape):
    layer = layer_of(kind, channels)
    batch, height, width = shape
    x = torch.randn(batch, 6, height, width, dtype=torch.float64, requires_grad=True)
    upstream = torch.randn(batch, layer.hidden, height, width, dtype=torch.float64)
    fast, fast_x, fast_params = values_and_gradients(layer, layer.forward, x, upstream)
    slow, slow_x, slow_params = values_and_gradients(layer, layer.forward_reference, x, upstream)
    assert torch.allclose(fast, slow, rtol=0, atol=1e-12)
    assert torch.allclose(fast_x, slow_x, rtol=0, atol=1e-12)
    assert set(fast_params) == set(slow_params) == {name for name, _ in layer.named_parameters()}
    for name in slow_params:
        assert torch.allclose(fast_params[name], slow_params[name], rtol=0, atol=1e-11), name


def test_the_native_scan_equals_the_pytorch_scan_on_its_own_interface():
    torch.manual_seed(1)
    gates = torch.randn(2, 3, 4, 6, 8, dtype=torch.float64, requires_grad=True)
    weight = torch.randn(2, 8, 4, dtype=torch.float64, requires_grad=True)
    initial = [torch.randn(2, 2, dtype=torch.float64, requires_grad=True) for _ in range(2)]
    upstream = torch.randn(2, 3, 4, 6, 2, dtype=torch.float64)
    results = []
    for scan in (NativeDiagonalScan, DiagonalScan):
        out = scan.apply(gates, weight, *initial)
        grads = torch.autograd.grad((out * upstream).sum(), [gates, weight, *initial])
        results.append((out, *grads))
    for fast, slow in zip(*results):
        assert torch.allclose(fast, slow, rtol=0, atol=1e-12)


def scan_inputs(kind, batch, height, width, size, seed=2):
    """Random inputs of a native scan: gates in its layout, weight, initial hidden and cell states (float64)."""
    generator = torch.Generator().manual_seed(seed)
    shapes = {"diagonal": [(2, batch, height, width, 4 * size), (2, 4 * size, 2 * size), (2, size), (2, size)],
              "layer": [(batch, height, width, 8 * size), (2, 4 * size, 2 * size), (2, size), (2, size)],
              "row": [(batch, height, width, 4 * size), (4 * size, 3 * size), (size,), (size,)]}[kind]
    return tuple(torch.randn(shape, generator=generator, dtype=torch.float64).requires_grad_() for shape in shapes)


SCANS = {"diagonal": NativeDiagonalScan.apply, "layer": NativeDiagonalLayer.apply, "row": lambda *a: NativeRowScan.apply(*a, 3)}


@pytest.mark.parametrize("kind", SCANS)
def test_native_scans_pass_gradcheck(kind):
    assert torch.autograd.gradcheck(SCANS[kind], scan_inputs(kind, 2, 3, 4, 2))


def test_the_layer_reads_the_convolution_output_as_the_reference_stacks_it():
    gates = torch.randn(2, 3, 5, 16, dtype=torch.float64)
    stacked = direction_gates(gates)  # (2, B, H, W, 4h), the second direction mirrored
    assert torch.equal(stacked[1, :, :, 0], gates[:, :, -1, 8:])


@pytest.mark.parametrize("kind", ["diagonal", "layer"])
def test_the_diagonal_scans_pass_gradcheck_over_several_groups_of_images(kind, monkeypatch):
    """A step's product spans a group of images: gradients are right for full and partial groups."""
    monkeypatch.setattr(native_scan, "IMAGES_PER_PRODUCT", 2)
    assert torch.autograd.gradcheck(SCANS[kind], scan_inputs(kind, 5, 3, 2, 1))


@pytest.mark.parametrize("images_per_product", [1, 3, 16])
def test_the_diagonal_layer_equals_the_reference_whatever_the_images_per_product(images_per_product, monkeypatch):
    monkeypatch.setattr(native_scan, "IMAGES_PER_PRODUCT", images_per_product)
    layer = layer_of("diagonal", 3)
    x = torch.randn(7, 6, 4, 5, dtype=torch.float64, requires_grad=True)
    upstream = torch.randn(7, layer.hidden, 4, 5, dtype=torch.float64)
    fast, fast_x, fast_params = values_and_gradients(layer, layer.forward, x, upstream)
    slow, slow_x, slow_params = values_and_gradients(layer, layer.forward_reference, x, upstream)
    assert torch.allclose(fast, slow, rtol=0, atol=1e-12)
    assert torch.allclose(fast_x, slow_x, rtol=0, atol=1e-12)
    for name in slow_params:
        assert torch.allclose(fast_params[name], slow_params[name], rtol=0, atol=1e-11), name


@pytest.mark.parametrize("kind", SCANS)
def test_results_do_not_depend_on_the_thread_count(kind):
    """Each image (a group of images in the Diagonal BiLSTM) is scanned whole by one thread, whatever their number.

    The batch makes three groups of images, the last one partial; the shape is large enough for threads.
    """
    inputs = scan_inputs(kind, 19, 16, 16, 16)
    runs = []
    for threads in (1, 2):
        previous = torch.get_num_threads()
        torch.set_num_threads(threads)
        try:
            out = SCANS[kind](*inputs)
            runs.append((out, *torch.autograd.grad(out.sum(), inputs)))
        finally:
            torch.set_num_threads(previous)
    assert all(torch.equal(one, two) for one, two in zip(*runs))


@pytest.mark.parametrize("shape", [(1, 1), (1, 5), (4, 1), (3, 7), (29, 29)])
def test_diagonal_major_slots_put_each_diagonal_in_consecutive_slots_by_row(shape):
    """Every position has its own slot; diagonal t's positions follow diagonal t - 1's, row after row."""
    rows, columns = shape
    slots = native_scan.diagonal_major_slots(rows, columns)
    assert torch.equal(slots.flatten().sort().values, torch.arange(rows * columns))
    order = sorted(((r + c, r), (r, c)) for r in range(rows) for c in range(columns))
    assert [slots[r, c].item() for _, (r, c) in order] == list(range(rows * columns))
