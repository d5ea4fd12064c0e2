"""Run a PyNN network file (``delaynir.targets.spinnaker.pynn_export``) in NEST: ``load(path).run(x)``.

NEST 3.10 lives in its own environment (``targets/spinnaker/build_nest_env.sh``) and runs in a subprocess: the
runner ``nest_run.py``, executed by that environment's python (``$DELAYNIR_NEST_PYTHON``, else ``bin/python`` of
``$NEST_ENV``, else of ``~/.cache/delaynir/nest-env``), builds the network from the file through NEST's own API
(PyNN 0.13's NEST backend does not run with NEST 3.10) and runs every sample from zero state. The mapping is in
``nest_run.py``; it reproduces the float graph: the DelayGraph's equations in float64, in NEST's own neuron
update, with identical spikes (docs/pynn-format.md). The result holds every lif layer's spikes and the li readout's
membrane (unit · V); NEST records a spiking neuron's V after its reset, so spiking layers report no membrane.
"""

from __future__ import annotations

import logging
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from delaynir.common.h5 import reading_hdf5
from delaynir.errors import DataFormatError, ExportError, ShapeError
from delaynir.export.tool_env import ToolEnvironment
from delaynir.ir.neuron_kinds import predictions_of
from delaynir.reference.simulate import SimulationResult
from delaynir.targets.spinnaker.pynn_export import DOC
from delaynir.targets.spinnaker.run_pynn import Network, NetworkFileError, network_of

log = logging.getLogger(__name__)

RUNNER = Path(__file__).resolve().parent / "nest_run.py"  #: run by the NEST environment's python
ENVIRONMENT = ToolEnvironment(
    "nest", "NEST", "DELAYNIR_NEST_PYTHON", "NEST_ENV", "nest-env", "targets/spinnaker/build_nest_env.sh"
)


@dataclass
class NestModel:
    """A PyNN network file, ready to run in NEST."""

    path: Path
    network: Network

    def run(self, inputs) -> SimulationResult:
        """``inputs`` (T, B, n_inputs) spike counts through NEST from zero state (module docstring)."""
        x = np.asarray(torch.as_tensor(inputs).to(torch.float64))
        if x.ndim != 3 or x.shape[2] != self.network.n_inputs:
            raise ShapeError(f"{self.path} takes inputs (T, B, {self.network.n_inputs}); got {x.shape}")
        if not np.all((x == np.round(x)) & (x >= 0)):
            raise DataFormatError(f"{self.path} takes spike counts (non-negative integers) as input")
        with tempfile.TemporaryDirectory(prefix="delaynir-nest-") as tmp:
            inp, out = Path(tmp) / "input.npz", Path(tmp) / "output.npz"
            np.savez(inp, x=x.astype(np.int64))
            log.info("running %s in NEST: %d samples of %d steps", self.path, x.shape[1], x.shape[0])
            ENVIRONMENT.run(RUNNER, [str(self.path), str(inp), str(out)], "run the PyNN network file of this graph")
            with np.load(out) as data:
                traces = {key: data[key] for key in data.files}
        spikes, membranes = {}, {}
        for k, pop in enumerate(self.network.populations):
            if pop.readout:
                membranes[pop.name] = torch.from_numpy(traces[f"v{k}"] * pop.unit)
            else:
                spikes[pop.name] = torch.from_numpy(traces[f"s{k}"].astype(np.float64))
        last = self.network.populations[-1]
        readout = last.readout
        output = membranes[last.name] if readout else spikes[last.name]
        return SimulationResult(
            output=output, predictions=predictions_of(output, readout=readout), spikes=spikes, membranes=membranes
        )


def load(path: str | os.PathLike) -> NestModel:
    """The PyNN network file at ``path`` as a model NEST runs; ExportError for a file that is not one."""
    path = Path(path)
    with reading_hdf5(path, ExportError, f"a PyNN network file written by delaynir ({DOC})") as f:
        try:
            network = network_of(f, str(path))
        except NetworkFileError as exc:
            raise ExportError(f"{exc}; export it again with `delaynir export --format pynn` ({DOC})") from None
    ENVIRONMENT.python()
    return NestModel(path, network)
