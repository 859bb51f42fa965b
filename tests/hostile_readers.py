"""One family of hostile files per reader: checkpoints, amat, IDX, CIFAR, npz:, cifar10_subset, ImageNet, image folders.

Each family starts from a small valid file set and damages it in the ways an attacker or an
unlucky download would: byte edits and truncations anywhere, then damage that knows the format
(declared sizes far past the bytes present, wrong dtypes, absurd or wrong-typed configuration
values, nested archives, zip, gzip and tar bombs, overlapping zip members, foreign pickles).
"""

from __future__ import annotations

import dataclasses
import functools
import gzip
import io
import json
import pickle
import struct
import tarfile
import tempfile
import zipfile
from pathlib import Path

import numpy as np
import torch
from hypothesis import strategies as st
from PIL import Image
from safetensors import safe_open
from safetensors.torch import load as load_tensors, save as save_tensors

from hostile import (BYTE_EDITS, HUGE, Call, Reader, deflated_zeros, edit_bytes, npy_bytes, npy_with_header, png_with_size,
                     tar_with_size, zip_of, zip_overlap, zip_patch)
from pixelrnn.checkpoint import load_model_with_metadata, save_model
from pixelrnn.config import ModelConfig, MultiScaleConfig, config_from_json
from pixelrnn.data import load_dataset
from pixelrnn.models import model_from_config

SEED = np.random.default_rng(18)
DTYPES = ["|u1", "<u2", ">i4", "<i8", "|b1", "<f4", "<c8", "<U3", "|O", "|V4", "|S2", "<M8[s]"]


# --------------------------------------------------------------------- checkpoints
@functools.lru_cache(maxsize=None)
def checkpoint_seed(kind: str) -> bytes:
    torch.manual_seed(0)
    stage = dict(channels=1, levels=2, hidden=2, layers=1, output_hidden=2)
    config = (ModelConfig("pixelcnn", **stage) if kind == "single" else
              MultiScaleConfig(small=ModelConfig("row_lstm", **stage), large=ModelConfig("diagonal_bilstm", **stage, condition_channels=1)))
    with tempfile.TemporaryDirectory() as folder:
        return save_model(model_from_config(config), Path(folder) / "seed.safetensors", {"image_size": "4x4"}).read_bytes()


def safetensors_header(data: bytes) -> tuple[dict, bytes]:
    length = struct.unpack_from("<Q", data)[0]
    return json.loads(data[8:8 + length]), data[8 + length:]


CONFIG_VALUES = st.one_of(HUGE, st.integers(-3, 3), st.floats(), st.text(max_size=4), st.booleans(), st.none(),
                          st.lists(st.integers(0, 9), max_size=3), st.sampled_from(["pixelcnn", "multiscale", 50_000_000]))
CONFIG_TEXTS = st.sampled_from(["", "{", "[1, 2]", "null", '"pixelcnn"', "1" * 5000, "[" * 100_000 + "]" * 100_000,
                                '{"arch": "multiscale"}', '{"arch": "multiscale", "small": 1, "large": []}'])
CHECKPOINT_DAMAGES = st.tuples(st.sampled_from(["single", "multiscale"]), st.one_of(
    BYTE_EDITS,
    st.tuples(st.just("config"), st.sampled_from(["", "small", "large"]),
              st.sampled_from([f.name for f in dataclasses.fields(ModelConfig)] + ["factor", "bogus"]), CONFIG_VALUES),
    st.tuples(st.just("config_text"), CONFIG_TEXTS),
    st.tuples(st.just("metadata"), st.sampled_from(["image_size", "format", "pixelrnn.config"]),
              st.sampled_from([None, "99999999x99999999", "4x4", "x", "-4x4", "pixelrnn.checkpoint.v1", "1" * 40 + "x1"])),
    st.tuples(st.just("tensor_shape"), st.integers(0, 99), st.lists(st.integers(0, 5), max_size=4)),
    st.tuples(st.just("tensor_dtype"), st.integers(0, 99),
              st.sampled_from([torch.int8, torch.int32, torch.int64, torch.uint8, torch.bool, torch.float16, torch.bfloat16, torch.float64])),
    st.tuples(st.just("tensor_drop"), st.integers(0, 99)),
    st.tuples(st.just("tensor_extra"), st.lists(st.integers(0, 5), max_size=3)),
    st.tuples(st.just("header_length"), HUGE),
    st.tuples(st.just("header_entry"), st.integers(0, 99), st.sampled_from(["shape", "dtype", "data_offsets"]),
              st.one_of(st.lists(HUGE, max_size=4), st.sampled_from(["I64", "F8", "U8", "x", "F32"]), st.none())),
))


