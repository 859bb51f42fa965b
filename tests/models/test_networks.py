"""Shapes, dtypes, batch independence, presets and the public API of the networks."""

import math

import pytest
import torch

from pixelrnn import ARCHITECTURES, PRESETS, ConfigError, bits_per_dim, build_model, model_from_config
from pixelrnn.models import base


@pytest.mark.parametrize("arch", ARCHITECTURES)
def test_logits_shape_and_nll_for_non_square_images(arch):
    model = build_model(arch, channels=3, levels=7, hidden=6, layers=2, output_hidden=12)
    x = torch.randint(0, 7, (2, 3, 4, 9))
    assert model(x).shape == (2, 3, 7, 4, 9)
    nll = model.nll(x)
    assert nll.shape == (2,) and torch.isfinite(nll).all()
    # an untrained model is close to uniform: about log(7) nats per sub-pixel
    assert abs(nll.mean().item() / (3 * 4 * 9) - math.log(7)) < 0.5


@pytest.mark.parametrize("arch", ARCHITECTURES)
def test_nll_equals_sum_of_log_softmax_at_the_observed_values(arch):
    torch.manual_seed(0)
    model = build_model(arch, channels=3, levels=5, hidden=6, layers=1, output_hidden=12).double()
    x = torch.randint(0, 5, (2, 3, 3, 4))
    log_probs = torch.log_softmax(model(x), dim=2)
    manual = -log_probs.gather(2, x.unsqueeze(2)).sum(dim=(1, 2, 3, 4))
    assert torch.allclose(model.nll(x), manual, rtol=0, atol=1e-12)
    assert torch.allclose(model.bits_per_dim(x), manual / (36 * math.log(2)))
    assert bits_per_dim(36 * math.log(2), 36) == pytest.approx(1.0)


@pytest.mark.parametrize("arch", ARCHITECTURES)
def test_batch_items_are_independent(arch):
    torch.manual_seed(0)
    model = build_model(arch, channels=3, levels=256, hidden=6, layers=2, output_hidden=12).double()
    x = torch.randint(0, 256, (3, 3, 4, 5))
    y = x.clone()
    y[1:] = torch.randint(0, 256, (2, 3, 4, 5))
    assert torch.equal(model(x)[0], model(y)[0])
    scaled = model.scale(x).requires_grad_(True)
    model.logits_from_scaled(scaled)[0].sum().backward()
    assert (scaled.grad[1:] == 0).all() and (scaled.grad[0] != 0).any()


@pytest.mark.parametrize("arch", ARCHITECTURES)
def test_float32_and_float64_agree(arch):
    torch.manual_seed(0)
    model = build_model(arch, channels=1, levels=2, hidden=8, layers=2, output_hidden=16)
    x = torch.randint(0, 2, (2, 1, 6, 5))
    single = model.nll(x)
    double = model.double().nll(x)
    assert single.dtype == torch.float32 and double.dtype == torch.float64
    assert torch.allclose(single.double(), double, rtol=1e-5)


def test_bad_inputs_give_clear_errors():
    model = build_model("pixelcnn", channels=1, levels=2, hidden=4, layers=1)
    with pytest.raises(ValueError, match=r"\[0, 2\)"):
        model(torch.full((1, 1, 3, 3), 2))
    with pytest.raises(ValueError, match="shape"):
        model(torch.zeros(1, 3, 3, 3, dtype=torch.long))
    with pytest.raises(ValueError, match="integer"):
        model(torch.zeros(1, 1, 3, 3))
    with pytest.raises(ConfigError, match="unknown architecture 'gru'"):
        build_model("gru", channels=1, levels=2, hidden=4, layers=1)
    with pytest.raises(ConfigError, match="unknown model option"):
        build_model("pixelcnn", channels=1, levels=2, hidden=4, layers=1, dropout=0.5)
    with pytest.raises(ConfigError, match="row_kernel=4"):
        build_model("row_lstm", channels=1, levels=2, hidden=4, layers=1, row_kernel=4)
    with pytest.raises(ConfigError, match="levels=1"):
        build_model("row_lstm", channels=1, levels=1, hidden=4, layers=1)


