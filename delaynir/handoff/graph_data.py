"""A DelayGraph's data: a data file binned and encoded as the graph's input says (``graph_loader``, which
verify, bundle and report read through), and the graph's accuracy on it in the reference simulator
(``evaluate_graph``, ``delaynir simulate``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from delaynir.data import make_loader
from delaynir.errors import ConfigError, DataFormatError
from delaynir.ir.graph import encode_input
from delaynir.ir.graph_io import load_graph
from delaynir.reference.simulate import simulate
from delaynir.train.config import make_config
from delaynir.train.run_dir import data_file, input_encoding, open_dataset


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
