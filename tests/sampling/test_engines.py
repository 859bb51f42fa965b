"""The incremental sampling engines compute exactly the full forward pass's conditionals.

Teacher forcing: an image is fed to the engine sub-pixel by sub-pixel in raster order and
the logits it gives for every sub-pixel are compared with ``model(x)``. Then sampling: the
engine and the naive path draw the same images from the same seed.
"""

import itertools

import pytest
import torch

from pixelrnn import ARCHITECTURES, build_model
from pixelrnn.sampling import complete, make_engine, sample

CONNECTIONS = [(True, True), (True, False), (False, True), (False, False)]
SHAPES = [(1, 3, 5), (3, 5, 3), (3, 4, 4), (1, 6, 2)]  # (channels, height, width): H < W, H > W, square
TOLERANCE = {torch.float64: 1e-9, torch.float32: 1e-5}


pytestmark = pytest.mark.usefixtures("one_thread")


def small_model(arch, channels, *, levels=5, dtype=torch.float64, seed=0, **options):
    torch.manual_seed(seed)
    options = {"hidden": 6, "layers": 2, "output_hidden": 12, **options}
    model = build_model(arch, channels=channels, levels=levels, **options).to(dtype)
    with torch.no_grad():  # non-zero learned initial states, so that the border handling matters
        for name, parameter in model.named_parameters():
            if "initial" in name:
                parameter.normal_(0, 0.5)
    return model


def teacher_forced_errors(model, images, corrupt_at=None, corrupt=None, native_kernels=None):
    """Max |engine logits - full logits| per sub-pixel, in raster order (i, j, c).

    ``corrupt(engine)`` is called once, just before sub-pixel ``corrupt_at`` = (i, j, c).
    ``native_kernels``: the engine (None: the default, native where the kernels run; False: the reference).
    """
    with torch.no_grad():
        full = model(images)  # (B, C, K, H, W)
    batch, channels, height, width = images.shape
    engine = make_engine(model, native_kernels)
    engine.reset(batch, height, width)
    errors = []
    for i, j, c in itertools.product(range(height), range(width), range(channels)):
        if (i, j, c) == corrupt_at:
            corrupt(engine)
        logits = engine.logits(i, j, c)
        errors.append(float((logits - full[:, c, :, i, j]).abs().max()))
        engine.advance(i, j, c, images[:, c, i, j])
    return errors


@pytest.mark.parametrize("arch", ARCHITECTURES)
@pytest.mark.parametrize("residual,skip", CONNECTIONS)
@pytest.mark.parametrize("channels,height,width", SHAPES)
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("native_kernels", [False, None], ids=["reference", "default"])
def test_teacher_forced_logits_equal_the_full_forward_pass(arch, residual, skip, channels, height, width, dtype, native_kernels):
    """Both engines, the reference one too where the native kernels build (it is the fallback, and the float codec's)."""
    model = small_model(arch, channels, residual=residual, skip=skip, dtype=dtype)
    images = torch.randint(0, 5, (3, channels, height, width), generator=torch.Generator().manual_seed(1))
    errors = teacher_forced_errors(model, images, native_kernels=native_kernels)
    assert len(errors) == channels * height * width
    assert max(errors) <= TOLERANCE[dtype], f"largest error {max(errors):.3g} at sub-pixel #{errors.index(max(errors))}"


@pytest.mark.parametrize("native_kernels", [False, None], ids=["reference", "default"])
@pytest.mark.parametrize("arch", ARCHITECTURES)
def test_other_kernel_sizes_and_depths(arch, native_kernels):
    model = small_model(arch, 3, levels=7, layers=3, input_kernel=5, conv_kernel=5, row_kernel=5, output_layers=1)
    images = torch.randint(0, 7, (2, 3, 5, 6), generator=torch.Generator().manual_seed(2))
    assert max(teacher_forced_errors(model, images, native_kernels=native_kernels)) <= 1e-9
    model = small_model(arch, 1, levels=2, layers=1, input_kernel=3, conv_kernel=1, row_kernel=1, output_layers=0)
    images = torch.randint(0, 2, (2, 1, 4, 3), generator=torch.Generator().manual_seed(3))
    assert max(teacher_forced_errors(model, images, native_kernels=native_kernels)) <= 1e-9


@pytest.mark.parametrize("native_kernels", [False, None], ids=["reference", "default"])
def test_single_row_and_single_column_images(native_kernels):
    for arch, (height, width) in itertools.product(ARCHITECTURES, [(1, 5), (5, 1), (1, 1)]):
        model = small_model(arch, 3)
        images = torch.randint(0, 5, (2, 3, height, width), generator=torch.Generator().manual_seed(4))
        assert max(teacher_forced_errors(model, images, native_kernels=native_kernels)) <= 1e-9, (arch, height, width)


