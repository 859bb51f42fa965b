"""The native engines compute the reference engines' conditionals and draw the same samples.

Teacher forcing feeds an image to both engines sub-pixel by sub-pixel; every sub-pixel's
logits must equal the full forward pass (and so each other) to 1e-9 in float64. Sampling with
the native engines (a whole unknown row per native call, or one sub-pixel at a time where some
values are known) must give the images of the reference engines and of the naive path.
"""

import itertools

import pytest
import torch

from pixelrnn import ARCHITECTURES, native
from pixelrnn.sampling import ENGINES, NATIVE_ENGINES, complete, fill, make_engine, sample
from pixelrnn.sampling.native_column import gate_order, visible_prefix
from test_engines import small_model

pytestmark = [pytest.mark.usefixtures("one_thread"),
              pytest.mark.skipif(native.library() is None, reason="the native kernels cannot be built here")]


def logits_of_every_subpixel(engine, images, condition=None):
    """(C*H*W, B, K) logits in raster order, each sub-pixel fed its true value after its logits are read."""
    batch, channels, height, width = images.shape
    engine.reset(batch, height, width, condition=condition)
    out = []
    for i, j, c in itertools.product(range(height), range(width), range(channels)):
        out.append(engine.logits(i, j, c))
        engine.advance(i, j, c, images[:, c, i, j])
    return torch.stack(out)


def full_pass(model, images, condition=None):
    with torch.no_grad():
        logits = model.logits_from_scaled(model.scale(images), condition)  # (B, C, K, H, W)
    return logits.permute(3, 4, 1, 0, 2).reshape(-1, images.shape[0], logits.shape[2])


@pytest.mark.parametrize("arch", ARCHITECTURES)
@pytest.mark.parametrize("channels,height,width", [(1, 4, 5), (3, 5, 3), (3, 1, 4), (2, 4, 1)])
@pytest.mark.parametrize("residual,skip", [(True, True), (False, False)])
def test_native_logits_equal_the_reference_engine_and_the_full_pass(arch, channels, height, width, residual, skip):
    model = small_model(arch, channels, residual=residual, skip=skip)
    images = torch.randint(0, 5, (3, channels, height, width), generator=torch.Generator().manual_seed(1))
    fast_engine, slow_engine = make_engine(model, native_kernels=True), make_engine(model, native_kernels=False)
    assert type(fast_engine) is NATIVE_ENGINES[type(slow_engine)] and type(slow_engine) in ENGINES.values()
    fast, slow = logits_of_every_subpixel(fast_engine, images), logits_of_every_subpixel(slow_engine, images)
    full = full_pass(model, images)
    assert (fast - full).abs().max() <= 1e-9 and (slow - full).abs().max() <= 1e-9
    assert (fast - slow).abs().max() <= 1e-9


@pytest.mark.parametrize("arch", ARCHITECTURES)
def test_other_kernels_colours_and_a_conditioning_map(arch):
    model = small_model(arch, 3, levels=7, layers=3, input_kernel=5, conv_kernel=5, row_kernel=5, output_layers=2, hidden=7)
    images = torch.randint(0, 7, (2, 3, 5, 6), generator=torch.Generator().manual_seed(2))
    assert (logits_of_every_subpixel(make_engine(model, True), images) - full_pass(model, images)).abs().max() <= 1e-9
    conditional = small_model(arch, 3, condition_channels=4)
    condition = torch.randn(2, 4, 5, 6, dtype=torch.float64, generator=torch.Generator().manual_seed(3))
    images = torch.randint(0, 5, (2, 3, 5, 6), generator=torch.Generator().manual_seed(4))
    found = logits_of_every_subpixel(make_engine(conditional, True), images, condition)
    assert (found - full_pass(conditional, images, condition)).abs().max() <= 1e-9


@pytest.mark.parametrize("arch", ARCHITECTURES)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_native_sampling_draws_the_reference_and_naive_images(arch, dtype):
    model = small_model(arch, 3, levels=4, dtype=dtype)
    draws = {}
    for path in ("native", "reference", "naive"):
        generator = torch.Generator().manual_seed(5)
        if path == "reference":
            with native.disabled():
                draws[path] = sample(model, 4, 4, 5, generator=generator)
        else:
            draws[path] = sample(model, 4, 4, 5, generator=generator, naive=path == "naive")
    assert torch.equal(draws["native"], draws["reference"]) and torch.equal(draws["native"], draws["naive"])
    assert not torch.equal(draws["native"], sample(model, 4, 4, 5, generator=torch.Generator().manual_seed(6)))


