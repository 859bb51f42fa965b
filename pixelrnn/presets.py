"""The networks of section 4 of the paper ("Specifications of Models"), by name.

Each preset is a model configuration plus the image size of its dataset. The MNIST
PixelCNN and Row LSTM presets are not specified by the paper (Table 4 reports both without
sizes); they use the Diagonal BiLSTM's depth and width so that the three compare directly.
``mnist_pixelcnn_15layers`` has the depth of the paper's CIFAR-10 PixelCNN: a masked 3x3 layer
widens the receptive field by one row, so 7 of them see at most 10 rows above a pixel of a
28-row image. ``mnist_pixelcnn_25layers`` reaches 28 rows above a pixel, every row of the image,
though the blind spot of the masked 3x3 stack remains (docs/reproduction.md, "A deeper or a
wider PixelCNN").
"""

from __future__ import annotations

from dataclasses import dataclass

from .config import ModelConfig


@dataclass(frozen=True)
class Preset:
    """``parameters`` is the network's size, stated so that listing the presets builds nothing
    (the ImageNet networks take seconds to initialise); the tests build each and compare."""

    name: str
    description: str
    config: ModelConfig
    image_size: tuple[int, int]
    parameters: int


def _preset(name, description, image_size, parameters, **config):
    return Preset(name, description, ModelConfig(**config), image_size, parameters)


_MNIST = dict(channels=1, levels=2, output_hidden=32)
_CIFAR = dict(channels=3, levels=256, output_hidden=1024)

PRESETS: dict[str, Preset] = {
    p.name: p
    for p in [
        _preset("mnist_diagonal_bilstm", "binarized MNIST, Diagonal BiLSTM, 7 layers, h=16 (sec. 4, Table 4: 79.20 nats)", (28, 28), 73_666,
                arch="diagonal_bilstm", hidden=16, layers=7, **_MNIST),
        _preset("mnist_diagonal_bilstm_1layer", "binarized MNIST, Diagonal BiLSTM, 1 layer, h=32 (Table 4: 80.75 nats)", (28, 28), 45_826,
                arch="diagonal_bilstm", hidden=32, layers=1, **_MNIST),
        _preset("mnist_row_lstm", "binarized MNIST, Row LSTM, 7 layers, h=16 (Table 4: 80.54 nats; size not in the paper)", (28, 28), 80_162,
                arch="row_lstm", hidden=16, layers=7, **_MNIST),
        _preset("mnist_pixelcnn", "binarized MNIST, PixelCNN, 7 layers, h=16 (Table 4: 81.30 nats; size not in the paper)", (28, 28), 34_914,
                arch="pixelcnn", hidden=16, layers=7, **_MNIST),
        _preset("mnist_pixelcnn_15layers", "binarized MNIST, PixelCNN, 15 layers, h=16 (CIFAR-10's depth)", (28, 28),
                70_498, arch="pixelcnn", hidden=16, layers=15, **_MNIST),
        _preset("mnist_pixelcnn_25layers", "binarized MNIST, PixelCNN, 25 layers, h=16 (its field spans every row above a pixel)", (28, 28),
                114_978, arch="pixelcnn", hidden=16, layers=25, **_MNIST),
        _preset("cifar10_pixelcnn", "CIFAR-10, PixelCNN, 15 layers, h=128 (Table 5: 3.14 bits/dim)", (32, 32), 6_327_296,
                arch="pixelcnn", hidden=128, layers=15, **_CIFAR),
        _preset("cifar10_row_lstm", "CIFAR-10, Row LSTM, 12 layers, h=128 (Table 5: 3.07 bits/dim)", (32, 32), 10_410_752,
                arch="row_lstm", hidden=128, layers=12, **_CIFAR),
        _preset("cifar10_diagonal_bilstm", "CIFAR-10, Diagonal BiLSTM, 12 layers, h=128 (Table 5: 3.00 bits/dim)", (32, 32), 9_633_536,
                arch="diagonal_bilstm", hidden=128, layers=12, **_CIFAR),
        _preset("imagenet32_row_lstm", "ImageNet 32x32, Row LSTM, 12 layers, h=384 (Table 6: 3.86 bits/dim)", (32, 32), 77_101_824,
                arch="row_lstm", hidden=384, layers=12, **_CIFAR),
        _preset("imagenet64_row_lstm", "ImageNet 64x64, Row LSTM, 4 layers, h=512, no residual connections (Table 6: 3.63 bits/dim)", (64, 64), 47_098_624,
                arch="row_lstm", hidden=512, layers=4, residual=False, **_CIFAR),
    ]
}


def get_preset(name: str) -> Preset:
    try:
        return PRESETS[name]
    except KeyError:
        raise KeyError(f"unknown preset {name!r}; choose one of {', '.join(PRESETS)}") from None
