"""Hostile variants of valid files, one family per reader, for tests/test_hostile_files.py and benchmarks/hostile_files.py.

A reader is a valid file set written into a folder, a hypothesis strategy of damages to it, a
load, and a check of a successful load. :func:`run_case` writes, damages and loads; its outcome
is ``"loaded"`` (and the check passed) or the name of the library's error (one line, and never
"not enough memory": that would mean a file made the reader allocate past the bound). Anything
else escapes as the failure it is.

Run as a script, it is the command-line driver of the memory-bound tests: it lowers its own
address-space limit, then runs ``pixelrnn.cli.main`` on each argument list and prints the exit
statuses and error lines as JSON (``--no-checksums`` drops the canonical files' checksums, so
that damaged files under canonical names reach the parsers instead of the checksum check).
"""

from __future__ import annotations

import contextlib
import functools
import io
import json
import resource
import struct
import sys
import tarfile
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
from hypothesis import strategies as st

BOMB_BYTES = 72 << 20  # past the ratio-free 64 MiB, compressed about 1000 times: far beyond the ratio limit


# --------------------------------------------------------------------- byte and container surgery
def edit_bytes(data: bytes, edits) -> bytes:
    """Apply (kind, position, value) edits: flip bits, insert or delete a byte, truncate."""
    data = bytearray(data)
    for kind, position, value in edits:
        position %= len(data) + 1
        if kind == "flip" and data:
            data[min(position, len(data) - 1)] ^= value or 1
        elif kind == "insert":
            data[position:position] = bytes([value])
        elif kind == "delete" and data:
            del data[min(position, len(data) - 1)]
        elif kind == "truncate":
            del data[position:]
    return bytes(data)


BYTE_EDITS = st.tuples(st.just("bytes"), st.lists(st.tuples(st.sampled_from(["flip", "insert", "delete", "truncate"]),
                                                            st.integers(0, 1 << 20), st.integers(0, 255)), min_size=1, max_size=4))
HUGE = st.one_of(st.sampled_from([0, 1, 2**31 - 1, 2**32 - 1, 10**8, 10**12, 2**63 - 1]), st.integers(0, 2**40))


def zip_entries(data: bytes) -> list[int]:
    """Offsets of the central directory entries, read from the end-of-directory record."""
    end = data.rfind(b"PK\x05\x06")
    count, _, start = struct.unpack_from("<HII", data, end + 10)
    offsets, position = [], start
    for _ in range(count):
        offsets.append(position)
        name, extra, comment = struct.unpack_from("<HHH", data, position + 28)
        position += 46 + name + extra + comment
    return offsets


def zip_patch(data: bytes, index: int, field: str, value: int) -> bytes:
    """Set a field of one central directory entry (what zipfile believes about the member)."""
    offsets = zip_entries(data)
    if not offsets:
        return data
    where = offsets[index % len(offsets)]
    layout = {"flags": (8, "<H"), "method": (10, "<H"), "compressed": (20, "<I"), "size": (24, "<I"), "offset": (42, "<I")}
    shift, form = layout[field]
    data = bytearray(data)
    struct.pack_into(form, data, where + shift, value % (1 << (8 * struct.calcsize(form))))
    return bytes(data)


def zip_overlap(data: bytes) -> bytes:
    """A second central entry pointing at the first member's data: one stream, two members."""
    offsets = zip_entries(data)
    end = data.rfind(b"PK\x05\x06")
    first = offsets[0]
    length = 46 + sum(struct.unpack_from("<HHH", data, first + 28))
    twin = bytearray(data[first:first + length])
    twin[46] = ord("z") if twin[46] != ord("z") else ord("y")  # another name of the same length
    count, size, start = struct.unpack_from("<HII", data, end + 10)
    record = bytearray(data[end:])
    struct.pack_into("<HHII", record, 8, count + 1, count + 1, size + length, start)
    return data[:end] + bytes(twin) + bytes(record)


def zip_of(members: dict[str, bytes], method: int = zipfile.ZIP_STORED) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=method) as archive:
        for name, payload in members.items():
            archive.writestr(name, payload)
    return buffer.getvalue()


