"""torch.hub entry points: the networks bundled with pixelrnn (paper Table 4 sizes).

    model = torch.hub.load("path/to/pixelrnn", "diagonal_bilstm_binarized_mnist", source="local")

Each returns the model in eval mode on ``device``: the bundled weights, or with ``pretrained=False``
a freshly initialised network of the same configuration (the bundled model's preset, named in its card).
"""

dependencies = ["torch", "numpy", "safetensors", "tqdm", "PIL", "constriction"]


def _load(arch: str, pretrained: bool, device: str):
    import pixelrnn
    from pixelrnn.hub import bundled_folder
    from pixelrnn.models.pretrained import read_pretrained_config

    if pretrained:
        return pixelrnn.from_pretrained(f"binarized_mnist/{arch}", device)
    config, _ = read_pretrained_config(bundled_folder(f"binarized_mnist/{arch}"))  # the configuration only: no weights read
    return pixelrnn.model_from_config(config).to(device).eval()


def pixelcnn_binarized_mnist(pretrained: bool = True, device: str = "cpu"):
    """PixelCNN, 25 blocks, h = 16, trained on binarized MNIST (model card: pixelrnn/pretrained/binarized_mnist/pixelcnn)."""
    return _load("pixelcnn", pretrained, device)


def row_lstm_binarized_mnist(pretrained: bool = True, device: str = "cpu"):
    """Row LSTM, 7 layers, h = 16, trained on binarized MNIST (model card: pixelrnn/pretrained/binarized_mnist/row_lstm)."""
    return _load("row_lstm", pretrained, device)


def diagonal_bilstm_binarized_mnist(pretrained: bool = True, device: str = "cpu"):
    """Diagonal BiLSTM, 7 layers, h = 16, trained on binarized MNIST (model card: pixelrnn/pretrained/binarized_mnist/diagonal_bilstm)."""
    return _load("diagonal_bilstm", pretrained, device)


def row_lstm_conditional_mnist(pretrained: bool = True, device: str = "cpu"):
    """Row LSTM, 7 layers, h = 16, of p(image | digit) on two-level MNIST (model card: pixelrnn/pretrained/mnist/row_lstm_conditional)."""
    import dataclasses

    import pixelrnn

    if pretrained:
        return pixelrnn.from_pretrained("mnist/row_lstm_conditional", device)
    config = dataclasses.replace(pixelrnn.get_preset("mnist_row_lstm").config, classes=10, class_names=tuple("0123456789"))
    return pixelrnn.model_from_config(config).to(device).eval()
