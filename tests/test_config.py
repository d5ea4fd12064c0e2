"""Training configuration: defaults, TOML files, overrides and validation."""

import pytest

from delaynir.errors import ConfigError
from delaynir.train.config import TrainConfig, dumps_toml, load_config, make_config
from delaynir.train.loop import sigma_at


def test_toml_file_and_overrides(tmp_path):
    path = tmp_path / "c.toml"
    path.write_text('epochs = 3\nhidden = [32, 16]\nlr = 1\ndelays = "none"\n')
    config = load_config(path, {"epochs": 5, "seed": None})
    assert config.epochs == 5  # the flag wins over the file
    assert config.hidden == [32, 16] and config.delays == "none"
    assert config.lr == 1.0 and isinstance(config.lr, float)
    assert config.seed == TrainConfig().seed  # None overrides nothing


def test_effective_config_round_trips_through_toml(tmp_path):
    config = make_config({"epochs": 7, "hidden": [8], "amp": False, "lr_schedule": "cosine"})
    path = tmp_path / "config.toml"
    path.write_text(dumps_toml(config.to_dict()))
    assert load_config(path) == config
    assert config.digest() == load_config(path).digest()
    assert config.digest() != make_config({"epochs": 8}).digest()


@pytest.mark.parametrize(
    "values, message",
    [
        ({"epoch": 3}, "unknown setting"),
        ({"epochs": "3"}, "must be of type int"),
        ({"hidden": [3.5]}, "list of integers"),
        ({"amp": 1}, "true or false"),
        ({"epochs": 0}, "epochs must be >= 1"),
        ({"dt": -0.01}, "dt must be > 0"),
        ({"device": "tpu"}, "device must be"),
    ],
)
def test_invalid_settings_are_named(values, message):
    with pytest.raises(ConfigError, match=message):
        make_config(values)


def test_bad_toml_file_is_named(tmp_path):
    path = tmp_path / "broken.toml"
    path.write_text("epochs = \n")
    with pytest.raises(ConfigError, match="broken.toml is not valid TOML"):
        load_config(path)
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(tmp_path / "missing.toml")


def test_sigma_schedule_anneals_over_the_first_quarter():
    config = make_config({"max_delay": 25, "sigma_final": 0.5, "sigma_fraction": 0.25})
    assert sigma_at(0, 1000, config) == pytest.approx(12.5)
    assert sigma_at(125, 1000, config) == pytest.approx((12.5 * 0.5) ** 0.5)  # geometric midpoint
    assert sigma_at(250, 1000, config) == pytest.approx(0.5)
    assert sigma_at(900, 1000, config) == pytest.approx(0.5)
    values = [sigma_at(s, 1000, config) for s in range(0, 260, 10)]
    assert all(a > b for a, b in zip(values, values[1:]))
