"""The models bundled with the package (pixelrnn/pretrained/): offline loading, sampling, completion, the codec, and the card's figure.

Each test skips, saying why, when this installation holds no weights for the model. With
PIXELRNN_DATA_DIR holding binarized MNIST, the NLL of the first 500 test images is checked against
the card on every run; all 10000 (minutes of CPU per model) when PIXELRNN_SCORE_BUNDLED=1 as well.
"""

import os
import sys
from dataclasses import replace

import numpy as np
import pytest
import torch

from pixelrnn import BUNDLED, complete, from_pretrained, get_preset, sample
from pixelrnn.codec import compress, decompress, images_from_array
from pixelrnn.evaluation import evaluate_images
from pixelrnn.hub import bundled_folder, installed_bundled
from pixelrnn.models.pretrained import (SUBSET_IMAGES, TEST_IMAGES, TEST_NATS, TEST_NATS_STDERR, TEST_SUBSET_NATS,
                                       read_pretrained_config)

INSTALLED = installed_bundled()


def installed(name):
    if name not in INSTALLED:
        pytest.skip(f"the bundled model {name} is not in this installation (made by benchmarks/pretrained_mnist.py)")
    return bundled_folder(name)


@pytest.fixture
def offline(monkeypatch):
    """No Hub: huggingface_hub cannot be imported and HF_HUB_OFFLINE is set."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setitem(sys.modules, "huggingface_hub", None)


@pytest.mark.parametrize("name", BUNDLED)
def test_a_bundled_model_is_the_papers_mnist_network_with_a_card(name):
    folder = installed(name)
    config, metadata = read_pretrained_config(folder)
    # The paper's MNIST network; a class-conditional one adds its classes and their names, nothing else.
    assert replace(config, classes=0, class_names=()) == get_preset(metadata["preset"]).config and metadata["image_size"] == "28x28"
    assert config.classes in (0, 10) and len(config.class_names) == config.classes
    # Weights only, in float32 (the largest, the 25-layer PixelCNN, is 478 kB): an optimiser's state or float64 would double it.
    assert (folder / "model.safetensors").stat().st_size < 600_000
    card = (folder / "README.md").read_text()
    assert f"{float(metadata[TEST_NATS]):.2f} ± {float(metadata[TEST_NATS_STDERR]):.2f}" in card and metadata[TEST_IMAGES] == "10000"


@pytest.mark.parametrize("name", BUNDLED)
def test_a_bundled_model_loads_offline_samples_completes_and_round_trips_the_codec(name, offline):
    installed(name)
    model = from_pretrained(name)
    assert not model.training
    generator = torch.Generator().manual_seed(0)
    labels = torch.tensor([3, 7]) if model.config.classes else None
    drawn = sample(model, 2, 28, 28, generator=generator, labels=labels)
    assert drawn.shape == (2, 1, 28, 28) and set(drawn.unique().tolist()) <= {0, 1}
    completed = complete(model, drawn, 14, generator=generator, labels=labels)
    assert torch.equal(completed[:, :, :14], drawn[:, :, :14])
    coded = images_from_array(completed.numpy(), 2)
    if model.config.classes:
        coded = [replace(image, label=int(label)) for image, label in zip(coded, labels)]
    restored = decompress(model, compress(model, coded))
    assert all(np.array_equal(a.values, b.values) and a.label == b.label for a, b in zip(restored, coded)) and len(restored) == 2


def real_test_split(folder):
    """The card's metadata and the test split the model was scored on: (metadata, images, labels or None)."""
    if not os.environ.get("PIXELRNN_DATA_DIR"):
        pytest.skip("set PIXELRNN_DATA_DIR to a folder with the bundled models' datasets to score them")
    from pixelrnn.data import load_dataset

    config, metadata = read_pretrained_config(folder)
    preprocessing = {"levels": int(metadata["data_levels"]), "mapping": metadata["data_mapping"]} if "data_levels" in metadata else {}
    test = load_dataset(metadata["dataset"], "test", progress=False, **preprocessing)
    return metadata, test.images, (test.labels if config.classes else None)


@pytest.mark.usefixtures("one_thread")
@pytest.mark.parametrize("name", BUNDLED)
def test_a_bundled_models_nll_on_the_first_test_images_is_its_cards(name):
    """The card's figure for the first SUBSET_IMAGES test images, to 1e-3 nats: these weights, this data, this model code."""
    metadata, test, labels = real_test_split(installed(name))
    with torch.inference_mode():
        measured = evaluate_images(from_pretrained(name), test[:SUBSET_IMAGES], batch_size=100,
                                   labels=None if labels is None else labels[:SUBSET_IMAGES])
    assert measured["nats_per_image"] == pytest.approx(float(metadata[TEST_SUBSET_NATS]), abs=1e-3)


@pytest.mark.slow
@pytest.mark.usefixtures("one_thread")
@pytest.mark.parametrize("name", BUNDLED)
def test_a_bundled_models_test_nll_is_its_cards(name):
    """All 10000 test images, within the card's standard error: minutes of CPU, so only when PIXELRNN_SCORE_BUNDLED=1."""
    folder = installed(name)
    if os.environ.get("PIXELRNN_SCORE_BUNDLED") != "1":
        pytest.skip("scoring all 10000 test images takes minutes per model; set PIXELRNN_SCORE_BUNDLED=1 to run it")
    metadata, test, labels = real_test_split(folder)
    assert len(test) == int(metadata[TEST_IMAGES])
    with torch.inference_mode():
        measured = evaluate_images(from_pretrained(name), test, batch_size=100, labels=labels)
    assert abs(measured["nats_per_image"] - float(metadata[TEST_NATS])) <= float(metadata[TEST_NATS_STDERR])
