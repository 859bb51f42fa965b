"""The compressed file (pixelrnn.codec.container and the coder's checks): layout, versions, errors by cause, fuzzing.

Version 2 byte by byte for both arithmetics; version 1 files (float) still decode; a wrong model,
a damaged file and a float file decoded on another platform each raise their own error, one line;
every damaged file, however resealed, ends in an error or in the original pixels (hypothesis).
"""

import hashlib
import re
import struct
import warnings

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings, strategies as st

from codec_cases import edit_header, image_set, reseal, same_images, tiny
from pixelrnn.codec import (CodedImage, CompressionError, DamagedFileError, EnvironmentWarning, FixedPoint, PlatformError,
                            WrongModelError, build_container, compress, decompress, integer_model, model_fingerprint,
                            read_container)
from pixelrnn.codec.container import CHUNK_PIXELS, MAGIC, VERSION
from hostile import edit_bytes as mutate  # byte edits shared with the hostile-file tests

pytest.importorskip("constriction")

pytestmark = pytest.mark.usefixtures("one_thread")

FIXED_END = 66  # version 2: the fixed-point parameters are bytes 59..66; version 1 has none


def to_version_1(data):
    """A float file of version 2 rewritten as version 1 wrote it: no fixed-point bytes, the arithmetic byte a dtype."""
    return edit_header(data, 59, FIXED_END, b"", version=1)


def rebuilt(container, images, **changes):
    fields = dict(fingerprint=container.fingerprint, arithmetic=container.arithmetic, fixed_point=container.fixed_point,
                  batch_size=container.batch_size, chunk_pixels=container.chunk_pixels, channels=container.channels,
                  levels=container.levels, environment=container.environment, pixel_digest=container.pixel_digest,
                  images=images, payload=container.payload)
    return build_container(**{**fields, **changes})


# --------------------------------------------------------------------- layout and versions
@pytest.mark.parametrize("arithmetic", ["integer", "float32"])
def test_container_layout(arithmetic):
    model = tiny("pixelcnn", 1, 2)
    images = image_set(1, 2, 5, [(3, 4)], names="listed")
    data = compress(model, images, batch_size=4, arithmetic=arithmetic)
    assert data[:8] == MAGIC
    version, body_length = struct.unpack_from("<HI", data, 8)
    assert version == VERSION == 2
    head_end = 14 + body_length
    assert data[head_end : head_end + 32] == hashlib.sha256(data[:head_end]).digest()
    fingerprint = integer_model(model).fingerprint if arithmetic == "integer" else model_fingerprint(model)
    assert data[14:46] == fingerprint
    code, precision, batch, chunk_pixels, channels, levels = struct.unpack_from("<BBIIBH", data, 46)
    assert (code, precision, batch, channels, levels) == ({"float32": 1, "integer": 3}[arithmetic], 24, 4, 1, 2)
    assert chunk_pixels == CHUNK_PIXELS
    assert data[59:FIXED_END] == (FixedPoint().to_bytes() if arithmetic == "integer" else bytes(7))
    (env_length,) = struct.unpack_from("<H", data, FIXED_END)
    env = data[FIXED_END + 2 : FIXED_END + 2 + env_length].decode()
    assert f"torch={torch.__version__}" in env and "device=cpu" in env
    counts = FIXED_END + 2 + env_length
    payload_length, pixels, count, runs = struct.unpack_from("<Q32sII", data, counts)
    assert pixels == hashlib.sha256(b"".join(image.values.tobytes() for image in images)).digest()
    assert (count, runs) == (5, 1)
    assert struct.unpack_from("<IHHBB", data, counts + 48) == (5, 3, 4, 2, 0)
    names = data[counts + 58 : head_end]
    assert names[0] == 1 and names[1:] == b"".join(bytes([len(i.name)]) + i.name.encode() for i in images)
    assert len(data) == head_end + 32 + payload_length + 32
    assert data[-32:] == hashlib.sha256(data[head_end + 32 : -32]).digest()
    container = read_container(data)
    assert container.names == tuple(i.name for i in images) and container.shapes == ((3, 4),) * 5
    assert container.fixed_point == (FixedPoint() if arithmetic == "integer" else None)


