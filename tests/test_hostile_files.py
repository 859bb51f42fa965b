"""Every reader against hostile files: a correct load or one line, within a memory bound, also through the command line.

The fuzz tests (hypothesis, derandomized: the same cases on every run) damage a small valid
file set per reader (tests/hostile_readers.py) and load it under an address-space bound of
1 GiB above the process's size, so that a file making a reader allocate what it declares fails
the test. benchmarks/hostile_files.py runs the same families with more cases.
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import tempfile
import warnings
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings

from hostile import (address_space_bound, bomb_png, deflated_zeros, npy_with_header, png_with_size, run_case, zip_of,
                     zip_overlap)
from hostile_readers import INTACT, READERS, damaged_checkpoint, hostile_pickle, image_seed
from pixelrnn.errors import ImageError
from pixelrnn.images import read_image
from pixelrnn.limits import using_limits

TESTS = Path(__file__).resolve().parent
HEADROOM = 1 << 30
FUZZ = settings(max_examples=25, deadline=None, derandomize=True, database=None, suppress_health_check=list(HealthCheck))


@pytest.mark.parametrize("name", sorted(READERS))
def test_each_reader_loads_its_intact_files(tmp_path, name):
    assert run_case(READERS[name], INTACT[name], tmp_path) == "loaded"


@pytest.mark.parametrize("name", sorted(READERS))
def test_fuzz_reader(name):
    """Every damaged file set loads correctly or fails with one line, within the address-space bound."""
    reader = READERS[name]
    outcomes = []

    @FUZZ
    @given(reader.damages)
    def case(damage):
        with tempfile.TemporaryDirectory() as folder, address_space_bound(HEADROOM):
            outcomes.append(run_case(reader, damage, Path(folder)))

    case()
    assert set(outcomes) - {"loaded"}, "the damages must reach the reader's refusals"


# --------------------------------------------------------------------- image files (pixelrnn.images.read_image)
def test_an_image_larger_than_the_limit_is_refused_from_its_header(tmp_path):
    declared = tmp_path / "declared.png"  # 5000 x 5000 in the header, 5 x 4 pixels of data
    declared.write_bytes(png_with_size(image_seed("PNG", "L"), 5000, 5000))
    bomb = tmp_path / "bomb.png"  # a real 60000 x 60000 PNG of 437 KB
    bomb.write_bytes(bomb_png())
    with address_space_bound(256 << 20):
        with pytest.raises(ImageError, match=r"image .*declared.png of 5000x5000 is 25,000,000 pixels, over the limit of 16,777,216; "
                                             r".*PIXELRNN_MAX_IMAGE_PIXELS"):
            read_image(declared)
        with using_limits(image_pixels=25_000_000), pytest.raises(ImageError, match="cannot read image .*declared.png: "):
            read_image(declared)  # past the limit, Pillow decodes and finds the data short
        with pytest.raises(ImageError, match="bomb.png: Image size \\(3600000000 pixels\\) exceeds limit"):
            read_image(bomb)  # Pillow's own guard answers first above twice its MAX_IMAGE_PIXELS


def test_a_damaged_image_is_one_error_and_no_warning(tmp_path):
    path = tmp_path / "cut.tiff"
    path.write_bytes(image_seed("TIFF", "L")[:121])  # Pillow warns of corrupt EXIF data, then fails
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with pytest.raises(ImageError, match="cannot read image .*cut.tiff: "):
            read_image(path)
    assert caught == []

# --------------------------------------------------------------------- through the command line, under a memory limit
MEMORY_LIMIT = 3 << 30  # address space of the whole process, interpreter and torch included


# What each case's one line must say: refused for its own reason, not for a missing file.
REFUSALS = {
    "checkpoint: its configuration asks for hidden=50000000": "hidden=50000000",
    "npz: a .npy header claims 100000000x28x28": "declares (100000000, 28, 28) of uint8",
    "folder: a real 60000x60000 PNG of 437 KB": "Image size (3600000000 pixels) exceeds limit",
    "checkpoint: a tensor header claims 10^12 elements": "not a readable safetensors checkpoint",
    "amat: one 10 MB line without blanks": "line 1 is longer than 1,048,576 bytes",
    "idx: gzip bomb": "compression ratio",
    "cifar: pickle asks _reconstruct for 10^12 bytes": "is over the decoded-bytes limit",
    "cifar: tar.gz bomb": "compression ratio",
    "npz: zip bomb member": "compression ratio",
    "cifar10_subset: header claims 10^8 images": "declares (100000000, 32, 32, 3) of uint8",
    "imagenet: overlapping members of a zip of npz": "overlaps the next member",
    "folder: PNG header claims 60000x60000": "Image size (3600000000 pixels) exceeds limit",
    "complete --npz: a .npy header claims 10^8 images": "declares (100000000, 1, 28, 28) of uint8",
}


def hostile_file_set(root: Path) -> dict[str, list[str]]:
    """One hostile file set per reader, with the command that reads it; names as in REFUSALS."""
    def folder(name: str, files: dict[str, bytes]) -> Path:
        for relative, data in files.items():
            (root / name / relative).parent.mkdir(parents=True, exist_ok=True)
            (root / name / relative).write_bytes(data)
        return root / name

    def train(dataset: str, data_dir: Path | None = None) -> list[str]:
        return ["train", "--dataset", dataset, "--steps", "1", "--out", str(root / f"run-{len(cases)}"), "-q"] + (
            ["--data-dir", str(data_dir)] if data_dir else [])

    cases = {}
    cases["checkpoint: its configuration asks for hidden=50000000"] = ["sample", str(folder("ckpt", {"evil.safetensors": damaged_checkpoint(
        "single", ("config", "", "hidden", 50_000_000))}) / "evil.safetensors"), "-n", "1", "--out", str(root / "s.png"), "-q"]
    header = npy_with_header(bytes(100), (100_000_000, 28, 28), "|u1")
    cases["npz: a .npy header claims 100000000x28x28"] = train(f"npz:{folder('npz', {'evil.npz': zip_of({'train.npy': header})}) / 'evil.npz'}")
    cases["folder: a real 60000x60000 PNG of 437 KB"] = train(f"folder:{folder('bomb', {'big.png': bomb_png()})}")
    cases["checkpoint: a tensor header claims 10^12 elements"] = ["sample", str(folder("ckpt2", {"lie.safetensors": damaged_checkpoint(
        "single", ("header_entry", 0, "shape", [10**12]))}) / "lie.safetensors"), "-n", "1", "--out", str(root / "t.png"), "-q"]
    cases["amat: one 10 MB line without blanks"] = train("binarized_mnist", folder("amat", {"binarized_mnist_train.amat": b"0" * 10**7}))
    cases["idx: gzip bomb"] = train("mnist", folder("idx", {"train-images-idx3-ubyte.gz": deflated_zeros("gzip")}))
    cases["cifar: pickle asks _reconstruct for 10^12 bytes"] = train("cifar10", folder("cifar", {  # every batch present
        f"cifar-10-batches-py/data_batch_{k}": hostile_pickle("reconstruct", 10**12) for k in range(1, 6)}))
    cases["cifar: tar.gz bomb"] = train("cifar10", folder("cifartar", {"cifar-10-python.tar.gz": deflated_zeros(
        "tar", "cifar-10-batches-py/data_batch_1")}))
    cases["npz: zip bomb member"] = train(f"npz:{folder('npzbomb', {'bomb.npz': deflated_zeros('zip', 'train.npy')}) / 'bomb.npz'}")
    cases["cifar10_subset: header claims 10^8 images"] = train("cifar10_subset", folder("subset", {"cifar10_subset.npz": zip_of(
        {"train_x.npy": npy_with_header(bytes(3072), (10**8, 32, 32, 3), "|u1")})}))
    inner = zip_of({"data.npy": npy_with_header(bytes(3072), (10**8, 3072), "|u1")})
    cases["imagenet: overlapping members of a zip of npz"] = train("imagenet32", folder("imagenet", {
        "Imagenet32_train_npz.zip": zip_overlap(zip_of({"train_data_batch_1.npz": inner}))}))
    cases["folder: PNG header claims 60000x60000"] = train(f"folder:{folder('png', {'a.png': png_with_size(image_seed('PNG', 'L'), 60000, 60000)})}")
    samples = zip_of({"images.npy": npy_with_header(bytes(784), (10**8, 1, 28, 28), "|u1")})
    cases["complete --npz: a .npy header claims 10^8 images"] = [
        "complete", "pretrained:binarized_mnist/pixelcnn", "--npz", str(folder("samples", {"evil.npz": samples}) / "evil.npz"),
        "--keep-rows", "14", "--out", str(root / "c.png"), "-q"]
    assert list(cases) == list(REFUSALS)
    return cases


def limit_memory() -> None:
    resource.setrlimit(resource.RLIMIT_AS, (MEMORY_LIMIT, resource.getrlimit(resource.RLIMIT_AS)[1]))


def one_error_line(stderr: str, command: str) -> bool:
    lines = stderr.strip().splitlines()
    return len(lines) == 1 and lines[0].startswith(f"pixelrnn {command}: error: ")


@pytest.mark.slow
def test_hostile_files_end_in_one_line_and_status_2_under_a_memory_limit(tmp_path):
    cases = hostile_file_set(tmp_path)
    environment = {**os.environ, "PYTHONPATH": os.pathsep.join([str(TESTS.parent), os.environ.get("PYTHONPATH", "")])}
    # Every case through one driver process that calls the command line's main() (a command's exit status), and the
    # first case, side by side, as a real `python -m pixelrnn` process.
    run = lambda argv: subprocess.Popen(argv, cwd=tmp_path, env=environment, preexec_fn=limit_memory,
                                        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    name, argv = next(iter(cases.items()))
    process = run([sys.executable, "-m", "pixelrnn", *argv])
    driver = run([sys.executable, str(TESTS / "hostile.py"), str(MEMORY_LIMIT), "--no-checksums", json.dumps(list(cases.values()))])
    stdout, stderr = driver.communicate(timeout=600)
    assert driver.returncode == 0, stderr
    for case, result in zip(cases, json.loads(stdout)):
        assert result["status"] == 2 and one_error_line(result["stderr"], result["argv"][0]), (case, result)
        assert REFUSALS[case] in result["stderr"], (case, result)
    _, stderr = process.communicate(timeout=600)
    assert process.returncode == 2 and one_error_line(stderr, argv[0]) and REFUSALS[name] in stderr, (name, stderr)
