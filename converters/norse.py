"""Run a NIR file in norse: norse's own neuron cells, with its importer's mismatches corrected.

norse 1.1's ``from_nir`` cannot be used as it is: it silently drops nodes it does not know
(Delay, LI, Scale, ...), so a delay network would run without its delays. We wire the graph
with nirtorch ourselves and take from norse what it supports — its node importer
``_import_norse_module`` for LIF, CubaLIF and Affine/Linear, and its LIBoxCell for LI —
and correct, explicitly (each pinned by a test in tests/test_converters.py):

* r is ignored by norse's LIF/LI (warning only): the input is multiplied by r here; its IF
  (IAFCell, v ← v + input) ignores r and dt: the input is multiplied by r·dt;
* v_reset is ignored: only v_reset = 0 is accepted (an error otherwise);
* parameters (neurons and Affine/Linear weights) are built as float32: rebuilt in float64 from the node;
* dt defaults to 1 ms: the file's (or the caller's) dt is passed.

norse's LIFBoxCell integrates v ← v + dt/τ (v_leak − v + i) and resets to v_reset after a
spike (strict v > θ), which is DESIGN.md's step with β = 1 − dt/τ when i = r·I.
"""

from __future__ import annotations

import warnings

import nir
import numpy as np
import torch

with warnings.catch_warnings():  # norse 1.1 scripts functions with the deprecated torch.jit.script on import
    warnings.filterwarnings("ignore", category=FutureWarning, message=".*torch.jit.script.*")
    from norse.torch.functional.leaky_integrator_box import LIBoxParameters
    from norse.torch.module.leaky_integrator_box import LIBoxCell
    from norse.torch.utils.import_nir import _import_norse_module

from delaynir.converters._nirtorch import NIRModel, Recorded, exact_linear
from delaynir.errors import NIRImportError


def _f64(x) -> torch.Tensor:
    return torch.as_tensor(np.asarray(x, dtype=np.float64)).ravel()


def _check_reset(node) -> None:
    if getattr(node, "v_reset", None) is not None and np.any(np.asarray(node.v_reset) != 0):
        raise NIRImportError("norse ignores v_reset; only v_reset = 0 can be run faithfully")


def _lif(node: nir.LIF, dt: float) -> Recorded:
    _check_reset(node)
    cell = _import_norse_module(node, ignore_warnings=True, dt=dt)
    cell.p = cell.p._replace(tau_mem_inv=1 / _f64(node.tau), v_th=_f64(node.v_threshold), v_leak=_f64(node.v_leak),
                             v_reset=torch.zeros_like(_f64(node.v_threshold)))
    return Recorded(cell, lambda state, out: state.v, gain=np.asarray(node.r, dtype=np.float64))


def _if(node: nir.IF, dt: float) -> Recorded:
    _check_reset(node)
    cell = _import_norse_module(node, ignore_warnings=True, dt=dt)  # IAFCell: v ← v + input
    cell.p = cell.p._replace(v_th=_f64(node.v_threshold), v_reset=torch.zeros_like(_f64(node.v_threshold)))
    return Recorded(cell, lambda state, out: state.v, gain=np.asarray(node.r, dtype=np.float64) * dt)


def _cubalif(node: nir.CubaLIF, dt: float) -> Recorded:
    _check_reset(node)
    module = _import_norse_module(node, ignore_warnings=True, dt=dt)
    module.w_in, module.r = _f64(node.w_in), _f64(node.r)
    module.synapse.p = module.synapse.p._replace(tau_mem_inv=1 / _f64(node.tau_syn), v_leak=_f64(node.v_leak) * 0)
    module.lif.p = module.lif.p._replace(tau_mem_inv=1 / _f64(node.tau_mem), v_th=_f64(node.v_threshold),
                                         v_leak=_f64(node.v_leak), v_reset=torch.zeros_like(_f64(node.v_threshold)))
    return Recorded(module, lambda state, out: state[1].v)


def _li(node: nir.LI, dt: float) -> Recorded:
    cell = LIBoxCell(LIBoxParameters(tau_mem_inv=1 / _f64(node.tau), v_leak=_f64(node.v_leak)), dt=dt)
    return Recorded(cell, lambda state, out: state.v, gain=np.asarray(node.r, dtype=np.float64),
                    output=lambda state, out: out)


def _linear(node) -> torch.nn.Module:
    return exact_linear(_import_norse_module(node, ignore_warnings=True), node)


def node_map(dt: float) -> dict:
    return {nir.LIF: lambda n: _lif(n, dt), nir.IF: lambda n: _if(n, dt), nir.CubaLIF: lambda n: _cubalif(n, dt),
            nir.LI: lambda n: _li(n, dt), nir.Affine: _linear, nir.Linear: _linear}


def load(path_or_graph, *, dt: float | None = None) -> NIRModel:
    """A runnable norse model of a NIR file; ``.run(x (T, B, n))`` returns a SimulationResult."""
    return NIRModel(path_or_graph, node_map, dt)
