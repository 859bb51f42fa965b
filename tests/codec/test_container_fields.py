"""Each check of the container's reader, at its limit: the last accepted value reads, the next is refused with its message.

Files are built by ``build_container`` and edited field by field (then resealed, so the field
check is what answers). Limits a test cannot reach with a small file are lowered for the test.
"""

import struct

import numpy as np
import pytest
from codec_cases import edit_header, reseal

from pixelrnn.codec import (
    CodedImage,
    CompressionError,
    DamagedFileError,
    build_container,
    read_container,
)
from pixelrnn.codec import container as layout
from pixelrnn.codec.container import check_name, numbered_digits

ENV = 68  # formats 2 and 3: the environment's bytes start here (after its u16 length at 66)


def image(name="a.png", height=2, width=3, mode="L", mapping="raw", label=None):
    return CodedImage(name, np.zeros((1, height, width), np.uint8), mode, mapping, label)


def build(images=None, *, environment=None, payload=bytes(8), classes=0, **fields):
    values = dict(fingerprint=bytes(32), arithmetic="float32", fixed_point=None, batch_size=4, chunk_pixels=1024, channels=1,
                  levels=4, environment={"k": "v"} if environment is None else environment, pixel_digest=bytes(32),
                  images=images or [image()], payload=payload, classes=classes)
    return build_container(**{**values, **fields})


def counts_at(data):
    """Offset of the counts (u64 payload length, 32-byte digest, u32 images, u32 runs); the runs follow them."""
    return ENV + struct.unpack_from("<H", data, ENV - 2)[0]


def head_end(data):
    """Where the header ends (its digest follows): its last bytes are the naming and, in format 3, the classes."""
    return 14 + struct.unpack_from("<I", data, 10)[0]


def patched(data, offset, fmt, value):
    return reseal(data[:offset] + struct.pack(fmt, value) + data[offset + struct.calcsize(fmt) :])


def refusal(data, kind=DamagedFileError):
    with pytest.raises(kind) as caught:
        read_container(data)
    return str(caught.value)


# --------------------------------------------------------------------- prefix and sizes
def test_prefix_and_size_checks_name_their_defect():
    assert refusal(b"") == "empty file"
    assert refusal(b"PXRNNCMQ" + bytes(80)) == "not a pixelrnn compressed file (wrong magic bytes)"
    assert refusal(layout.MAGIC[:5]) == "truncated file (5 bytes)"
    data = build(payload=b"")
    body = struct.unpack_from("<I", data, 10)[0]
    assert refusal(data[:14]) == f"truncated or corrupted file: header of {body} bytes in a 14-byte file"
    assert refusal(data[:-1]) == f"truncated or corrupted file: header of {body} bytes in a {len(data) - 1}-byte file"
    assert read_container(data).payload == b""  # exactly the header and both digests: the smallest file
    assert refusal(data[:8] + struct.pack("<H", 9) + data[10:], CompressionError) == \
        "unsupported format version 9 (this pixelrnn reads versions 1, 2, 3, 4)"


def test_header_length_limit(monkeypatch):
    data = build()
    body = struct.unpack_from("<I", data, 10)[0]
    monkeypatch.setattr(layout, "MAX_HEADER", body)
    read_container(data)
    monkeypatch.setattr(layout, "MAX_HEADER", body - 1)
    assert refusal(data) == f"truncated or corrupted file: header of {body} bytes in a {len(data)}-byte file"


def test_total_size_and_payload_words():
    data = build(payload=bytes(12))
    assert refusal(data[:-1] + data[-1:] * 2) == f"file has trailing bytes: {len(data) + 1} bytes, the header says {len(data)}"
    short = patched(data, counts_at(data), "<Q", 16)
    assert refusal(short) == f"file truncated: {len(data)} bytes, the header says {len(data) + 4}"
    assert refusal(build(payload=bytes(6))) == "corrupted header: payload length 6 is not whole 32-bit words"


