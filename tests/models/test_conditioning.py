"""Class-conditional networks p(x | y): every executor adds the class vectors, and the model stays a causal distribution per class."""

import itertools

import pytest
import torch

from pixelrnn import ARCHITECTURES, build_model, load_model, save_model
from pixelrnn.config import ModelConfig, MultiScaleConfig
from pixelrnn.errors import ConfigError
from pixelrnn.models import model_from_config
from pixelrnn.sampling import complete, fill, make_engine, sample

from dependency import dependency_map, earlier_mask

pytestmark = pytest.mark.usefixtures("one_thread")


def conditional(arch, channels=1, levels=3, classes=4, seed=0, **options):
    """A class-conditional network whose class vectors are not zero (they start at zero when trained)."""
    torch.manual_seed(seed)
    options = {"hidden": 6, "layers": 2, "output_hidden": 12, **options}
    model = build_model(arch, channels=channels, levels=levels, classes=classes, **options).double()
    with torch.no_grad():
        for name, parameter in model.named_parameters():
            if "class_vectors" in name or "initial" in name:
                parameter.normal_(0, 0.7)
    return model


def test_an_unconditional_configuration_keeps_its_format():
    config = ModelConfig(arch="pixelcnn", channels=1, levels=2, hidden=4, layers=1)
    assert "classes" not in config.to_dict()
    assert ModelConfig.from_json(config.to_json()) == config
    labelled = ModelConfig.from_json(ModelConfig(**{**config.to_dict(), "classes": 10}).to_json())
    assert labelled.classes == 10 and '"classes": 10' in labelled.to_json()
    assert not any("class_vectors" in name for name in model_from_config(config).state_dict())
    named = ModelConfig(**{**config.to_dict(), "classes": 2, "class_names": ["cat", "dog"]})
    assert ModelConfig.from_json(named.to_json()).class_names == ("cat", "dog")
    with pytest.raises(ConfigError, match="class_names has 3 names for classes=2"):
        ModelConfig(**{**config.to_dict(), "classes": 2, "class_names": ["a", "b", "c"]})
    with pytest.raises(ConfigError, match="class_names must be distinct"):
        ModelConfig(**{**config.to_dict(), "classes": 2, "class_names": ["a", "a"]})


@pytest.mark.parametrize("arch", ARCHITECTURES)
def test_labels_change_the_logits_and_checkpoints_keep_them(arch, tmp_path):
    model = conditional(arch)
    x = torch.randint(0, 3, (4, 1, 4, 5))
    zeros, ones = model(x, torch.zeros(4, dtype=torch.long)), model(x, torch.ones(4, dtype=torch.long))
    assert not torch.allclose(zeros, ones)
    mixed = model(x, torch.tensor([0, 1, 0, 1]))
    assert torch.equal(mixed[0::2], zeros[0::2]) and torch.allclose(mixed[1::2], ones[1::2])
    path = save_model(model, tmp_path / "model.safetensors")
    loaded = load_model(path).double()
    assert loaded.config.classes == 4
    assert torch.allclose(loaded(x, torch.tensor([3, 2, 1, 0])), model(x, torch.tensor([3, 2, 1, 0])), atol=1e-5)


def test_wrong_labels_are_one_clear_error():
    model = conditional("pixelcnn")
    x = torch.zeros(2, 1, 3, 3, dtype=torch.long)
    with pytest.raises(ValueError, match=r"class-conditional: give labels, one per image, in \[0, 4\)"):
        model(x)
    with pytest.raises(ValueError, match=r"labels must lie in \[0, 4\); got min 0, max 4"):
        model(x, torch.tensor([0, 4]))
    with pytest.raises(ValueError, match=r"labels must lie in \[0, 4\); got min -1"):
        model.nll(x, torch.tensor([-1, 0]))
    with pytest.raises(ValueError, match=r"one label per image, shape \(2,\); got \(3,\)"):
        model(x, torch.tensor([0, 1, 2]))
    with pytest.raises(ValueError, match="integer tensor of class indices"):
        model(x, torch.tensor([0.0, 1.0]))
    with pytest.raises(ValueError, match=r"labels must lie in \[0, 4\)"):
        sample(model, 2, 3, 3, labels=7)
    unconditional = build_model("pixelcnn", channels=1, levels=2, hidden=4, layers=1)
    with pytest.raises(ValueError, match="unconditional; it takes no labels"):
        unconditional(x.clamp(max=1), torch.tensor([0, 1]))


