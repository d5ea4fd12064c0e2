"""ONNX export of a DelayGraph as a per-step model with explicit state, and its runner in ONNX Runtime.

ONNX Runtime is stateless, so one call of the exported model computes one time step t of the
graph exactly as the reference simulator does (``delaynir.graph`` equations, ``delaynir.simulate``
update order and summation order), in float64:

    (x[t], state[t − 1])  ↦  (out.<L>[t] for every layer L,  state[t])

Inputs (state is all zeros at t = 0):

    x        (B, n_inputs)       input frame at step t
    v.<L>    (n_L, B)            membrane v[t − 1]                 lif, cubalif, li
    z.<L>    (n_L, B)            spikes z[t − 1] (for the reset)   lif, cubalif
    i.<L>    (n_L, B)            synaptic current i[t − 1]         cubalif
    buf.<S>  (D_S, n_S, B)       buf[k] = s^S[t − 1 − k], k = 0 … D_S − 1, for every source S
                                 ("input" or a layer) read through a delay; D_S = its longest delay

Outputs: ``out.<L>`` (B, n_L), the layer's output s^L[t] (spikes z for lif/cubalif, the relayed
value I for relay, the membrane v for the li readout), then ``next.<state>`` for every state
input ``<state>``, to be fed back at step t + 1. State is neuron-major with the batch last (the
layout the step computes in); frames are batch-first.

Synapses stay sparse (cost and size ∝ synapses, never pre × post × D). For a projection P with
synapses (pre, post, d, w), sorted by post as the simulator sums them:

    g   = Gather(table, k)                      (S, B)   table = [s^S[t]; buf^S] as ((D_S + 1)·n_S, B),
                                                         k = d·n_S + pre; a recurrent P (source at or after
                                                         L) reads buf^S alone with k = (d − 1)·n_S + pre
    a_P = ScatterND_add(0 (n_L, B), post, w ⊙ g)         Σ_{synapses into j} w · s_i[t − d]
    I   = b + Σ_groups scale_g ⊙ Σ_{P in g} a_P          groups and order as in delaynir.simulate

The file layout (every name, shape and metadata key) is documented in docs/onnx-format.md.
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
import onnxruntime as ort
import torch
from onnx import TensorProto, helper, numpy_helper

from delaynir import __version__
from delaynir.errors import ExportError
from delaynir.graph import INPUT, DelayGraph, Layer, Projection
from delaynir.graph_io import validate_graph
from delaynir.runs import atomic_path
from delaynir.simulate import SimulationResult

logger = logging.getLogger(__name__)

__all__ = ["OnnxRunResult", "export_onnx", "run_onnx", "OPSET", "IR_VERSION"]

OnnxRunResult = SimulationResult  #: what run_onnx returns: the simulator's result type
OPSET, IR_VERSION = 21, 10  #: default ONNX domain opset and IR version (ONNX Runtime ≥ 1.17)
FORMAT, FORMAT_VERSION = "delaynir.onnx.step", 1
BATCH = "B"  #: the symbolic batch dimension
FRAME = "x"
DOC = "docs/onnx-format.md"
META = {"format": "delaynir.format", "version": "delaynir.format_version", "io": "delaynir.io",
        "layers": "delaynir.layers", "dt": "delaynir.dt", "target": "delaynir.target",
        "n_inputs": "delaynir.n_inputs"}  #: metadata_props keys
STATE_DOC = {
    "v": "membrane v[t-1] of layer {name} (zeros at t = 0)",
    "z": "spikes z[t-1] of layer {name}, for the reset (zeros at t = 0)",
    "i": "synaptic current i[t-1] of cubalif layer {name} (zeros at t = 0)",
    "buf": "delay buffer of source {name}: [k] = its output at step t-1-k, k = 0..{depth} (zeros at t = 0)",
}
OUTPUT_DOC = {"lif": "spikes z[t]", "cubalif": "spikes z[t]", "relay": "relayed input I[t]", "li": "membrane v[t]"}


@dataclass(frozen=True)
class Port:
    """One model input or output: name, shape (ints and "B"), role (frame | state | output), description.

    ``next`` (state inputs only) names the output holding the state's value for the next step.
    """

    name: str
    shape: tuple[int | str, ...]
    role: str
    doc: str
    next: str | None = None

    def value_info(self) -> onnx.ValueInfoProto:
        return helper.make_tensor_value_info(self.name, TensorProto.DOUBLE, list(self.shape), doc_string=self.doc)

    def zeros(self, batch: int) -> np.ndarray:
        return np.zeros([batch if d == BATCH else d for d in self.shape])


# ----------------------------------------------------------------------------- interface


def _silent(proj: Projection, graph: DelayGraph) -> bool:
    """Whether ``proj`` contributes nothing: no synapses, or an li source (li layers emit no spikes)."""
    return len(proj) == 0 or (proj.source != INPUT and graph.layer(proj.source).neuron == "li")


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
    return {"lif": ("v", "z"), "cubalif": ("v", "z", "i"), "li": ("v",), "relay": ()}[layer.neuron]


def interface(graph: DelayGraph) -> tuple[list[Port], list[Port]]:
    """(inputs, outputs) of the step model, in order: frame, then state; layer outputs, then next state."""
    states = [Port(f"{kind}.{layer.name}", (layer.size, BATCH), "state", STATE_DOC[kind].format(name=layer.name),
                   f"next.{kind}.{layer.name}")
              for layer in graph.layers for kind in _state_kinds(layer)]
    states += [Port(f"buf.{source}", (depth, graph.source_size(source), BATCH), "state",
                    STATE_DOC["buf"].format(name=source, depth=depth - 1), f"next.buf.{source}")
               for source, depth in buffer_depths(graph).items()]
    frame = Port(FRAME, (BATCH, graph.n_inputs), "frame", "input frame x[t] (real-valued counts per channel)")
    outputs = [Port(f"out.{layer.name}", (BATCH, layer.size), "output",
                    f"{OUTPUT_DOC[layer.neuron]} of {layer.neuron} layer {layer.name}")
               for layer in graph.layers]
    outputs += [Port(s.next, s.shape, "state", f"{s.doc.split(' (')[0].replace('[t-1', '[t')}; feed back as {s.name}")
                for s in states]
    return [frame, *states], outputs


def _metadata(graph: DelayGraph, inputs: list[Port], outputs: list[Port]) -> dict[str, str]:
    layers = [{"name": layer.name, "neuron": layer.neuron, "reset": layer.reset, "size": layer.size,
               "output": f"out.{layer.name}"} for layer in graph.layers]
    io = {"inputs": [asdict(p) for p in inputs], "outputs": [asdict(p) for p in outputs], "batch": BATCH,
          "dtype": "float64"}
    return {META["format"]: FORMAT, META["version"]: str(FORMAT_VERSION), META["io"]: json.dumps(io),
            META["layers"]: json.dumps(layers), META["dt"]: repr(float(graph.dt)), META["target"]: str(graph.target),
            META["n_inputs"]: str(graph.n_inputs)}


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


def padded_synapses(rows: np.ndarray, weight: np.ndarray, post: np.ndarray,
                    band: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
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
    """Nodes and initializers of one ONNX graph; intermediate names are "#k" (no I/O name starts with "#")."""

    def __init__(self) -> None:
        self.nodes: list[onnx.NodeProto] = []
        self.initializers: list[onnx.TensorProto] = []
        self._count = 0

    def fresh(self) -> str:
        self._count += 1
        return f"#{self._count}"

    def const(self, value: Any, dtype: Any = np.float64) -> str:
        name = self.fresh()
        self.initializers.append(numpy_helper.from_array(np.asarray(value, dtype=dtype), name))
        return name

    def op(self, op_type: str, *inputs: str, out: str | None = None, **attrs: Any) -> str:
        out = out or self.fresh()
        self.nodes.append(helper.make_node(op_type, list(inputs), [out], **attrs))
        return out


class _Step:
    """Emits one time step of ``graph``: sources become available in list order (input first)."""

    def __init__(self, graph: DelayGraph, b: _Builder):
        self.graph, self.b = graph, b
        self.depth = buffer_depths(graph)
        self.order = {INPUT: -1, **{layer.name: k for k, layer in enumerate(graph.layers)}}
        self.batch = b.op("Shape", FRAME, start=0, end=1)
        self.one = b.const(1.0)
        self.tables: dict[tuple[str, bool], str] = {}  # (source, recurrent) -> flattened table (rows, B)
        self._shapes: dict[int, str] = {}
        self._zeros: dict[int, str] = {}

    def run(self) -> None:
        self._emitted(INPUT, self.b.op("Transpose", FRAME, perm=[1, 0]))
        for layer in self.graph.layers:
            self._emitted(layer.name, self._neurons(layer, self._current(layer)))

    def _emitted(self, source: str, s: str) -> None:
        """s^source[t] (n, B) exists: shift its delay buffer, buf' = [s; buf][:D]; keep the gather table."""
        depth = self.depth.get(source)
        if depth is None:
            self.tables[source, False] = s
            return
        b = self.b
        window = b.op("Concat", b.op("Unsqueeze", s, b.const([0], np.int64)), f"buf.{source}", axis=0)
        b.op("Slice", window, b.const([0], np.int64), b.const([depth], np.int64), out=f"next.buf.{source}")
        self.tables[source, False] = b.op("Flatten", window, axis=2)

    def _table(self, source: str, recurrent: bool) -> str:
        if recurrent and (source, True) not in self.tables:
            self.tables[source, True] = self.b.op("Flatten", f"buf.{source}", axis=2)
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
        recurrent = self.order[proj.source] >= self.order[layer.name]
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
        """I (n, B) = b + Σ_groups scale_g ⊙ Σ_{P in g} a_P, with simulate's groups and summation order."""
        b = self.b
        groups: list[tuple[np.ndarray, list[Projection]]] = []
        for proj in layer.projections:
            match = next((members for scale, members in groups if np.array_equal(scale, proj.scale)), None)
            if match is None:
                groups.append((proj.scale, [proj]))
            else:
                match.append(proj)
        total = b.const(layer.bias[:, None])
        summed = False
        for scale, members in groups:
            live = [self._synapses(p, layer) for p in members[1:] + members[:1] if not _silent(p, self.graph)]
            if not live:
                continue
            acc = live[0]
            for term in live[1:]:
                acc = b.op("Add", acc, term)
            total = b.op("Add", total, b.op("Mul", b.const(scale[:, None]), acc))
            summed = True
        return total if summed else b.op("Expand", total, self.shape(layer.size))

    def _neurons(self, layer: Layer, current: str) -> str:
        """graph.py's update of ``layer`` from I[t]; emits out.<L> and next.<state>; returns s^L[t] (n, B)."""
        b, name = self.b, layer.name
        col = lambda values: b.const(np.asarray(values)[:, None])  # noqa: E731  (n, 1) parameter
        if layer.neuron == "relay":
            b.op("Transpose", current, perm=[1, 0], out=f"out.{name}")
            return current
        if layer.neuron == "li":
            v = b.op("Add", b.op("Mul", col(layer.beta), f"v.{name}"), current, out=f"next.v.{name}")
            b.op("Transpose", v, perm=[1, 0], out=f"out.{name}")
            return v
        drive = current
        if layer.neuron == "cubalif":
            drive = b.op("Add", b.op("Mul", col(layer.alpha), f"i.{name}"), current, out=f"next.i.{name}")
        decayed = b.op("Mul", col(layer.beta), f"v.{name}")
        if layer.reset == "hard":  # β v (1 − z) + I
            kept = b.op("Mul", decayed, b.op("Sub", self.one, f"z.{name}"))
        else:  # β v − θ z + I
            kept = b.op("Sub", decayed, b.op("Mul", col(layer.threshold), f"z.{name}"))
        v = b.op("Add", kept, drive, out=f"next.v.{name}")
        z = b.op("Cast", b.op("Greater", v, col(layer.threshold)), to=TensorProto.DOUBLE, out=f"next.z.{name}")
        b.op("Transpose", z, perm=[1, 0], out=f"out.{name}")
        return z