def npy_bytes(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.lib.format.write_array(buffer, array, allow_pickle=True)
    return buffer.getvalue()


def npy_with_header(payload: bytes, shape, descr: str) -> bytes:
    """A .npy whose header says ``shape`` of ``descr`` over the given payload bytes."""
    buffer = io.BytesIO()
    np.lib.format.write_array_header_1_0(buffer, {"descr": descr, "fortran_order": False, "shape": tuple(shape)})
    return buffer.getvalue() + payload


def zero_stream(size: int, wbits: int = 15, prefix: bytes = b"", suffix: bytes = b"") -> bytes:
    """``prefix``, ``size`` zero bytes and ``suffix``, deflated at the highest level, fed a mebibyte at a time."""
    compressor, parts, block = zlib.compressobj(9, zlib.DEFLATED, wbits), [], bytes(1 << 20)
    parts.append(compressor.compress(prefix))
    for start in range(0, size, len(block)):
        parts.append(compressor.compress(block[: size - start]))
    return b"".join(parts) + compressor.compress(suffix) + compressor.flush()


@functools.lru_cache(maxsize=None)
def deflated_zeros(wrapper: str, name: str = "bomb.npy", size: int = BOMB_BYTES) -> bytes:
    """``size`` zero bytes compressed: a zip member ``name`` (an npy), a gzip stream or a tar.gz entry ``name``."""
    if wrapper == "gzip":
        return zero_stream(size, wbits=31)
    if wrapper == "tar":
        info = tarfile.TarInfo(name)
        info.size = size
        return zero_stream(size, 31, info.tobuf(), bytes(-size % 512 + 1024))  # data padded to blocks, two end blocks
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as archive, archive.open(name, "w") as member:
        member.write(npy_with_header(b"", (size,), "|u1"))
        for start in range(0, size, 1 << 20):
            member.write(bytes(min(1 << 20, size - start)))
    return buffer.getvalue()


def png_with_size(data: bytes, width: int, height: int) -> bytes:
    """A PNG whose header (IHDR, CRC fixed) declares another size over the same pixel data."""
    if data[12:16] != b"IHDR":
        return data
    chunk = bytearray(data[12:29])
    chunk[4:12] = struct.pack(">II", width % 2**32, height % 2**32)
    return data[:12] + bytes(chunk) + struct.pack(">I", zlib.crc32(chunk)) + data[33:]


def bomb_png(width: int = 60000, height: int = 60000) -> bytes:
    """A real 1-bit PNG of width x height black pixels (437 KB at 60000 x 60000), built in a fraction of a second.

    After a full flush, deflate's output for the same input block repeats exactly; the zlib
    trailer of all-zero data is (n mod 65521) << 16 | 1 (Adler-32 with every byte 0).
    """
    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    row, rows = bytes(1 + (width + 7) // 8), 1000  # a filter byte, then the packed bits
    assert height % rows == 0
    compressor = zlib.compressobj(9)
    first = compressor.compress(row * rows) + compressor.flush(zlib.Z_FULL_FLUSH)
    repeated = compressor.compress(row * rows) + compressor.flush(zlib.Z_FULL_FLUSH)
    total = len(row) * height
    stream = first + repeated * (height // rows - 1) + b"\x03\x00" + struct.pack(">I", (total % 65521) << 16 | 1)
    header = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", stream) + chunk(b"IEND", b"")


def tar_with_size(data: bytes, index: int, size: int) -> bytes:
    """An uncompressed tar whose entry ``index`` declares ``size`` bytes (header checksum fixed)."""
    data, offset = bytearray(data), 0
    for _ in range(index):
        declared = int(data[offset + 124:offset + 136].strip(b"\0 ") or b"0", 8)
        offset += 512 + (declared + 511) // 512 * 512
        if offset + 512 > len(data):
            return bytes(data)
    field = b"%011o\0" % size if size < 8**11 else b"\x80" + size.to_bytes(11, "big")
    data[offset + 124:offset + 136] = field
    data[offset + 148:offset + 156] = b" " * 8
    data[offset + 148:offset + 156] = b"%06o\0 " % sum(data[offset:offset + 512])
    return bytes(data)


class Call:
    """Pickles as a call of ``function(*args)``: how a hostile pickle asks for an allocation."""

    def __init__(self, function, *args):
        self.function, self.args = function, args

    def __reduce__(self):
        return self.function, self.args


# --------------------------------------------------------------------- outcomes and bounds
@dataclass
class Reader:
    name: str
    damages: st.SearchStrategy                # hypothesis strategy of damages
    write: Callable[[Path, tuple], None]      # the valid file set, damaged, into a folder
    load: Callable[[Path], object]
    check: Callable[[object, Path, tuple], None]  # a successful load is correct


def run_case(reader: Reader, damage, folder: Path) -> str:
    """Write, damage and load; "loaded" (checked) or the library error's type name (one line)."""
    from pixelrnn.errors import PixelRNNError

    reader.write(folder, damage)
    try:
        result = reader.load(folder)
    except PixelRNNError as error:
        message = str(error)
        assert message and "\n" not in message, f"not one line: {message!r}"
        assert "not enough memory" not in message, f"a file made the reader allocate past the bound: {message}"
        return type(error).__name__
    reader.check(result, folder, damage)
    return "loaded"


def address_space() -> int:
    """This process's virtual memory now, in bytes (Linux; elsewhere the test that asks is skipped)."""
    import pytest

    if not Path("/proc/self/status").is_file():
        pytest.skip("bounding the address space needs Linux's /proc")
    with open("/proc/self/status") as status:
        line = next(line for line in status if line.startswith("VmSize:"))
    return int(line.split()[1]) * 1024


@contextlib.contextmanager
def address_space_bound(headroom: int):
    """Run the block with at most ``headroom`` more bytes of address space; the limit restored after."""
    soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    bound = address_space() + headroom
    resource.setrlimit(resource.RLIMIT_AS, (bound if hard == resource.RLIM_INFINITY else min(bound, hard), hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_AS, (soft, hard))


def cli_driver(argv: list[str]) -> None:
    """``hostile.py LIMIT_BYTES [--no-checksums] CASES_JSON``: each case's exit status and stderr, as JSON."""
    limit, rest = int(argv[0]), argv[1:]
    resource.setrlimit(resource.RLIMIT_AS, (limit, resource.getrlimit(resource.RLIMIT_AS)[1]))
    from pixelrnn.cli import main  # imported under the limit, as a command would be
    from pixelrnn.data import fetch

    if rest[0] == "--no-checksums":
        fetch.FILES.clear()
        rest = rest[1:]
    results = []
    for case in json.loads(rest[0]):
        stderr = io.StringIO()
        with contextlib.redirect_stderr(stderr), contextlib.redirect_stdout(io.StringIO()):
            status = main(case)
        results.append({"argv": case, "status": status, "stderr": stderr.getvalue()})
    print(json.dumps(results))


if __name__ == "__main__":
    cli_driver(sys.argv[1:])
