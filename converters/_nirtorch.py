"""Running a NIR file through nirtorch with a simulator's own neuron modules (shared by norse and snnTorch).

nirtorch.nir_to_torch wires the nodes (edges into a node are summed; a cycle's back edge
reads the previous step) and each converter supplies the neuron modules of its library.
What no library implements is supplied here: nir.Delay as a per-channel delay line (a
history of the last D + 1 steps), nir.Scale as an element-wise product. Everything runs in
float64, one time step per call, and neuron modules are wrapped so that their spikes and
membranes are recorded per step.
"""

from __future__ import annotations

import contextlib
import io
import json
from typing import Callable

import nir
import nirtorch
import numpy as np
import torch
from torch import nn

from delaynir.errors import ExportError
from delaynir.nir_io import META_KEY, read_nir
from delaynir.simulate import SimulationResult, predictions_of

DTYPE = torch.float64


class DelayLine(nn.Module):
    """nir.Delay on a step grid: y_c[t] = x_c[t − steps_c]; the state is the last max(steps) + 1 inputs."""

    def __init__(self, steps: np.ndarray):
        super().__init__()
        self.register_buffer("steps", torch.as_tensor(np.asarray(steps), dtype=torch.long).view(1, 1, -1))
        self.length = int(self.steps.max()) + 1 if self.steps.numel() else 1

    def forward(self, x: torch.Tensor, state: torch.Tensor | None = None):
        if state is None:
            state = x.new_zeros(self.length, *x.shape)
        history = torch.cat([x.unsqueeze(0), state[:-1]])
        index = self.steps.expand(1, x.shape[0], -1)
        return history.gather(0, index).squeeze(0), history


class Elementwise(nn.Module):
    """nir.Scale: y = s ⊙ x."""

    def __init__(self, scale: np.ndarray):
        super().__init__()
        self.register_buffer("scale", torch.as_tensor(np.asarray(scale, dtype=np.float64)).ravel())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.scale


class _Relay(Elementwise):
    """A relay layer: z = I (nir.Scale of ones), stateful in form so that it can be recorded."""

    def forward(self, x: torch.Tensor, state=None):
        return x * self.scale, state


class Recorded(nn.Module):
    """A neuron module (forward(x, state) -> (out, state)) whose outputs and membranes are kept per step.

    ``gain`` multiplies the input first (a correction for a library that ignores r);
    ``membrane`` extracts the membrane from the module's state.
    """

    def __init__(self, module: nn.Module, membrane: Callable, gain: np.ndarray | float = 1.0,
                 output: Callable | None = None):
        super().__init__()
        self.module, self.membrane, self.output = module, membrane, output
        self.register_buffer("gain", torch.as_tensor(np.asarray(gain, dtype=np.float64)))
        self.spikes: list[torch.Tensor] = []
        self.membranes: list[torch.Tensor] = []

    def forward(self, x: torch.Tensor, state=None):
        out, state = self.module(x * self.gain, state)
        v = self.membrane(state, out)
        self.spikes.append(out.detach() if self.output is None else torch.zeros_like(v))
        self.membranes.append(v.detach())
        return (out if self.output is None else self.output(state, out)), state


def exact_linear(module: nn.Linear, node: nir.NIRNode) -> nn.Linear:
    """An importer's Linear with its weight (and bias) set from the NIR node in float64 (importers use float32)."""
    module = module.to(DTYPE)
    with torch.no_grad():
        module.weight.copy_(torch.as_tensor(np.asarray(node.weight, dtype=np.float64)))
        if module.bias is not None:
            module.bias.copy_(torch.as_tensor(np.asarray(node.bias, dtype=np.float64)).ravel())
    return module


def quiet(fn: Callable, *args, **kwargs):
    """Call ``fn`` with stdout captured (some upstream importers print)."""
    with contextlib.redirect_stdout(io.StringIO()):
        return fn(*args, **kwargs)


