"""ONNX export of a DelayGraph with its delay state (``delaynir.converters.onnxruntime`` runs the file).

ONNX Runtime is stateless, so the exported **step model** computes one time step t of the graph,
exactly as the reference simulator does (each layer's neuron step of ``delaynir.ir.neuron_kinds``, lowered
to nodes by ``_Ops``; ``delaynir.reference.simulate``'s update and summation order), in float64:

    (x[t], state[t − 1])  ↦  (out.<L>[t] for every layer L,  next.<state> = state[t])

    x        (B, n_inputs)       input frame at step t
    v.<L>    (n_L, B)            membrane v[t − 1]                 lif, cubalif, li
    z.<L>    (n_L, B)            spikes z[t − 1] (for the reset)   lif, cubalif
    i.<L>    (n_L, B)            synaptic current i[t − 1]         cubalif
    buf.<S>  (D_S, n_S, B)       buf[k] = s^S[t − 1 − k], k = 0 … D_S − 1, for every source S ("input"
                                 or a layer) read through a delay; D_S = the longest such delay
    out.<L>  (B, n_L)            s^L[t]: spikes z (lif, cubalif), the relayed I (relay), v (li readout)

State is zero at t = 0, neuron-major with the batch last (the layout the step computes in); frames
are batch-first. The optional **sequence model** wraps the same step in a Scan over time: x (T, B,
n_inputs) ↦ out.<L> and v.<L> (T, B, n_L), from zero state.

Synapses stay sparse (size and work ∝ synapses, never pre × post × D). Per projection P into L with
synapses (pre, post, d, w), the source's output now and its delay buffer form one table
[s^S[t]; buf^S] of ((D_S + 1)·n_S, B) rows, synapse row k = d·n_S + pre (a recurrent P, whose source
is L or a later layer, reads buf^S alone at k = (d − 1)·n_S + pre). Target neurons are grouped into
fan-in bands (``fan_in_bands``); a band of n_b neurons with fan-in up to K_b computes

    a_P[band] = ReduceSum_k ( Gather(table, index (n_b, K_b)) ⊙ w (n_b, K_b, 1) )      (n_b, B)

with padding entries of weight 0, and the bands are put back in neuron order with one Gather.
No scatter-add is used: ONNX Runtime's ScatterND with reduction races on repeated indices when
multi-threaded (seen with 1.32; microsoft/onnxruntime#18048). Then, in float64 and in simulate's order,

    I = b + Σ_groups scale_g ⊙ Σ_{P in g} a_P        (one group per distinct scale vector)

except for a lif or cubalif layer whose projections share one scale s (delaynir.ir.graph.membrane_unit),
which is computed in units of s as the simulator does: I' = b/s + Σ_P a_P, threshold θ/s (integers
on the weight grid, delaynir.ir.graph.in_units), state v.<L> = v/s. So integer weights with integer
inputs give bit-identical results, and a membrane on an integer threshold is compared exactly.
docs/onnx-format.md documents every name, shape and metadata key.
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from delaynir import __version__
from delaynir.common.outputs import atomic_path, check_output
from delaynir.errors import ExportError
from delaynir.ir.graph import INPUT, DelayGraph, Layer, Projection, in_units, membrane_unit
from delaynir.ir.graph_io import validate_graph

logger = logging.getLogger(__name__)

__all__ = ["IR_VERSION", "OPSET", "build_model", "export_onnx", "interface", "sequence_interface"]

OPSET, IR_VERSION = 21, 10  #: ONNX domain opset and IR version (ONNX Runtime ≥ 1.18)
FORMATS = {"step": "delaynir.onnx.step", "sequence": "delaynir.onnx.sequence"}  #: metadata delaynir.format
FORMAT_VERSION = 2  #: 2: spiking layers computed in units of their scale (layers' "unit"); 1 is still read
BATCH, TIME = "B", "T"  #: the symbolic batch and time dimensions
FRAME = "x"
SCAN = "step."  #: prefix of the step names inside the sequence model's Scan body
DOC = "docs/onnx-format.md"
META = {
    "format": "delaynir.format",
    "version": "delaynir.format_version",
    "io": "delaynir.io",
    "layers": "delaynir.layers",
    "dt": "delaynir.dt",
    "target": "delaynir.target",
    "n_inputs": "delaynir.n_inputs",
}  #: metadata_props keys
STATE_DOC = {  #: (doc of the state input, doc of its next.* output) per state kind
    "v": ("membrane v[t-1] of layer {name}{units}", "membrane v[t] of layer {name}{units}"),
    "z": ("spikes z[t-1] of layer {name} (for the reset)", "spikes z[t] of layer {name}"),
    "i": (
        "synaptic current i[t-1] of cubalif layer {name}{units}",
        "synaptic current i[t] of cubalif layer {name}{units}",
    ),
    "buf": (
        "delay buffer of source {name}: [k] = its output at step t-1-k, k = 0..{last}",
        "delay buffer of source {name}: [k] = its output at step t-k, k = 0..{last}",
    ),
}
OUTPUT_DOC = {"lif": "spikes z[t]", "cubalif": "spikes z[t]", "relay": "relayed input I[t]", "li": "membrane v[t]"}


@dataclass(frozen=True)
class Port:
    """One model input or output: name, shape (ints, "T", "B"), role, one-line description.

    role: frame (x), state (v/z/i/buf and their next.*), output (out.<L>) or membrane (v.<L> of the
    sequence model). ``next`` (state inputs only) names the output that carries the state on.
    """

    name: str
    shape: tuple[int | str, ...]
    role: str
    doc: str
    next: str | None = None

    def zeros(self, batch: int) -> np.ndarray:
        return np.zeros([batch if d == BATCH else d for d in self.shape])


# ----------------------------------------------------------------------------- interface


def _silent(proj: Projection, graph: DelayGraph) -> bool:
    """Whether ``proj`` contributes nothing: no synapses, or an li source (li layers emit no spikes)."""
    return len(proj) == 0 or (proj.source != INPUT and graph.layer(proj.source).kind.readout)


def buffer_depths(graph: DelayGraph) -> dict[str, int]:
    """D_S ≥ 1 for every source S read through a delay (input first, then layers in order)."""
    depth: dict[str, int] = {}
    for layer in graph.layers:
        for proj in layer.projections:
            if proj.max_delay and not _silent(proj, graph):
                depth[proj.source] = max(depth.get(proj.source, 0), proj.max_delay)
    order = [INPUT] + [layer.name for layer in graph.layers]
    return {name: depth[name] for name in order if name in depth}


def _state_kinds(layer: Layer) -> tuple[str, ...]:
    """The state variables a layer carries from step to step (its neuron kind's, delaynir.ir.neuron_kinds)."""
    return layer.kind.state


UNITS_DOC = " in units of the layer's scale (v / unit, delaynir.layers)"


def _state(kind: str, name: str, shape: tuple[int | str, ...], scaled: bool = False) -> tuple[Port, Port]:
    """(state input, its next.* output) of one state tensor; ``scaled``: kept in units of the layer's scale."""
    units = UNITS_DOC if scaled else ""
    doc, next_doc = (text.format(name=name, last=shape[0] - 1, units=units) for text in STATE_DOC[kind])
    state = Port(f"{kind}.{name}", shape, "state", f"{doc}; zeros at t = 0", f"next.{kind}.{name}")
    return state, Port(state.next, shape, "state", f"{next_doc}; feed back as {state.name}")


def interface(graph: DelayGraph) -> tuple[list[Port], list[Port]]:
    """(inputs, outputs) of the step model, in order: frame, then state; layer outputs, then next state."""
    pairs = [
        _state(kind, layer.name, (layer.size, BATCH), membrane_unit(layer) is not None)
        for layer in graph.layers
        for kind in _state_kinds(layer)
    ]
    pairs += [
        _state("buf", source, (depth, graph.source_size(source), BATCH))
        for source, depth in buffer_depths(graph).items()
    ]
    frame = Port(FRAME, (BATCH, graph.n_inputs), "frame", "input frame x[t] (real-valued counts per channel)")
    outputs = [
        Port(
            f"out.{layer.name}",
            (BATCH, layer.size),
            "output",
            f"{OUTPUT_DOC[layer.neuron]} of {layer.neuron} layer {layer.name}",
        )
        for layer in graph.layers
    ]
    return [frame, *(state for state, _ in pairs)], outputs + [following for _, following in pairs]


def sequence_interface(graph: DelayGraph) -> tuple[list[Port], list[Port]]:
    """(inputs, outputs) of the sequence model: frames x (T, B, n_inputs); out.<L> and v.<L> (T, B, n_L)."""
    frames = Port(FRAME, (TIME, BATCH, graph.n_inputs), "frame", "input frames x[0..T-1] (time-first)")
    outputs = [
        Port(
            f"out.{layer.name}",
            (TIME, BATCH, layer.size),
            "output",
            f"{OUTPUT_DOC[layer.neuron]} of {layer.neuron} layer {layer.name}, t = 0..T-1",
        )
        for layer in graph.layers
    ]
    outputs += [
        Port(
            f"v.{layer.name}", (TIME, BATCH, layer.size), "membrane", f"membrane v[t] of layer {layer.name}, t = 0..T-1"
        )
        for layer in graph.layers
        if "v" in _state_kinds(layer)
    ]
    return [frames], outputs


def _metadata(graph: DelayGraph, kind: str, inputs: list[Port], outputs: list[Port]) -> dict[str, str]:
    layers = [
        {
            "name": layer.name,
            "neuron": layer.neuron,
            "reset": layer.reset,
            "size": layer.size,
            "unit": _unit_list(layer),
        }
        for layer in graph.layers
    ]
    io = {"inputs": [asdict(p) for p in inputs], "outputs": [asdict(p) for p in outputs], "dtype": "float64"}
    return {
        META["format"]: FORMATS[kind],
        META["version"]: str(FORMAT_VERSION),
        META["io"]: json.dumps(io),
        META["layers"]: json.dumps(layers),
        META["dt"]: repr(float(graph.dt)),
        META["target"]: str(graph.target),
        META["n_inputs"]: str(graph.n_inputs),
    }


def _unit_list(layer: Layer) -> list[float] | None:
    """The layer's membrane unit (its scale) as a JSON list, None for a layer computed in real units."""
    unit = membrane_unit(layer)
    return None if unit is None else [float(u) for u in unit]


# ----------------------------------------------------------------------------- the step graph


def fan_in_bands(post: np.ndarray, n_post: int) -> list[np.ndarray]:
    """Target neurons with synapses, in bands: padding a band's fan-ins to its largest at most doubles its synapses.

    Neurons are taken in order of decreasing fan-in f; a band of c neurons with largest fan-in K
    grows while c · K ≤ 2 Σ f. Each band is returned in ascending neuron order.
    """
    fan_in = np.bincount(post, minlength=n_post)
    order = np.argsort(-fan_in, kind="stable")
    order = order[fan_in[order] > 0]
    bands, start, synapses = [], 0, 0
    for k, j in enumerate(order):
        if (k + 1 - start) * fan_in[order[start]] > 2 * (synapses + fan_in[j]):
            bands.append(order[start:k])
            start, synapses = k, 0
        synapses += fan_in[j]
    bands.append(order[start:])
    return [np.sort(band) for band in bands if len(band)]


def padded_synapses(
    rows: np.ndarray, weight: np.ndarray, post: np.ndarray, band: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """(index, weight), both (n_b, K_b): row r of ``band`` lists its neuron's synapses in stored order.

    Padding repeats the neuron's last table row with weight 0 (adds +0; reads no other neuron's input).
    """
    slot = np.full(int(post.max(initial=0)) + 1, -1)
    slot[band] = np.arange(len(band))
    keep = np.flatnonzero(slot[post] >= 0)
    keep = keep[np.argsort(slot[post[keep]], kind="stable")]  # by band row, stored order within a row
    row = slot[post[keep]]
    counts = np.bincount(row, minlength=len(band))
    column = np.arange(len(keep)) - np.repeat(np.cumsum(counts) - counts, counts)
    index = np.repeat(rows[keep][np.cumsum(counts) - 1][:, None], counts.max(), axis=1)
    padded = np.zeros(index.shape)
    index[row, column], padded[row, column] = rows[keep], weight[keep]
    return index, padded


class _Builder:
    """Nodes and initializers of one ONNX graph; intermediate names are "#<tag>k" (no I/O name starts with "#")."""

    def __init__(self, tag: str = "") -> None:
        self.nodes: list[onnx.NodeProto] = []
        self.initializers: list[onnx.TensorProto] = []
        self.tag, self._count = tag, 0

    def fresh(self) -> str:
        self._count += 1
        return f"#{self.tag}{self._count}"

    def const(self, value: Any, dtype: Any = np.float64) -> str:
        name = self.fresh()
        self.initializers.append(numpy_helper.from_array(np.asarray(value, dtype=dtype), name))
        return name

    def op(self, op_type: str, *inputs: str, out: str | None = None, **attrs: Any) -> str:
        out = out or self.fresh()
        self.nodes.append(helper.make_node(op_type, list(inputs), [out], **attrs))
        return out


class _Step:
    """Emits one time step of ``graph``: sources become available in list order (input first).

    Every input and output name of the step model is written ``prefix + name`` (the Scan body of
    the sequence model uses a prefix, so its names cannot shadow the outer graph's).
    """

    def __init__(self, graph: DelayGraph, b: _Builder, prefix: str = ""):
        self.graph, self.b, self.prefix = graph, b, prefix
        self.depth = buffer_depths(graph)
        self.batch = b.op("Shape", self.io(FRAME), start=0, end=1)
        self.one = b.const(1.0)
        self.tables: dict[tuple[str, bool], str] = {}  # (source, recurrent) -> flattened table (rows, B)
        self._shapes: dict[int, str] = {}
        self._zeros: dict[int, str] = {}

    def io(self, name: str) -> str:
        return self.prefix + name

    def run(self, membranes: bool = False) -> None:
        """All layers in order; with ``membranes``, also mem.<L> = v[t] as (B, n) for layers with a membrane."""
        self._emitted(INPUT, self.b.op("Transpose", self.io(FRAME), perm=[1, 0]))
        for layer in self.graph.layers:
            self._emitted(layer.name, self._neurons(layer, self._current(layer)))
            if membranes and "v" in _state_kinds(layer):
                v, unit = self.io(f"next.v.{layer.name}"), membrane_unit(layer)
                if unit is not None:  # report v = s · u; the comparison was made in units of s
                    v = self.b.op("Mul", v, self.b.const(unit[:, None]))
                self.b.op("Transpose", v, perm=[1, 0], out=self.io(f"mem.{layer.name}"))

    def _emitted(self, source: str, s: str) -> None:
        """s^source[t] (n, B) exists: shift its delay buffer, buf' = [s; buf][:D]; keep the gather table."""
        depth = self.depth.get(source)
        if depth is None:
            self.tables[source, False] = s
            return
        b = self.b
        window = b.op("Concat", b.op("Unsqueeze", s, b.const([0], np.int64)), self.io(f"buf.{source}"), axis=0)
        b.op("Slice", window, b.const([0], np.int64), b.const([depth], np.int64), out=self.io(f"next.buf.{source}"))
        self.tables[source, False] = b.op("Flatten", window, axis=2)

    def _table(self, source: str, recurrent: bool) -> str:
        if recurrent and (source, True) not in self.tables:
            self.tables[source, True] = self.b.op("Flatten", self.io(f"buf.{source}"), axis=2)
        return self.tables[source, recurrent]

    def shape(self, n: int) -> str:
        """The int64 shape [n, B]."""
        if n not in self._shapes:
            self._shapes[n] = self.b.op("Concat", self.b.const([n], np.int64), self.batch, axis=0)
        return self._shapes[n]

    def zeros(self, n: int) -> str:
        """Zeros (n, B)."""
        if n not in self._zeros:
            self._zeros[n] = self.b.op("ConstantOfShape", self.shape(n), value=numpy_helper.from_array(np.zeros(1)))
        return self._zeros[n]

    def _synapses(self, proj: Projection, layer: Layer) -> str:
        """a_P (n, B): Σ over the synapses into each neuron j of w · s_pre[t − d], one fan-in band at a time."""
        recurrent = self.graph.is_recurrent(layer, proj)
        rows = (proj.delay - recurrent) * self.graph.source_size(proj.source) + proj.pre
        index_type = np.int32 if rows.max() < 2**31 else np.int64
        table, b = self._table(proj.source, recurrent), self.b
        bands = fan_in_bands(proj.post, layer.size)
        sums = []
        for band in bands:
            index, weight = padded_synapses(rows, proj.weight, proj.post, band)
            gathered = b.op("Gather", table, b.const(index, index_type), axis=0)  # (n_b, K_b, B)
            weighted = b.op("Mul", gathered, b.const(weight[:, :, None]))
            sums.append(b.op("ReduceSum", weighted, b.const([1], np.int64), keepdims=0))  # (n_b, B)
        placed = np.concatenate(bands)
        if len(bands) == 1 and len(placed) == layer.size:
            return sums[0]  # one band holding every neuron, in order
        row_of = np.full(layer.size, len(placed))  # neurons without synapses read the zero row
        row_of[placed] = np.arange(len(placed))
        zero_row = [self.zeros(1)] if len(placed) < layer.size else []
        stacked = b.op("Concat", *sums, *zero_row, axis=0)
        return b.op("Gather", stacked, b.const(row_of, np.int64), axis=0)

    def _current(self, layer: Layer) -> str:
        """I (n, B) = b + Σ_groups scale_g ⊙ Σ_{P in g} a_P, with simulate's groups and summation order.

        In units of the scale (membrane_unit) I' = b/s + Σ_P a_P, as the simulator computes it.
        """
        b = self.b
        unit = membrane_unit(layer)
        groups = [(scale, [layer.projections[k] for k in members]) for scale, members in layer.scale_groups()]
        bias = in_units(layer.bias, unit)
        total = b.const(bias[:, None])
        summed = False
        for scale, members in groups:
            live = [self._synapses(p, layer) for p in members[1:] + members[:1] if not _silent(p, self.graph)]
            if not live:
                continue
            acc = live[0]
            for term in live[1:]:
                acc = b.op("Add", acc, term)
            total = b.op("Add", total, acc if scale is None else b.op("Mul", b.const(scale[:, None]), acc))
            summed = True
        return total if summed else b.op("Expand", total, self.shape(layer.size))

    def _neurons(self, layer: Layer, current: str) -> str:
        """The layer's neuron step (delaynir.ir.neuron_kinds) lowered to nodes; emits out.<L> and next.<state>;
        returns out (n, B).

        That is s^L[t] (z, or I for a relay) except for li, whose v is returned but never read as a
        source (li layers emit no spikes: projections from them are left out, see ``_silent``).
        """
        kind, unit = layer.kind, membrane_unit(layer)
        params = {
            "beta": layer.beta,
            "alpha": layer.alpha,
            "hard": layer.reset == "hard",
            "theta": in_units(layer.threshold, unit),
        }
        state = {name: self.io(f"{name}.{layer.name}") for name in kind.state}
        _, out = kind.step(_Ops(self, layer.name), params, state, current)
        self.b.op("Transpose", out, perm=[1, 0], out=self.io(f"out.{layer.name}"))
        return out


class _Ops:
    """The operations of a neuron_kinds step, emitted as ONNX nodes of one layer (float64, (n, B)).

    Operands are value names, the literal 1 (the step's shared constant) or per-neuron parameters (n,),
    each emitted as an (n, 1) constant where it is used; ``out`` names the node's output next.<out>.<L>.
    """

    def __init__(self, step: _Step, layer: str):
        self.step, self.b, self.layer = step, step.b, layer

    def _value(self, x: Any) -> str:
        if isinstance(x, str):
            return x
        if isinstance(x, (int, float)) and x == 1:
            return self.step.one
        return self.b.const(np.asarray(x)[:, None])

    def _name(self, out: str | None) -> str | None:
        return None if out is None else self.step.io(f"next.{out}.{self.layer}")

    def _binary(self, op_type: str, a: Any, b: Any, out: str | None) -> str:
        a, b = self._value(a), self._value(b)
        return self.b.op(op_type, a, b, out=self._name(out))

    def mul(self, a: Any, b: Any, out: str | None = None) -> str:
        return self._binary("Mul", a, b, out)

    def add(self, a: Any, b: Any, out: str | None = None) -> str:
        return self._binary("Add", a, b, out)

    def sub(self, a: Any, b: Any, out: str | None = None) -> str:
        return self._binary("Sub", a, b, out)

    def above(self, v: Any, theta: Any, out: str | None = None) -> str:
        """Cast(v > θ) to float64: 1.0 where v is strictly above θ."""
        greater = self._binary("Greater", v, theta, None)
        return self.b.op("Cast", greater, to=TensorProto.DOUBLE, out=self._name(out))


def _value_infos(ports: list[Port], prefix: str = "") -> list[onnx.ValueInfoProto]:
    return [
        helper.make_tensor_value_info(prefix + p.name, TensorProto.DOUBLE, list(p.shape), doc_string=p.doc)
        for p in ports
    ]


def _step_graph(graph: DelayGraph) -> onnx.GraphProto:
    b = _Builder()
    _Step(graph, b).run()
    inputs, outputs = interface(graph)
    return helper.make_graph(
        b.nodes,
        "delaynir_step",
        _value_infos(inputs),
        _value_infos(outputs),
        initializer=b.initializers,
        doc_string=f"one time step of a delaynir DelayGraph ({len(graph.layers)} layers, "
        f"{graph.n_synapses} synapses, dt = {graph.dt} s); see {DOC}",
    )


def _sequence_graph(graph: DelayGraph) -> onnx.GraphProto:
    """Scan over time whose body is the step graph (names prefixed with SCAN); state starts at zero."""
    step_inputs, _ = interface(graph)
    states = [p for p in step_inputs if p.role == "state"]
    inputs, outputs = sequence_interface(graph)
    body_b = _Builder("s")
    _Step(graph, body_b, prefix=SCAN).run(membranes=True)
    per_step = [
        Port(p.name if p.role == "output" else f"mem.{p.name[2:]}", p.shape[1:], p.role, p.doc) for p in outputs
    ]
    body = helper.make_graph(
        body_b.nodes,
        "delaynir_step",
        _value_infos([*states, step_inputs[0]], SCAN),
        _value_infos([Port(s.next, s.shape, s.role, s.doc) for s in states] + per_step, SCAN),
        initializer=body_b.initializers,
    )
    b = _Builder()
    batch = b.op("Shape", FRAME, start=1, end=2)
    zero = numpy_helper.from_array(np.zeros(1))
    initial = [
        b.op("ConstantOfShape", b.op("Concat", b.const(p.shape[:-1], np.int64), batch, axis=0), value=zero)
        for p in states
    ]  # the batch is the last axis of every state tensor
    b.nodes.append(
        helper.make_node(
            "Scan",
            [*initial, FRAME],
            [b.fresh() for _ in states] + [p.name for p in outputs],
            body=body,
            num_scan_inputs=1,
        )
    )
    return helper.make_graph(
        b.nodes,
        "delaynir_sequence",
        _value_infos(inputs),
        _value_infos(outputs),
        initializer=b.initializers,
        doc_string=f"T time steps of a delaynir DelayGraph from zero state ({len(graph.layers)} "
        f"layers, {graph.n_synapses} synapses, dt = {graph.dt} s); see {DOC}",
    )


def build_model(graph: DelayGraph, *, sequence: bool = False) -> onnx.ModelProto:
    """The step model of ``graph``, or with ``sequence`` the whole-sequence model (not checked here)."""
    kind = "sequence" if sequence else "step"
    body = _sequence_graph(graph) if sequence else _step_graph(graph)
    model = helper.make_model(
        body,
        opset_imports=[helper.make_opsetid("", OPSET)],
        ir_version=IR_VERSION,
        producer_name="delaynir",
        producer_version=__version__,
        doc_string=f"delaynir {kind} model of a DelayGraph; see {DOC}",
    )
    inputs, outputs = sequence_interface(graph) if sequence else interface(graph)
    helper.set_model_props(model, _metadata(graph, kind, inputs, outputs))
    return model


# ----------------------------------------------------------------------------- export


def export_onnx(graph: DelayGraph, path: str | os.PathLike, *, overwrite: bool = False, sequence: bool = False) -> Path:
    """Write the step model of ``graph`` (or with ``sequence`` the whole-sequence model) to ``path``; return it.

    The write is atomic. Raises ExportError (and writes nothing) if ``path`` exists and ``overwrite``
    is False, the graph is invalid, or the model fails ``onnx.checker.check_model(full_check=True)``.
    """
    path = check_output(path, overwrite=overwrite, error=ExportError)
    problems = validate_graph(graph)
    if problems:
        raise ExportError(f"refusing to write {path}: the DelayGraph is invalid:\n  " + "\n  ".join(problems))
    model = build_model(graph, sequence=sequence)
    try:
        onnx.checker.check_model(model, full_check=True)
    except (onnx.checker.ValidationError, onnx.shape_inference.InferenceError) as exc:
        raise ExportError(f"refusing to write {path}: the ONNX model fails the checker ({exc})") from None
    data = model.SerializeToString()
    try:
        with atomic_path(path, overwrite=overwrite, error=ExportError) as tmp:
            tmp.write_bytes(data)
    except OSError as exc:
        raise ExportError(f"cannot write {path}: {exc}") from None
    logger.info(
        "wrote %s: ONNX %s model, opset %d, %d layers, %d synapses, %d bytes",
        path,
        "sequence" if sequence else "step",
        OPSET,
        len(graph.layers),
        graph.n_synapses,
        len(data),
    )
    return path
