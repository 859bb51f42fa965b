"""Bits per dimension of colour images, in the python API and the command line's JSON, against an independent sum.

The paper's unit (section 5.1) divides nats by the image's C*H*W sub-pixels and ln 2; with one
channel C*H*W and H*W agree, so these tests use three.
"""

import json
import math
import warnings

import numpy as np
import pytest
import torch

from pixelrnn import build_model, save_model
from pixelrnn.cli import main
from pixelrnn.evaluation import evaluate_images, nll_per_image, summarize

CHANNELS, HEIGHT, WIDTH, LEVELS = 3, 4, 3, 4


def colour_model(seed=0):
    torch.manual_seed(seed)
    return build_model("pixelcnn", channels=CHANNELS, levels=LEVELS, hidden=6, layers=1, output_hidden=6).eval()


def colour_images(count, seed):
    return np.random.default_rng(seed).integers(0, LEVELS, (count, CHANNELS, HEIGHT, WIDTH), dtype=np.uint8)


def independent_nats(model, images):
    """-sum log softmax of each sub-pixel's logits at its value, per image: no library helper."""
    values = torch.from_numpy(images).long()
    with torch.no_grad():
        logits = model(values).double()  # (N, C, K, H, W)
    chosen = torch.log_softmax(logits, dim=2).gather(2, values[:, :, None]).squeeze(2)
    return -chosen.sum(dim=(1, 2, 3)).numpy()


def test_evaluate_reports_bits_per_colour_sub_pixel():
    model, images = colour_model(), colour_images(7, seed=1)
    nats = independent_nats(model, images)
    summary = evaluate_images(model, images, batch_size=3)
    dims = CHANNELS * HEIGHT * WIDTH
    assert summary["dims"] == dims
    assert summary["nats_per_image"] == pytest.approx(nats.mean(), rel=1e-6)
    assert summary["bits_per_dim"] == pytest.approx(nats.mean() / (dims * math.log(2)), rel=1e-6)
    assert summary["nats_per_image_stderr"] == pytest.approx(nats.std(ddof=1) / math.sqrt(len(nats)), rel=1e-6)
    assert summary["bits_per_dim_stderr"] == pytest.approx(nats.std(ddof=1) / math.sqrt(len(nats)) / (dims * math.log(2)), rel=1e-6)


def test_the_evaluate_command_writes_bits_per_colour_sub_pixel(tmp_path, capsys):
    model = colour_model(seed=2)
    splits = {"train": colour_images(6, 3), "valid": colour_images(4, 4), "test": colour_images(5, 5)}
    np.savez(tmp_path / "colour.npz", **splits, levels=np.array(LEVELS))
    save_model(model, tmp_path / "model.safetensors")
    report = tmp_path / "report.json"
    assert main(["evaluate", str(tmp_path / "model.safetensors"), "--dataset", f"npz:{tmp_path / 'colour.npz'}", "--split", "test",
                 "--train", "--json", str(report), "-q"]) == 0
    capsys.readouterr()
    result = json.loads(report.read_text())
    to_bits = 1 / (CHANNELS * HEIGHT * WIDTH * math.log(2))
    test_nats, train_nats = independent_nats(model, splits["test"]).mean(), independent_nats(model, splits["train"]).mean()
    assert result["nats_per_image"] == pytest.approx(test_nats, rel=1e-6)
    assert result["bits_per_dim"] == pytest.approx(test_nats * to_bits, rel=1e-6)
    assert result["test"]["bits_per_dim"] == pytest.approx(test_nats * to_bits, rel=1e-6)
    assert result["train_bits_per_dim"] == pytest.approx(train_nats * to_bits, rel=1e-6)