def build_model(graph: DelayGraph) -> onnx.ModelProto:
    """The step model of ``graph`` (not checked; export_onnx checks it)."""
    b = _Builder()
    _Step(graph, b).run()
    inputs, outputs = interface(graph)
    body = helper.make_graph(b.nodes, "delaynir_step", [p.value_info() for p in inputs],
                             [p.value_info() for p in outputs], initializer=b.initializers,
                             doc_string=f"one time step of a delaynir DelayGraph ({len(graph.layers)} layers, "
                                        f"{graph.n_synapses} synapses, dt = {graph.dt} s); see {DOC}")
    model = helper.make_model(body, opset_imports=[helper.make_opsetid("", OPSET)], ir_version=IR_VERSION,
                              producer_name="delaynir", producer_version=__version__,
                              doc_string="delaynir step model: feed next.* back as the state inputs")
    helper.set_model_props(model, _metadata(graph, inputs, outputs))
    return model


# ----------------------------------------------------------------------------- export


def export_onnx(graph: DelayGraph, path: str | os.PathLike, *, overwrite: bool = False) -> Path:
    """Write the step model of ``graph`` to ``path`` atomically; return the path.

    Raises ExportError (and writes nothing) if the graph is invalid, the model fails
    ``onnx.checker.check_model(full_check=True)``, or ``path`` exists and ``overwrite`` is False.
    """
    path = Path(path)
    if path.exists() and not overwrite:
        raise ExportError(f"{path} already exists; pass overwrite=True to replace it")
    problems = validate_graph(graph)
    if problems:
        raise ExportError(f"refusing to write {path}: the DelayGraph is invalid:\n  " + "\n  ".join(problems))
    model = build_model(graph)
    try:
        onnx.checker.check_model(model, full_check=True)
    except (onnx.checker.ValidationError, onnx.shape_inference.InferenceError) as exc:
        raise ExportError(f"refusing to write {path}: the ONNX model fails the checker ({exc})") from None
    data = model.SerializeToString()
    try:
        with atomic_path(path) as tmp:
            tmp.write_bytes(data)
    except OSError as exc:
        raise ExportError(f"cannot write {path}: {exc}") from None
    logger.info("wrote %s: ONNX step model, opset %d, %d layers, %d synapses, %d bytes", path, OPSET,
                len(graph.layers), graph.n_synapses, len(data))
    return path


