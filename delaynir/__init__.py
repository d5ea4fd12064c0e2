"""delaynir: spiking neural networks with learnable synaptic delays, compiled to integer-delay graphs for
neuromorphic hardware and verified across simulators.

The public API, imported on first use (``import delaynir`` loads no torch)::

    model = delaynir.DelaySNN(delaynir.ModelConfig(n_inputs=12, n_outputs=3, hidden=[32]))
    ...                                                  # train it in your own loop (delaynir.readout_loss)
    graph, report = delaynir.compile_model(model, delaynir.load_target("int8"))
    delaynir.save_graph(graph, "model.delaygraph.h5")
    delaynir.export_graph(graph, "model.nir", "nir")     # or "onnx", or a target package's format
    result = delaynir.simulate(graph, x)                 # the reference simulator: what the graph computes

The pipeline's stages are the package's folders: ``ir`` (the DelayGraph), ``numerics``, ``reference`` (the
simulator), ``hardware`` (target profiles), ``data``, ``nn``, ``train``, ``compile``, ``export``,
``handoff`` (verify, bundle, report) and ``cli``; docs/design.md describes them.
"""

from __future__ import annotations

import importlib
import logging
from typing import TYPE_CHECKING, Any

from delaynir.errors import DelayNIRError

__version__ = "0.1.0"

#: Public name -> the module that defines it.
_API = {
    "DelayGraph": "delaynir.ir.graph",
    "Layer": "delaynir.ir.graph",
    "Projection": "delaynir.ir.graph",
    "InputSpec": "delaynir.ir.graph",
    "load_graph": "delaynir.ir.graph_io",
    "save_graph": "delaynir.ir.graph_io",
    "simulate": "delaynir.reference.simulate",
    "SimulationResult": "delaynir.reference.simulate",
    "load_target": "delaynir.hardware.profile",
    "check_fit": "delaynir.hardware.fit",
    "DelaySNN": "delaynir.nn.model",
    "ModelConfig": "delaynir.nn.model",
    "readout_loss": "delaynir.nn.model",
    "TrainConfig": "delaynir.train.config",
    "make_config": "delaynir.train.config",
    "compile_model": "delaynir.compile.compiler",
    "compile_run": "delaynir.compile.compiler",
    "export_nir": "delaynir.export.nir_io",
    "from_nir": "delaynir.export.nir_io",
    "export_graph": "delaynir.export.executors",
    "verify": "delaynir.handoff.verify",
    "verify_path": "delaynir.handoff.verify",
    "write_bundle": "delaynir.handoff.bundle",
}

__all__ = [
    "DelayGraph",
    "DelayNIRError",
    "DelaySNN",
    "InputSpec",
    "Layer",
    "ModelConfig",
    "Projection",
    "SimulationResult",
    "TrainConfig",
    "__version__",
    "check_fit",
    "compile_model",
    "compile_run",
    "export_graph",
    "export_nir",
    "from_nir",
    "load_graph",
    "load_target",
    "make_config",
    "readout_loss",
    "save_graph",
    "simulate",
    "verify",
    "verify_path",
    "write_bundle",
]

if TYPE_CHECKING:
    from delaynir.compile.compiler import compile_model, compile_run
    from delaynir.export.executors import export_graph
    from delaynir.export.nir_io import export_nir, from_nir
    from delaynir.handoff.bundle import write_bundle
    from delaynir.handoff.verify import verify, verify_path
    from delaynir.hardware.fit import check_fit
    from delaynir.hardware.profile import load_target
    from delaynir.ir.graph import DelayGraph, InputSpec, Layer, Projection
    from delaynir.ir.graph_io import load_graph, save_graph
    from delaynir.nn.model import DelaySNN, ModelConfig, readout_loss
    from delaynir.reference.simulate import SimulationResult, simulate
    from delaynir.train.config import TrainConfig, make_config


def __getattr__(name: str) -> Any:
    """Import a public name's module when the name is first used."""
    if name not in _API:
        raise AttributeError(f"module 'delaynir' has no attribute {name!r}")
    value = getattr(importlib.import_module(_API[name]), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)


logging.getLogger(__name__).addHandler(logging.NullHandler())