def damaged_checkpoint(kind: str, damage: tuple) -> bytes:
    data = checkpoint_seed(kind)
    what = damage[0]
    if what == "bytes":
        return edit_bytes(data, damage[1])
    if what == "header_length":
        return struct.pack("<Q", damage[1]) + data[8:]
    header, payload = safetensors_header(data)
    if what == "header_entry":
        names = sorted(name for name in header if name != "__metadata__")
        header[names[damage[1] % len(names)]][damage[2]] = damage[3]
        text = json.dumps(header).encode()
        text += b" " * (-len(text) % 8)
        return struct.pack("<Q", len(text)) + text + payload
    metadata, tensors = dict(header["__metadata__"]), load_tensors(data)
    names = sorted(tensors)
    if what == "config":
        config = json.loads(metadata["pixelrnn.config"])
        target = config[damage[1]] if isinstance(config.get(damage[1]), dict) else config
        target[damage[2]] = damage[3]
        metadata["pixelrnn.config"] = json.dumps(config)
    elif what == "config_text":
        metadata["pixelrnn.config"] = damage[1]
    elif what == "metadata":
        if damage[2] is None:
            metadata.pop(damage[1], None)
        else:
            metadata[damage[1]] = damage[2]
    elif what == "tensor_shape":
        tensors[names[damage[1] % len(names)]] = torch.zeros(damage[2])
    elif what == "tensor_dtype":
        name = names[damage[1] % len(names)]
        tensors[name] = tensors[name].to(damage[2])
    elif what == "tensor_drop":
        del tensors[names[damage[1] % len(names)]]
    elif what == "tensor_extra":
        tensors["extra.weight"] = torch.zeros(damage[1])
    return save_tensors(tensors, metadata=metadata)


def check_checkpoint(result, folder: Path, damage) -> None:
    model, metadata = result
    assert model.config == config_from_json(metadata["pixelrnn.config"])
    with safe_open(str(folder / "model.safetensors"), framework="pt") as handle:
        stored = {name: handle.get_tensor(name) for name in handle.keys()}
    weights = model.state_dict()
    assert sorted(stored) == sorted(weights)
    assert all(torch.equal(weights[name], value.to(weights[name].dtype)) for name, value in stored.items())


CHECKPOINT = Reader(
    "checkpoint", CHECKPOINT_DAMAGES,
    lambda folder, damage: (folder / "model.safetensors").write_bytes(damaged_checkpoint(*damage)),
    lambda folder: load_model_with_metadata(folder / "model.safetensors"), check_checkpoint)


# --------------------------------------------------------------------- binarized MNIST (.amat)
AMAT_SEED = "".join(" ".join(map(str, row)) + "\n" for row in SEED.integers(0, 2, (2, 784))).encode()
AMAT_DAMAGES = st.one_of(
    BYTE_EDITS,
    st.tuples(st.just("long_line"), st.integers(1, 1_000_000), st.sampled_from(b"01 2\t")),
    st.tuples(st.just("blank_lines"), st.integers(1, 100_000)),
    st.tuples(st.just("spaces"), st.integers(0, 783), st.integers(1, 10_000)),
)


