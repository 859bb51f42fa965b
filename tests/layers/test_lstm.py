"""The fused LSTM scan equals the step-by-step autograd reference, values and gradients."""

import contextlib

import pytest
import torch

from pixelrnn import native

from pixelrnn.layers.lstm import DiagonalBiLSTM, RowLSTM
import pixelrnn.layers.masked_conv as masked_conv
import pixelrnn.layers.scan as scan_module
from pixelrnn.layers.scan import RowRecurrence, diagonal_scan, lstm_scan


def make_layer(kind, channels):
    torch.manual_seed(0)
    if kind == "row":
        layer = RowLSTM(6, 3 * channels, channels, kernel=3)
    elif kind == "row5":
        layer = RowLSTM(6, 3 * channels, channels, kernel=5)
    else:
        layer = DiagonalBiLSTM(6, 3 * channels, channels)
    layer = layer.double()
    with torch.no_grad():  # non-zero learned initial states, so their gradients are exercised
        layer.initial_hidden.normal_()
        layer.initial_cell.normal_()
    return layer


@pytest.mark.parametrize("tanh", ["via_sigmoid", "torch_tanh"])
@pytest.mark.parametrize("kind", ["row", "row5", "diagonal"])
@pytest.mark.parametrize("shape", [(2, 4, 5), (1, 6, 3), (3, 1, 4), (2, 5, 1)])
def test_fused_scan_matches_reference_values_and_gradients(kind, shape, tanh, monkeypatch):
    """The PyTorch scans (the native ones: tests/layers/test_native_scan.py)."""
    monkeypatch.setitem(native._state, "enabled", False)
    if tanh == "torch_tanh":  # the GPU branch of the scans, exercised here on the CPU
        monkeypatch.setattr(scan_module, "SIGMOID_TANH_DEVICES", set())
    layer = make_layer(kind, channels=1)
    batch, height, width = shape
    x = torch.randn(batch, 6, height, width, dtype=torch.float64, requires_grad=True)
    upstream = torch.randn(batch, layer.hidden, height, width, dtype=torch.float64)

    def run(forward):
        layer.zero_grad()
        x.grad = None
        out = forward(x)
        (out * upstream).sum().backward()
        return out.detach(), x.grad.clone(), {n: p.grad.clone() for n, p in layer.named_parameters()}

    fast, fast_x, fast_params = run(layer.forward)
    slow, slow_x, slow_params = run(layer.forward_reference)
    assert torch.allclose(fast, slow, rtol=0, atol=1e-12)
    assert torch.allclose(fast_x, slow_x, rtol=0, atol=1e-12)
    for name in slow_params:
        assert torch.allclose(fast_params[name], slow_params[name], rtol=0, atol=1e-11), name


@pytest.mark.parametrize("scan", ["row", "diagonal"])
def test_scans_pass_gradcheck(scan, monkeypatch):
    monkeypatch.setitem(native._state, "enabled", False)  # the PyTorch scans
    torch.manual_seed(0)
    directions, size, batch, height, width = 2, 2, 2, 3, 4
    if scan == "row":
        gates_shape, z_size = (height, directions, 4 * size, batch * width), 3 * size
        run = lambda *a: lstm_scan(*a, RowRecurrence(batch, width, 3))
    else:
        gates_shape, z_size = (directions, batch, height, width, 4 * size), 2 * size
        run = diagonal_scan
    inputs = (
        torch.randn(gates_shape, dtype=torch.float64, requires_grad=True),
        torch.randn(directions, 4 * size, z_size, dtype=torch.float64, requires_grad=True),
        torch.randn(directions, size, dtype=torch.float64, requires_grad=True),
        torch.randn(directions, size, dtype=torch.float64, requires_grad=True),
    )
    assert torch.autograd.gradcheck(run, inputs)


@pytest.mark.parametrize("kind", ["row", "diagonal"])
def test_scans_run_in_float32_under_bf16_autocast(kind, monkeypatch):
    """Under autocast the convolutions run in bf16, the recurrences in float32 (their sums through time)."""
    import pixelrnn.layers.lstm as lstm_module

    torch.manual_seed(0)
    layer = RowLSTM(6, 8, 1) if kind == "row" else DiagonalBiLSTM(6, 8, 1)
    x = torch.randn(2, 6, 5, 7, requires_grad=True)
    exact = layer(x)
    name = "row_scan" if kind == "row" else "diagonal_layer_scan"
    scan, scan_dtypes = getattr(lstm_module, name), []

    def recording_scan(*args):
        out = scan(*args)
        scan_dtypes.append(out.dtype)
        return out

    monkeypatch.setattr(lstm_module, name, recording_scan)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        mixed = layer(x)
    assert scan_dtypes == [torch.float32]
    assert torch.allclose(mixed.float(), exact, atol=0.05)
    mixed.float().sum().backward()
    assert torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0


