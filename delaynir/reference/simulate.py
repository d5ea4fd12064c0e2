"""The reference simulator: executes a DelayGraph, and so defines what a deployed model computes.

Arithmetic is float64 (or the one the graph names, item 2). Inputs are time-first frames
x (T, B, n_inputs). Update order, for t = 0 … T − 1 and, within a step, for each layer L in the
graph's list order:

1. The input current. For a lif or cubalif layer whose projections share one scale s
   (graph.membrane_unit; every compiled layer), in units of s (graph.py, "Units"):
   I'_L[t] = b_L / s + Σ_{synapses (i → j, d, w) into L} w · s_i[t − d], with b / s and θ / s
   from graph.in_units (integers for values on the weight grid). Otherwise, in real units:
   I_L[t] = b_L + Σ_groups scale_g ⊙ Σ_{synapses (i → j, d, w) of the group} w · s_i[t − d],
   the groups being the distinct scale vectors of the projections into L. s is the network
   input or the output z of the source layer (zero before t = 0).
2. The layer's neuron kind (delaynir.ir.neuron_kinds) turns the current into the state at t and
   the layer's output: its step function in the graph's arithmetic (number_formats.arithmetic_of:
   float64 tensors, each operation rounded before the next in the order the step is written,
   unless the graph names another arithmetic, which may replace the step). A layer computed in
   units of s reports its membrane as s · u. An li readout's output is its membrane; it feeds
   no layer.

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

from delaynir.common.memory import check_memory
from delaynir.errors import ShapeError
from delaynir.ir.graph import INPUT, DelayGraph, Layer, Projection, in_units, membrane_unit
from delaynir.ir.neuron_kinds import predictions_of
from delaynir.numerics.number_formats import arithmetic_of


@dataclass
class SimulationResult:
    """output: (T, B, n_out) readout membranes (li output) or spikes; predictions: (B,) int64.

    spikes / membranes: per layer name, (T, B, size), filled when ``record=True``.
    """

    output: torch.Tensor
    predictions: torch.Tensor
    spikes: dict[str, torch.Tensor] = field(default_factory=dict)
    membranes: dict[str, torch.Tensor] = field(default_factory=dict)


class _Population:
    """A source's output in a flat buffer: neuron i at step t is element (i·(T + pad) + pad + t)·B + b.

    ``grid`` is the (n, T, B) view of steps 0 … T − 1; the ``pad`` steps before them stay zero.
    """

    def __init__(self, n: int, T: int, B: int, pad: int):
        self.n, self.T, self.B, self.pad = n, T, B, pad
        self.buf = torch.empty(n * (T + pad) * B + T * B, dtype=torch.float64)
        full = self.buf[: n * (T + pad) * B].view(n, T + pad, B)
        full[:, :pad].zero_()
        self.buf[n * (T + pad) * B :].zero_()
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
    """A layer's input current I = b + Σ_g scale_g ⊙ Σ_{P in g} pull_P (Layer.scale_groups), channel-major.

    With ``unit`` (graph.membrane_unit) it is I' = b / unit + Σ_P pull_P, in units of the scale; without
    the bias when the arithmetic's steps add it themselves (``separate_bias``).
    """

    def __init__(self, layer: Layer, pulls: list[_Pull], arithmetic, unit: np.ndarray | None = None):
        bias = in_units(layer.bias, unit)
        self.bias = torch.from_numpy(np.zeros_like(bias) if arithmetic.separate_bias else bias)
        self.groups = [
            (None if scale is None else torch.from_numpy(scale), [pulls[k] for k in members])
            for scale, members in layer.scale_groups(arithmetic.unit_kinds)
        ]

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
    """A layer's neuron state (n, B) and its update: the kind's step (delaynir.ir.neuron_kinds) in the graph's
    arithmetic."""

    def __init__(self, layer: Layer, B: int, arithmetic, unit: np.ndarray | None = None):
        col = (-1, 1)
        self.kind, self.ops, self.per_unit = layer.kind, arithmetic.ops, arithmetic.state_per_unit
        self.step_of = arithmetic.step(self.kind)
        theta = in_units(layer.threshold, unit)
        self.params = {
            "beta": torch.from_numpy(layer.beta).view(col),
            "theta": torch.from_numpy(theta).view(col),
            "alpha": torch.from_numpy(layer.alpha).view(col) if layer.alpha is not None else None,
            "hard": layer.reset == "hard",
        }
        if arithmetic.separate_bias:
            self.params["bias"] = torch.from_numpy(in_units(layer.bias, unit)).view(col)
        self.state = self.kind.zero_state(torch.zeros(layer.size, B, dtype=torch.float64))
        self.silent = torch.zeros(layer.size, B, dtype=torch.float64)

    def step(self, current: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(s[t], v[t]) from I[t], both (n, B): what the layer emits (zeros for the li readout) and its membrane
        (the relayed current for a relay)."""
        self.state, out = self.step_of(self.ops, self.params, self.state, current)
        v = self.state.get("v")
        membrane = out if v is None else (v if self.per_unit == 1 else v / self.per_unit)
        return (self.silent if self.kind.readout else out), membrane


def simulate(graph: DelayGraph, inputs, *, record: bool = False) -> SimulationResult:
    """Run ``graph`` on ``inputs`` (T, B, n_inputs) (tensor or array); see the module docstring."""
    x = torch.as_tensor(inputs).to(torch.float64)
    if x.dim() != 3 or x.shape[2] != graph.n_inputs:
        raise ShapeError(f"the graph takes inputs (T, B, {graph.n_inputs}); got {tuple(x.shape)}")
    T, B, _ = x.shape
    check_memory(
        graph.simulation_bytes(T, B),
        f"simulating {B} samples of {T} steps (delays up to {graph.max_delay} steps, {graph.n_neurons} neurons)",
        "simulate fewer samples or steps at a time",
    )
    sources = [INPUT, *(layer.name for layer in graph.layers)]
    pad = dict.fromkeys(sources, 0)
    for layer in graph.layers:
        for proj in layer.projections:
            pad[proj.source] = max(pad[proj.source], proj.max_delay)
    sizes = {INPUT: graph.n_inputs, **{layer.name: layer.size for layer in graph.layers}}
    pops = {name: _Population(sizes[name], T, B, pad[name]) for name in sources}
    pops[INPUT].grid.copy_(x.permute(2, 0, 1))
    arithmetic = arithmetic_of(graph)
    units = {layer.name: membrane_unit(layer, arithmetic.unit_kinds) for layer in graph.layers}
    inputs_of = {
        layer.name: _Inputs(
            layer, [_Pull(p, pops[p.source], layer.size) for p in layer.projections], arithmetic, units[layer.name]
        )
        for layer in graph.layers
    }
    membranes = {layer.name: torch.empty(layer.size, T, B, dtype=torch.float64) for layer in graph.layers}
    neurons = {layer.name: _Neurons(layer, B, arithmetic, units[layer.name]) for layer in graph.layers}
    if graph.has_recurrence:
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
    readout = out_layer.kind.readout
    output = time_first[out_layer.name] if readout else pops[out_layer.name].grid.permute(1, 2, 0)
    result = SimulationResult(output=output, predictions=predictions_of(output, readout=readout))
    if record:
        result.spikes = {layer.name: pops[layer.name].grid.permute(1, 2, 0) for layer in graph.layers}
        result.membranes = time_first
    return result