def write_amat(folder: Path, damage: tuple) -> None:
    data = AMAT_SEED
    if damage[0] == "bytes":
        data = edit_bytes(data, damage[1])
    elif damage[0] == "long_line":
        data += bytes([damage[2]]) * damage[1] + b"\n"
    elif damage[0] == "blank_lines":
        data = b"\n" * damage[1] + data
    elif damage[0] == "spaces":
        tokens = data.split(b" ", damage[1] + 1)
        data = b" ".join(tokens[:-1]) + b" " * damage[2] + tokens[-1]
    (folder / "binarized_mnist_test.amat").write_bytes(data)


def check_amat(result, folder: Path, damage) -> None:
    """Equal to a plain token-by-token reading of the text."""
    text = (folder / "binarized_mnist_test.amat").read_bytes()
    rows = [[int(token) for token in line.split()] for line in text.replace(b"\r", b"").split(b"\n") if line.strip()]
    assert result.levels == 2 and np.array_equal(result.images.reshape(len(rows), 784), np.array(rows))


AMAT = Reader("amat", AMAT_DAMAGES, write_amat,
              lambda folder: load_dataset("binarized_mnist", "test", data_dir=folder, verify=False), check_amat)


# --------------------------------------------------------------------- MNIST (IDX in gzip)
IDX_PIXELS = SEED.integers(0, 256, (3, 4, 5), dtype=np.uint8)
IDX_SEED = b"\x00\x00\x08\x03" + struct.pack(">III", *IDX_PIXELS.shape) + IDX_PIXELS.tobytes()
IDX_DAMAGES = st.one_of(
    BYTE_EDITS,
    st.tuples(st.just("decoded"), BYTE_EDITS.map(lambda edits: edits[1])),
    st.tuples(st.just("dims"), st.integers(0, 2**32 - 1), st.integers(0, 2**32 - 1), st.integers(0, 2**32 - 1)),
    st.tuples(st.just("bomb")),
)


def write_idx(folder: Path, damage: tuple) -> None:
    if damage[0] == "bomb":
        data = deflated_zeros("gzip")
    elif damage[0] == "bytes":
        data = edit_bytes(gzip.compress(IDX_SEED), damage[1])
    elif damage[0] == "decoded":
        data = gzip.compress(edit_bytes(IDX_SEED, damage[1]))
    else:
        data = gzip.compress(IDX_SEED[:4] + struct.pack(">III", *damage[1:]) + IDX_SEED[16:])
    (folder / "t10k-images-idx3-ubyte.gz").write_bytes(data)


def check_idx(result, folder: Path, damage) -> None:
    raw = gzip.decompress((folder / "t10k-images-idx3-ubyte.gz").read_bytes())
    count, height, width = struct.unpack_from(">III", raw, 4)
    assert np.array_equal(result.images, np.frombuffer(raw[16:], np.uint8).reshape(count, 1, height, width))


IDX = Reader("idx", IDX_DAMAGES, write_idx, lambda folder: load_dataset("mnist", "test", data_dir=folder, verify=False), check_idx)


# --------------------------------------------------------------------- CIFAR-10 (pickles, folder or tar.gz)
CIFAR_PIXELS = SEED.integers(0, 256, (2, 3072), dtype=np.uint8)
CIFAR_SEED = pickle.dumps({b"data": CIFAR_PIXELS, b"labels": [0, 1]}, protocol=2)


def hostile_pickle(kind: str, size: int) -> bytes:
    """A pickle that asks for ``size`` of something it does not hold."""
    multiarray = np._core.multiarray
    if kind == "length":  # BINBYTES8 declaring size bytes, holding three
        return b"\x80\x04\x8e" + struct.pack("<Q", size % 2**64) + b"abc."
    if kind == "reconstruct":
        return pickle.dumps({b"data": Call(multiarray._reconstruct, np.ndarray, (size,), b"b")}, protocol=2)
    if kind == "ndarray":
        return pickle.dumps({b"data": Call(np.ndarray, (size,))}, protocol=2)
    if kind == "frombuffer":
        return pickle.dumps({b"data": Call(np._core.numeric._frombuffer, b"abc", np.dtype("u1"), (size,), "C")}, protocol=2)
    return pickle.dumps({b"data": Call(eval, f"bytes({size})")}, protocol=2)  # a foreign global


