"""The reference simulator: executes a DelayGraph, and so defines what a deployed model computes.

Arithmetic is float64. Inputs are time-first frames x (T, B, n_inputs). Update order, for
t = 0 … T − 1 and, within a step, for each layer L in the graph's list order:

1. The input current. For a lif or cubalif layer whose projections share one scale s
   (graph.membrane_unit; every compiled layer), in units of s (graph.py, "Units"):
   I'_L[t] = b_L / s + Σ_{synapses (i → j, d, w) into L} w · s_i[t − d], with b / s and θ / s
   from graph.in_units (integers for values on the weight grid). Otherwise, in real units:
   I_L[t] = b_L + Σ_groups scale_g ⊙ Σ_{synapses (i → j, d, w) of the group} w · s_i[t − d],
   the groups being the distinct scale vectors of the projections into L. s is the network
   input or the output z of the source layer (zero before t = 0).
2. The neuron update of graph.py (lif / cubalif / li / relay) turns the current into v_L[t]
   and z_L[t], each product rounded before the addition, in this order:
   lif hard reset v = (β·v_prev)·(1 − z_prev) + I, subtract reset v = (β·v_prev − θ·z_prev) + I;
   z = 1.0 if v > θ else 0.0; cubalif first i = α·i_prev + I and then the same with i for I;
   li v = β·v_prev + I; relay z = I. The reset uses z_L[t − 1]. A layer computed in units
   of s reports its membrane as s · u.

Projections into L read sources that ran earlier in the same step (d ≥ 0) or at earlier
steps (d ≥ 1 for a source that is L itself or later in the list).

Summing stored weights before any scaling makes the result independent of summation order
for quantised graphs (integer weights, integer inputs: exact sums), so splitting a
projection (relay neurons) changes nothing; computing spiking layers in units of their
scale keeps the comparison with the threshold exact as well.

Synaptic input is computed per synapse (cost ∝ synapses × steps × batch, not
pre × post × D): every population's output is kept channel-major, (neuron, step, sample),
in a zero-padded buffer; a synapse (i → j, d, w) reads the row of neuron i starting d
steps back, and F.embedding_bag sums w · row over the synapses of each target neuron. A
feed-forward graph runs layer by layer over the whole sequence; a graph with recurrent
projections runs step by step with rows one step long.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F

from delaynir.errors import ShapeError
from delaynir.memory import check_memory
from delaynir.graph import INPUT, DelayGraph, Layer, Projection, in_units, membrane_unit


@dataclass
class SimulationResult:
    """output: (T, B, n_out) readout membranes (li output) or spikes; predictions: (B,) int64.

    spikes / membranes: per layer name, (T, B, size), filled when ``record=True``.
    """

    output: torch.Tensor
    predictions: torch.Tensor
    spikes: dict[str, torch.Tensor] = field(default_factory=dict)
    membranes: dict[str, torch.Tensor] = field(default_factory=dict)


def predictions_of(output: torch.Tensor, *, readout: bool) -> torch.Tensor:
    """(B,) classes from the output (T, B, n): argmax Σ_t softmax(v[t]) for a leaky readout, else the spike count."""
    return torch.softmax(output, dim=-1).sum(0).argmax(1) if readout else output.sum(0).argmax(1)


class _Population:
    """A source's output in a flat buffer: neuron i at step t is element (i·(T + pad) + pad + t)·B + b.

    ``grid`` is the (n, T, B) view of steps 0 … T − 1; the ``pad`` steps before them stay zero.
    """

    def __init__(self, n: int, T: int, B: int, pad: int):
        self.n, self.T, self.B, self.pad = n, T, B, pad
        self.buf = torch.empty(n * (T + pad) * B + T * B, dtype=torch.float64)
        full = self.buf[: n * (T + pad) * B].view(n, T + pad, B)
        full[:, :pad].zero_()
        self.buf[n * (T + pad) * B:].zero_()
        self.grid = full[:, pad:]

    def rows(self, length: int) -> torch.Tensor:
        """Row r = i·(T + pad) + k: ``length`` consecutive elements from step k − pad of neuron i."""
        n_rows = (self.n - 1) * (self.T + self.pad) + self.pad + self.T
        return self.buf.as_strided((n_rows, length), (self.B, 1))


class _Pull:
    """One projection's synapses, grouped by target neuron, as rows of its source population."""

    def __init__(self, proj: Projection, source: _Population, n_post: int):
        order = np.argsort(proj.post, kind="stable")
        self.rows = torch.from_numpy(proj.pre[order] * (source.T + source.pad) + source.pad - proj.delay[order])
        self.weight = torch.from_numpy(proj.weight[order])
        counts = np.bincount(proj.post, minlength=n_post)
        self.offsets = torch.from_numpy(np.concatenate([[0], np.cumsum(counts)[:-1]]).astype(np.int64))
        self.source = source

    def pull(self, t: int | None) -> torch.Tensor:
        """Σ_synapses w · s[· − d] per target neuron: (n_post, T·B) for all steps, or (n_post, B) at step t."""
        src = self.source
        rows = self.rows if t is None else self.rows + t
        length = src.T * src.B if t is None else src.B
        return F.embedding_bag(rows, src.rows(length), self.offsets, mode="sum", per_sample_weights=self.weight)


