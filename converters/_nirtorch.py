"""Running a NIR file through nirtorch with a simulator's own neuron modules (shared by norse and snnTorch).

nirtorch.nir_to_torch wires the nodes (edges into a node are summed; a cycle's back edge
reads the previous step) and each converter supplies the neuron modules of its library.
What no library implements is supplied here: nir.Delay as a per-channel delay line (a
history of the last D + 1 steps), nir.Scale as an element-wise product, nir.Threshold as
z = 1 where v > θ (strict, as every neuron here; used by our subtract-reset layers).
Everything runs in float64, one time step per call, and neuron modules are wrapped so that
their spikes and membranes are recorded per step, membranes in the graph's units (times the
node's ``delaynir.unit``). Per-step coefficients come from ``delaynir.export.nir_io.step_coefficients``:
exact for our files (node metadata), from τ and r otherwise.
"""

from __future__ import annotations

import contextlib
import io
from collections.abc import Callable

import nir
import nirtorch
import numpy as np
import torch
from torch import nn

from delaynir.errors import DelayNIRError, ExportError, NIRImportError, reason
from delaynir.export.nir_io import own_metadata, read_nir, step_coefficients
from delaynir.reference.simulate import SimulationResult, predictions_of

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

    ``gain`` multiplies the input first (a correction for a library that ignores r; exactly 1
    for our files, so that x · gain = x); ``membrane`` extracts the membrane from the module's
    state, and the recorded membrane is that times ``unit`` (the graph's units; reporting only).
    """

    def __init__(
        self,
        module: nn.Module,
        membrane: Callable,
        gain: np.ndarray | float = 1.0,
        output: Callable | None = None,
        unit: np.ndarray | None = None,
    ):
        super().__init__()
        self.module, self.membrane, self.output = module, membrane, output
        self.register_buffer("gain", torch.as_tensor(np.asarray(gain, dtype=np.float64)))
        self.unit = None if unit is None else torch.as_tensor(np.asarray(unit, dtype=np.float64))
        self.spikes: list[torch.Tensor] = []
        self.membranes: list[torch.Tensor] = []

    def forward(self, x: torch.Tensor, state=None):
        out, state = self.module(x * self.gain, state)
        v = self.membrane(state, out)
        self.spikes.append(out.detach() if self.output is None else torch.zeros_like(v))
        self.membranes.append(v.detach() if self.unit is None else v.detach() * self.unit)
        return (out if self.output is None else self.output(state, out)), state


class Threshold(nn.Module):
    """nir.Threshold: z = 1.0 where x > θ (strict), else 0.0; the spikes are recorded per step."""

    def __init__(self, threshold: np.ndarray):
        super().__init__()
        self.register_buffer("threshold", torch.as_tensor(np.asarray(threshold, dtype=np.float64)).ravel())
        self.spikes: list[torch.Tensor] = []
        self.membranes: list[torch.Tensor] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        z = (x > self.threshold).to(x.dtype)
        self.spikes.append(z)
        return z


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


def layer_nodes(ngraph: nir.NIRGraph) -> list[tuple[str, str, str]]:
    """(DelayGraph layer name, membrane node, output node) per layer of our files; [] for other files.

    The output node is the layer's nir.Threshold for a subtract-reset layer, else the neuron node.
    """
    meta = own_metadata(ngraph)
    if meta is None:
        return []
    return [(lm["name"], lm["node"], lm.get("output_node", lm["node"])) for lm in meta["layers"]]


def coefficients(node: nir.NIRNode, dt: float) -> dict[str, np.ndarray | None]:
    """step_coefficients of a node (exact for our files), named by the node for errors."""
    return step_coefficients(type(node).__name__, node, dt)


def graph_dt(ngraph: nir.NIRGraph, dt: float | None) -> float:
    meta = own_metadata(ngraph)
    if meta is not None:
        return float(meta["dt"])
    if dt is None:
        raise ExportError("this NIR file carries no time step; pass dt (seconds)")
    return float(dt)


_CHAIN = ("select", "delay", "weight")  #: a projection's nodes L.pK.*, in order
_ROLES = ("scale", "syn", "", "spike", "reset")  #: then a layer's own nodes, in order (scale0, scale1, ...: "scale")


def in_execution_order(ngraph: nir.NIRGraph) -> nir.NIRGraph:
    """The graph with its nodes in execution order (our files; other files are returned unchanged).

    nirtorch wires the nodes in the graph's order (alphabetical after nir.read): a node whose inputs
    are not all computed yet is put back in the queue (and from then on treated as part of a cycle),
    and at a node with several inputs an input of a cycle that is not computed yet is read from the
    previous step. So a cycle is broken wherever the walk first meets it. Our files say where their
    back edges are (a projection whose delay omits the cycle's step, nir_io.cycle_offsets, and the
    reset loop of a subtract-reset layer): the nodes are put in topological order without those
    edges, layer by layer, so that nothing is put back and every cycle is broken at its back edge.
    """
    meta = own_metadata(ngraph)
    if meta is None:
        return ngraph
    names = list(ngraph.nodes)
    rank = {
        name: (-1 if isinstance(node, nir.Input) else len(meta["layers"]), 0, 0, 0)
        for name, node in ngraph.nodes.items()
    }  # preference among nodes that are ready; the rest last
    back = set()
    position = {lm["name"]: k for k, lm in enumerate(meta["layers"])}
    for k, lm in enumerate(meta["layers"]):
        node = lm["node"]
        for name in names:
            if name == node or name.startswith(node + "."):
                part = name[len(node) + 1 :].split(".")  # [""], ["p3", "select"], ["scale0"], ["syn"], ...
                if part[0].startswith("p") and part[0][1:].isdigit():
                    chain = _CHAIN.index(part[1]) if part[1:] and part[1] in _CHAIN else 0
                    rank[name] = (k, 0, int(part[0][1:]), chain)
                else:
                    role = part[0].rstrip("0123456789")
                    rank[name] = (k, 1 + _ROLES.index(role) if role in _ROLES else len(_ROLES) + 1, 0, 0)
        for j, pm in enumerate(lm["projections"]):
            recurrent = position.get(pm["source"], -1) >= k  # format 1 files: every recurrent projection
            if pm.get("offset", int(recurrent)):
                back |= {
                    (src, dst)
                    for src, dst in ngraph.edges
                    if src == f"{node}.p{j}.weight" and dst.startswith(f"{node}.scale")
                }
        back |= {(src, dst) for src, dst in ngraph.edges if src == f"{node}.reset"}
    forward = [(src, dst) for src, dst in ngraph.edges if (src, dst) not in back and src != dst]
    waiting = dict.fromkeys(names, 0)
    for _, dst in forward:
        waiting[dst] += 1
    ready = sorted((n for n in names if waiting[n] == 0), key=lambda n: rank[n])
    order: list[str] = []
    while ready:
        name = ready.pop(0)
        order.append(name)
        for src, dst in forward:
            if src == name:
                waiting[dst] -= 1
                if waiting[dst] == 0:
                    ready.append(dst)
        ready.sort(key=lambda n: rank[n])
    order += sorted((n for n in names if n not in order), key=lambda n: rank[n])  # a cycle we do not know of
    return nir.NIRGraph(
        nodes={n: ngraph.nodes[n] for n in order}, edges=list(ngraph.edges), metadata=ngraph.metadata, type_check=False
    )


class NIRModel:
    """A NIR file as a runnable model: ``run(x (T, B, n))`` returns a SimulationResult."""

    def __init__(self, path_or_graph, node_map_for: Callable[[float], dict], dt: float | None = None):
        self.graph = read_nir(path_or_graph) if not isinstance(path_or_graph, nir.NIRGraph) else path_or_graph
        self.source = "the NIR graph" if isinstance(path_or_graph, nir.NIRGraph) else str(path_or_graph)
        try:
            self._build(node_map_for, dt)
        except DelayNIRError:
            raise
        except Exception as exc:  # nirtorch and the libraries' cells raise any type for a malformed node
            raise NIRImportError(
                f"{self.source}: cannot be built into a model ({reason(exc)}); the file is malformed"
            ) from None

    def _build(self, node_map_for: Callable[[float], dict], dt: float | None) -> None:
        self.dt = graph_dt(self.graph, dt)
        self.layers = layer_nodes(self.graph)
        self.names = {node: name for name, node, _ in self.layers}
        self.recorders: dict[str, Recorded | Threshold] = {}
        self._name_of = {id(node): name for name, node in self.graph.nodes.items()}
        node_map = {
            nir.Scale: self._scale,
            nir.Threshold: self._threshold,
            nir.Delay: lambda node: DelayLine(np.rint(np.asarray(node.delay) / self.dt).astype(np.int64)),
        }
        for kind, factory in node_map_for(self.dt).items():
            node_map[kind] = self._recording(factory) if kind in _NEURONS else factory
        self.module = nirtorch.nir_to_torch(in_execution_order(self.graph), node_map, dtype=DTYPE)
        self.n_inputs = int(
            np.prod(next(n.input_type["input"] for n in self.graph.nodes.values() if isinstance(n, nir.Input)))
        )
        self.output_node = next(src for src, dst in self.graph.edges if isinstance(self.graph.nodes[dst], nir.Output))

    def _scale(self, node: nir.Scale) -> nn.Module:
        """nir.Scale; a relay layer of ours (a Scale that is a layer in the metadata) is recorded."""
        name = self._name_of[id(node)]
        if name not in self.names:
            return Elementwise(node.scale)
        rec = Recorded(_Relay(node.scale), lambda state, out: out)
        self.recorders[name] = rec
        return rec

    def _threshold(self, node: nir.Threshold) -> nn.Module:
        module = Threshold(node.threshold)
        self.recorders[self._name_of[id(node)]] = module
        return module

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
        try:
            with torch.no_grad():
                for t in range(x.shape[0]):
                    _, state = self.module(x[t], state) if state is not None else self.module(x[t])
        except (RuntimeError, ValueError, IndexError, KeyError) as exc:  # shapes or parameters that do not fit
            raise ExportError(f"{self.source}: the model fails to run ({reason(exc)}); the file is malformed") from None
        if self.layers:  # our file: one entry per layer, spikes from its output node, membranes from its neuron
            spikes = {name: torch.stack(self.recorders[out].spikes) for name, _, out in self.layers}
            membranes = {name: torch.stack(self.recorders[node].membranes) for name, node, _ in self.layers}
            out_name = next(name for name, _, out in self.layers if out == self.output_node)
        else:
            spikes = {n: torch.stack(r.spikes) for n, r in self.recorders.items()}
            membranes = {n: torch.stack(r.membranes) for n, r in self.recorders.items() if r.membranes}
            out_name = self.output_node
        is_li = isinstance(self.graph.nodes[self.output_node], (nir.LI, nir.I))
        output = membranes[out_name] if is_li else spikes[out_name]
        return SimulationResult(
            output=output, predictions=predictions_of(output, readout=is_li), spikes=spikes, membranes=membranes
        )


_NEURONS = (nir.LIF, nir.CubaLIF, nir.IF, nir.LI, nir.I)