CIFAR_DAMAGES = st.tuples(st.sampled_from(["folder", "tar"]), st.one_of(
    BYTE_EDITS,
    st.tuples(st.just("archive_bytes"), BYTE_EDITS.map(lambda edits: edits[1])),
    st.tuples(st.just("pickle"), st.sampled_from(["length", "reconstruct", "ndarray", "frombuffer", "global"]), HUGE),
    st.tuples(st.just("tar_entries"), st.integers(1, 200)),
    st.tuples(st.just("tar_size"), st.integers(0, 3), HUGE),
    st.tuples(st.just("tar_bomb")),
))


def write_cifar(folder: Path, damage: tuple) -> None:
    layout, damage = damage
    batch = CIFAR_SEED
    if damage[0] == "bytes":
        batch = edit_bytes(batch, damage[1])
    elif damage[0] == "pickle":
        batch = hostile_pickle(damage[1], damage[2])
    if layout == "folder":
        (folder / "cifar-10-batches-py").mkdir()
        (folder / "cifar-10-batches-py" / "test_batch").write_bytes(batch)
        return
    if damage[0] == "tar_bomb":
        (folder / "cifar-10-python.tar.gz").write_bytes(deflated_zeros("tar", "cifar-10-batches-py/zeros"))
        return
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        for index in range(damage[1] if damage[0] == "tar_entries" else 0):
            tar.addfile(tarfile.TarInfo(f"cifar-10-batches-py/extra_{index}"))
        info = tarfile.TarInfo("cifar-10-batches-py/test_batch")
        info.size = len(batch)
        tar.addfile(info, io.BytesIO(batch))
    archive = buffer.getvalue()
    if damage[0] == "tar_size":
        archive = tar_with_size(archive, damage[1], damage[2])
    archive = gzip.compress(archive)
    if damage[0] == "archive_bytes":
        archive = edit_bytes(archive, damage[1])
    (folder / "cifar-10-python.tar.gz").write_bytes(archive)


def check_images(result) -> None:
    """A valid image set: (N, C, H, W) uint8 (uint16 codes above 256 levels) below its levels (ImageSet checked the rest)."""
    assert result.images.ndim == 4 and result.images.dtype == (np.uint8 if result.levels <= 256 else np.uint16) and len(result) > 0
    assert int(result.images.max()) < result.levels


def check_cifar(result, folder: Path, damage) -> None:
    """Damage to the archive around an intact batch either fails or gives the batch's pixels."""
    check_images(result)
    if damage[1][0] in ("archive_bytes", "tar_entries"):
        assert np.array_equal(result.images.reshape(len(result), 3072), CIFAR_PIXELS)


CIFAR = Reader("cifar", CIFAR_DAMAGES, write_cifar,
               lambda folder: load_dataset("cifar10", "test", data_dir=folder, verify=False), check_cifar)


# --------------------------------------------------------------------- npz files (npz:, cifar10_subset, ImageNet)
ZIP_DAMAGES = st.one_of(
    BYTE_EDITS,
    st.tuples(st.just("zip"), st.integers(0, 3), st.sampled_from(["size", "compressed", "offset", "flags", "method"]), HUGE),
    st.tuples(st.just("overlap")),
    st.tuples(st.just("bomb")),
    st.tuples(st.just("nested")),
)
ARRAY_DAMAGES = st.one_of(
    st.tuples(st.just("npy_header"), st.lists(HUGE, min_size=1, max_size=4), st.sampled_from(DTYPES)),
    st.tuples(st.just("dtype"), st.sampled_from([d for d in DTYPES if d != "|V4"])),
    st.tuples(st.just("levels"), st.sampled_from([5, 300, -1, 2.5, [2, 3], "x"])),
)


