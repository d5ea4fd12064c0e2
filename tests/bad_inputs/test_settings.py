"""Bad training configurations (`train --config`) and target profiles (`targets --profile`, `compile --target`)."""

from __future__ import annotations

import shutil
from importlib import resources

import pytest
from conftest import refused

# case id: (TOML text, or bytes, of the config file; text the message must contain)
CONFIGS = {
    "not TOML": ("hidden = [16,", "is not valid TOML"),
    "binary": (bytes(range(256)), "cannot be read as UTF-8 text"),
    "unknown key": ("hiden = [16]", "unknown setting(s) hiden"),
    "wrong type": ('epochs = "ten"', "config key 'epochs' must be of type int"),
    "bool for int": ("epochs = true", "config key 'epochs' must be of type int"),
    "list of floats": ("hidden = [1.5]", "config key 'hidden' must be a list of integers"),
    "table": ("[model]\nhidden = [4]", "unknown setting(s) model"),
    "zero epochs": ("epochs = 0", "epochs must be >= 1"),
    "negative dt": ("dt = -0.01", "dt must be > 0"),
    "nan lr": ("lr = nan", "lr must be > 0"),
    "inf lr": ("lr = inf", "lr must be a finite number"),
    "zero hidden": ("hidden = [0]", "hidden must list at least one positive layer size"),
    "zero delay taps": ("max_delay = 0", "max_delay must be >= 1 (got 0)"),
    "tau below one": ("tau_steps = 0.5", "tau_steps must exceed 1"),
    "dropout one": ("dropout = 1.0", "dropout must be in [0, 1)"),
    "val_fraction one": ("val_fraction = 1.0", "val_fraction must be in (0, 1)"),
    "unknown delays": ('delays = "some"', "delays"),
    "unknown schedule": ('lr_schedule = "fast"', "lr_schedule must be one of"),
    "dale without pruning": ("dale = true", "dale needs a pruning method"),
    "sparsity one": ("sparsity = 1.0", "sparsity must be in [0, 1)"),
    "huge hidden layer": ("hidden = [100000000000]", "would need"),
    "huge batch": ("batch_size = 100000000000", "would need"),
}


@pytest.mark.parametrize("case", CONFIGS, ids=list(CONFIGS))
def test_bad_config_file(tiny_data, tmp_path, case):
    content, says = CONFIGS[case]
    config = tmp_path / "settings.toml"
    config.write_bytes(content if isinstance(content, bytes) else content.encode())
    out = tmp_path / "run"
    names = tiny_data / "train.h5" if "would need" in says else config
    refused(
        ["train", "--data", tiny_data, "--out", out, "--config", config, "--device", "cpu"],
        names=names,
        says=says,
        inputs=[config, tiny_data],
        outputs=[out],
    )


def test_a_directory_or_nothing_as_config(tiny_data, tmp_path):
    for config, says in ((tmp_path, "cannot be read"), (tmp_path / "absent.toml", "does not exist")):
        refused(
            ["train", "--data", tiny_data, "--out", tmp_path / "run", "--config", config],
            names=config,
            says=says,
            outputs=[tmp_path / "run"],
        )


# flags of `data synth` (no input file: the message names the setting), what it must name and say
SYNTH = {
    "duration 1e9 s": (["--duration", "1e9"], "synthetic task", "would need"),
    "10^12 samples": (["--train", "1000000000000"], "synthetic task", "would need"),
    "100000 channels": (["--channels", "100000"], "n_channels", "must be at most 65536"),
    "one class": (["--classes", "1"], "n_classes", "must be an integer >= 2"),
}


@pytest.mark.parametrize("case", SYNTH, ids=list(SYNTH))
def test_bad_synthetic_task_settings(tmp_path, case):
    flags, names, says = SYNTH[case]
    refused(["data", "synth", "--out", tmp_path / "data", *flags], names=names, says=says, outputs=[tmp_path / "data"])


def _int8() -> str:
    return resources.files("delaynir.targets").joinpath("int8.toml").read_text()


# case id: (profile text made from int8.toml's, text the message must contain)
TARGETS = {
    "not TOML": (lambda t: t + "\n[limits", "is not valid TOML"),
    "no name": (lambda t: t.replace('name = "int8"', ""), "name"),
    "no limits": (lambda t: t.split("[limits]")[0], "limits"),
    "newer format": (lambda t: t.replace("format_version = 1", "format_version = 99"), "format_version"),
    "weight bits zero": (lambda t: t.replace("value = 8,", "value = 0,"), "weight_bits"),
    "weight bits text": (lambda t: t.replace("value = 8,", 'value = "eight",'), "weight_bits"),
    "negative delay limit": (lambda t: t.replace("value = inf,", "value = -1,"), "max_delay"),
    "limit without source": (
        lambda t: t.replace('source = "no hardware delay limit (generic target)", ', "", 1),
        "source",
    ),
    "unknown limit": (lambda t: t + '\nwarp_drive = { value = 1, source = "x", confirmed = true }\n', "warp_drive"),
    "unknown decay": (
        lambda t: t.replace(
            'value = "float", source = "float decays',
            'value = "magic", source = "',
        ),
        "decay",
    ),
    "empty": (lambda t: "", "name"),
}


@pytest.mark.parametrize("case", TARGETS, ids=list(TARGETS))
def test_bad_target_profile(tmp_path, case):
    make, says = TARGETS[case]
    profile = tmp_path / "chip.toml"
    profile.write_text(make(_int8()))
    refused(["targets", "--profile", profile], names=profile, says=says, inputs=[profile])


@pytest.mark.parametrize("content", [bytes(range(256)), b"\xff\xfe\x00name"], ids=["binary", "utf-16 bytes"])
def test_binary_target_profile(tmp_path, content):
    profile = tmp_path / "chip.toml"
    profile.write_bytes(content)
    refused(["targets", "--profile", profile], names=profile, says="cannot be read", inputs=[profile])


def test_bad_target_given_to_compile_writes_nothing(small_run, tmp_path):
    profile = tmp_path / "chip.toml"
    profile.write_text(TARGETS["weight bits zero"][0](_int8()))
    run = shutil.copytree(small_run, tmp_path / "run")
    refused(
        ["compile", run, "--target", profile, "--out", tmp_path / "m.h5"],
        names=profile,
        says="weight_bits",
        inputs=[profile, run],
        outputs=[tmp_path / "m.h5"],
    )
    refused(
        ["compile", run, "--target", tmp_path / "none.toml", "--out", tmp_path / "m.h5"],
        names="none.toml",
        says="does not exist",
        outputs=[tmp_path / "m.h5"],
    )
