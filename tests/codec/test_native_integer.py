"""The native integer engines (pixelrnn.codec.integer_native_engines): bit for bit the numpy engines, or the fallback.

Their integer logits equal the batched pass (and so the numpy engines, tested against it in
test_integer_model.py) on random models, shapes, fixed-point formats and weights large enough
to reach the clamps and the tables' ends; a file coded with either engine is the same bytes and
decodes with the other; without the kernels the numpy engine is used; and a view that would
leave its array at some position is refused when the program is built.
"""

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from codec_cases import INTEGER_CASES, SMALL, image_set, integer_case, same_images, teacher_forced_logits, tiny
from pixelrnn import native
from pixelrnn.codec import FixedPoint, compress, decompress, integer_logits, integer_model
from pixelrnn.codec.fixed_point import PRECISION, integer_frequencies, tables
from pixelrnn.codec.integer_numpy_engines import ENGINES
from pixelrnn.codec.factory import make_integer_engine
from pixelrnn.codec.integer_native_engines import NATIVE_ENGINES, IntegerProgram, Operand, frequencies

pytestmark = [pytest.mark.usefixtures("one_thread"),
              pytest.mark.skipif(native.library() is None, reason="the native kernels cannot be built here")]

@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(**INTEGER_CASES, count=st.sampled_from([1, 3, 8, 17]))  # below, at and past the kernels' vectors of images
def test_native_integer_logits_equal_the_batched_pass_bit_for_bit(**case):
    model, images = integer_case(**case)
    engine = make_integer_engine(model, native_kernels=True)
    assert isinstance(engine, NATIVE_ENGINES[case["arch"]])
    assert np.array_equal(teacher_forced_logits(engine, images, model.config.levels), integer_logits(model, images).numpy())


@pytest.mark.parametrize("arch", ["pixelcnn", "row_lstm", "diagonal_bilstm"])
def test_threads_split_the_images_and_change_no_integer(arch):
    """70 images on 2 threads: groups of 40 and 30 images (whole vectors, then a remainder)."""
    case = dict(arch=arch, channels=3, levels=5, height=3, width=4, count=70, seed=5, residual=True, skip=True, gain=25.0,
                fixed=SMALL)
    model, images = integer_case(**case)
    engine = make_integer_engine(model, native_kernels=True)
    engine.threads = 2
    assert np.array_equal(teacher_forced_logits(engine, images, model.config.levels), integer_logits(model, images).numpy())
    coded = image_set(3, 5, 70, [(3, 4)], seed=5)
    network = tiny(arch, 3, 5, seed=5)
    assert compress(network, coded, threads=2) == compress(network, coded)


@settings(max_examples=60, deadline=None)
@given(levels=st.integers(2, 4096), rows=st.integers(1, 9), seed=st.integers(0, 2**31 - 1),
       spread=st.sampled_from([0, 3, 1 << 10, 1 << 20]), fixed=st.sampled_from([FixedPoint(), SMALL]))
def test_native_frequencies_are_the_numpy_frequencies(levels, rows, seed, spread, fixed):
    """Ties (spread 0), near-uniform rows and rows past the exponent table's end, as the engines give them."""
    exp_table = tables(fixed).exp
    logits = np.random.default_rng(seed).integers(-spread, spread + 1, size=(rows, 2, levels))[:, 1]  # rows not adjacent
    weights = frequencies(logits, exp_table)
    assert np.array_equal(weights, integer_frequencies(logits, exp_table))
    assert (weights.sum(axis=1) == (1 << PRECISION) - levels).all()


@pytest.mark.parametrize("arch", ["pixelcnn", "row_lstm", "diagonal_bilstm"])
def test_a_file_is_the_same_bytes_from_either_engine_and_decodes_with_the_other(arch):
    model = tiny(arch, 3, 16, seed=2)
    images = image_set(3, 16, 7, [(5, 6), (3, 4)], seed=2)
    native_file = compress(model, images, batch_size=3)
    with native.disabled():
        numpy_file = compress(model, images, batch_size=3)
        assert same_images(decompress(model, native_file), images)
    assert native_file == numpy_file
    assert same_images(decompress(model, numpy_file), images)


def test_without_the_kernels_the_numpy_engine_runs():
    model = integer_model(tiny("row_lstm", 1, 2))
    with native.disabled():
        assert type(make_integer_engine(model)) is ENGINES["row_lstm"]
        with pytest.raises(RuntimeError, match="native kernels"):
            make_integer_engine(model, native_kernels=True)
    assert type(make_integer_engine(model)) is NATIVE_ENGINES["row_lstm"]
    assert type(make_integer_engine(model, native_kernels=False)) is ENGINES["row_lstm"]


def test_a_view_that_would_leave_its_array_is_refused():
    engine = make_integer_engine(integer_model(tiny("pixelcnn", 1, 2)), native_kernels=True)
    engine.reset(2, 4, 5)
    program = IntegerProgram(engine)
    buffer = np.zeros((5, 3, 2))  # (column, unit, image)
    weight = np.ones((3, 3))
    program.product(Operand(buffer[0]), Operand(buffer[0]), weight)  # stays at column 0: fine
    with pytest.raises(ValueError, match="leave its array"):
        program.product(Operand(buffer[0], j_stride=buffer.strides[0] // 8 + 1), Operand(buffer[0]), weight)
    with pytest.raises(ValueError, match="leave its array"):
        program.product(Operand(buffer[0], i_stride=9), Operand(buffer[0]), weight)  # row 3 starts at element 27 of 30
    with pytest.raises(ValueError, match="contiguous"):
        program.product(Operand(buffer[0]), Operand(np.zeros((2, 5)).T), np.ones((3, 5)))  # images not contiguous