@pytest.mark.parametrize("arch", ARCHITECTURES)
def test_known_values_anywhere_take_the_per_subpixel_path_and_agree(arch):
    """Rows with known sub-pixels are drawn one sub-pixel at a time, the others one row per call."""
    model = small_model(arch, 3, levels=5)
    images = torch.randint(0, 5, (3, 3, 5, 4), generator=torch.Generator().manual_seed(7))
    known = torch.rand(images.shape, generator=torch.Generator().manual_seed(8)) < 0.3
    known[:, :, 3] = False  # a row with nothing known: one native call
    known[0, 1, 1, 2] = True  # a sub-pixel known in one image only
    fast = fill(model, images, known, generator=torch.Generator().manual_seed(9))
    with native.disabled():
        slow = fill(model, images, known, generator=torch.Generator().manual_seed(9))
    assert torch.equal(fast, slow) and torch.equal(fast[known], images[known])
    kept = complete(model, images, 2, generator=torch.Generator().manual_seed(10))
    assert torch.equal(kept, complete(model, images, 2, generator=torch.Generator().manual_seed(10), naive=True))


def test_the_generator_gives_a_row_of_uniforms_as_it_gives_them_one_by_one():
    """What the native path's per-row draws rest on: n values in one call equal n calls."""
    for batch, count in [(1, 7), (16, 84), (64, 300)]:
        one_by_one = torch.Generator().manual_seed(11)
        expected = torch.stack([torch.rand(batch, generator=one_by_one, dtype=torch.float64) for _ in range(count)])
        assert torch.equal(torch.rand(count, batch, generator=torch.Generator().manual_seed(11), dtype=torch.float64), expected)


def test_engine_choice_and_the_native_interface_errors():
    model = small_model("pixelcnn", 3)
    engine = make_engine(model)
    assert type(engine) in NATIVE_ENGINES.values()  # the default where the kernels run
    with native.disabled():
        assert type(make_engine(model)) in ENGINES.values()
        with pytest.raises(RuntimeError, match="native"):
            make_engine(model, native_kernels=True)
    assert type(make_engine(model.float(), native_kernels=False)) in ENGINES.values()
    engine.reset(2, 2, 2)
    with pytest.raises(ValueError, match=r"\[0, 5\)"):
        engine.advance(0, 0, 0, torch.tensor([1, 5]))
    with pytest.raises(ValueError, match="uniforms"):
        engine.draw(0, 0, 0, torch.zeros(3, dtype=torch.float64), 1.0, torch.zeros(2, dtype=torch.long))
    with pytest.raises(ValueError, match="raster order"):
        engine.sample_row(1, torch.zeros(6, 2, dtype=torch.float64), 1.0, torch.zeros(2, 3, 2, 2, dtype=torch.long))


def test_the_logits_handed_out_stay_valid():
    model = small_model("diagonal_bilstm", 1)
    engine = make_engine(model, True)
    engine.reset(2, 2, 2)
    first = engine.logits(0, 0, 0)
    kept = first.clone()
    engine.advance(0, 0, 0, torch.tensor([1, 2]))
    engine.logits(0, 1, 0)
    assert torch.equal(first, kept)


def test_colour_groups_of_the_masks_and_the_gates():
    mask = torch.tensor([[1, 0, 0], [1, 1, 0], [1, 1, 1]])
    assert [visible_prefix(mask, slice(g, g + 1)) for g in range(3)] == [1, 2, 3]
    with pytest.raises(ValueError, match="prefix"):
        visible_prefix(torch.tensor([[0, 1, 0]]), slice(0, 1))
    # 5 units in 3 groups (2, 2, 1): each group's [o | f | i | g] together.
    assert gate_order(5, 3).tolist() == [0, 1, 5, 6, 10, 11, 15, 16, 2, 3, 7, 8, 12, 13, 17, 18, 4, 9, 14, 19]
