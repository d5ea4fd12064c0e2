"""Evaluate a trained run on a spike file: rounded integer delays (the deployed form) and,
for comparison, the training-time Gaussian kernels at the run's final σ."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from delaynir.data import make_loader
from delaynir.data.shd import SPEAKER, spike_file
from delaynir.train.loop import evaluate_model, resolve_device
from delaynir.train.run_dir import Run, data_file


def evaluate_run(
    run_dir: str | Path, data: str | Path, *, device: str = "auto", batch_size: int = 256
) -> dict[str, Any]:
    """Accuracy and loss of a run's best model on ``data`` (a file, or a directory's test.h5)."""
    path = data_file(data, "test.h5")
    run = Run(run_dir)
    dataset = run.dataset(path)
    config = run.config
    dev = resolve_device(device)
    model = run.model.to(dev)
    loader = make_loader(dataset, list(range(len(dataset))), batch_size=batch_size, shuffle=False)
    rounded = evaluate_model(model, loader, dev, kernel="rounded")
    result = {
        "run_dir": str(run_dir),
        "data": str(path),
        "n": rounded["n"],
        "delays": config.delays,
        "accuracy": rounded["accuracy"],
        "loss": rounded["loss"],
        "spike_rates": rounded["spike_rates"],
    }
    if config.delays == "learned" and not config.quantize_target:
        gaussian = evaluate_model(model, loader, dev, kernel="gaussian")
        result.update(
            accuracy_gaussian=gaussian["accuracy"], loss_gaussian=gaussian["loss"], sigma=run.payload["sigma"]
        )
    unseen = unseen_speaker_samples(dataset, run.train_file)
    if unseen is not None:
        speakers, indices = unseen
        held = evaluate_model(
            model, make_loader(dataset, indices, batch_size=batch_size, shuffle=False), dev, kernel="rounded"
        )
        result["unseen_speakers"] = {"speakers": speakers, "n": held["n"], "accuracy": held["accuracy"]}
    return result


def unseen_speaker_samples(dataset, train_file: str | Path) -> tuple[list[int], list[int]] | None:
    """(speaker ids, sample indices) of ``dataset``'s speakers that never occur in ``train_file``.

    None when either file has no speaker ids, the training file is no longer there, or every
    speaker was seen in training.
    """
    if dataset.speakers is None or not Path(train_file).is_file():
        return None
    with spike_file(train_file) as f:
        if SPEAKER not in f:
            return None
        seen = np.unique(f[SPEAKER][()])
    mask = ~np.isin(dataset.speakers, seen)
    if not mask.any():
        return None
    return np.unique(dataset.speakers[mask]).tolist(), np.flatnonzero(mask).tolist()