# --------------------------------------------------------------------- fixed fields
@pytest.mark.parametrize("field,value,message", [
    ("batch_size", 0, "corrupted header: batch size 0 or chunk size 1024 outside the limits"),
    ("batch_size", layout.MAX_BATCH + 1, f"corrupted header: batch size {layout.MAX_BATCH + 1} or chunk size 1024 outside the limits"),
    ("chunk_pixels", 0, "corrupted header: batch size 4 or chunk size 0 outside the limits"),
    ("chunk_pixels", layout.MAX_CHUNK_PIXELS + 1, f"corrupted header: batch size 4 or chunk size {layout.MAX_CHUNK_PIXELS + 1} outside the limits"),
    ("channels", 0, "corrupted header: 0 channels, 4 levels (format version 2 codes 2..256 levels)"),
    ("levels", 1, "corrupted header: 1 channels, 1 levels (format version 2 codes 2..256 levels)"),
])
def test_fixed_fields_outside_their_limits(field, value, message):
    assert refusal(build(**{field: value})) == message


@pytest.mark.parametrize("field,value", [("batch_size", 1), ("batch_size", layout.MAX_BATCH), ("chunk_pixels", 1),
                                         ("chunk_pixels", layout.MAX_CHUNK_PIXELS), ("levels", 2), ("levels", 256),
                                         ("levels", 257), ("levels", 4096)])
def test_fixed_fields_at_their_limits(field, value):
    assert getattr(read_container(build(**{field: value})), field) == value


LEVELS = 57  # the u16 levels field: after the prefix (14), fingerprint, arithmetic, precision, batch, chunk and channels


@pytest.mark.parametrize("levels,classes,claimed,message", [
    (256, 0, 257, "corrupted header: 1 channels, 257 levels (format version 2 codes 2..256 levels)"),
    (256, 2, 257, "corrupted header: 1 channels, 257 levels (format version 3 codes 2..256 levels)"),
    (4096, 0, 4097, "corrupted header: 1 channels, 4097 levels (format version 4 codes 257..4096 levels)"),
    (4096, 2, 4097, "corrupted header: 1 channels, 4097 levels (format version 4 codes 257..4096 levels)"),
    (257, 0, 256, "corrupted header: 1 channels, 256 levels (format version 4 codes 257..4096 levels)"),
])
def test_each_version_holds_its_own_range_of_levels(levels, classes, claimed, message):
    """Up to 256 levels: versions 2 and 3 (8-bit values); 257..4096: version 4 (16-bit values), refused one past either end."""
    data = build([image(label=0 if classes else None)], levels=levels, classes=classes)
    assert read_container(data).version == (4 if levels > 256 else 3 if classes else 2)
    assert struct.unpack_from("<H", data, LEVELS)[0] == levels
    assert refusal(patched(data, LEVELS, "<H", claimed)) == message


def test_precision_and_environment():
    data = build(environment={"torch": "2.1", "flags": "a=b"})
    container = read_container(data)
    assert container.precision == layout.PRECISION
    assert container.environment == {"torch": "2.1", "flags": "a=b"}  # split at the first '='
    assert refusal(patched(data, 47, "<B", 23), CompressionError) == "unsupported coder precision 23 bits (this pixelrnn codes with 24)"
    assert refusal(patched(data, ENV, "<B", 0xFF)) == "corrupted header: environment is not UTF-8"
    past = head_end(data) - ENV + 1  # one byte more than the header holds after the length
    assert refusal(patched(data, ENV - 2, "<H", past)) == "corrupted header: a field runs past the header's end"


def test_environment_length_limit(monkeypatch):
    data = build(environment={"k": "v" * 18})  # 20 bytes
    monkeypatch.setattr(layout, "MAX_ENVIRONMENT", 20)
    read_container(data)
    monkeypatch.setattr(layout, "MAX_ENVIRONMENT", 19)
    assert refusal(data) == "corrupted header: environment of 20 bytes"


