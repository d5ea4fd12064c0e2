"""Training runs: determinism, checkpoint/resume equality, safe loading, evaluation, the delay benefit."""

import json

import pytest
import torch

from delaynir.data import SynthConfig, generate_synthetic
from delaynir.errors import CheckpointError
from delaynir.train import checkpoints
from delaynir.train.config import make_config
from delaynir.train.evaluate import evaluate_run
from delaynir.train.loop import train
from delaynir.train.run_dir import Run

TINY = {
    "hidden": [12],
    "max_delay": 8,
    "epochs": 3,
    "batch_size": 16,
    "lr": 5e-3,
    "dropout": 0.2,
    "val_fraction": 0.25,
    "n_steps": 40,
}


def _state(run_dir):
    return checkpoints.load_pt(run_dir / checkpoints.CHECKPOINT)["model"]


def _assert_same_state(a, b):
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k


def test_same_seed_gives_identical_runs(tiny_data, tmp_path):
    config = make_config(TINY)
    train(config, tiny_data, tmp_path / "a")
    train(config, tiny_data, tmp_path / "b")
    _assert_same_state(_state(tmp_path / "a"), _state(tmp_path / "b"))
    other = make_config(dict(TINY, seed=1))
    train(other, tiny_data, tmp_path / "c")
    assert not torch.equal(_state(tmp_path / "a")["delays.0.weight"], _state(tmp_path / "c")["delays.0.weight"])