def npz_damages(member: str) -> st.SearchStrategy:
    return st.one_of(ZIP_DAMAGES, ARRAY_DAMAGES).map(lambda damage: (member, damage))


def damaged_zip(files: dict[str, bytes], member: str, damage: tuple) -> bytes:
    """A zip of ``files`` with zip-level damage: bytes, directory fields, overlap, a bomb or a nested zip as ``member``."""
    what = damage[0]
    if what == "bomb":
        return deflated_zeros("zip", member)
    if what == "nested":
        files = {**files, member: zip_of(files)}
    data = zip_of(files)
    if what == "bytes":
        return edit_bytes(data, damage[1])
    if what == "zip":
        return zip_patch(data, damage[1], damage[2], damage[3])
    if what == "overlap":
        return zip_overlap(data)
    return data


def damaged_npz(arrays: dict[str, np.ndarray], damage: tuple) -> bytes:
    member, damage = damage
    files = {f"{name}.npy": npy_bytes(array) for name, array in arrays.items()}
    if damage[0] == "npy_header":  # a version 1.0 header: 10 bytes, then as many as its length field says
        payload = files[member][10 + struct.unpack_from("<H", files[member], 8)[0]:]
        files[member] = npy_with_header(payload, damage[1], damage[2])
    elif damage[0] == "dtype":
        files[member] = npy_bytes(arrays[member[:-4]].astype(damage[1]))
    elif damage[0] == "levels":
        files["levels.npy"] = npy_bytes(np.array(damage[1]))
    return damaged_zip(files, member, damage)


NPZ_ARRAYS = {"train": SEED.integers(0, 256, (2, 1, 4, 4), dtype=np.uint8), "test": SEED.integers(0, 256, (1, 1, 4, 4), dtype=np.uint8)}
SUBSET_ARRAYS = {"train_x": SEED.integers(0, 256, (3, 32, 32, 3), dtype=np.uint8), "test_x": SEED.integers(0, 256, (1, 32, 32, 3), dtype=np.uint8)}
IMAGENET_ARRAYS = {"data": SEED.integers(0, 256, (1, 3072), dtype=np.uint8), "labels": np.array([7])}

def same_values(result, npz, key: str) -> None:
    """The loaded images hold the values numpy itself reads from the array (in any layout)."""
    check_images(result)
    with zipfile.ZipFile(npz) as archive, archive.open(f"{key}.npy") as member:
        stored = np.lib.format.read_array(member, allow_pickle=False).astype(np.uint8)
    assert np.array_equal(np.sort(result.images, axis=None), np.sort(stored, axis=None))


NPZ = Reader("npz", npz_damages("train.npy"),
             lambda folder, damage: (folder / "data.npz").write_bytes(damaged_npz(NPZ_ARRAYS, damage)),
             lambda folder: load_dataset(f"npz:{folder / 'data.npz'}", "train"),
             lambda result, folder, damage: same_values(result, folder / "data.npz", "train"))
SUBSET = Reader("cifar10_subset", npz_damages("test_x.npy"),
                lambda folder, damage: (folder / "cifar10_subset.npz").write_bytes(damaged_npz(SUBSET_ARRAYS, damage)),
                lambda folder: load_dataset("cifar10_subset", "test", data_dir=folder),
                lambda result, folder, damage: same_values(result, folder / "cifar10_subset.npz", "test_x"))

IMAGENET_DAMAGES = st.one_of(
    npz_damages("data.npy").map(lambda damage: ("inner", damage)),
    ZIP_DAMAGES.map(lambda damage: ("outer", ("val_data.npz", damage))),
)