@pytest.mark.parametrize("arch", ARCHITECTURES)
def test_every_class_is_causal(arch):
    model = conditional(arch, channels=3, levels=4)
    allowed = earlier_mask(3, 4, 5)
    for label in range(4):
        images = torch.randint(0, 4, (3, 4, 5), generator=torch.Generator().manual_seed(label))
        found = dependency_map(model, images, seed=label, label=label)
        assert not (found & ~allowed).any(), f"class {label}: a logit depends on a later sub-pixel"
        assert found.sum() > 0.3 * allowed.sum()


@pytest.mark.parametrize("arch", ARCHITECTURES)
def test_every_class_is_a_distribution(arch):
    model = conditional(arch, channels=1, levels=2)
    images = torch.tensor(list(itertools.product(range(2), repeat=6))).reshape(-1, 1, 2, 3)
    with torch.no_grad():
        for label in range(4):
            total = torch.exp(-model.nll(images, torch.full((len(images),), label))).sum().item()
            assert abs(total - 1.0) < 1e-9


def teacher_forced(model, images, labels, native_kernels):
    engine = make_engine(model, native_kernels)
    batch, channels, height, width = images.shape
    engine.reset(batch, height, width, labels=labels)
    logits = torch.zeros(batch, channels, model.config.levels, height, width, dtype=torch.float64)
    for i, j, c in itertools.product(range(height), range(width), range(channels)):
        logits[:, c, :, i, j] = engine.logits(i, j, c)
        engine.advance(i, j, c, images[:, c, i, j])
    return logits


@pytest.mark.parametrize("native_kernels", [False, True])
@pytest.mark.parametrize("channels", [1, 3])
@pytest.mark.parametrize("arch", ARCHITECTURES)
def test_the_engines_equal_the_full_pass_with_labels(arch, channels, native_kernels):
    from pixelrnn import native

    model = conditional(arch, channels=channels, levels=5)
    if native_kernels and not native.usable(model.input_conv.weight):
        pytest.skip("the native kernels are not built here")
    images = torch.randint(0, 5, (3, channels, 4, 5), generator=torch.Generator().manual_seed(1))
    labels = torch.tensor([2, 0, 3])
    with torch.no_grad():
        full = model(images, labels)
    assert (teacher_forced(model, images, labels, native_kernels) - full).abs().max() < 1e-9


@pytest.mark.parametrize("arch", ARCHITECTURES)
def test_sampling_with_labels_draws_the_conditional(arch):
    """The engines and the naive path draw the same images per class; another class draws others."""
    model = conditional(arch, channels=1, levels=3)
    drawn = sample(model, 4, 3, 4, labels=torch.tensor([0, 1, 2, 3]), generator=torch.Generator().manual_seed(0))
    naive = sample(model, 4, 3, 4, labels=[0, 1, 2, 3], generator=torch.Generator().manual_seed(0), naive=True)
    assert torch.equal(drawn, naive)
    same_class = sample(model, 4, 3, 4, labels=1, generator=torch.Generator().manual_seed(0))
    assert torch.equal(same_class[1], drawn[1])
    kept = complete(model, drawn, 1, labels=[3, 2, 1, 0], generator=torch.Generator().manual_seed(5))
    assert torch.equal(kept[:, :, :1], drawn[:, :, :1])
    known = torch.zeros_like(drawn, dtype=torch.bool)
    assert fill(model, drawn, known, labels=[0, 1, 2, 3], generator=torch.Generator().manual_seed(0)).equal(drawn)


def test_both_multiscale_stages_take_the_class():
    stage = dict(arch="pixelcnn", channels=1, levels=3, hidden=4, layers=1, output_hidden=8, classes=3)
    torch.manual_seed(0)
    model = model_from_config(MultiScaleConfig(small=ModelConfig(**stage), large=ModelConfig(**stage, condition_channels=4))).double()
    with torch.no_grad():
        for name, parameter in model.named_parameters():
            if "class_vectors" in name:
                parameter.normal_(0, 0.7)
    images = torch.tensor(list(itertools.product(range(3), repeat=4))).reshape(-1, 1, 2, 2)
    with torch.no_grad():
        for label in range(3):
            total = torch.exp(-model.nll(images, torch.full((len(images),), label))).sum().item()
            assert abs(total - 1.0) < 1e-9
        assert not torch.allclose(model.nll(images, torch.zeros(len(images), dtype=torch.long)),
                                  model.nll(images, torch.ones(len(images), dtype=torch.long)))
    drawn = sample(model, 3, 4, 4, labels=[0, 1, 2], generator=torch.Generator().manual_seed(0))
    naive = sample(model, 3, 4, 4, labels=[0, 1, 2], generator=torch.Generator().manual_seed(0), naive=True)
    assert torch.equal(drawn, naive)