# ----------------------------------------------------------------------------- running


@dataclass
class _StepModel:
    """An exported step model opened in ONNX Runtime, with its documented interface."""

    path: Path
    session: ort.InferenceSession
    inputs: list[Port]
    outputs: list[Port]
    layers: list[dict[str, Any]]
    n_inputs: int


def _open(path: Path) -> _StepModel:
    """``path`` opened in ONNX Runtime; ExportError if it is unreadable or not a delaynir step model."""
    if not path.is_file():
        raise ExportError(f"{path}: no such file (expected an ONNX step model written by export_onnx)")
    options = ort.SessionOptions()
    options.log_severity_level = 3
    try:
        session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    except Exception as exc:  # onnxruntime raises its own types (InvalidProtobuf, Fail, ...)
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ExportError(f"{path}: not a loadable ONNX model; the file is malformed or truncated ({first})") from None
    meta = session.get_modelmeta().custom_metadata_map
    if meta.get(META["format"]) != FORMAT:
        raise ExportError(f"{path}: metadata {META['format']!r} is {meta.get(META['format'])!r}, expected "
                          f"{FORMAT!r}; this ONNX file was not exported by delaynir.converters.onnx.export_onnx")
    if meta.get(META["version"]) != str(FORMAT_VERSION):
        raise ExportError(f"{path}: format version {meta.get(META['version'])!r}; this delaynir reads version "
                          f"{FORMAT_VERSION}; re-export the graph with this delaynir")
    try:
        io = json.loads(meta[META["io"]])
        inputs = [Port(**{**p, "shape": tuple(p["shape"])}) for p in io["inputs"]]
        outputs = [Port(**{**p, "shape": tuple(p["shape"])}) for p in io["outputs"]]
        layers, n_inputs = json.loads(meta[META["layers"]]), int(meta[META["n_inputs"]])
    except (KeyError, TypeError, ValueError) as exc:
        raise ExportError(f"{path}: delaynir metadata missing or malformed ({type(exc).__name__}: {exc}); "
                          f"re-export the graph (layout: {DOC})") from None
    found = ([i.name for i in session.get_inputs()], [o.name for o in session.get_outputs()])
    if found != ([p.name for p in inputs], [p.name for p in outputs]):
        raise ExportError(f"{path}: the model's inputs/outputs {found} do not match its {META['io']!r} metadata; "
                          "the file was edited after export")
    return _StepModel(path, session, inputs, outputs, layers, n_inputs)


