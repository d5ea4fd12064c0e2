"""Run a NIR file in norse: norse's own neuron cells, with its importer's mismatches corrected.

norse 1.1's ``from_nir`` cannot be used as it is: it silently drops nodes it does not know
(Delay, LI, Scale, ...), so a delay network would run without its delays. We wire the graph
with nirtorch ourselves and take from norse what it supports — its node importer
``_import_norse_module`` for LIF, IF, CubaLIF and Affine/Linear, and its LIBoxCell for LI —
and correct, explicitly (each pinned by a test in tests/test_converters.py):

* r is ignored by norse's LIF/LI (warning only): the input is multiplied here by the node's
  input gain (r·dt/τ for LIF and CubaLIF, run as below; r for LI); its IF (IAFCell, v ← v + input)
  ignores r and dt: the input is multiplied by r·dt (exactly 1 for our files);
* v_reset is ignored: only v_reset = 0 is accepted (an error otherwise);
* parameters (neurons and Affine/Linear weights) are built as float32: rebuilt in float64 from the node;
* dt defaults to 1 ms: the cells run with the file's per-step coefficients (dt = 1 step,
  τ⁻¹ = 1 − β per step), exact for our files (node metadata, ``delaynir.export.nir_io.step_coefficients``);
* norse's LIFBoxCell steps v ← v + dt·τ⁻¹·(i + v_leak − v). With i = r·I that is β v + I in real
  numbers but not in floating point: (1 − β)·(r·I) is an ulp off I for most decays, enough to
  move a membrane that lands on its threshold. So LIF and CubaLIF cells run on the membrane
  scaled by c = 1 − β (c = (1 − α)(1 − β) for CubaLIF, the synaptic current by 1 − α), with the
  input I unscaled and the threshold c·θ: v ← v + c·(I − v) then is c·(β u + I) with u the
  file's membrane. For our quantised files (integer currents and thresholds, decays
  1 − dv/4096 or 1 − 2^−k) every one of these operations is exact while the membrane's binary
  expansion fits in float64, so ties are decided exactly; recorded membranes are v / c.

norse's LIFBoxCell resets to v_reset after a spike (strict v > θ), which is docs/design.md's hard
reset. A subtract-reset layer is an LI (LIBoxCell, input × r; exact when 1/(1 − β) is a power
of two, as for bit-shift decays), a Threshold and a reset Linear (see delaynir.export.nir_io).
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

from delaynir.converters._nirtorch import NIRModel, Recorded, coefficients, exact_linear
from delaynir.errors import NIRImportError


def _f64(x) -> torch.Tensor:
    return torch.as_tensor(np.asarray(x, dtype=np.float64)).ravel()


def _check_reset(node) -> None:
    if getattr(node, "v_reset", None) is not None and np.any(np.asarray(node.v_reset) != 0):
        raise NIRImportError("norse ignores v_reset; only v_reset = 0 can be run faithfully")


def _lif(node: nir.LIF, dt: float) -> Recorded:
    _check_reset(node)
    step = coefficients(node, dt)
    c = _f64(1 - step["beta"])  # per-step leak; the cell's membrane is c · u
    if torch.any(c <= 0):
        raise NIRImportError("a nir.LIF without leak (τ = ∞) cannot be run here; write it as nir.IF")
    cell = _import_norse_module(node, ignore_warnings=True, dt=1.0)
    cell.p = cell.p._replace(
        tau_mem_inv=c,
        v_th=c * _f64(node.v_threshold),
        v_leak=c * _f64(node.v_leak),
        v_reset=torch.zeros_like(_f64(node.v_threshold)),
    )
    return Recorded(cell, lambda state, out: state.v / c, gain=step["gain"], unit=step["unit"])


def _if(node: nir.IF, dt: float) -> Recorded:
    _check_reset(node)
    step = coefficients(node, dt)
    cell = _import_norse_module(node, ignore_warnings=True, dt=dt)  # IAFCell: v ← v + input
    cell.p = cell.p._replace(v_th=_f64(node.v_threshold), v_reset=torch.zeros_like(_f64(node.v_threshold)))
    return Recorded(cell, lambda state, out: state.v, gain=step["gain"], unit=step["unit"])


def _cubalif(node: nir.CubaLIF, dt: float) -> Recorded:
    _check_reset(node)
    step = coefficients(node, dt)
    c_syn, c_mem = _f64(1 - step["alpha"]), _f64(1 - step["beta"])
    c = c_syn * c_mem  # the cell's synaptic current is c_syn · i, its membrane c · u
    module = _import_norse_module(node, ignore_warnings=True, dt=1.0)
    module.w_in, module.r = _f64(step["gain"]), torch.ones_like(c)
    module.synapse.p = module.synapse.p._replace(tau_mem_inv=c_syn, v_leak=_f64(node.v_leak) * 0)
    module.lif.p = module.lif.p._replace(
        tau_mem_inv=c_mem,
        v_th=c * _f64(node.v_threshold),
        v_leak=c * _f64(node.v_leak),
        v_reset=torch.zeros_like(_f64(node.v_threshold)),
    )
    return Recorded(module, lambda state, out: state[1].v / c, unit=step["unit"])


def _li(node: nir.LI, dt: float) -> Recorded:
    step = coefficients(node, dt)
    cell = LIBoxCell(LIBoxParameters(tau_mem_inv=_f64(1 - step["beta"]), v_leak=_f64(node.v_leak)), dt=1.0)
    gain = np.asarray(step["gain"], dtype=np.float64) / (1 - np.asarray(step["beta"], dtype=np.float64))
    return Recorded(cell, lambda state, out: state.v, gain=gain, output=lambda state, out: out, unit=step["unit"])


def _linear(node) -> torch.nn.Module:
    return exact_linear(_import_norse_module(node, ignore_warnings=True), node)


def node_map(dt: float) -> dict:
    return {
        nir.LIF: lambda n: _lif(n, dt),
        nir.IF: lambda n: _if(n, dt),
        nir.CubaLIF: lambda n: _cubalif(n, dt),
        nir.LI: lambda n: _li(n, dt),
        nir.Affine: _linear,
        nir.Linear: _linear,
    }


def load(path_or_graph, *, dt: float | None = None) -> NIRModel:
    """A runnable norse model of a NIR file; ``.run(x (T, B, n))`` returns a SimulationResult."""
    return NIRModel(path_or_graph, node_map, dt)
