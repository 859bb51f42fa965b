"""Figures of the paper from a model (pixelrnn.figures)."""

import json

import numpy as np

import pytest
import torch

from pixelrnn import build_model
from pixelrnn.figures import plot_dependency_field, plot_nll_against_images, plot_softmax_distributions, plot_training_curve

from dependency import earlier_mask
from pictures import no_temp_files, read_png


pytestmark = pytest.mark.usefixtures("one_thread")


# --------------------------------------------------------------------- figures
@pytest.fixture(scope="module")
def colour_model():
    torch.manual_seed(0)
    return build_model("row_lstm", channels=3, levels=16, hidden=6, layers=2, output_hidden=12).double()


def test_softmax_figure(tmp_path, colour_model):
    image = torch.randint(0, 16, (3, 5, 4), generator=torch.Generator().manual_seed(3))
    probs = plot_softmax_distributions(colour_model, image, [(0, 0, 0), (2, 3, 1), (1, 2)], tmp_path / "softmax.png")
    assert read_png(tmp_path / "softmax.png")[0] in ("RGB", "RGBA")
    assert probs.shape == (3, 16) and torch.allclose(probs.sum(1), torch.ones(3, dtype=probs.dtype))
    expected = torch.softmax(colour_model(image[None])[0, 2, :, 3, 1], dim=0)
    assert torch.allclose(probs[1], expected.detach())


@pytest.mark.parametrize("pixel", [(2, 1), (1, 2, 1), (0, 0, 0)])
def test_dependency_field_is_zero_on_the_future(tmp_path, colour_model, pixel):
    image = torch.randint(0, 16, (3, 4, 3), generator=torch.Generator().manual_seed(4))
    field = plot_dependency_field(colour_model, image, pixel, tmp_path / "field.png")
    read_png(tmp_path / "field.png")
    assert field.shape == (3, 4, 3)
    i, j = pixel[-2:]
    # A pixel's log-probability (all channels) may use its own earlier channels: allowed inputs are
    # those earlier than its last channel; a single channel c may use those earlier than (c, i, j).
    last = pixel[0] if len(pixel) == 3 else 2
    allowed = earlier_mask(3, 4, 3)[last, i, j]
    assert (field[~allowed] == 0).all()
    if pixel != (0, 0, 0):
        assert (field[allowed] != 0).any()  # the check has teeth: the past is reached
    else:
        assert (field == 0).all()  # the first sub-pixel depends on nothing


def test_training_curve(tmp_path):
    metrics = tmp_path / "metrics.jsonl"
    lines = [{"step": s, "split": "train", "nats": 90.0 - s, "bits_per_dim": 2.0 - s / 100} for s in range(0, 50, 5)]
    lines += [{"step": s, "split": "valid", "nats": 91.0 - s, "bits_per_dim": 2.1 - s / 100} for s in (10, 40)]
    metrics.write_text("\n".join(json.dumps(line) for line in lines) + "\n\n")
    plot_training_curve(metrics, tmp_path / "curve.png")
    assert read_png(tmp_path / "curve.png")[0] in ("RGB", "RGBA")
    metrics.write_text('{"step": 1, "split": "train", "nats": 3}\nnot json\n')
    with pytest.raises(ValueError, match="line 2"):
        plot_training_curve(metrics, tmp_path / "broken.png")
    assert not (tmp_path / "broken.png").exists()


def test_nll_against_images_draws_each_run_its_reference_and_its_fit(tmp_path):
    images = np.geomspace(1e4, 1e6, 8)
    curves = {"Row LSTM": (images, 80 + 500 * images**-0.3, np.full(8, 0.6))}
    plain = read_png(plot_nll_against_images(curves, tmp_path / "plain.png"))
    fit = {"Row LSTM": (images * 10, 80 + 500 * (images * 10) ** -0.3)}
    with_reference = read_png(plot_nll_against_images(curves, tmp_path / "reference.png", references={"Row LSTM": 80.54}))
    with_fit = read_png(plot_nll_against_images(curves, tmp_path / "fit.png", fits=fit))
    assert plain[0] in ("RGB", "RGBA") and no_temp_files(tmp_path)
    for drawn in (with_reference, with_fit):  # each addition changes the picture on its own
        assert plain[1].shape != drawn[1].shape or not np.array_equal(plain[1], drawn[1])