def _frames(model: _StepModel, inputs: Any) -> np.ndarray:
    x = torch.as_tensor(inputs).to(torch.float64).numpy()
    if x.ndim != 3 or x.shape[2] != model.n_inputs:
        raise ExportError(f"{model.path} takes inputs (T, B, {model.n_inputs}) (n_inputs = {model.n_inputs}); "
                          f"got {tuple(x.shape)}")
    return np.ascontiguousarray(x)


def predictions(output: torch.Tensor, readout: str) -> torch.Tensor:
    """(B,) as delaynir.simulate: argmax_c Σ_t softmax(v[t])_c for an li readout, else argmax spike count."""
    return torch.softmax(output, dim=-1).sum(0).argmax(1) if readout == "li" else output.sum(0).argmax(1)


def run_onnx(path: str | os.PathLike, inputs: Any) -> SimulationResult:
    """Run the step model at ``path`` on ``inputs`` (T, B, n_inputs) in ONNX Runtime, one call per step.

    Returns delaynir.simulate's SimulationResult with every layer's spikes and membranes recorded
    (spikes of li layers are zero; a relay's membrane is its input I). ExportError if the file is
    malformed, not a delaynir step model, or does not take ``n_inputs`` channels.
    """
    model = _open(Path(path))
    x = _frames(model, inputs)
    T, B, _ = x.shape
    state = {p.name: p.zeros(B) for p in model.inputs if p.role == "state"}
    names = [p.name for p in model.outputs]
    out = {layer["name"]: np.zeros((T, B, layer["size"])) for layer in model.layers}
    membranes = {layer["name"]: np.zeros((T, B, layer["size"])) for layer in model.layers}
    for t in range(T):
        values = dict(zip(names, model.session.run(names, {FRAME: x[t], **state})))
        state = {p.name: values[p.next] for p in model.inputs if p.role == "state"}
        for layer in model.layers:
            name = layer["name"]
            out[name][t] = values[f"out.{name}"]
            membranes[name][t] = values[f"out.{name}"] if layer["neuron"] == "relay" else values[f"next.v.{name}"].T
    spikes = {layer["name"]: torch.from_numpy(np.zeros_like(out[layer["name"]]) if layer["neuron"] == "li"
                                               else out[layer["name"]]) for layer in model.layers}
    membranes_t = {name: torch.from_numpy(m) for name, m in membranes.items()}
    last = model.layers[-1]
    output = torch.from_numpy(out[last["name"]])
    return SimulationResult(output=output, predictions=predictions(output, last["neuron"]), spikes=spikes,
                            membranes=membranes_t)
