"""Training presets: `delaynir train --preset rawhd-paper [--dry-run]`, and the paper's pipeline on spoken audio."""

import copy
import dataclasses
import json

import pytest

from delaynir.cli import main
from delaynir.errors import ConfigError
from delaynir.train.config import TrainConfig, load_config
from delaynir.train.presets import PRESETS, preset_values


def _dry_run(capsys, *argv) -> dict:
    assert main(["train", "--preset", "rawhd-paper", "--dry-run", "--json", *argv]) == 0
    return json.loads(capsys.readouterr().out)


def test_dry_run_prints_every_setting_with_its_origin(capsys):
    out = _dry_run(capsys)
    rows = {r["setting"]: r for r in out["settings"]}
    assert list(rows) == [f.name for f in dataclasses.fields(TrainConfig)]
    paper = {
        "hidden": [256],
        "tau_steps": 10.05,
        "max_delay": 25,
        "dropout": 0.4,
        "batch_size": 256,
        "epochs": 150,
        "lr": 5e-3,
        "lr_schedule": "one-cycle",
        "position_lr_schedule": "cosine",
        "batchnorm": True,
        "prune_l1": 1e-2,
        "regrow_magnitude": 1e-12,
        "rewire_interval": 1,
        "sigma_fraction": 0.25,
    }
    for key, value in paper.items():
        assert rows[key]["value"] == value and rows[key]["from"] == "preset rawhd-paper", key
    assert rows["lr"]["value"] * rows["position_lr_factor"]["value"] == pytest.approx(0.1)  # 100 × lr_w = 1e-3
    assert rows["sigma_init"]["value"] == pytest.approx(12 + 0.27) and rows["sigma_final"]["value"] == 0.5
    assert rows["val_fraction"]["from"] == "default" and rows["hidden"]["note"]
    assert any("--dale" in note for note in out["notes"])


def test_flags_and_config_files_override_the_preset(capsys, tmp_path):
    (tmp_path / "c.toml").write_text("dropout = 0.2\nbatch_size = 32\n")
    rows = {
        r["setting"]: r
        for r in _dry_run(capsys, "--config", str(tmp_path / "c.toml"), "--batch-size", "8", "--epochs", "3")[
            "settings"
        ]
    }
    assert (rows["dropout"]["value"], rows["dropout"]["from"]) == (0.2, "config file")
    assert (rows["batch_size"]["value"], rows["batch_size"]["from"]) == (8, "flag")
    assert (rows["epochs"]["value"], rows["epochs"]["from"], rows["epochs"]["note"]) == (3, "flag", "")
    assert main(["train", "--preset", "rawhd-paper", "--dry-run"]) == 0
    assert "sigma_init" in capsys.readouterr().out


def test_every_preset_value_is_a_valid_setting(monkeypatch):
    """Each preset loads, and the configuration holds each of its values unchanged, of the same type, with a note
    saying where it comes from; a preset with a value the configuration refuses fails to load."""
    assert list(PRESETS) == ["rawhd-paper"]
    for name, entries in PRESETS.items():
        values = copy.deepcopy(preset_values(name))  # a copy: loading cannot change what it is compared with
        config = load_config(None, base=preset_values(name)).to_dict()
        assert values and set(values) <= set(config)
        for key, value in values.items():
            assert config[key] == value and type(config[key]) is type(value), (name, key, config[key])
            assert entries[key][1].strip(), (name, key)  # the note
    monkeypatch.setitem(PRESETS, "broken", {**PRESETS["rawhd-paper"], "dropout": (1.5, "out of range")})
    with pytest.raises(ConfigError, match=r"dropout must be in \[0, 1\)"):
        load_config(None, base=preset_values("broken"))
    with pytest.raises(ConfigError, match="unknown preset"):
        preset_values("nope")


def test_training_without_data_is_a_clear_error(capsys):
    assert main(["train", "--preset", "rawhd-paper"]) == 2
    assert "--data and --out" in capsys.readouterr().err


def test_spoken_audio_to_verified_graded_model_with_the_paper_preset(tiny_speech, tmp_path, capsys):
    """data audio -> train --preset rawhd-paper -> compile int8 -> export -> verify, spike-exact everywhere."""
    frames, run, graph = tmp_path / "frames", tmp_path / "run", tmp_path / "g.h5"
    assert main(["-q", "data", "audio", "--in", str(tiny_speech), "--out", str(frames)]) == 0
    assert (
        main(
            [
                "-q",
                "train",
                "--preset",
                "rawhd-paper",
                "--data",
                str(frames),
                "--out",
                str(run),
                "--epochs",
                "2",
                "--hidden",
                "32",
                "--device",
                "cpu",
            ]
        )
        == 0
    )
    assert main(["-q", "compile", str(run), "--target", "int8", "--out", str(graph)]) == 0
    assert main(["-q", "export", str(graph), "--format", "nir", "-o", str(tmp_path / "g.nir")]) == 0
    assert main(["-q", "export", str(graph), "--format", "onnx", "-o", str(tmp_path / "g.onnx")]) == 0
    capsys.readouterr()
    assert (
        main(
            [
                "verify",
                str(graph),
                "--data",
                str(frames),
                "--sims",
                "reference,norse,snntorch,onnxruntime",
                "--threshold",
                "1.0",
                "--json",
            ]
        )
        == 0
    )
    report = json.loads(capsys.readouterr().out)
    assert report["passed"] and report["n"] == 60
    assert all(set(r["spike_agreement"].values()) == {1.0} for r in report["simulators"].values())