@pytest.mark.parametrize("arch", ARCHITECTURES)
@pytest.mark.parametrize("native_kernels", [None, False])
def test_a_corrupted_cache_breaks_the_comparison(arch, native_kernels):
    """The comparison has teeth: perturbing any one cache mid-image changes later logits (either engine)."""
    model = small_model(arch, 3, hidden=9)
    images = torch.randint(0, 5, (2, 3, 4, 4), generator=torch.Generator().manual_seed(5))
    assert max(teacher_forced_errors(model, images, native_kernels=native_kernels)) <= 1e-9
    probe = make_engine(model, native_kernels)
    probe.reset(2, 4, 4)
    names = list(probe.cache_tensors())
    assert "image" in names and len(names) >= 3
    where = (2, 1, 1)  # mid-row, mid-pixel: later sub-pixels remain in this row and the next
    for name in names:
        def corrupt(engine, name=name):
            engine.cache_tensors()[name].add_(0.5)

        errors = teacher_forced_errors(model, images, where, corrupt, native_kernels)
        assert max(errors) > 1e-6, f"corrupting cache {name!r} went unnoticed"
    # ... and nothing before the corruption moved.
    assert max(errors[: 4 * 2 * 3 + 1 * 3 + 1]) <= 1e-9


@pytest.mark.parametrize("arch", ARCHITECTURES)
@pytest.mark.parametrize("channels,height,width", [(1, 5, 3), (3, 3, 4)])
def test_engine_and_naive_sampling_draw_identical_images(arch, channels, height, width):
    model = small_model(arch, channels, levels=4, dtype=torch.float32)
    fast = sample(model, 3, height, width, generator=torch.Generator().manual_seed(7))
    slow = sample(model, 3, height, width, generator=torch.Generator().manual_seed(7), naive=True)
    assert fast.shape == (3, channels, height, width) and fast.dtype == torch.long
    assert torch.equal(fast, slow)
    other = sample(model, 3, height, width, generator=torch.Generator().manual_seed(8))
    assert not torch.equal(fast, other)  # the seed matters: equality above is not vacuous


def test_chunked_sampling_matches_between_paths():
    model = small_model("diagonal_bilstm", 3, levels=4, dtype=torch.float32)
    fast = sample(model, 5, 3, 3, generator=torch.Generator().manual_seed(9), batch_size=2)
    slow = sample(model, 5, 3, 3, generator=torch.Generator().manual_seed(9), batch_size=2, naive=True)
    assert torch.equal(fast, slow)


@pytest.mark.parametrize("arch", ARCHITECTURES)
def test_complete_keeps_the_kept_rows_bit_for_bit(arch):
    model = small_model(arch, 3, levels=256, dtype=torch.float32)
    images = torch.randint(0, 256, (4, 3, 5, 4), generator=torch.Generator().manual_seed(10))
    done = complete(model, images, 2, generator=torch.Generator().manual_seed(11))
    assert done.shape == images.shape
    assert torch.equal(done[:, :, :2], images[:, :, :2])
    assert not torch.equal(done[:, :, 2:], images[:, :, 2:])  # the rest was sampled
    naive = complete(model, images, 2, generator=torch.Generator().manual_seed(11), naive=True)
    assert torch.equal(done, naive)
    # Nothing kept: a completion is a sample drawn in the same order.
    assert torch.equal(complete(model, images, 0, generator=torch.Generator().manual_seed(12)),
                       sample(model, 4, 5, 4, generator=torch.Generator().manual_seed(12)))
    assert torch.equal(complete(model, images, 5), images)
    with pytest.raises(ValueError, match="keep_rows"):
        complete(model, images, 6)


@pytest.mark.parametrize("arch", ARCHITECTURES)
def test_a_tiny_temperature_gives_the_argmax(arch):
    model = small_model(arch, 3, levels=6)
    images = sample(model, 3, 3, 4, temperature=1e-6, generator=torch.Generator().manual_seed(13))
    # Greedy decoding: every sub-pixel is the most likely value given the ones before it.
    assert torch.equal(images, model(images).argmax(dim=2))
    with pytest.raises(ValueError, match="temperature"):
        sample(model, 1, 2, 2, temperature=0.0)


@pytest.mark.parametrize("arch", ARCHITECTURES)
def test_the_reference_engine_names_its_shared_caches(arch):
    engine = make_engine(small_model(arch, 1), native_kernels=False)
    engine.reset(1, 2, 2)
    caches = engine.cache_tensors()
    assert list(caches)[:2] == ["image", "input_conv.base"] and caches["input_conv.base"] is engine.input_conv.base


