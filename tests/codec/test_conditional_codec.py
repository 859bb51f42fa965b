"""A class-conditional model codes each image with its class: the class is side information in the file (format 3)."""

import dataclasses

import numpy as np
import pytest
import torch

import struct

from codec_cases import edit_header, image_set, same_images
from pixelrnn import build_model
from pixelrnn.codec import CompressionError, DamagedFileError, WrongModelError, chunks, compress, decompress, read_container
from pixelrnn.codec.container import CONDITIONAL_VERSION, VERSION

pytest.importorskip("constriction")
pytestmark = pytest.mark.usefixtures("one_thread")


def conditional(arch, channels, levels, classes=3, seed=0):
    torch.manual_seed(seed)
    model = build_model(arch, channels=channels, levels=levels, hidden=max(4, channels), layers=2, output_hidden=8,
                        classes=classes).eval()
    with torch.no_grad():
        for name, parameter in model.named_parameters():
            if "class_vectors" in name:
                parameter.normal_(0, 1.0)
    return model


def labelled(channels, levels, labels, seed=0):
    images = image_set(channels, levels, len(labels), [(4, 5), (3, 3)], seed=seed)
    return [dataclasses.replace(image, label=label) for image, label in zip(images, labels)]


@pytest.mark.parametrize("arithmetic", ["integer", "float32"])
@pytest.mark.parametrize("channels, levels", [(1, 2), (3, 5)])
@pytest.mark.parametrize("arch", ["pixelcnn", "row_lstm", "diagonal_bilstm"])
def test_a_conditional_model_round_trips_with_each_images_class(arch, channels, levels, arithmetic):
    model = conditional(arch, channels, levels)
    images = labelled(channels, levels, [2, 0, 1, 2, 0])
    data = compress(model, images, batch_size=2, arithmetic=arithmetic)
    container = read_container(data)
    assert container.version == CONDITIONAL_VERSION and container.classes == 3 and container.labels == (2, 0, 1, 2, 0)
    decoded = decompress(model, data)
    same_images(decoded, images)
    assert [image.label for image in decoded] == [2, 0, 1, 2, 0]


def test_the_class_is_what_the_file_codes():
    """The code length follows the class: another class gives another (here: longer) file for the same pixels."""
    model = conditional("pixelcnn", 1, 2, classes=2)
    images = labelled(1, 2, [0, 0, 0, 0])
    report_right, report_wrong = {}, {}
    compress(model, images, report=report_right)
    compress(model, [dataclasses.replace(image, label=1) for image in images], report=report_wrong)
    assert report_right["ideal_bits"] != report_wrong["ideal_bits"]
    with torch.no_grad():  # the coded length is the model's NLL given the class, to a few bits
        nats = sum(float(model.nll(torch.as_tensor(image.values[None].astype(np.int64)), torch.tensor([0]))) for image in images)
    assert abs(report_right["ideal_bits"] - nats / np.log(2)) < 0.05


def test_an_image_without_a_class_and_a_model_with_other_classes_are_one_line_errors():
    model = conditional("row_lstm", 1, 2)
    images = labelled(1, 2, [0, 1])
    with pytest.raises(CompressionError, match=r"codes each image with its class, an integer in \[0, 3\); got None"):
        compress(model, [dataclasses.replace(images[0], label=None)])
    with pytest.raises(CompressionError, match=r"got 3"):
        compress(model, [dataclasses.replace(images[0], label=3)])
    data = compress(model, images)
    with pytest.raises(WrongModelError):
        decompress(conditional("row_lstm", 1, 2, classes=4), data)
    unconditional = build_model("row_lstm", channels=1, levels=2, hidden=4, layers=2, output_hidden=8).eval()
    plain = compress(unconditional, images)  # an unconditional model stores no classes
    assert read_container(plain).version == VERSION and read_container(plain).labels is None
    with pytest.raises(WrongModelError):
        decompress(unconditional, data)


def test_chunks_keep_one_class_each():
    assert chunks([(2, 2)] * 5, 4, 1 << 20, [1, 0, 1, 1, 0]) == [[0, 2, 3], [1, 4]]
    assert chunks([(2, 2)] * 3, 4, 1 << 20) == [[0, 1, 2]]


def test_a_damaged_class_section_is_one_line():
    model = conditional("pixelcnn", 1, 2)
    data = compress(model, labelled(1, 2, [0, 1]))
    head_end = 14 + struct.unpack_from("<I", data, 10)[0]
    with pytest.raises(DamagedFileError, match="class 7 of a model with 3 classes"):
        read_container(edit_header(data, head_end - 2, head_end, struct.pack("<H", 7)))
    with pytest.raises(DamagedFileError, match="2 classes cannot fit"):
        read_container(edit_header(data, head_end - 4, head_end, b""))
    with pytest.raises(DamagedFileError, match="a class-conditional file of a model with 0 classes"):
        read_container(edit_header(data, head_end - 6, head_end - 4, struct.pack("<H", 0)))