# --------------------------------------------------------------------- counts and runs
def test_image_and_run_counts():
    two = build([image("0.png"), image("1.png", 3, 3)])  # two runs of one image, numbered names (2 bytes)
    at = counts_at(two) + 40  # u32 images, u32 runs
    left = head_end(two) - (at + 8)
    assert refusal(patched(two, at, "<I", 0)) == f"corrupted header: 0 images in 2 runs cannot be described by {left} header bytes"
    assert refusal(patched(two, at + 4, "<I", 0)) == f"corrupted header: 2 images in 0 runs cannot be described by {left} header bytes"
    assert refusal(patched(two, at + 4, "<I", 3)) == f"corrupted header: 2 images in 3 runs cannot be described by {left} header bytes"
    assert refusal(patched(patched(two, at, "<I", 3), at + 4, "<I", 3)) == \
        f"corrupted header: 3 images in 3 runs cannot be described by {left} header bytes"
    second_run = at + 8 + 10
    assert refusal(patched(two, second_run, "<I", 2)) == "corrupted header: a run of 2 images where 1 remain"
    assert refusal(patched(two, second_run, "<I", 0)) == "corrupted header: a run of 0 images where 1 remain"
    assert refusal(patched(two, second_run + 8, "<B", 0)) == "corrupted header: mode code 0, mapping code 0"
    assert refusal(patched(two, second_run + 9, "<B", 7)) == "corrupted header: mode code 2, mapping code 7"
    assert refusal(patched(patched(two, at, "<I", 3), at + 4, "<I", 2)) == "corrupted header: the runs describe 2 images, not 3"


def test_a_run_count_that_just_fits_the_header_is_read_on():
    # one run (10 bytes), naming (1), one listed name (1 + 8): 20 bytes after the counts
    data = build([image("abcd.png")])
    at = counts_at(data) + 40
    message = refusal(patched(patched(data, at, "<I", 2), at + 4, "<I", 2))
    assert "cannot be described" not in message  # 2 runs of 10 bytes fit 20 bytes: the reader goes on to read them


def test_image_count_limit(monkeypatch):
    data = build([image("a.png"), image("b.png")])
    monkeypatch.setattr(layout, "MAX_IMAGES", 2)
    assert len(read_container(data).names) == 2
    monkeypatch.setattr(layout, "MAX_IMAGES", 1)
    assert refusal(data).startswith("corrupted header: 2 images in 1 runs cannot be described")


@pytest.mark.parametrize("height,width,accepted", [(4, 3, True), (1, 3, True), (3, 1, True), (3, 4, True), (5, 1, False), (1, 5, False),
                                                   (4, 4, False)])
def test_image_size_limits(monkeypatch, height, width, accepted):
    data = build([image(height=height, width=width)])
    monkeypatch.setattr(layout, "MAX_SIDE", 4)
    monkeypatch.setattr(layout, "MAX_IMAGE_PIXELS", 12)
    if accepted:
        assert read_container(data).shapes == ((height, width),)
    else:
        assert refusal(data) == f"corrupted header: image size {width}x{height} outside the limits"


@pytest.mark.parametrize("offset", [4, 6])  # height, width of the first run
def test_a_zero_side_is_refused(offset):
    data = build()
    assert refusal(patched(data, counts_at(data) + 48 + offset, "<H", 0)).endswith("outside the limits")


# --------------------------------------------------------------------- names and classes
def test_numbered_names():
    assert numbered_digits([]) is None
    assert numbered_digits(["0.png", "1.png"]) == 1
    assert numbered_digits([f"{k:020d}.png" for k in range(2)]) == 20
    assert numbered_digits([f"{k:021d}.png" for k in range(2)]) is None
    assert numbered_digits(["1.png"]) is None and numbered_digits(["0.png", "2.png"]) is None
    for digits in (1, 20):
        names = [f"{k:0{digits}d}.png" for k in range(2)]
        data = build([image(name) for name in names])
        assert data[head_end(data) - 2 : head_end(data)] == bytes([layout.NAMES_NUMBERED, digits])  # the header's last two bytes
        assert read_container(data).names == tuple(names)
    data = build([image("0.png")])
    end = head_end(data)
    assert refusal(patched(data, end - 1, "<B", 0)) == "corrupted header: names of 0 digits"
    assert refusal(patched(data, end - 1, "<B", 21)) == "corrupted header: names of 21 digits"
    assert refusal(patched(data, end - 2, "<B", 2)) == "corrupted header: unknown naming code 2"


def test_listed_names():
    data = build([image("ab.png")])
    end = head_end(data)
    assert read_container(data).names == ("ab.png",)
    assert refusal(patched(data, end - 1, "<B", 0xFF)) == "corrupted header: an image name is not UTF-8"
    assert refusal(patched(data, end - 5, "<B", ord("/"))).startswith("corrupted header: unsafe or invalid image name 'a/.png'")
    assert refusal(build([image("a.png"), image("A.png")])) == "corrupted header: two images have the same name"
    extra = edit_header(data, end, end, b"\0")
    assert refusal(extra) == "corrupted header: 1 unexplained bytes after the image list"


