"""Evaluate a trained run on a spike file: rounded integer delays (the deployed form) and,
for comparison, the training-time Gaussian kernels at the run's final σ."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from delaynir.data import make_loader
from delaynir.data.shd import SPEAKER, spike_file
from delaynir.errors import ConfigError, DataFormatError
from delaynir.ir.graph import encode_input
from delaynir.train.config import make_config
from delaynir.train.loop import evaluate_model, resolve_device
from delaynir.train.run_dir import Run, data_file, input_encoding, open_dataset


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


class EncodedLoader:
    """Batches (x, y) of a loader with x as the graph's input receives it (graph.encode_input: the codes of
    quantised graded input)."""

    def __init__(self, loader, graph):
        self.loader, self.graph = loader, graph

    def __len__(self) -> int:
        return len(self.loader)

    def __iter__(self):
        for x, y in self.loader:
            yield encode_input(self.graph, x), y


def graph_loader(graph, data: str | Path, *, batch_size: int = 256, samples: int | None = None):
    """(loader over ``data`` binned and encoded as the graph's input says, the data file); a file or a
    directory's test.h5, its first ``samples`` samples if given. Spike counts and graded values must match
    the graph's input encoding."""
    if samples is not None and samples < 1:
        raise ConfigError(f"--samples must be at least 1 (got {samples}); leave it out to use every sample")
    path = data_file(data, "test.h5")
    info = graph.input
    config = make_config({"dt": float(graph.dt if info.dt is None else info.dt)})
    dataset = open_dataset(path, config, n_steps=info.n_steps, pool=info.pool)
    if dataset.n_inputs != graph.n_inputs:
        raise DataFormatError(
            f"{path} gives {dataset.n_inputs} inputs after pooling by {dataset.pool}; the graph takes {graph.n_inputs}"
        )
    encoding = input_encoding(dataset).encoding
    if encoding != graph.encoding:
        raise DataFormatError(
            f"{path} holds {encoding} input but the graph takes {graph.encoding} input; pass data "
            "made the way the model's training data was"
        )
    n = len(dataset) if samples is None else min(samples, len(dataset))
    loader = make_loader(dataset, list(range(n)), batch_size=batch_size, shuffle=False)
    return EncodedLoader(loader, graph), path


def evaluate_graph(graph_path: str | Path, data: str | Path, *, batch_size: int = 256) -> dict[str, Any]:
    """Accuracy of a DelayGraph file in the reference simulator, binning ``data`` as the graph's input says."""
    from delaynir.ir.graph_io import load_graph
    from delaynir.reference.simulate import simulate

    graph = load_graph(graph_path)
    loader, path = graph_loader(graph, data, batch_size=batch_size)
    correct = total = 0
    for x, y in loader:
        correct += int((simulate(graph, x).predictions == y).sum())
        total += len(y)
    return {
        "graph": str(graph_path),
        "data": str(path),
        "n": total,
        "accuracy": correct / max(total, 1),
        "target": graph.target,
    }