def write_imagenet(folder: Path, damage: tuple) -> None:
    """A zip of npz files: damage inside the inner npz, or to the outer zip."""
    level, damage = damage
    inner = damaged_npz(IMAGENET_ARRAYS, damage if level == "inner" else ("data.npy", ("bytes", [])))
    data = zip_of({"val_data.npz": inner}) if level == "inner" else damaged_zip({"val_data.npz": inner}, *damage)
    (folder / "Imagenet32_val_npz.zip").write_bytes(data)


def check_imagenet(result, folder: Path, damage) -> None:
    with zipfile.ZipFile(folder / "Imagenet32_val_npz.zip") as outer:
        same_values(result, io.BytesIO(outer.read("val_data.npz")), "data")


IMAGENET = Reader("imagenet", IMAGENET_DAMAGES, write_imagenet,
                  lambda folder: load_dataset("imagenet32", "test", data_dir=folder), check_imagenet)


# --------------------------------------------------------------------- folders of image files
IMAGE_FORMATS = ["PNG", "GIF", "BMP", "TIFF", "JPEG", "PPM", "WEBP"]


@functools.lru_cache(maxsize=None)
def image_seed(fmt: str, mode: str) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(SEED.integers(0, 256, (5, 4, 3) if mode == "RGB" else (5, 4), dtype=np.uint8), mode).save(buffer, format=fmt)
    return buffer.getvalue()


FOLDER_DAMAGES = st.one_of(
    st.tuples(st.sampled_from(IMAGE_FORMATS), st.sampled_from(["L", "RGB"]), BYTE_EDITS),
    st.tuples(st.sampled_from(["PNG", "BMP", "GIF"]), st.sampled_from(["L", "RGB"]), st.tuples(st.just("size"), HUGE, HUGE)),
)


def with_size(fmt: str, data: bytes, width: int, height: int) -> bytes:
    """The image file with another size in its header (PNG with its CRC fixed; BMP; GIF's screen and frame)."""
    if fmt == "PNG":
        return png_with_size(data, width, height)
    data = bytearray(data)
    if fmt == "BMP":
        struct.pack_into("<ii", data, 18, width % 2**31, height % 2**31)
    else:
        struct.pack_into("<HH", data, 6, width % 2**16, height % 2**16)
        frame = data.find(b",", 13)  # the first image descriptor: left, top, width, height
        if frame > 0:
            struct.pack_into("<HH", data, frame + 5, width % 2**16, height % 2**16)
    return bytes(data)


def write_folder(folder: Path, damage: tuple) -> None:
    fmt, mode, damage = damage
    data = image_seed(fmt, mode)
    data = edit_bytes(data, damage[1]) if damage[0] == "bytes" else with_size(fmt, data, damage[1], damage[2])
    (folder / "images").mkdir()
    (folder / "images" / f"a.{fmt.lower()}").write_bytes(data)


def check_folder(result, folder: Path, damage) -> None:
    """One image of the size Pillow reads in the file's header."""
    check_images(result)
    with Image.open(next((folder / "images").iterdir())) as image:
        assert result.images.shape[0] == 1 and result.images.shape[2:] == image.size[::-1]


FOLDER = Reader("folder", FOLDER_DAMAGES, write_folder, lambda folder: load_dataset(f"folder:{folder / 'images'}", "all"),
                check_folder)

READERS = {reader.name: reader for reader in (CHECKPOINT, AMAT, IDX, CIFAR, NPZ, SUBSET, IMAGENET, FOLDER)}
# The undamaged file set of each reader, which must load.
INTACT = {"checkpoint": ("single", ("bytes", [])), "amat": ("bytes", []), "idx": ("bytes", []), "cifar": ("tar", ("bytes", [])),
          "npz": ("train.npy", ("bytes", [])), "cifar10_subset": ("test_x.npy", ("bytes", [])),
          "imagenet": ("inner", ("data.npy", ("bytes", []))), "folder": ("PNG", "L", ("bytes", []))}