def test_listed_names_are_bounded_by_the_bytes_left():
    data = build([image("a.png"), image("b.png")])
    names = head_end(data) - 12  # two names of 1 + 5 bytes end the header
    assert refusal(edit_header(data, names, names + 12, b"\0")) == "corrupted header: 2 names cannot fit in 1 bytes"
    # 4 bytes may hold two names (at least a length byte each): the reader goes on to read them
    assert refusal(edit_header(data, names, names + 12, b"\0" * 4)).startswith("corrupted header: unsafe or invalid image name ''")
    assert refusal(edit_header(data, names, names + 12, b"\0" * 5)).startswith("corrupted header: unsafe or invalid image name ''")


def test_class_labels():
    data = build([image("a.png", label=2), image("b.png", label=0)], classes=3)
    container = read_container(data)
    assert (container.version, container.classes, container.labels) == (3, 3, (2, 0))
    assert refusal(patched(data, head_end(data) - 2, "<H", 3)) == "corrupted header: class 3 of a model with 3 classes"
    assert read_container(build([image("a.png")])).labels is None
    end = head_end(data)  # the classes end the header: u16 K, then a u16 per image
    assert refusal(edit_header(data, end - 6, end, b"\0" * 5)) == "corrupted header: 2 classes cannot fit in 5 bytes"
    assert refusal(edit_header(data, end - 6, end, struct.pack("<3H", 0, 0, 0))) == \
        "corrupted header: a class-conditional file of a model with 0 classes"


def test_version_4_always_holds_the_class_count_and_alone_the_16_bit_mode():
    plain = build([image("a.png", mode="I;16")], levels=512)
    end = head_end(plain)
    assert plain[end - 2 : end] == b"\0\0"  # K = 0: an unconditional model, no classes follow
    container = read_container(plain)
    assert (container.version, container.classes, container.labels, container.modes) == (4, 0, None, ("I;16",))
    assert refusal(edit_header(plain, end - 2, end, b"")) == "corrupted header: a field runs past the header's end"
    assert refusal(patched(plain, end - 2, "<H", 1)) == "corrupted header: 1 classes cannot fit in 2 bytes"
    assert refusal(edit_header(plain, end, end, b"\0")) == "corrupted header: 1 unexplained bytes after the image list"
    labelled = build([image("a.png", mode="I;16", label=2), image("b.png", label=0)], levels=4096, classes=3)
    container = read_container(labelled)
    assert (container.version, container.classes, container.labels, container.modes) == (4, 3, (2, 0), ("I;16", "L"))
    assert refusal(patched(labelled, head_end(labelled) - 4, "<H", 3)) == "corrupted header: class 3 of a model with 3 classes"
    mode = counts_at(plain) + 48 + 8  # the first run's mode byte
    assert struct.unpack_from("<B", plain, mode)[0] == 4
    narrow = build([image("a.png", mode="L")], levels=256)
    assert refusal(patched(narrow, mode, "<B", 4)) == "corrupted header: mode code 4, mapping code 0"  # 16-bit: version 4 only
    assert refusal(patched(plain, mode, "<B", 5)) == "corrupted header: mode code 5, mapping code 0"


def test_check_name_limits():
    for name in ("a" * 251 + ".png", "X.png", " .png", "\x80.png", "A.PNG"):
        assert check_name(name) == name
    for name in ("a" * 252 + ".png", "", ".", "..", "x/a.png", "x\\a.png", "\x1f.png", "\x7f.png", "a.txt", "a.png\n"):
        with pytest.raises(CompressionError, match="unsafe or invalid image name"):
            check_name(name)
    long = "/" * 100 + ".png"
    with pytest.raises(CompressionError) as caught:
        check_name(long)
    assert str(caught.value) == f"unsafe or invalid image name {long[:80]!r} (a plain file name ending in .png is required)"
    undecodable = "\udcff" * 90
    with pytest.raises(CompressionError) as caught:
        check_name(undecodable + ".png")
    assert str(caught.value) == f"image name {undecodable[:80]!r} is not valid UTF-8; rename the file"