def test_resume_after_a_crash_equals_an_uninterrupted_run(tiny_data, tmp_path, monkeypatch):
    config = make_config(TINY)
    train(config, tiny_data, tmp_path / "full")

    import delaynir.train.loop as train_module

    real_evaluate = train_module.evaluate_model
    calls = {"n": 0}

    def crash_in_epoch_two(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 2:
            raise KeyboardInterrupt  # killed after epoch 2's batches, before its checkpoint
        return real_evaluate(*args, **kwargs)

    monkeypatch.setattr(train_module, "evaluate_model", crash_in_epoch_two)
    with pytest.raises(KeyboardInterrupt):
        train(config, tiny_data, tmp_path / "crashed")
    monkeypatch.setattr(train_module, "evaluate_model", real_evaluate)
    assert [m["epoch"] for m in checkpoints.read_metrics(tmp_path / "crashed")] == [1]
    assert checkpoints.load_pt(tmp_path / "crashed" / checkpoints.CHECKPOINT)["epoch"] == 1

    train(make_config(dict(TINY, epochs=99)), tiny_data, tmp_path / "crashed", resume=True)  # stored config wins
    _assert_same_state(_state(tmp_path / "full"), _state(tmp_path / "crashed"))
    strip = lambda rows: [{k: v for k, v in r.items() if k != "seconds"} for r in rows]  # noqa: E731
    assert strip(checkpoints.read_metrics(tmp_path / "full")) == strip(checkpoints.read_metrics(tmp_path / "crashed"))


def test_existing_run_directory_is_never_overwritten(tiny_data, tmp_path):
    out = tmp_path / "run"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    with pytest.raises(CheckpointError, match="not empty.*--resume"):
        train(make_config(TINY), tiny_data, out)
    assert (out / "notes.txt").read_text() == "mine"
    with pytest.raises(CheckpointError, match="checkpoint.pt does not exist"):
        train(make_config(TINY), tiny_data, out, resume=True)


class Payload:
    """Not a tensor or plain value: weights_only loading must refuse it."""


def test_checkpoints_are_loaded_without_unpickling_objects(tmp_path):
    path = tmp_path / "evil.pt"
    torch.save({"format_version": checkpoints.FORMAT_VERSION, "x": Payload()}, path)
    with pytest.raises(CheckpointError, match="cannot be loaded safely"):
        checkpoints.load_pt(path)
    path.write_bytes(b"\x00garbage")
    with pytest.raises(CheckpointError, match="corrupt"):
        checkpoints.load_pt(path)
    torch.save({"format_version": 999}, path)
    with pytest.raises(CheckpointError, match="format version"):
        checkpoints.load_pt(path)


def test_run_directory_contents_and_evaluation(tiny_data, tmp_path):
    out = tmp_path / "run"
    summary = train(make_config(TINY), tiny_data, out)
    assert sorted(p.name for p in out.iterdir()) == sorted(
        [checkpoints.CONFIG, checkpoints.METRICS, checkpoints.CHECKPOINT, checkpoints.MODEL]
    )
    rows = checkpoints.read_metrics(out)
    assert [r["epoch"] for r in rows] == [1, 2, 3]
    assert {"loss", "train_accuracy", "val_accuracy", "sigma", "spike_rates", "lr"} <= rows[0].keys()
    assert summary["best_val_accuracy"] == max(r["val_accuracy"] for r in rows)
    assert "max_delay = 8" in (out / checkpoints.CONFIG).read_text()
    result = evaluate_run(out, tiny_data)
    assert result["n"] == 20 and 0 <= result["accuracy"] <= 1 and "accuracy_gaussian" in result
    run = Run(out)
    assert run.payload["epoch"] == summary["best_epoch"]
    assert not run.model.training
    json.dumps(result)


def test_evaluating_on_incompatible_data_is_an_error(tiny_data, tmp_path):
    out = tmp_path / "run"
    train(make_config(dict(TINY, epochs=1)), tiny_data, out)
    other = tmp_path / "other"
    generate_synthetic(
        other, SynthConfig(n_channels=14, n_classes=3, n_train=10, n_test=10, duration=0.4, spread=20, n_groups=3)
    )
    with pytest.raises(CheckpointError, match="14 inputs"):
        evaluate_run(out, other)


def test_evaluate_reports_the_speakers_never_seen_in_training(small_run, tmp_path):
    """Test samples of speakers absent from the training file are scored on their own as well."""
    import h5py

    from delaynir.data import write_spike_file
    from delaynir.train.evaluate import evaluate_run

    with h5py.File(small_run.parent / "data" / "test.h5") as f:
        times, units = list(f["spikes/times"][()]), list(f["spikes/units"][()])
        labels, speakers = f["labels"][()], f["extra/speaker"][()].astype(int)
        attrs = dict(f.attrs)
    speakers[::3] = 99  # a speaker the training file does not have
    both = write_spike_file(
        tmp_path / "both.h5",
        times,
        units,
        labels,
        speakers=speakers,
        n_channels=int(attrs["n_channels"]),
        duration=float(attrs["duration"]),
    )
    only = write_spike_file(
        tmp_path / "only.h5",
        times[::3],
        units[::3],
        labels[::3],
        speakers=speakers[::3],
        n_channels=int(attrs["n_channels"]),
        duration=float(attrs["duration"]),
    )
    result = evaluate_run(small_run, both, device="cpu")
    unseen = result["unseen_speakers"]
    assert unseen["speakers"] == [99] and unseen["n"] == len(times[::3])
    assert unseen["accuracy"] == evaluate_run(small_run, only, device="cpu")["accuracy"]
    assert "unseen_speakers" not in evaluate_run(small_run, small_run.parent / "data" / "test.h5", device="cpu")


def test_learning_rate_schedules_per_group():
    """Weights and delay positions follow their own schedule; one-cycle is torch's OneCycleLR curve."""
    from delaynir.train.loop import lr_factor

    total = 101
    one_cycle = [lr_factor("one-cycle", s, total_steps=total) for s in range(total)]
    assert one_cycle[0] == pytest.approx(1 / 25) and one_cycle[30] == pytest.approx(1.0)
    assert one_cycle[-1] == pytest.approx(1 / 25e4) and max(one_cycle) == pytest.approx(1.0)
    assert one_cycle.index(max(one_cycle)) == 30  # the peak after 30 % of the steps
    cosine = [lr_factor("cosine", s, total_steps=total) for s in range(total)]
    assert cosine[0] == 1.0 and cosine[50] == pytest.approx(0.5) and cosine[-1] == pytest.approx(0.0, abs=1e-12)
    assert lr_factor("constant", 77, total_steps=total) == 1.0

    from delaynir.train.loop import _build_state

    config = make_config(dict(TINY, epochs=4, lr_schedule="one-cycle", position_lr_schedule="cosine"))
    state = _build_state(config, 5, 3, steps_per_epoch=10, device=torch.device("cpu"))
    for _ in range(7):
        state.optimizer.step()
        state.scheduler.step()
    weights, positions = (g["lr"] for g in state.optimizer.param_groups)
    assert weights == pytest.approx(config.lr * lr_factor("one-cycle", 7, total_steps=40))
    assert positions == pytest.approx(config.lr * config.position_lr_factor * lr_factor("cosine", 7, total_steps=40))
    assert positions / config.position_lr_factor > weights  # cosine starts high, one-cycle warms up