class _Inputs:
    """A layer's input current I = b + Σ_g scale_g ⊙ Σ_{P in g} pull_P, channel-major.

    With ``unit`` (graph.membrane_unit) it is I' = b / unit + Σ_P pull_P, in units of the scale.
    """

    def __init__(self, layer: Layer, pulls: list[tuple[Projection, _Pull]], unit: np.ndarray | None = None):
        self.bias = torch.from_numpy(layer.bias if unit is None else in_units(layer.bias, unit))
        self.groups: list[tuple[torch.Tensor | None, list[_Pull]]] = []
        if unit is not None:
            self.groups.append((None, [pull for _, pull in pulls]))
            return
        for proj, pull in pulls:
            scale = torch.from_numpy(proj.scale)
            for known, members in self.groups:
                if torch.equal(known, scale):
                    members.append(pull)
                    break
            else:
                self.groups.append((scale, [pull]))

    def current(self, T: int, B: int, t: int | None = None) -> torch.Tensor:
        """I as (n, T, B) for all steps, or (n, B) at step t."""
        shape = (len(self.bias), T, B) if t is None else (len(self.bias), B)
        bias = self.bias.view(-1, *([1] * (len(shape) - 1)))
        total = bias.expand(shape).clone()
        for scale, pulls in self.groups:
            acc = sum(pull.pull(t) for pull in pulls[1:]) + pulls[0].pull(t) if len(pulls) > 1 else pulls[0].pull(t)
            total += acc.view(shape) if scale is None else scale.view(bias.shape) * acc.view(shape)
        return total


class _Neurons:
    """A layer's neuron state (n, B) and its update (graph.py's equations)."""

    def __init__(self, layer: Layer, B: int, unit: np.ndarray | None = None):
        col = (-1, 1)
        self.kind, self.hard = layer.neuron, layer.reset == "hard"
        self.beta = torch.from_numpy(layer.beta).view(col)
        theta = layer.threshold if unit is None else in_units(layer.threshold, unit)
        self.theta = torch.from_numpy(theta).view(col)
        self.alpha = torch.from_numpy(layer.alpha).view(col) if layer.alpha is not None else None
        self.v = torch.zeros(layer.size, B, dtype=torch.float64)
        self.z = torch.zeros_like(self.v)
        self.i = torch.zeros_like(self.v)

    def step(self, current: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(z[t], v[t]) from I[t], both (n, B)."""
        if self.kind == "relay":
            return current, current
        if self.kind == "li":
            self.v = self.beta * self.v + current
            return self.z, self.v
        if self.kind == "cubalif":
            self.i = self.alpha * self.i + current
            current = self.i
        if self.hard:
            self.v = self.beta * self.v * (1 - self.z) + current
        else:
            self.v = self.beta * self.v - self.theta * self.z + current
        self.z = (self.v > self.theta).to(torch.float64)
        return self.z, self.v


def simulate(graph: DelayGraph, inputs, *, record: bool = False) -> SimulationResult:
    """Run ``graph`` on ``inputs`` (T, B, n_inputs) (tensor or array); see the module docstring."""
    x = torch.as_tensor(inputs).to(torch.float64)
    if x.dim() != 3 or x.shape[2] != graph.n_inputs:
        raise ShapeError(f"the graph takes inputs (T, B, {graph.n_inputs}); got {tuple(x.shape)}")
    T, B, _ = x.shape
    check_memory(graph.simulation_bytes(T, B), f"simulating {B} samples of {T} steps (delays up to "
                 f"{graph.max_delay} steps, {graph.n_neurons} neurons)", "simulate fewer samples or steps at a time")
    order = {INPUT: -1, **{layer.name: k for k, layer in enumerate(graph.layers)}}
    pad = dict.fromkeys(order, 0)
    for layer in graph.layers:
        for proj in layer.projections:
            pad[proj.source] = max(pad[proj.source], proj.max_delay)
    sizes = {INPUT: graph.n_inputs, **{layer.name: layer.size for layer in graph.layers}}
    pops = {name: _Population(sizes[name], T, B, pad[name]) for name in order}
    pops[INPUT].grid.copy_(x.permute(2, 0, 1))
    units = {layer.name: membrane_unit(layer) for layer in graph.layers}
    inputs_of = {layer.name: _Inputs(layer, [(p, _Pull(p, pops[p.source], layer.size)) for p in layer.projections],
                                     units[layer.name])
                 for layer in graph.layers}
    membranes = {layer.name: torch.empty(layer.size, T, B, dtype=torch.float64) for layer in graph.layers}
    neurons = {layer.name: _Neurons(layer, B, units[layer.name]) for layer in graph.layers}
    if any(order[p.source] >= order[layer.name] for layer in graph.layers for p in layer.projections):
        for t in range(T):  # recurrent: every layer's step t before any layer's step t + 1
            for layer in graph.layers:
                z, v = neurons[layer.name].step(inputs_of[layer.name].current(T, B, t))
                pops[layer.name].grid[:, t], membranes[layer.name][:, t] = z, v
    else:
        for layer in graph.layers:
            current, cell = inputs_of[layer.name].current(T, B), neurons[layer.name]
            grid, mem = pops[layer.name].grid, membranes[layer.name]
            for t in range(T):  # the same update, operation for operation, as the step-by-step path
                grid[:, t], mem[:, t] = cell.step(current[:, t])
    for name, unit in units.items():
        if unit is not None:  # v = s · u, reported only: every comparison has been made in units of s
            membranes[name] *= torch.from_numpy(unit).view(-1, 1, 1)
    time_first = {name: m.permute(1, 2, 0) for name, m in membranes.items()}
    out_layer = graph.layers[-1]
    is_li = out_layer.neuron == "li"
    output = time_first[out_layer.name] if is_li else pops[out_layer.name].grid.permute(1, 2, 0)
    result = SimulationResult(output=output, predictions=predictions_of(output, readout=is_li))
    if record:
        result.spikes = {layer.name: pops[layer.name].grid.permute(1, 2, 0) for layer in graph.layers}
        result.membranes = time_first
    return result
