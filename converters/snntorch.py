"""Run a NIR file in snnTorch: snnTorch's own Leaky neurons, with its importer's mismatches corrected.

snnTorch 1.0's ``import_from_nir`` rejects nir.Delay (and LI, Scale, I) with "Unknown node
type", so we wire the graph with nirtorch ourselves and take from snnTorch what it supports:
its node importer ``_nir_to_snntorch_module`` for Affine/Linear and its ``snn.Leaky`` neuron
(reset_mechanism="zero", reset_delay=False: membrane zeroed after a spike, then β·v + I —
NIR's LIF exactly). Corrected explicitly (each pinned by a test in tests/test_converters.py):

* the importer hard-codes dt = 1e-4 s in β = 1 − dt/τ: β is computed from the file's dt;
* it requires one threshold per layer: per-neuron thresholds and β are set as tensors;
* it maps IF to Leaky(β = 0.9), a leaky neuron: IF becomes Leaky(β = 1) with input r·dt;
* it ignores v_reset: only v_reset = 0 is accepted;
* it ignores r (input scale r·dt/τ) unless folded into the threshold: the input is scaled here;
* it prints to stdout: its calls are silenced;
* its Affine/Linear weights and spikes are float32: weights are set in float64, spikes cast;
* snn.Synaptic does not follow NIR's CubaLIF (it drops the input of the step after a spike):
  CubaLIF runs as a synaptic-current Leaky (no threshold) feeding a membrane Leaky;
* LI is a Leaky without threshold whose membrane is the output.

β, α and the input gain come from ``delaynir.export.nir_io.step_coefficients``: for our files the
exact per-step values of the node metadata, with gain exactly 1, so that Leaky's
β·mem + input performs the reference simulator's operations (1 − dt/τ and r·dt/τ recomputed
from τ and r are an ulp off for many decays, enough to move a membrane that lands on its
threshold). A subtract-reset layer is an LI, a Threshold and a reset Linear (delaynir.export.nir_io).
"""

from __future__ import annotations

import nir
import numpy as np
import snntorch as snn
import torch
from snntorch.import_nir import _nir_to_snntorch_module

from delaynir.converters._nirtorch import NIRModel, Recorded, coefficients, exact_linear, quiet
from delaynir.errors import NIRImportError


def _leaky(beta, threshold) -> snn.Leaky:
    beta, threshold = np.array(beta, dtype=np.float64).ravel(), np.array(threshold, dtype=np.float64).ravel()
    cell = snn.Leaky(
        beta=torch.as_tensor(beta), threshold=1.0, reset_mechanism="zero", reset_delay=False, init_hidden=False
    )
    cell.threshold = torch.as_tensor(threshold)
    cell.beta = torch.as_tensor(beta)
    return cell


class _Stateful(torch.nn.Module):
    """snn.Leaky as forward(x, state) -> (spikes, membrane) with an explicit membrane state."""

    def __init__(self, cell: snn.Leaky):
        super().__init__()
        self.cell = cell

    def forward(self, x, state=None):
        mem = torch.zeros_like(x) if state is None else state
        spk, mem = self.cell(x, mem)
        return spk.to(x.dtype), mem  # snnTorch's spike function returns float32


class _CubaLIF(torch.nn.Module):
    """Synaptic current i = α i + x (a Leaky that never fires) feeding a membrane Leaky."""

    def __init__(self, alpha, beta, threshold):
        super().__init__()
        self.syn = _Stateful(_leaky(alpha, np.full(np.shape(alpha), np.inf)))
        self.mem = _Stateful(_leaky(beta, threshold))

    def forward(self, x, state=None):
        syn_state, mem_state = (None, None) if state is None else state
        _, current = self.syn(x, syn_state)
        spk, mem = self.mem(current, mem_state)
        return spk, (current, mem)


def _check_reset(node) -> None:
    if getattr(node, "v_reset", None) is not None and np.any(np.asarray(node.v_reset) != 0):
        raise NIRImportError("snnTorch ignores v_reset; only v_reset = 0 can be run faithfully")


def _f(x) -> np.ndarray:
    return np.asarray(x, dtype=np.float64).ravel()


def _lif(node: nir.LIF, dt: float) -> Recorded:
    _check_reset(node)
    if np.any(_f(node.v_leak) != 0):
        raise NIRImportError("snnTorch's Leaky has no v_leak; only v_leak = 0 can be run")
    step = coefficients(node, dt)
    return Recorded(
        _Stateful(_leaky(step["beta"], node.v_threshold)), lambda mem, out: mem, gain=step["gain"], unit=step["unit"]
    )


def _if(node: nir.IF, dt: float) -> Recorded:
    _check_reset(node)
    theta = _f(node.v_threshold)
    step = coefficients(node, dt)
    return Recorded(
        _Stateful(_leaky(np.ones_like(theta), theta)), lambda mem, out: mem, gain=step["gain"], unit=step["unit"]
    )


def _li(node: nir.LI, dt: float) -> Recorded:
    tau = _f(node.tau)
    step = coefficients(node, dt)
    return Recorded(
        _Stateful(_leaky(np.broadcast_to(step["beta"], tau.shape), np.full(tau.shape, np.inf))),
        lambda mem, out: mem,
        gain=step["gain"],
        output=lambda mem, out: mem,
        unit=step["unit"],
    )


def _cubalif(node: nir.CubaLIF, dt: float) -> Recorded:
    _check_reset(node)
    step = coefficients(node, dt)
    module = _CubaLIF(step["alpha"], step["beta"], node.v_threshold)
    return Recorded(module, lambda state, out: state[1], gain=step["gain"], unit=step["unit"])


def _linear(node) -> torch.nn.Module:
    return exact_linear(quiet(_nir_to_snntorch_module, node), node)


def node_map(dt: float) -> dict:
    return {
        nir.LIF: lambda n: _lif(n, dt),
        nir.IF: lambda n: _if(n, dt),
        nir.LI: lambda n: _li(n, dt),
        nir.CubaLIF: lambda n: _cubalif(n, dt),
        nir.Affine: _linear,
        nir.Linear: _linear,
    }


def load(path_or_graph, *, dt: float | None = None) -> NIRModel:
    """A runnable snnTorch model of a NIR file; ``.run(x (T, B, n))`` returns a SimulationResult."""
    return NIRModel(path_or_graph, node_map, dt)