@pytest.mark.parametrize("arch", ["row_lstm", "diagonal_bilstm"])
def test_torch_compile_matches_eager_and_keeps_the_diagonal_scan_opaque(arch, monkeypatch):
    """torch.compile (train.compile) gives the eager results; the diagonal scan stays opaque instead of being re-traced per step."""
    import torch._dynamo
    from torch._dynamo.utils import counters

    from pixelrnn.models import build_model

    torch.manual_seed(0)
    model = build_model(arch, channels=1, levels=2, hidden=4, layers=2)
    x = torch.randint(0, 2, (2, 1, 8, 8))
    torch._dynamo.reset()
    counters.clear()
    compiled = torch.compile(model, backend="eager")
    out = compiled(x)
    out.sum().backward()
    grads = [p.grad.clone() for p in model.parameters()]
    model.zero_grad()
    # A traced graph takes the PyTorch Row LSTM scan and 1x1 products (dynamo cannot see into the native
    # ones); the diagonal scan is opaque to it and runs as in eager mode, natively where it can.
    monkeypatch.setattr(masked_conv, "native_products_run", lambda operands, outputs: False)
    with native.disabled() if arch == "row_lstm" else contextlib.nullcontext():
        eager = model(x)
        eager.sum().backward()
    assert torch.equal(out, eager)
    assert all(torch.equal(a, p.grad) for a, p in zip(grads, model.parameters()))
    monkeypatch.undo()
    assert torch.allclose(model(x), out, atol=1e-5)  # and the eager native path agrees to rounding
    if arch == "diagonal_bilstm":  # traced step by step, its scan alone compiles dozens of graphs
        assert counters["stats"]["unique_graphs"] <= 12
    torch._dynamo.reset()


def pixel_by_pixel_diagonal_bilstm(layer, x):
    """The Diagonal BiLSTM of section 3.2 written out per pixel, sharing no code with the layer's scans.

    Direction d reads, at (i, j) of its own (for d = 1 mirrored) map, the state above (i-1, j) and
    the state on its left (i, j-1), the initial state outside the map, and the cell on its left.
    The right-to-left states, mirrored back, are shifted down one row (zeros in row 0) and added.
    """
    batch, _, height, width = x.shape
    size = layer.hidden
    gates_in = layer.input_to_state(x)  # (B, 8h, H, W): [left to right | right to left]
    outputs = []
    for d in range(2):
        gates_d = gates_in[:, 4 * d * size : 4 * (d + 1) * size]
        if d == 1:
            gates_d = gates_d.flip(-1)
        initial_h = layer.initial_hidden[d].expand(batch, size)
        initial_c = layer.initial_cell[d].expand(batch, size)
        hidden = [[None] * width for _ in range(height)]
        cell = [[None] * width for _ in range(height)]
        for i in range(height):
            for j in range(width):
                above = hidden[i - 1][j] if i else initial_h
                left, cell_left = (hidden[i][j - 1], cell[i][j - 1]) if j else (initial_h, initial_c)
                pre = gates_d[:, :, i, j] + torch.cat([above, left], dim=1) @ layer.state_to_state[d].T
                o, f, i_gate, g = pre.split(size, dim=1)
                cell[i][j] = torch.sigmoid(f) * cell_left + torch.sigmoid(i_gate) * torch.tanh(g)
                hidden[i][j] = torch.sigmoid(o) * torch.tanh(cell[i][j])
        states = torch.stack([torch.stack(row, dim=-1) for row in hidden], dim=-2)  # (B, h, H, W)
        outputs.append(states if d == 0 else states.flip(-1))
    shifted = torch.zeros_like(outputs[1])
    shifted[:, :, 1:] = outputs[1][:, :, :-1]
    return outputs[0] + shifted


@pytest.mark.parametrize("shape", [(2, 4, 3), (1, 3, 5), (1, 1, 4)])
def test_diagonal_bilstm_equals_a_pixel_by_pixel_reference(shape, monkeypatch):
    """Both the fast scan and the step-by-step reference: neither may drift from the paper's layer."""
    layer = make_layer("diagonal", channels=1)
    x = torch.randn(shape[0], 6, *shape[1:], dtype=torch.float64)
    with torch.no_grad():
        expected = pixel_by_pixel_diagonal_bilstm(layer, x)
        assert torch.allclose(layer.forward_reference(x), expected, rtol=0, atol=1e-12)
        assert torch.allclose(layer(x), expected, rtol=0, atol=1e-12)
        monkeypatch.setitem(native._state, "enabled", False)
        assert torch.allclose(layer(x), expected, rtol=0, atol=1e-12)


def test_the_gate_blocks_are_split_along_the_channels_by_default_in_o_f_i_g_order():
    from pixelrnn.layers.rules import GATES, split_gates

    hidden = 3
    gates = torch.arange(2 * 4 * hidden * 5, dtype=torch.float32).view(2, 4 * hidden, 5)
    blocks = split_gates(gates, hidden)
    assert len(blocks) == len(GATES) == 4
    for index, block in enumerate(blocks):
        assert torch.equal(block, gates[:, index * hidden:(index + 1) * hidden])