def test_an_engine_steps_on_one_cpu_thread_and_gives_the_others_back():
    # A step is a chain of small products: more threads cost more than they save.
    engine = make_engine(small_model("pixelcnn", 1), native_kernels=False)
    previous = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        with engine.compute_threads():
            inside = torch.get_num_threads()
        assert (inside, torch.get_num_threads()) == (1, 2)
        # On another device the host's threads feed it and are left as they are ("meta": no GPU needed).
        elsewhere = make_engine(small_model("pixelcnn", 1).to("meta"), native_kernels=False)
        with elsewhere.compute_threads():
            assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(previous)


def test_sample_uses_the_engine_unless_naive(monkeypatch):
    import pixelrnn.sampling.generation as generation

    calls = []
    original = generation.make_engine
    monkeypatch.setattr(generation, "make_engine", lambda model: calls.append(model) or original(model))
    model = small_model("row_lstm", 1, levels=2, dtype=torch.float32)
    sample(model, 2, 2, 2)
    assert len(calls) == 1
    sample(model, 2, 2, 2, naive=True)
    assert len(calls) == 1


def test_engine_interface_errors():
    model = small_model("pixelcnn", 3)
    engine = make_engine(model)
    with pytest.raises(ValueError, match="reset"):
        engine.logits(0, 0, 0)
    engine.reset(2, 1, 2)
    with pytest.raises(ValueError, match="raster order"):
        engine.logits(0, 0, 1)
    engine.logits(0, 0, 0)
    with pytest.raises(ValueError, match="values"):
        engine.advance(0, 0, 0, torch.zeros(3, dtype=torch.long))
    for j, c in itertools.product(range(2), range(3)):
        engine.advance(0, j, c, torch.zeros(2, dtype=torch.long))
    with pytest.raises(ValueError, match="complete"):
        engine.logits(1, 0, 0)
    with pytest.raises(ValueError, match="batch, height and width"):
        engine.reset(0, 2, 2)


def test_the_engine_reads_the_weights_at_reset():
    model = small_model("pixelcnn", 1)
    images = torch.randint(0, 5, (1, 1, 3, 3), generator=torch.Generator().manual_seed(14))
    engine = make_engine(model)
    with torch.no_grad():
        model.output_stack.convs[-1].bias.add_(1.0)
    assert max(teacher_forced_errors(model, images)) <= 1e-9
    engine.reset(1, 3, 3)
    assert torch.allclose(engine.logits(0, 0, 0), model(images)[:, 0, :, 0, 0], atol=1e-9)


def test_progress_bar_counts_rows(capsys):
    model = small_model("pixelcnn", 1, levels=2, dtype=torch.float32)
    sample(model, 3, 4, 2, progress=True, batch_size=2)
    assert "8/8" in capsys.readouterr().err  # 2 chunks x 4 rows


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("arch", ARCHITECTURES)
def test_cuda_engine_matches_the_full_pass_and_the_naive_path(arch):
    model = small_model(arch, 3).cuda()
    images = torch.randint(0, 5, (2, 3, 4, 3), generator=torch.Generator().manual_seed(15)).cuda()
    assert max(teacher_forced_errors(model, images)) <= 1e-9
    fast = sample(model, 2, 3, 3, generator=torch.Generator("cuda").manual_seed(16))
    slow = sample(model, 2, 3, 3, generator=torch.Generator("cuda").manual_seed(16), naive=True)
    assert fast.is_cuda and torch.equal(fast, slow)


@pytest.mark.parametrize("arch", ARCHITECTURES)
@pytest.mark.parametrize("native", [True, False])
def test_an_engine_is_freed_when_its_sampling_ends(arch, native, monkeypatch):
    """No reference cycle: the engine's buffers go with the call, not at some later full collection
    (whose thresholds count Python objects and never see their size), so chunk after chunk stays flat."""
    import gc

    from pixelrnn import native as kernels

    if not native:
        monkeypatch.setattr(kernels, "usable", lambda *args, **kwargs: False)  # the reference engines
    model = small_model(arch, 3, dtype=torch.float32)
    sample(model, 2, 3, 3, generator=torch.Generator().manual_seed(0))  # anything built once, before counting
    gc.collect()
    gc.disable()
    try:
        gc.set_debug(gc.DEBUG_SAVEALL)
        sample(model, 2, 3, 3, generator=torch.Generator().manual_seed(0))
        gc.collect()
        engines = [o for o in gc.garbage if "Engine" in type(o).__name__]
    finally:
        gc.set_debug(0)
        gc.garbage.clear()
        gc.enable()
    assert engines == []
