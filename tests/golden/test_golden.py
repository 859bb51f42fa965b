"""Golden fixtures: files written and samples drawn by an earlier commit are still reproduced bit for bit.

``files/`` was written once by ``make_golden.py`` at the commit that ``files/manifest.json`` records;
never regenerate it to make one of these tests pass (the script's docstring says what to do
instead). For every model of the manifest (small seeded checkpoints of each network, and the
bundled binarized-MNIST models):

- its compressed file decodes to the stored images, and compressing them again gives the same bytes;
- the integer logits of its images are the stored integers;
- a fixed seed draws the stored samples, on the native engine and on the reference engine;

the codec's checks both with the default engines (native where the kernels are built) and with
the native kernels turned off. Every fixture file is checked against its recorded sha256 first,
so that a fixture cannot change silently.
"""

import contextlib
import copy
import functools
import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from codec_cases import environment_bytes, with_environment
from pixelrnn import from_pretrained, load_model, native
from pixelrnn.codec import CodedImage, compress, decompress, integer_logits, integer_model, read_container
from pixelrnn.hub import bundled_folder, installed_bundled
from pixelrnn.sampling import NATIVE_ENGINES, make_engine, sample

pytest.importorskip("constriction")

FILES = Path(__file__).resolve().parent / "files"
MANIFEST = json.loads((FILES / "manifest.json").read_text())
SHA256 = json.loads((FILES / "sha256.json").read_text())
MODELS = {entry["id"]: entry for entry in MANIFEST["models"]}
MODES = ["default", "native-off"]

pytestmark = pytest.mark.usefixtures("one_thread")


def fixture_bytes(name: str) -> bytes:
    """A fixture file's bytes, after checking them against the recorded sha256."""
    data = (FILES / name).read_bytes()
    assert hashlib.sha256(data).hexdigest() == SHA256[name], f"the golden fixture {name} was changed"
    return data


@functools.cache
def arrays(name: str) -> dict[str, np.ndarray]:
    fixture_bytes(name)
    with np.load(FILES / name) as found:
        return {key: found[key] for key in found.files}


@functools.cache
def model_of(key: str):
    """The model of a manifest entry, as loaded by users: float32, eval mode."""
    entry = MODELS[key]
    if entry["kind"] == "small":
        fixture_bytes(entry["checkpoint"])
        return load_model(FILES / entry["checkpoint"])
    if entry["name"] not in installed_bundled():
        pytest.skip(f"the bundled model {entry['name']} is not in this installation")
    weights = (bundled_folder(entry["name"]) / "model.safetensors").read_bytes()
    assert hashlib.sha256(weights).hexdigest() == entry["weights_sha256"], f"the bundled weights of {entry['name']} changed"
    return from_pretrained(entry["name"])


@functools.cache
def sampling_model_of(key: str):
    return copy.deepcopy(model_of(key)).to(getattr(torch, MODELS[key]["sample_dtype"]))


def coded_images(key: str) -> list[CodedImage]:
    """The stored images, with the names, modes and mappings that their compressed file records."""
    container = read_container(fixture_bytes(MODELS[key]["compressed"]))
    values = arrays("images.npz")[MODELS[key]["images"]]
    assert len(values) == len(container.names)
    return [CodedImage(*image) for image in zip(container.names, values, container.modes, container.mappings)]


@pytest.fixture(params=MODES)
def mode(request):
    """The default engines, or the native kernels turned off (the PyTorch and numpy paths)."""
    with native.disabled() if request.param == "native-off" else contextlib.nullcontext():
        if request.param == "native-off":
            assert native.library() is None
        yield request.param


# --------------------------------------------------------------------- the fixtures themselves
def test_every_fixture_file_is_recorded_and_unchanged():
    present = {path.name for path in FILES.iterdir()} - {"manifest.json", "sha256.json"}
    assert present == set(SHA256)
    changed = [name for name in sorted(SHA256) if hashlib.sha256((FILES / name).read_bytes()).hexdigest() != SHA256[name]]
    assert changed == []


