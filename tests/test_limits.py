"""The limits on what a file may make the library allocate: defaults, the environment, using_limits, the messages."""

import pytest

from pixelrnn.errors import ConfigError, DatasetError
from pixelrnn.limits import RATIO_FREE_BYTES, Limits, check_decoded_size, check_limit, current_limits, using_limits, variable


@pytest.fixture(autouse=True)
def _no_limits_in_the_environment(monkeypatch):
    for name in Limits.__dataclass_fields__:
        monkeypatch.delenv(variable(name), raising=False)


def test_defaults_then_environment_then_using_limits(monkeypatch):
    assert current_limits() == Limits()
    monkeypatch.setenv("PIXELRNN_MAX_PARAMETERS", "1_000_000_000")
    assert current_limits().parameters == 10**9 and current_limits().layers == Limits().layers
    with using_limits(parameters=5, image_pixels=7):
        assert (current_limits().parameters, current_limits().image_pixels) == (5, 7)
        with using_limits(image_pixels=9):
            assert (current_limits().parameters, current_limits().image_pixels) == (5, 9)
        assert current_limits().image_pixels == 7
    assert current_limits().parameters == 10**9 and current_limits().image_pixels == Limits().image_pixels


@pytest.mark.parametrize("value", ["0", "-3", "lots", "1e9", "2.5"])
def test_a_bad_environment_value_is_one_line_naming_the_variable(monkeypatch, value):
    monkeypatch.setenv("PIXELRNN_MAX_LAYERS", value)
    with pytest.raises(ConfigError) as error:
        current_limits()
    assert str(error.value) == f"PIXELRNN_MAX_LAYERS={value!r} is not a positive integer"


def test_using_limits_refuses_unknown_names_and_bad_values():
    with pytest.raises(ConfigError, match="unknown limit.*bogus"):
        with using_limits(bogus=3):
            pass
    with pytest.raises(ConfigError, match="parameters=0"):
        with using_limits(parameters=0):
            pass


def test_check_limit_names_the_value_the_limit_and_how_to_raise_it():
    check_limit("layers", Limits().layers, "x", DatasetError)  # at the limit: accepted
    with pytest.raises(DatasetError) as error:
        check_limit("layers", Limits().layers + 1, "file.safetensors: its configuration's layers", DatasetError)
    assert str(error.value) == (f"file.safetensors: its configuration's layers is {Limits().layers + 1:,} layers, over the limit of "
                                f"{Limits().layers:,}; if the file is trusted, raise it with PIXELRNN_MAX_LAYERS")


def test_the_compression_ratio_counts_only_past_the_ratio_free_size():
    check_decoded_size(RATIO_FREE_BYTES, 1, "small", DatasetError)  # a tiny member cannot be a bomb
    check_decoded_size(RATIO_FREE_BYTES + 200, (RATIO_FREE_BYTES + 200) // 200, "at the ratio", DatasetError)
    with pytest.raises(DatasetError, match="compression ratio is 1,000 times, over the limit of 200.*PIXELRNN_MAX_COMPRESSION"):
        check_decoded_size(1000 * (RATIO_FREE_BYTES // 1000 + 1), RATIO_FREE_BYTES // 1000 + 1, "bomb.npy", DatasetError)
    with using_limits(compression=2000):
        check_decoded_size(1000 * (RATIO_FREE_BYTES // 1000 + 1), RATIO_FREE_BYTES // 1000 + 1, "bomb.npy", DatasetError)
    with pytest.raises(DatasetError, match="decoded size of big is 2,147,483,649 bytes.*PIXELRNN_MAX_DECODED_BYTES"):
        check_decoded_size((2 << 30) + 1, 2 << 30, "big", DatasetError)