def test_version_1_files_still_decode():
    model = tiny("row_lstm", 3, 4, seed=1)
    images = image_set(3, 4, 9, [(2, 3)])
    for arithmetic, dtype in (("float32", torch.float32), ("float64", torch.float64)):
        old = to_version_1(compress(model, images, batch_size=4, arithmetic=arithmetic))
        container = read_container(old)
        assert (container.version, container.arithmetic, container.dtype, container.fixed_point) == (1, arithmetic, dtype, None)
        assert same_images(decompress(model, old), images)
    integer = compress(model, images)
    with pytest.raises(DamagedFileError, match="unknown arithmetic code 3"):  # version 1 knew two dtypes only
        read_container(to_version_1(integer))
    with pytest.raises(CompressionError, match="version 5") as caught:  # 3 is a class-conditional model's, 4 wide values'
        read_container(integer[:8] + struct.pack("<H", 5) + integer[10:])
    assert not isinstance(caught.value, DamagedFileError)


def test_fixed_point_parameters_are_checked_before_any_table_is_built():
    model = tiny("pixelcnn", 1, 2)
    data = compress(model, image_set(1, 2, 3, [(2, 2)]))
    for parameters in (bytes(7), bytes([16, 10, 30, 12, 30, 24, 8]), bytes([16, 10, 14, 64, 30, 24, 8]), bytes([16, 10, 12, 12, 30, 8, 24])):
        with pytest.raises(DamagedFileError, match="corrupted header: .*(outside|exceed|must not)"):
            read_container(edit_header(data, 59, FIXED_END, parameters))
    # Valid parameters of another coding model: a clean "another model" error, not a crash.
    other = FixedPoint(activation_bits=14)
    with pytest.raises(WrongModelError, match="another model"):
        decompress(model, edit_header(data, 59, FIXED_END, other.to_bytes()))


# --------------------------------------------------------------------- the model's identity
def test_fingerprint_follows_weights_and_config():
    model = tiny("pixelcnn", 1, 2)
    same = tiny("pixelcnn", 1, 2)
    assert model_fingerprint(model) == model_fingerprint(same)
    assert integer_model(model).fingerprint == integer_model(same).fingerprint
    with torch.no_grad():
        same.output_stack.convs[-1].bias[0] += 1e-3
    assert model_fingerprint(model) != model_fingerprint(same)
    assert integer_model(model).fingerprint != integer_model(same).fingerprint
    assert model_fingerprint(model) != model_fingerprint(tiny("pixelcnn", 1, 2, residual=False))
    assert integer_model(model).fingerprint != integer_model(model, FixedPoint(table_bits=11)).fingerprint


def test_the_integer_fingerprint_is_the_coding_model_not_the_float_bytes():
    model = tiny("diagonal_bilstm", 1, 2, seed=3)
    images = image_set(1, 2, 6, [(3, 3)])
    data = compress(model, images)
    # A float64 copy of the same checkpoint (a process whose default dtype is float64 loads it so) is the same coding model.
    wide = tiny("diagonal_bilstm", 1, 2, seed=3).double()
    assert model_fingerprint(wide) != model_fingerprint(model)
    assert integer_model(wide).fingerprint == integer_model(model).fingerprint
    assert same_images(decompress(wide, data), images)


def test_another_model_is_refused_before_decoding():
    images = image_set(1, 2, 4, [(3, 3)])
    for arithmetic in ("integer", "float32"):
        data = compress(tiny("pixelcnn", 1, 2, seed=0), images, arithmetic=arithmetic)
        for other in (tiny("pixelcnn", 1, 2, seed=1), tiny("row_lstm", 1, 2)):
            with pytest.raises(WrongModelError, match="another model"):
                decompress(other, data)
        with pytest.raises(WrongModelError, match="1 channels of 2 levels; the model has 1 and 4"):
            decompress(tiny("pixelcnn", 1, 4), data)