def layer_names(ngraph: nir.NIRGraph) -> dict[str, str]:
    """NIR node name -> DelayGraph layer name (our files carry the mapping; other files use node names)."""
    raw = ngraph.metadata.get(META_KEY) if isinstance(ngraph.metadata, dict) else None
    if raw is None:
        return {}
    meta = json.loads(raw if isinstance(raw, str) else raw.decode())
    return {lm["node"]: lm["name"] for lm in meta["layers"]}


def graph_dt(ngraph: nir.NIRGraph, dt: float | None) -> float:
    raw = ngraph.metadata.get(META_KEY) if isinstance(ngraph.metadata, dict) else None
    if raw is not None:
        return float(json.loads(raw if isinstance(raw, str) else raw.decode())["dt"])
    if dt is None:
        raise ExportError("this NIR file carries no time step; pass dt (seconds)")
    return float(dt)


class NIRModel:
    """A NIR file as a runnable model: ``run(x (T, B, n))`` returns a SimulationResult."""

    def __init__(self, path_or_graph, node_map_for: Callable[[float], dict], dt: float | None = None):
        self.graph = read_nir(path_or_graph) if not isinstance(path_or_graph, nir.NIRGraph) else path_or_graph
        self.dt = graph_dt(self.graph, dt)
        self.names = layer_names(self.graph)
        self.recorders: dict[str, Recorded] = {}
        self._name_of = {id(node): name for name, node in self.graph.nodes.items()}
        node_map = {nir.Scale: self._scale,
                    nir.Delay: lambda node: DelayLine(np.rint(np.asarray(node.delay) / self.dt).astype(np.int64))}
        for kind, factory in node_map_for(self.dt).items():
            node_map[kind] = self._recording(factory) if kind in _NEURONS else factory
        self.module = nirtorch.nir_to_torch(self.graph, node_map, dtype=DTYPE)
        self.n_inputs = int(np.prod(next(n.input_type["input"] for n in self.graph.nodes.values()
                                         if isinstance(n, nir.Input))))
        self.output_node = next(src for src, dst in self.graph.edges if isinstance(self.graph.nodes[dst], nir.Output))

    def _scale(self, node: nir.Scale) -> nn.Module:
        """nir.Scale; a relay layer of ours (a Scale that is a layer in the metadata) is recorded."""
        name = self._name_of[id(node)]
        if name not in self.names:
            return Elementwise(node.scale)
        rec = Recorded(_Relay(node.scale), lambda state, out: out)
        self.recorders[name] = rec
        return rec

    def _recording(self, factory: Callable) -> Callable:
        def build(node):
            rec = factory(node)
            self.recorders[self._name_of[id(node)]] = rec
            return rec
        return build

    def run(self, inputs) -> SimulationResult:
        x = torch.as_tensor(np.asarray(inputs) if not torch.is_tensor(inputs) else inputs).to(DTYPE)
        if x.dim() != 3 or x.shape[2] != self.n_inputs:
            raise ExportError(f"the NIR model takes inputs (T, B, {self.n_inputs}); got {tuple(x.shape)}")
        for rec in self.recorders.values():
            rec.spikes.clear()
            rec.membranes.clear()
        state = None
        with torch.no_grad():
            for t in range(x.shape[0]):
                _, state = self.module(x[t], state) if state is not None else self.module(x[t])
        spikes = {self.names.get(n, n): torch.stack(r.spikes) for n, r in self.recorders.items()}
        membranes = {self.names.get(n, n): torch.stack(r.membranes) for n, r in self.recorders.items()}
        out_name = self.names.get(self.output_node, self.output_node)
        is_li = isinstance(self.graph.nodes[self.output_node], (nir.LI, nir.I))
        output = membranes[out_name] if is_li else spikes[out_name]
        return SimulationResult(output=output, predictions=predictions_of(output, readout=is_li), spikes=spikes,
                                membranes=membranes)


_NEURONS = (nir.LIF, nir.CubaLIF, nir.IF, nir.LI, nir.I)
