"""delaynir.train.run_dir.Run: a run directory opened once, a fine-tuned run's stored weight grid, old and damaged
runs."""

import shutil

import pytest
import torch

from delaynir.compile.compiler import compile_in_memory, compile_run
from delaynir.errors import CheckpointError, TargetError
from delaynir.hardware.profile import load_target
from delaynir.numerics.quantize import WeightGrid, grid_for
from delaynir.train import checkpoints
from delaynir.train.loop import finetune
from delaynir.train.run_dir import Run

INT8 = WeightGrid(q_min=-128, q_max=127, step=1, per_output_channel=True)


def _copy_run(source, dest, **changes):
    """``dest``: a copy of run ``source`` whose model.pt has ``changes`` applied (None deletes an entry)."""
    shutil.copytree(source, dest)
    payload = checkpoints.load_pt(dest / checkpoints.MODEL)
    for key, value in changes.items():
        if value is None:
            payload.pop(key, None)
        else:
            payload[key] = value
    checkpoints.save_pt(dest / checkpoints.MODEL, payload)
    return dest


def _outputs(model, n_inputs):
    x = (torch.rand(20, 3, n_inputs, generator=torch.Generator().manual_seed(0)) < 0.3).float()
    with torch.no_grad():
        return model(x)


def test_a_run_holds_everything_after_training_needs(small_run):
    run = Run(str(small_run))
    assert Run.of(run) is run
    assert not run.model.training and all(layer.kernel == "auto" for layer in run.model.delays)
    assert run.config.hidden == [16, 12] and run.weight_grid is None
    assert run.payload["weight_grid"] is None
    info = run.data_info
    assert run.dt == run.config.dt == info["dt"]
    assert run.input_spec.to_dict() == {"n_channels": 12, "pool": 1, "n_steps": 40, "dt": run.dt, "encoding": "spikes"}
    assert run.provenance["source_run"] == str(small_run.resolve())
    assert run.train_file == small_run.parent / "data" / "train.h5"
    assert run.test_file() == small_run.parent / "data" / "test.h5"
    assert run.test_file(small_run.parent / "data") == run.test_file()
    assert [row["epoch"] for row in run.metrics] == [1, 2]
    assert len(run.dataset()) == info["n_train"] + info["n_val"]
    assert sum(len(y) for _, y in run.validation_loader(batch_size=8)) == info["n_val"]
    graph, _report = compile_in_memory(run, load_target("float"))
    assert graph.input == run.input_spec and graph.provenance["epoch"] == run.payload["epoch"]


@pytest.fixture(scope="module")
def tuned(small_run, tmp_path_factory):
    """(fine-tuned run, its target .toml): small_run fine-tuned for one epoch for a copy of the int8 profile."""
    root = tmp_path_factory.mktemp("tuned")
    (root / "profiles").mkdir()
    profile = root / "profiles" / "int8.toml"
    shutil.copy(load_target("int8").path, profile)
    finetune(small_run, str(profile), root / "run", epochs=1)
    return root / "run", profile


def test_a_fine_tuned_run_stores_its_weight_grid(tuned, monkeypatch, tmp_path):
    run_dir, profile = tuned
    assert Run(run_dir).payload["weight_grid"] == {"q_min": -128, "q_max": 127, "step": 1, "per_output_channel": True}

    def no_target(name):
        raise AssertionError(f"a target profile was read: {name}")

    monkeypatch.setattr("delaynir.hardware.profile.load_target", no_target)
    run = Run(run_dir)
    assert run.config.quantize_target == str(profile)
    assert run.weight_grid == INT8
    assert all(layer.weight_transform is not None and layer.weight_transform.grid == INT8 for layer in run.model.delays)
    monkeypatch.undo()
    moved = tmp_path / "moved.toml"
    shutil.move(profile, moved)  # the profile it was fine-tuned for is gone: compiling needs only the run
    try:
        report = compile_run(run_dir, "int8", tmp_path / "g.h5")
    finally:
        shutil.move(moved, profile)
    assert report.validation["prediction_agreement"] == 1.0


def test_a_fine_tuned_run_written_before_grids_were_stored_still_loads(tuned, tmp_path):
    run_dir, profile = tuned
    old = _copy_run(run_dir, tmp_path / "old", weight_grid=None)
    assert "weight_grid" not in checkpoints.load_pt(old / checkpoints.MODEL)
    run = Run(old)
    assert run.weight_grid == grid_for(load_target(profile)) == INT8
    n_inputs = run.data_info["n_inputs"]
    assert torch.equal(_outputs(run.model, n_inputs), _outputs(Run(run_dir).model, n_inputs))
    moved = tmp_path / "moved.toml"
    shutil.move(profile, moved)
    try:
        with pytest.raises(
            TargetError, match=rf"{old / checkpoints.MODEL} was fine-tuned .*fine-tune the source run again"
        ):
            Run(old)
    finally:
        shutil.move(moved, profile)


def test_an_old_run_without_a_grid_entry_loads(small_run, tmp_path):
    old = _copy_run(small_run, tmp_path / "old", weight_grid=None)
    run = Run(old)
    assert run.weight_grid is None
    assert torch.equal(_outputs(run.model, 12), _outputs(Run(small_run).model, 12))


@pytest.mark.parametrize(
    "damage, message",
    [
        ("no model.pt", r"model.pt does not exist; is this a run directory written by `delaynir train`"),
        ("unknown setting", r"model.pt: unknown setting\(s\) bogus; .*retrain the run"),
        ("other model", r"model.pt does not match this delaynir version's model \(RuntimeError.*retrain the run"),
    ],
)
def test_a_damaged_run_is_one_clear_error(small_run, tmp_path, damage, message):
    """The API's side of the bad-input corpus (tests/bad_inputs/test_run_files.py runs the CLI on many more)."""
    bad = tmp_path / "bad"
    if damage == "no model.pt":
        bad.mkdir()
    else:
        stored = checkpoints.load_pt(small_run / checkpoints.MODEL)
        _copy_run(
            small_run,
            bad,
            **{
                "unknown setting": {"config": dict(stored["config"], bogus=1)},
                "other model": {"model_config": dict(stored["model_config"], hidden=[7, 12])},
            }[damage],
        )
    with pytest.raises(CheckpointError, match=message) as error:
        Run(bad)
    assert str(bad / checkpoints.MODEL) in str(error.value)
