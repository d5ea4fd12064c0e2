"""Shared fixtures: small synthetic spike files and a tiny spoken-digit set generated once per test session."""

import os
import shutil

import pytest

from delaynir.data import SynthConfig, generate_synthetic


@pytest.fixture(scope="session")
def small_synth_config() -> SynthConfig:
    """A small, fast synthetic task: 12 channels, 3 classes, 4 speakers."""
    return SynthConfig(n_channels=12, n_classes=3, n_train=90, n_test=30, n_speakers=4, seed=3)


@pytest.fixture(scope="session")
def small_synth_files(tmp_path_factory, small_synth_config):
    """(train.h5, test.h5) of ``small_synth_config``, written once; treat as read-only."""
    return generate_synthetic(tmp_path_factory.mktemp("synth"), small_synth_config)


@pytest.fixture(scope="session")
def tiny_data(tmp_path_factory):
    """A directory with train.h5/test.h5 of a tiny task (10 channels, 3 classes, 0.4 s) for training tests."""
    out = tmp_path_factory.mktemp("tiny")
    generate_synthetic(
        out, SynthConfig(n_channels=10, n_classes=3, n_train=60, n_test=20, duration=0.4, spread=20, n_groups=3, seed=3)
    )
    return out


#: A tiny trained model that spikes (threshold 0.5) in both hidden layers: enough for export,
#: bundle and report tests, trained once per session.
SMALL_RUN_SETTINGS = {
    "hidden": [16, 12],
    "max_delay": 12,
    "epochs": 2,
    "batch_size": 16,
    "lr": 5e-3,
    "dropout": 0.1,
    "val_fraction": 0.25,
    "n_steps": 40,
    "threshold": 0.5,
}


@pytest.fixture(scope="session")
def small_run(tmp_path_factory):
    """A run directory trained with SMALL_RUN_SETTINGS on a 12-channel task (data beside it); treat as read-only."""
    from delaynir.config import make_config
    from delaynir.train import train

    root = tmp_path_factory.mktemp("small_run")
    generate_synthetic(
        root / "data",
        SynthConfig(n_channels=12, n_classes=3, n_train=64, n_test=24, duration=0.4, spread=20, n_groups=3, seed=1),
    )
    train(make_config(SMALL_RUN_SETTINGS), root / "data", root / "run")
    return root / "run"


#: The tiny spoken-digit set: speaker 4 only in test; speaker 0 in train (trial 0) and test (trial 1).
TINY_SPEECH = ["--trials", "2", "--speakers", "0,4", "--test-speakers", "4"]


def _under_ci() -> bool:
    """CI=true: a tool .ci/run provides (chromium, espeak-ng, Lava's environment) must be there."""
    return os.environ.get("CI", "").lower() == "true"


def _need_espeak() -> None:
    """Skip without espeak-ng, except under CI=true, where it fails (.ci/run installs it)."""
    if shutil.which("espeak-ng") is None:
        if _under_ci():
            pytest.fail("espeak-ng is not installed; .ci/run installs it (apt-get install -y espeak-ng)")
        pytest.skip("espeak-ng is not installed (apt-get install -y espeak-ng)")


@pytest.fixture(scope="session")
def need_espeak():
    """The check a test calls where it needs espeak-ng: skips (fails under CI=true) without it."""
    return _need_espeak


@pytest.fixture(scope="session")
def tiny_speech(tmp_path_factory):
    """A tiny spoken-digit set made once with the CLI (HD-layout audio + SHD spikes): 2 speakers x 20 classes x
    2 trials; the speech tests and the audio-feature tests both read it; treat as read-only."""
    from delaynir.cli import main

    _need_espeak()
    out = tmp_path_factory.mktemp("speech") / "digits"
    assert main(["-q", "data", "speech", "--out", str(out), *TINY_SPEECH, "--json"]) == 0
    return out


@pytest.fixture(scope="session")
def lava_missing() -> str | None:
    """Why Lava's environment cannot run here, None where it can; fails under CI=true (.ci/run builds it)."""
    from delaynir.converters.lava import lava_python
    from delaynir.executors import ExecutorUnavailable

    try:
        lava_python()
    except ExecutorUnavailable as exc:
        if _under_ci():
            pytest.fail(str(exc))
        return str(exc)
    return None


@pytest.fixture
def need_lava(lava_missing) -> None:
    """Skip a test that runs Lava where its environment is not built (targets/loihi2/build_lava_env.sh)."""
    if lava_missing:
        pytest.skip(lava_missing)