# --------------------------------------------------------------------- platforms and causes
def test_only_float_files_depend_on_the_environment():
    model = tiny("pixelcnn", 1, 2)
    images = image_set(1, 2, 6, [(3, 3)])
    elsewhere = {"torch": "1.0.0", "isa": "AVX512", "machine": "riscv64"}
    for arithmetic in ("float32", "integer"):
        container = read_container(compress(model, images, arithmetic=arithmetic))
        other = rebuilt(container, images, environment={**container.environment, **elsewhere})
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            assert same_images(decompress(model, other), images)
        warned = [w for w in caught if issubclass(w.category, EnvironmentWarning)]
        assert bool(warned) == (arithmetic == "float32")
        if warned:
            assert "torch 1.0.0" in str(warned[0].message)


def flipped_payload(data, offset=8):
    container = read_container(data)
    position = container.header_bytes - 32 + offset
    return reseal(data[:position] + bytes([data[position] ^ 0x5A]) + data[position + 1 :])


def flipped(data, position, value=0x5A):
    """``data`` with the byte at ``position`` changed, checksums left as they were."""
    return data[:position] + bytes([data[position] ^ value]) + data[position + 1 :]


HEADER_SHA = "corrupted header (sha256 mismatch)"
PAYLOAD_SHA = "corrupted payload (sha256 mismatch)"