def test_residual_switch_changes_the_function():
    torch.manual_seed(0)
    with_residual = build_model("row_lstm", channels=1, levels=2, hidden=4, layers=2, output_hidden=8)
    without = model_from_config(with_residual.config.__class__(**{**with_residual.config.to_dict(), "residual": False}))
    without.load_state_dict(with_residual.state_dict())
    x = torch.randint(0, 2, (1, 1, 5, 5))
    assert not torch.equal(with_residual(x), without(x))
    # the stream adds each block's input exactly once: zero every block's output conv and every
    # layer's stream is the input convolution's output
    with torch.no_grad():
        for block in with_residual.blocks:
            block.output.weight.zero_()
            block.output.bias.zero_()
        stream = with_residual.input_conv(with_residual.scale(x))
        features = sum(skip(stream) for skip in with_residual.skips)
        expected = with_residual.output_stack(features).view(1, 1, 2, 5, 5)
        assert torch.allclose(with_residual(x), expected, atol=1e-6)


def test_skip_connections_sum_every_layer():
    torch.manual_seed(0)
    model = build_model("pixelcnn", channels=1, levels=2, hidden=4, layers=3, output_hidden=8)
    assert len(model.skips) == 3
    no_skip = build_model("pixelcnn", channels=1, levels=2, hidden=4, layers=3, output_hidden=8, skip=False)
    assert len(no_skip.skips) == 0


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_every_preset_builds_and_runs_forward_and_backward(name):
    preset = PRESETS[name]
    torch.manual_seed(0)
    model = model_from_config(preset.config)
    assert sum(p.numel() for p in model.parameters()) == preset.parameters
    height, width = preset.image_size
    if preset.config.hidden > 128:  # the ImageNet networks: same layers on a smaller image keeps CI fast
        height, width = 8, 8
    x = torch.randint(0, preset.config.levels, (1, preset.config.channels, height, width))
    loss = model.nll(x).mean()
    loss.backward()
    assert torch.isfinite(loss)
    grads = [p.grad for p in model.parameters()]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)


@pytest.mark.parametrize("arch", ["pixelcnn", "row_lstm"])
def test_torch_compile_traces_the_whole_network_in_one_graph(arch):
    """Input checks read no tensor values while compiling (a graph break per call); eager calls still check them."""
    import torch._dynamo

    model = build_model(arch, channels=1, levels=2, hidden=4, layers=2, output_hidden=8)
    explained = torch._dynamo.explain(model)(torch.randint(0, 2, (2, 1, 6, 6)))
    assert (explained.graph_count, explained.graph_break_count) == (1, 0)
    with pytest.raises(ValueError, match=r"pixel values must lie in \[0, 2\)"):
        model(torch.full((1, 1, 3, 3), 2))


@pytest.mark.parametrize("arch", ["pixelcnn", "row_lstm", "diagonal_bilstm"])
def test_the_residual_stream_is_channels_last_so_no_layer_converts_it(arch, monkeypatch):
    """Every block and skip reads a channels-last map: a layout conversion or a sum across layouts would be a copy of each map."""
    model = build_model(arch, channels=1, levels=2, hidden=4, layers=3, output_hidden=8)
    seen = []
    for module in model.blocks:
        module.register_forward_pre_hook(lambda _, inputs: seen.append(inputs[0].is_contiguous(memory_format=torch.channels_last)))
    skip_sum = base.sum_of_pointwise

    def seen_by_the_skips(convs, maps):
        seen.extend(x.is_contiguous(memory_format=torch.channels_last) for x in maps)
        return skip_sum(convs, maps)

    monkeypatch.setattr(base, "sum_of_pointwise", seen_by_the_skips)
    model.nll(torch.randint(0, 2, (2, 1, 5, 6))).sum().backward()
    assert len(seen) == 6 and all(seen)
