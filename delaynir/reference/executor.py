"""The reference simulator as an executor: ``load(path).run(x)`` on a DelayGraph file
(``delaynir.reference.simulate``)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import TYPE_CHECKING

from delaynir.ir.graph import DelayGraph
from delaynir.ir.graph_io import load_graph
from delaynir.reference.simulate import SimulationResult, simulate

if TYPE_CHECKING:
    import numpy as np
    import torch


@dataclass
class ReferenceModel:
    """A DelayGraph ready to run in the reference simulator."""

    graph: DelayGraph

    def run(self, inputs: torch.Tensor | np.ndarray) -> SimulationResult:
        """``inputs`` (T, B, n_inputs) through the graph from zero state, every layer recorded."""
        return simulate(self.graph, inputs, record=True)


def load(path: str | os.PathLike) -> ReferenceModel:
    """The DelayGraph file at ``path`` (validated, GraphFormatError otherwise) as a runnable model."""
    return ReferenceModel(load_graph(path))
