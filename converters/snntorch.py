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
"""

from __future__ import annotations

import nir
import numpy as np
import snntorch as snn
import torch
from snntorch.import_nir import _nir_to_snntorch_module

from delaynir.converters._nirtorch import NIRModel, Recorded, exact_linear, quiet
from delaynir.errors import NIRImportError


def _leaky(beta, threshold) -> snn.Leaky:
    cell = snn.Leaky(beta=torch.as_tensor(np.asarray(beta, dtype=np.float64)).ravel(), threshold=1.0,
                     reset_mechanism="zero", reset_delay=False, init_hidden=False)
    cell.threshold = torch.as_tensor(np.asarray(threshold, dtype=np.float64)).ravel()
    cell.beta = torch.as_tensor(np.asarray(beta, dtype=np.float64)).ravel()
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
    tau = _f(node.tau)
    return Recorded(_Stateful(_leaky(1 - dt / tau, node.v_threshold)), lambda mem, out: mem,
                    gain=_f(node.r) * dt / tau)


def _if(node: nir.IF, dt: float) -> Recorded:
    _check_reset(node)
    theta = _f(node.v_threshold)
    return Recorded(_Stateful(_leaky(np.ones_like(theta), theta)), lambda mem, out: mem, gain=_f(node.r) * dt)


def _li(node: nir.LI, dt: float) -> Recorded:
    tau = _f(node.tau)
    return Recorded(_Stateful(_leaky(1 - dt / tau, np.full(tau.shape, np.inf))), lambda mem, out: mem,
                    gain=_f(node.r) * dt / tau, output=lambda mem, out: mem)


def _cubalif(node: nir.CubaLIF, dt: float) -> Recorded:
    _check_reset(node)
    tau_syn, tau_mem = _f(node.tau_syn), _f(node.tau_mem)
    gain = _f(node.w_in) * dt / tau_syn * _f(node.r) * dt / tau_mem
    module = _CubaLIF(1 - dt / tau_syn, 1 - dt / tau_mem, node.v_threshold)
    return Recorded(module, lambda state, out: state[1], gain=gain)


def _linear(node) -> torch.nn.Module:
    return exact_linear(quiet(_nir_to_snntorch_module, node), node)


def node_map(dt: float) -> dict:
    return {nir.LIF: lambda n: _lif(n, dt), nir.IF: lambda n: _if(n, dt), nir.LI: lambda n: _li(n, dt),
            nir.CubaLIF: lambda n: _cubalif(n, dt), nir.Affine: _linear, nir.Linear: _linear}


def load(path_or_graph, *, dt: float | None = None) -> NIRModel:
    """A runnable snnTorch model of a NIR file; ``.run(x (T, B, n))`` returns a SimulationResult."""
    return NIRModel(path_or_graph, node_map, dt)