@pytest.mark.parametrize("arithmetic", ["integer", "float32"])
def test_a_byte_changed_anywhere_fails_its_checksum(arithmetic):
    """No reseal: each byte of the header body and of the payload, and each stored digest, is its checksum's to catch.

    The positions are chosen so that, without the checksum, the file would parse: the fingerprint,
    the batch size, the environment, the pixel digest, a name, the fixed-point bytes and the payload.
    """
    model = tiny("pixelcnn", 1, 4, seed=7)
    images = image_set(1, 4, 3, [(3, 4)], names="listed")
    data = compress(model, images, batch_size=4, arithmetic=arithmetic)
    container = read_container(data)
    head_end = container.header_bytes - 64  # header_bytes: everything but the payload, both digests included
    payload_end = len(data) - 32
    counts = FIXED_END + 2 + struct.unpack_from("<H", data, FIXED_END)[0]
    header_positions = {"fingerprint": 14, "batch size": 48 + 1, "fixed point": 60, "environment": FIXED_END + 2,
                        "pixel digest": counts + 8, "name": head_end - 5, "header digest": head_end + 5}
    for where, position in header_positions.items():
        for value in (0x01, 0x80):
            damaged = flipped(data, position, value)
            with pytest.raises(DamagedFileError) as caught:
                read_container(damaged)
            assert str(caught.value) == HEADER_SHA, (where, value, str(caught.value))
            with pytest.raises(DamagedFileError, match=re.escape(HEADER_SHA)):
                decompress(model, damaged)
    for position in (head_end + 32, head_end + 33, (head_end + 32 + payload_end) // 2, payload_end - 1, payload_end, len(data) - 1):
        damaged = flipped(data, position, 0x01)
        with pytest.raises(DamagedFileError) as caught:
            read_container(damaged)
        assert str(caught.value) == PAYLOAD_SHA, (position, str(caught.value))
        with pytest.raises(DamagedFileError, match=re.escape(PAYLOAD_SHA)):
            decompress(model, damaged)


def test_errors_name_their_cause():
    model = tiny("row_lstm", 1, 4, seed=2)
    images = image_set(1, 4, 12, [(4, 4)], seed=1)
    integer = compress(model, images)
    with pytest.raises(DamagedFileError, match="the file was altered"):
        decompress(model, flipped_payload(integer))
    with pytest.raises(DamagedFileError, match="truncated"):
        decompress(model, integer[:-5])
    float_file = compress(model, images, arithmetic="float32")
    with pytest.raises(DamagedFileError, match="the file was altered"):
        decompress(model, flipped_payload(float_file))
    # The same damage in a float file from another platform: the probabilities may be what differs.
    container = read_container(flipped_payload(float_file))
    elsewhere = rebuilt(container, images, environment={**container.environment, "isa": "SSE4_2"})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", EnvironmentWarning)
        with pytest.raises(PlatformError, match="float32 arithmetic .* compress with the integer coding model"):
            decompress(model, elsewhere)


# --------------------------------------------------------------------- limits
def test_file_limits_and_bad_inputs():
    model = tiny("pixelcnn", 1, 2)
    images = image_set(1, 2, 4, [(5, 5)])
    data = compress(model, images)
    with pytest.raises(CompressionError, match="more than the limit"):
        decompress(model, data, max_subpixels=99)
    for bad in (b"", b"PXRN", b"hello world, not a file" * 4, data[:20], data[:-1], data + b"\0"):
        with pytest.raises(DamagedFileError):
            decompress(model, bad)
    value_out_of_range = [CodedImage("a.png", np.full((1, 2, 2), 2, np.uint8), "L", "raw")]
    with pytest.raises(CompressionError, match="outside"):
        compress(model, value_out_of_range)
    duplicate = [CodedImage("a.png", np.zeros((1, 2, 2), np.uint8), "L", "raw")] * 2
    with pytest.raises(CompressionError, match="both"):
        compress(model, duplicate)
    with pytest.raises(CompressionError, match="unsafe"):
        compress(model, [CodedImage("../a.png", np.zeros((1, 2, 2), np.uint8), "L", "raw")])
    with pytest.raises(CompressionError, match="nothing"):
        compress(model, [])
    with pytest.raises(CompressionError, match="arithmetic must be one of integer, float32, float64"):
        compress(model, images, arithmetic="float16")


def test_unsafe_names_in_a_file_are_refused():
    model = tiny("pixelcnn", 1, 2)
    values = np.zeros((1, 2, 2), np.uint8)
    container = read_container(compress(model, [CodedImage("a.png", values, "L", "raw")]))
    crafted = rebuilt(container, [CodedImage("x/a.png", values, "L", "raw")])
    with pytest.raises(DamagedFileError, match="unsafe"):
        decompress(model, crafted)


# --------------------------------------------------------------------- fuzzing
FUZZ_MODEL = tiny("pixelcnn", 1, 4, seed=5)
FUZZ_IMAGES = image_set(1, 4, 7, [(3, 3), (2, 4)], seed=9, names="listed")
FUZZ_FILE = compress(FUZZ_MODEL, FUZZ_IMAGES, batch_size=3)
FUZZ_LIMIT = 4 * sum(image.values.size for image in FUZZ_IMAGES)


EDITS = st.lists(st.tuples(st.sampled_from(["flip", "insert", "delete", "truncate"]), st.integers(0, 1 << 16), st.integers(0, 255)),
                 min_size=1, max_size=4)


def only_clean_outcomes(data, resealed):
    """A damaged file decodes to the original pixels (checksum verified) or raises CompressionError only.

    Without a reseal every byte is under a sha256, so a decode that succeeds read the very file
    that was written: the same names, modes and mappings too. A resealed edit may change a name,
    a mode or a mapping undetectably (the header describes them; nothing else does), never a pixel.
    """
    try:
        decoded = decompress(FUZZ_MODEL, data, max_subpixels=FUZZ_LIMIT)
    except CompressionError as error:
        assert str(error) and "\n" not in str(error)
        assert not isinstance(error, PlatformError)  # an integer file has no platform to blame
        return
    assert [d.values.tobytes() for d in decoded] == [o.values.tobytes() for o in FUZZ_IMAGES]
    if not resealed:
        assert data == FUZZ_FILE
        assert same_images(decoded, FUZZ_IMAGES)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(EDITS)
def test_fuzz_damaged_files(edits):
    only_clean_outcomes(mutate(FUZZ_FILE, edits), resealed=False)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(EDITS)
def test_fuzz_damaged_files_with_valid_checksums(edits):
    # Resealed: the edits reach the field checks, the range decoder and the pixel checksum.
    only_clean_outcomes(reseal(mutate(FUZZ_FILE, edits)), resealed=True)


@settings(max_examples=60, deadline=None)
@given(st.integers(0, len(FUZZ_FILE) - 1), st.integers(1, 255))
def test_fuzz_payload_bytes_with_valid_checksums(position, value):
    payload_start = read_container(FUZZ_FILE).header_bytes - 32
    position = payload_start + position % (len(FUZZ_FILE) - 32 - payload_start)
    only_clean_outcomes(reseal(mutate(FUZZ_FILE, [("flip", position, value)])), resealed=True)
