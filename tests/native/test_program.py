"""Instruction lists for the native per-position step: what they compute, and the views they refuse."""

import pytest
import torch

from pixelrnn import native
from pixelrnn.native.program import Program, at

pytestmark = pytest.mark.skipif(native.library() is None, reason="the native kernels cannot be built here")


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_a_program_computes_what_torch_computes_at_every_position(dtype):
    generator = torch.Generator().manual_seed(0)
    batch, height, width, size = 5, 3, 4, 37  # sizes that leave partial tiles of rows and outputs
    x = torch.randn(height, width, batch, size, generator=generator, dtype=dtype)  # a per-position input
    weight = torch.randn(size, 2 * size, generator=generator, dtype=dtype)
    bias = torch.randn(2 * size, generator=generator, dtype=dtype)
    out = torch.zeros(batch, 2 * size, dtype=dtype)
    gates = torch.randn(batch, 4 * size, generator=generator, dtype=dtype)
    cell_prev = torch.randn(batch, size, generator=generator, dtype=dtype)
    hidden, cell, total = (torch.zeros(batch, size, dtype=dtype) for _ in range(3))
    program = Program(batch, height, width, dtype)
    program.linear(at(out), at(x[0, 0], batch * size, width * batch * size), weight, base=at(bias.expand(batch, -1)), relu_in=True, relu_out=True)
    program.lstm(at(hidden), at(gates), at(cell_prev), at(cell))
    program.add(at(total), at(hidden), at(cell))
    for i in range(height):
        for j in range(width):
            program.run(i, j)
            expected = torch.relu(torch.relu(x[i, j]) @ weight + bias)
            assert torch.allclose(out, expected, rtol=0, atol=1e-5 if dtype == torch.float32 else 1e-12)
    o, f, g_in, g = gates.split(size, dim=1)
    expected_cell = torch.sigmoid(f) * cell_prev + torch.sigmoid(g_in) * torch.tanh(g)
    tolerance = 1e-6 if dtype == torch.float32 else 1e-14
    assert torch.allclose(cell, expected_cell, rtol=0, atol=tolerance)
    assert torch.allclose(hidden, torch.sigmoid(o) * torch.tanh(expected_cell), rtol=0, atol=tolerance)
    assert torch.allclose(total, hidden + cell, rtol=0, atol=tolerance)


def test_operands_that_would_leave_their_tensor_are_refused():
    x, out, weight = torch.zeros(2, 4, 3), torch.zeros(2, 3), torch.zeros(3, 3)
    program = Program(2, 1, 4, torch.float32)
    program.linear(at(out), at(x[:, 0], 3), weight)  # column j reads x[:, j]: inside for j < 4
    with pytest.raises(ValueError, match="leave"):
        program.linear(at(out), at(x[:, 1], 3), weight)  # column 3 would read x[:, 4]
    with pytest.raises(ValueError, match="contiguous"):
        program.linear(at(torch.zeros(3, 2).t()), at(x[:, 0], 3), weight)
    with pytest.raises(ValueError, match="float32"):
        program.linear(at(out.double()), at(x[:, 0], 3), weight)