def test_evaluate_scores_a_class_conditional_model_given_each_images_class():
    torch.manual_seed(3)
    model = build_model("pixelcnn", channels=CHANNELS, levels=LEVELS, hidden=6, layers=1, output_hidden=6, classes=3).eval()
    with torch.no_grad():  # class vectors start at zero: make each class a different model
        for table in [*model.block_class_vectors, *model.output_class_vectors]:
            table.weight.normal_()
    images, labels = colour_images(5, seed=6), np.array([0, 2, 1, 2, 0])
    values = torch.from_numpy(images).long()
    with torch.no_grad():
        logits = model(values, torch.from_numpy(labels)).double()
    nats = -torch.log_softmax(logits, dim=2).gather(2, values[:, :, None]).sum(dim=(1, 2, 3, 4)).numpy()
    summary = evaluate_images(model, images, batch_size=2, labels=labels)
    assert summary["nats_per_image"] == pytest.approx(nats.mean(), rel=1e-6)
    assert summary["nats_per_image"] != pytest.approx(evaluate_images(model, images, labels=np.zeros(5, np.int64))["nats_per_image"], rel=1e-6)


def test_no_images_score_as_no_images():
    model = colour_model()
    nats = nll_per_image(model, colour_images(0, seed=0))
    assert nats.shape == (0,) and nats.dtype == np.float64
    summary = evaluate_images(model, colour_images(0, seed=0))
    assert summary["images"] == 0 and math.isnan(summary["nats_per_image"]) and math.isnan(summary["bits_per_dim_stderr"])


def test_the_progress_bar_is_off_by_default_and_counts_images(capsys):
    model, images = colour_model(), colour_images(5, seed=7)
    evaluate_images(model, images, batch_size=2)
    assert capsys.readouterr().err == ""
    evaluate_images(model, images, batch_size=2, progress=True, description="valid")
    shown = capsys.readouterr().err
    assert "valid" in shown and "0/5" in shown and "image/s" in shown  # its total is the image count
    assert not shown.endswith("\n")  # the bar is cleared when done, not left behind


class Recording:
    """A model stand-in on the CPU that records where and in what type each batch and its classes arrive."""

    device, training = torch.device("cpu"), True

    def __init__(self):
        self.seen = []

    def eval(self):
        self.training = False

    def train(self, mode=True):
        self.training = mode

    def nll(self, batch, classes=None):
        self.seen.append((batch.device, batch.dtype, None if classes is None else (classes.device, classes.dtype)))
        return torch.zeros(len(batch))


@pytest.mark.parametrize("images", [colour_images(3, seed=8), torch.from_numpy(colour_images(3, seed=8))], ids=["numpy", "tensor"])
def test_batches_and_classes_go_to_the_device_asked_for_as_int64(images):
    # "meta" differs from the model's device, so a batch left where it was shows.
    model = Recording()
    nats = nll_per_image(model, images, batch_size=2, device="meta", labels=np.array([1, 0, 2], dtype=np.int32))
    meta = torch.device("meta")
    assert model.seen == [(meta, torch.int64, (meta, torch.int64))] * 2
    assert nats.shape == (3,) and nats.dtype == np.float64 and model.training
    model.seen.clear()
    assert evaluate_images(model, images, batch_size=2, device="meta")["images"] == 3
    assert model.seen == [(meta, torch.int64, None)] * 2


def test_nll_per_image_shows_no_bar_unless_asked(capsys):
    model, images = colour_model(), colour_images(5, seed=7)
    nll_per_image(model, images, batch_size=2)
    assert capsys.readouterr().err == ""
    for run in (nll_per_image, evaluate_images):
        run(model, images, batch_size=2, progress=True)
        assert capsys.readouterr().err.startswith("\revaluate: ")  # unless told otherwise the bar names its work "evaluate"


@pytest.mark.parametrize("count", [0, 1])
def test_too_few_images_for_a_mean_or_an_error_give_nan_without_a_warning(count):
    # numpy warns on the mean of nothing and on the spread of one value; the summary asks neither.
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        summary = summarize(np.full(count, 2.0), 12)
    assert summary["images"] == count and math.isnan(summary["nats_per_image_stderr"]) and math.isnan(summary["bits_per_dim_stderr"])
    assert summary["nats_per_image"] == 2.0 if count else math.isnan(summary["nats_per_image"])


def test_two_images_have_a_standard_error():
    summary = summarize(np.array([1.0, 3.0]), 12)
    assert summary["nats_per_image_stderr"] == pytest.approx(1.0)  # sqrt(2) / sqrt(2)
    assert summary["bits_per_dim_stderr"] == pytest.approx(1.0 / (12 * math.log(2)))
