"""Shared fixtures: small synthetic spike files and a tiny spoken-digit set generated once per test session."""

import os
import shutil

import numpy as np
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

# The session's trained runs. A run is trained once and shared by every test that reads it: treat it as
# read-only (a test that changes a run copies it, or loads its model, which is a copy in memory). Tests
# assert what a run's files hold and what compile/export guarantee for any weights, never an accuracy or
# another number that depends on the order a CPU's kernels sum floats in during training (it differs
# between machines): for those, see test_synthetic_task.py.


def _train(settings: dict, data, out) -> dict:
    """train() with ``settings`` on ``data`` into ``out``; its summary."""
    from delaynir.train.config import make_config
    from delaynir.train.loop import train

    return train(make_config(settings), data, out)


@pytest.fixture(scope="session")
def small_task(tmp_path_factory):
    """A folder with data/ (train.h5, test.h5) of a 12-channel, 3-class task; the small runs are trained in it."""
    root = tmp_path_factory.mktemp("small_run")
    generate_synthetic(
        root / "data",
        SynthConfig(n_channels=12, n_classes=3, n_train=64, n_test=24, duration=0.4, spread=20, n_groups=3, seed=1),
    )
    return root


@pytest.fixture(scope="session")
def small_run(small_task):
    """A run directory trained with SMALL_RUN_SETTINGS (BatchNorm on), its data in ../data; read-only."""
    _train(SMALL_RUN_SETTINGS, small_task / "data", small_task / "run")
    return small_task / "run"


@pytest.fixture(scope="session")
def small_run_no_bn(small_task):
    """small_run's settings and data without BatchNorm (nothing to fold), its data in ../data; read-only."""
    _train(dict(SMALL_RUN_SETTINGS, batchnorm=False), small_task / "data", small_task / "run-no-bn")
    return small_task / "run-no-bn"


#: A run on graded (real-valued) input frames: one hidden layer that spikes (threshold 0.5).
GRADED_RUN_SETTINGS = {
    "hidden": [16],
    "max_delay": 8,
    "epochs": 2,
    "batch_size": 16,
    "dropout": 0.1,
    "val_fraction": 0.25,
    "threshold": 0.5,
    "seed": 1,
}


def sweep_frames(n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Two classes of 8-band, 30-frame graded samples: a rising or a falling sweep of energy, plus noise."""
    labels = np.arange(n) % 2
    t = np.arange(30)[:, None]
    bands = np.arange(8)[None, :]
    x = np.stack([np.exp(-0.5 * ((bands - (t / 4 if y == 0 else 7 - t / 4)) / 1.2) ** 2) for y in labels])
    return (1.5 * x + 0.2 * rng.random(x.shape)).astype(np.float32), labels


@pytest.fixture(scope="session")
def graded_run(tmp_path_factory):
    """A run trained with GRADED_RUN_SETTINGS on sweep_frames (its data in ../data); read-only."""
    from delaynir.data.frames import write_frames_file

    root = tmp_path_factory.mktemp("graded")
    rng = np.random.default_rng(0)
    for split, n in (("train", 48), ("test", 16)):
        x, y = sweep_frames(n, rng)
        write_frames_file(root / "data" / f"{split}.h5", x, y, dt=0.01, speakers=np.arange(n) % 4)
    _train(GRADED_RUN_SETTINGS, root / "data", root / "run")
    return root / "run"


#: The built-in task's claims (tests/test_synthetic_task.py): the demo's settings, fewer epochs, seed 0.
DEMO_TASK_EPOCHS = 8


@pytest.fixture(scope="session")
def demo_task_runs(tmp_path_factory):
    """(folder, {delays: training summary}): the demo's learned-delay model and its no-delay ablation, trained
    for DEMO_TASK_EPOCHS on the default synthetic task in folder/learned and folder/none (data in folder/data)."""
    from delaynir.handoff.demo import DEMO_SETTINGS

    root = tmp_path_factory.mktemp("task")
    generate_synthetic(root / "data", SynthConfig(seed=0))
    summaries = {
        d: _train(dict(DEMO_SETTINGS, epochs=DEMO_TASK_EPOCHS, delays=d), root / "data", root / d)
        for d in ("learned", "none")
    }
    return root, summaries


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
    from delaynir.export.executors import ExecutorUnavailable
    from delaynir.targets.loihi2.executor import lava_python

    try:
        lava_python()
    except ExecutorUnavailable as exc:
        if _under_ci():
            pytest.fail(str(exc))
        return str(exc)
    return None


def _tool_missing(environment) -> str | None:
    """Why a tool environment (delaynir.export.tool_env) cannot run here, None where it can; fails under CI=true
    (.ci/run builds every one)."""
    from delaynir.export.executors import ExecutorUnavailable

    try:
        environment.python()
    except ExecutorUnavailable as exc:
        if _under_ci():
            pytest.fail(str(exc))
        return str(exc)
    return None


@pytest.fixture
def need_nest() -> None:
    """Skip a test that runs NEST where its environment is not built (targets/spinnaker/build_nest_env.sh)."""
    from delaynir.targets.spinnaker.nest_executor import ENVIRONMENT

    missing = _tool_missing(ENVIRONMENT)
    if missing:
        pytest.skip(missing)


@pytest.fixture
def need_spynnaker() -> None:
    """Skip a test that runs sPyNNaker where its environment is not built (targets/spinnaker/build_spynnaker_env.sh)."""
    from delaynir.targets.spinnaker.mapping import ENVIRONMENT

    missing = _tool_missing(ENVIRONMENT)
    if missing:
        pytest.skip(missing)


@pytest.fixture
def need_lava(lava_missing) -> None:
    """Skip a test that runs Lava where its environment is not built (targets/loihi2/build_lava_env.sh)."""
    if lava_missing:
        pytest.skip(lava_missing)