# --------------------------------------------------------------------- the codec
@pytest.mark.parametrize("key", MODELS)
def test_the_compressed_file_decodes_to_the_stored_images(key, mode):
    entry = MODELS[key]
    data = fixture_bytes(entry["compressed"])
    container = read_container(data)
    assert (container.arithmetic, container.batch_size, container.fingerprint.hex()) == ("integer", entry["batch_size"],
                                                                                         entry["fingerprint"])
    # As make_golden.py named them (pixelrnn.codec.images_from_array): dataset-style names, 2 levels scaled to 0/255.
    channels, levels = container.channels, container.levels
    assert container.names == ("00000.png", "00001.png") and set(container.modes) == {"L" if channels == 1 else "RGB"}
    assert set(container.mappings) == {"scaled" if levels == 2 else "raw"}
    decoded, expected = decompress(model_of(key), data), coded_images(key)
    assert [(image.name, image.mode, image.mapping) for image in decoded] == [(image.name, image.mode, image.mapping)
                                                                              for image in expected]
    for found, image in zip(decoded, expected):
        assert found.values.dtype == np.uint8 and np.array_equal(found.values, image.values)


@pytest.mark.parametrize("key", MODELS)
def test_compressing_the_stored_images_again_gives_the_same_bytes(key, mode):
    """Byte for byte; an integer file records the writer's environment (torch, ISA, constriction), the one part that may vary."""
    entry = MODELS[key]
    stored = fixture_bytes(entry["compressed"])
    data = compress(model_of(key), coded_images(key), batch_size=entry["batch_size"])
    if environment_bytes(data) == environment_bytes(stored):
        assert data == stored
    else:  # another machine type or torch build: everything but the environment record must still be the same
        assert with_environment(data, environment_bytes(stored)) == stored


@pytest.mark.parametrize("key", MODELS)
def test_the_integer_logits_are_the_stored_integers(key, mode):
    entry = MODELS[key]
    coding = integer_model(model_of(key))
    logits = integer_logits(coding, arrays("images.npz")[entry["images"]]).numpy()
    assert logits.dtype == np.float64 and np.array_equal(logits, np.round(logits))
    found = logits.astype(np.int64)
    stored = arrays("integer_logits.npz")[entry["logits"]]
    assert stored.dtype == np.int64 and len(stored) == entry["logits_images"]
    assert np.array_equal(found[: len(stored)], stored)
    assert hashlib.sha256(found.astype("<i8").tobytes()).hexdigest() == entry["logits_sha256"]
    assert coding.fingerprint.hex() == entry["fingerprint"]


# --------------------------------------------------------------------- sampling
@pytest.mark.parametrize("key", MODELS)
@pytest.mark.parametrize("engine", ["native", "reference"])
def test_a_fixed_seed_draws_the_stored_samples(key, engine):
    """The native engine (the default where the kernels are built), and the reference engine with the kernels off."""
    entry = MODELS[key]
    model = sampling_model_of(key)
    count, _, height, width = entry["sample_shape"]
    generator = torch.Generator().manual_seed(entry["sample_seed"])
    if engine == "native":
        if native.library() is None:
            pytest.skip("the native kernels cannot be built here")
        assert type(make_engine(model)) in NATIVE_ENGINES.values()
        drawn = sample(model, count, height, width, generator=generator)
    else:
        with native.disabled():
            drawn = sample(model, count, height, width, generator=generator)
    assert drawn.dtype == torch.long and list(drawn.shape) == entry["sample_shape"]
    assert np.array_equal(drawn.numpy(), arrays("samples.npz")[f"{key}.{engine}"])


def test_only_bundled_models_fixtures_were_ever_rewritten():
    """A rewrite (make_golden.py --replace-bundled) is for bundled weights replaced on purpose, and says why."""
    for rewrite in MANIFEST.get("replaced", []):
        assert rewrite["reason"] and rewrite["ids"]
        assert all(MODELS[key]["kind"] == "bundled" for key in rewrite["ids"]), rewrite["ids"]
