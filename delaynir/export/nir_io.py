"""DelayGraph ⇄ NIR, with per-synapse delays as standard nir.Delay nodes.

Export (docs/nir-export.md has the diagram). For each projection P of a layer L, with U
the distinct (pre, delay) pairs of its synapses:

    source ──► L.pK.select  nir.Linear (|U| × n_source, one 1 per row: fan-out of each used pre)
           ──► L.pK.delay   nir.Delay  (|U|,  delay of pair u in seconds = steps · dt)
           ──► L.pK.weight  nir.Linear (n_L × |U|, the stored weights)
           ──► L.scaleG     nir.Affine (diag(scale_G), bias on G = 0)   one per distinct scale vector
           ──► L            nir.LIF | nir.CubaLIF | nir.LI | nir.Scale(1) (relay)

A projection without delays skips select and delay (source ──► L.pK.weight, n_L × n_source).
Sizes grow with |U| · (n_source + n_L), never with pre × post × D.

Exact numbers: a lif or cubalif layer whose projections share one scale s (graph.membrane_unit,
every compiled layer) is written in units of s, as the reference simulator computes it: one
L.scale0 = nir.Affine(identity, b/s), thresholds θ/s (integers for quantised targets with
integer thresholds; graph.in_units), the stored integer weights unscaled. The scale does not
change a spike of such a layer, so it is kept out of the spiking path (in the metadata, for
membranes and import). Every neuron node carries its exact per-step decay in node metadata
(``delaynir.beta``, ``delaynir.alpha``; ``delaynir.unit``): 1 − dt/τ recomputed from τ is an ulp
off for many decays (1 − dv/4096 among them), and an ulp decides a membrane on its threshold.

Neurons use the forward-Euler map of docs/design.md: β = 1 − dt/τ with r = τ/dt (so r·dt/τ = 1),
v_leak = 0, v_reset = 0; CubaLIF likewise with α = 1 − dt/τ_syn, w_in = τ_syn/dt; a layer with
β = 1 is nir.IF (r = 1/dt). A subtract-reset layer (v = β v − θ z[t−1] + I), which NIR's LIF
cannot express, is its membrane as nir.LI (L), an nir.Threshold (L.spike, the layer's output)
and an nir.Linear(−θ) (L.reset) fed back into L; a cubalif one has an nir.LI synaptic current
(L.syn) before L. A projection from the layer itself or a later layer closes a cycle, and an
executor that follows nirtorch reads a cycle's back edge one step late: such projections are
exported with delay (d − 1)·dt (the reset loop has no delay: it is the one step); a projection
from a later layer that does not depend on this one is no cycle and keeps its delay d·dt. Such
an executor must process the nodes in execution order (layer by layer, as our converters do),
so that each cycle is broken at its back edge.

dt, the discretisation, the layer list and the exact DelayGraph parameters are stored in the
graph's metadata, so our own files import to an identical DelayGraph. Files from other
tools are imported generically (``dt`` from the caller): Input, Output, Affine, Linear,
Scale, Delay, LIF, CubaLIF, IF and LI (as the output) nodes, recurrent loops included;
anything else is an error naming the node (the subtract-reset pattern is read from our own
files only).
"""

from __future__ import annotations

import io
import json
import logging
import math
from collections import defaultdict
from pathlib import Path
from typing import Any, TypedDict

import h5py
import nir
import numpy as np

from delaynir.common.h5 import reading_hdf5, seal
from delaynir.common.outputs import atomic_path, check_output
from delaynir.errors import ExportError, NIRImportError, reason
from delaynir.ir.graph import INPUT, DelayGraph, Layer, Projection, in_units, membrane_unit
from delaynir.ir.graph_io import validate_graph
from delaynir.ir.neuron_kinds import KINDS

log = logging.getLogger(__name__)

META_KEY = "delaynir"
FORMAT_VERSION = 2  #: 2: spiking layers in units of their scale, exact per-step coefficients, subtract reset
DISCRETISATION = "forward Euler: beta = 1 - dt/tau, input scale r*dt/tau; alpha = 1 - dt/tau_syn"
#: Node metadata of every neuron node we write: exact per-step decay (β; α of a CubaLIF) and, for a
#: layer computed in units of its scale, that scale (membrane in the file × unit = the graph's membrane).
STEP_BETA, STEP_ALPHA, STEP_UNIT = "delaynir.beta", "delaynir.alpha", "delaynir.unit"
NEURON_NODES = (nir.LIF, nir.CubaLIF, nir.IF, nir.LI)
LINEAR_NODES = (nir.Affine, nir.Linear, nir.Scale, nir.Delay)


# ------------------------------------------------------------------------------------------- export


def _node_name(name: str) -> str:
    """NIR node of a layer: prefixed (a layer may be called "output") and without dots (nirtorch)."""
    return "layer_" + name.replace(".", "_")


def _output_name(layer: Layer) -> str:
    """The node whose output is the layer's: its Threshold for a subtract-reset layer, else its neuron node."""
    me = _node_name(layer.name)
    return f"{me}.spike" if _subtract(layer) else me


def _subtract(layer: Layer) -> bool:
    return layer.kind.spiking and layer.reset == "subtract"


def _step_metadata(beta: np.ndarray, unit: np.ndarray | None = None, alpha: np.ndarray | None = None) -> dict:
    """Exact per-step coefficients of a neuron node (node metadata; docs/nir-export.md, "Exact numbers")."""
    meta: dict[str, Any] = {STEP_BETA: np.array(beta, dtype=np.float64)}
    if alpha is not None:
        meta[STEP_ALPHA] = np.array(alpha, dtype=np.float64)
    if unit is not None:
        meta[STEP_UNIT] = np.array(unit, dtype=np.float64)
    return meta


def _alpha(layer: Layer) -> np.ndarray:
    """The synaptic decays α of a current-based layer (a valid graph has them)."""
    if layer.alpha is None:
        raise ExportError(f"layer {layer.name!r}: a {layer.neuron} layer needs alpha, its synaptic decay")
    return layer.alpha


def _leak(layer: Layer, values: np.ndarray, what: str) -> np.ndarray:
    leak = 1.0 - values
    if np.any(leak <= 0) and not np.all(leak == 0):
        raise ExportError(
            f"layer {layer.name!r} mixes neurons with and without {what} (a decay of 1); NIR needs one node type"
        )
    return leak


def _neuron_nodes(layer: Layer, dt: float) -> tuple[dict[str, nir.NIRNode], list[tuple[str, str]], str]:
    """(nodes, internal edges, entry node) of one layer; the scale Affine feeds the entry node.

    A lif or cubalif layer in units of its scale (membrane_unit) gets thresholds θ/s; a subtract-reset
    layer is an LI membrane, a Threshold and a reset Linear(−θ) fed back into the membrane (one step
    late, as every cycle), preceded by an LI synaptic current for cubalif.
    """
    n, me, kind = layer.size, _node_name(layer.name), layer.kind
    zeros = np.zeros(n)
    if kind.relay:
        return {me: nir.Scale(scale=np.ones(n))}, [], me
    unit = membrane_unit(layer)
    leak = _leak(layer, layer.beta, "membrane leak")
    if kind.readout:
        meta = _step_metadata(layer.beta)
        if np.all(leak == 0):
            return {me: nir.I(r=np.full(n, 1.0 / dt), metadata=meta)}, [], me
        return {me: nir.LI(tau=dt / leak, r=1.0 / leak, v_leak=zeros, metadata=meta)}, [], me
    theta = in_units(layer.threshold, unit)
    if layer.reset == "subtract":
        if np.all(leak == 0) or (kind.current_based and np.any(layer.alpha == 1)):
            raise ExportError(
                f"layer {layer.name!r}: a subtract-reset layer without leak (a decay of 1) has no NIR "
                "form here (its membrane is an nir.LI)"
            )
        nodes: dict[str, nir.NIRNode] = {
            me: nir.LI(tau=dt / leak, r=1.0 / leak, v_leak=zeros, metadata=_step_metadata(layer.beta, unit)),
            f"{me}.spike": nir.Threshold(threshold=theta.copy()),
            f"{me}.reset": nir.Linear(weight=np.diag(-theta)),
        }
        edges = [(me, f"{me}.spike"), (f"{me}.spike", f"{me}.reset"), (f"{me}.reset", me)]
        if not kind.current_based:
            return nodes, edges, me
        syn_leak = _leak(layer, _alpha(layer), "synaptic leak")
        nodes[f"{me}.syn"] = nir.LI(
            tau=dt / syn_leak, r=1.0 / syn_leak, v_leak=zeros, metadata=_step_metadata(_alpha(layer))
        )
        return nodes, edges + [(f"{me}.syn", me)], f"{me}.syn"
    meta = _step_metadata(layer.beta, unit, layer.alpha if kind.current_based else None)
    if np.all(leak == 0):
        if kind.current_based:
            raise ExportError(f"layer {layer.name!r}: a CubaLIF without membrane leak has no NIR form")
        return {me: nir.IF(r=np.full(n, 1.0 / dt), v_threshold=theta, v_reset=zeros, metadata=meta)}, [], me
    if kind.current_based:
        syn_leak = 1.0 - _alpha(layer)
        return (
            {
                me: nir.CubaLIF(
                    tau_syn=dt / syn_leak,
                    tau_mem=dt / leak,
                    r=1.0 / leak,
                    v_leak=zeros,
                    v_threshold=theta,
                    v_reset=zeros,
                    w_in=1.0 / syn_leak,
                    metadata=meta,
                )
            },
            [],
            me,
        )
    return (
        {me: nir.LIF(tau=dt / leak, r=1.0 / leak, v_leak=zeros, v_threshold=theta, v_reset=zeros, metadata=meta)},
        [],
        me,
    )


def to_nir(graph: DelayGraph) -> nir.NIRGraph:
    """The NIR graph of ``graph`` (see the module docstring for the expansion)."""
    problems = validate_graph(graph)
    if problems:
        raise ExportError("cannot export an invalid DelayGraph:\n  " + "\n  ".join(problems))
    dt = graph.dt
    names = {INPUT: "input", **{layer.name: _output_name(layer) for layer in graph.layers}}
    offsets = cycle_offsets(graph)
    nodes: dict[str, nir.NIRNode] = {"input": nir.Input(input_type={"input": np.array([graph.n_inputs])})}
    edges: list[tuple[str, str]] = []
    for layer in graph.layers:
        me = _node_name(layer.name)
        own, internal, entry = _neuron_nodes(layer, dt)
        nodes.update(own)
        edges += internal
        unit = membrane_unit(layer)
        for g, (scale, members) in enumerate(layer.scale_groups()):
            scale = np.ones(layer.size) if scale is None else scale  # in units of the layer's scale
            scale_node = f"{me}.scale{g}"
            bias = in_units(layer.bias, unit) if g == 0 else np.zeros(layer.size)
            nodes[scale_node] = nir.Affine(weight=np.diag(scale), bias=bias.copy())
            edges.append((scale_node, entry))
            for k in members:
                proj = layer.projections[k]
                if not len(proj):
                    continue
                src, n_src = names[proj.source], graph.source_size(proj.source)
                delay = proj.delay - offsets[layer.name][k]
                prefix = f"{me}.p{k}"
                if not delay.any():
                    weight = np.zeros((layer.size, n_src))
                    np.add.at(weight, (proj.post, proj.pre), proj.weight)
                    nodes[f"{prefix}.weight"] = nir.Linear(weight=weight)
                    edges += [(src, f"{prefix}.weight"), (f"{prefix}.weight", scale_node)]
                    continue
                pairs, column = np.unique(np.stack([proj.pre, delay]), axis=1, return_inverse=True)
                select = np.zeros((pairs.shape[1], n_src))
                select[np.arange(pairs.shape[1]), pairs[0]] = 1.0
                weight = np.zeros((layer.size, pairs.shape[1]))
                np.add.at(weight, (proj.post, column.ravel()), proj.weight)
                nodes[f"{prefix}.select"] = nir.Linear(weight=select)
                nodes[f"{prefix}.delay"] = nir.Delay(delay=pairs[1] * dt)
                nodes[f"{prefix}.weight"] = nir.Linear(weight=weight)
                edges += [
                    (src, f"{prefix}.select"),
                    (f"{prefix}.select", f"{prefix}.delay"),
                    (f"{prefix}.delay", f"{prefix}.weight"),
                    (f"{prefix}.weight", scale_node),
                ]
    out = names[graph.layers[-1].name]
    nodes["output"] = nir.Output(output_type={"output": np.array([graph.n_outputs])})
    edges.append((out, "output"))
    meta = {
        "format_version": FORMAT_VERSION,
        "dt": dt,
        "discretisation": DISCRETISATION,
        "cycle_delay_steps": 1,
        "target": graph.target,
        "input": graph.input.to_dict(),
        "quantization": graph.quantization,
        "provenance": graph.provenance,
        "layers": [_layer_meta(layer, offsets[layer.name]) for layer in graph.layers],
    }
    return nir.NIRGraph(nodes=nodes, edges=edges, metadata={META_KEY: json.dumps(meta), "dt": dt})


def cycle_offsets(graph: DelayGraph) -> dict[str, list[int]]:
    """Per layer and projection, the steps an executor following nirtorch adds by itself: 1 for a projection
    that closes a cycle (its source is the layer itself or depends on it: the back edge is read one step
    late), else 0 (also for a source later in the list that does not depend on the layer: it is read in
    the same step, so the file carries its whole delay)."""
    consumers: dict[str, set[str]] = defaultdict(set)
    for layer in graph.layers:
        for proj in layer.projections:
            if len(proj) and proj.source != INPUT:
                consumers[proj.source].add(layer.name)

    def depends_on(source: str, layer: str) -> bool:
        seen, todo = {layer}, [layer]
        while todo:
            for nxt in consumers[todo.pop()]:
                if nxt == source:
                    return True
                if nxt not in seen:
                    seen.add(nxt)
                    todo.append(nxt)
        return False

    return {
        layer.name: [
            int(graph.is_recurrent(layer, p) and (p.source == layer.name or depends_on(p.source, layer.name)))
            for p in layer.projections
        ]
        for layer in graph.layers
    }


def _layer_meta(layer: Layer, offsets: list[int]) -> dict[str, Any]:
    """Exact parameters, so that our importer restores them bit for bit (JSON floats round-trip).

    ``node`` is the layer's membrane (neuron) node, ``output_node`` the node whose output is the
    layer's (a Threshold for the subtract reset), ``unit`` the scale its state is computed in units of;
    per projection ``offset`` is the step left out of the file's delays (cycle_offsets).
    """
    unit = membrane_unit(layer)
    meta = {
        "name": layer.name,
        "node": _node_name(layer.name),
        "output_node": _output_name(layer),
        "neuron": layer.neuron,
        "reset": layer.reset,
        "size": layer.size,
        "beta": layer.beta.tolist(),
        "threshold": [_json_float(v) for v in layer.threshold],
        "bias": layer.bias.tolist(),
        "unit": None if unit is None else unit.tolist(),
        "projections": [{"source": p.source, "n": len(p), "offset": off} for p, off in zip(layer.projections, offsets)],
    }
    if layer.alpha is not None:
        meta["alpha"] = layer.alpha.tolist()
    return meta


def _json_float(value: float) -> float | str:
    return "inf" if np.isinf(value) else float(value)


def export_nir(graph: DelayGraph, path: str | Path, *, overwrite: bool = False) -> Path:
    """Write ``graph`` as a NIR file (checked with nir.read(type_check=True) and validate_structure)."""
    path = check_output(path, overwrite=overwrite, error=ExportError)
    ngraph = to_nir(graph)
    with atomic_path(path, overwrite=overwrite, error=ExportError) as tmp:
        buffer = io.BytesIO()  # built in memory: HDF5 crashes on a full disk (delaynir.common.h5.writing_hdf5)
        nir.write(buffer, ngraph)
        with h5py.File(buffer, "r+") as f:
            seal(f)  # the content digest, in a root attribute nir.read ignores
        tmp.write_bytes(buffer.getbuffer())
        check = nir.read(tmp, type_check=True)
        check.validate_structure()
    log.info("wrote %s: %d NIR nodes, %d edges", path, len(ngraph.nodes), len(ngraph.edges))
    return path


# ------------------------------------------------------------------------------------------- import


def read_nir(path: str | Path) -> nir.NIRGraph:
    """The NIR graph in ``path``; NIRImportError naming the file and why if it cannot be read."""
    path = Path(path)
    with reading_hdf5(path, NIRImportError, "a NIR file written by nir.write"):
        pass  # missing, not HDF5, damaged, or declaring more data than memory holds: refused before nir reads it
    try:
        return nir.read(path)
    except Exception as exc:  # nir raises many types for files that are not NIR
        unknown = _unknown_node_types(path)
        why = f"node(s) of a type NIR does not define: {', '.join(unknown)}" if unknown else reason(exc)
        raise NIRImportError(f"{path}: cannot be read as NIR ({why})") from None


def _unknown_node_types(path: Path) -> list[str]:
    """'node (type)' for every node of the file whose type nir does not know (best effort: [] if unreadable)."""
    known, todo = set(), [nir.NIRNode]
    while todo:
        cls = todo.pop()
        known.add(cls.__name__)
        todo += cls.__subclasses__()
    found: list[str] = []

    def visit(name: str, obj: Any) -> None:
        if name.endswith("/type") and isinstance(obj, h5py.Dataset):
            kind = obj[()]
            kind = kind.decode("utf-8", "replace") if isinstance(kind, bytes) else str(kind)
            if kind not in known:
                found.append(f"{name[: -len('/type')]} ({kind})")

    try:
        with h5py.File(path, "r") as f:
            f.visititems(visit)
    except Exception:  # an unreadable file: the caller reports nir's own error
        return []
    return found


def from_nir(graph: nir.NIRGraph | str | Path, *, dt: float | None = None) -> DelayGraph:
    """A DelayGraph from a NIR graph (or file). Our own files carry dt; others need ``dt`` (seconds).

    Every failure is a NIRImportError naming the file; nothing in the file is dropped silently.
    """
    source = str(graph) if isinstance(graph, (str, Path)) else "the NIR graph"
    if dt is not None and not (isinstance(dt, (int, float)) and math.isfinite(dt) and dt > 0):
        raise NIRImportError(f"dt must be a positive number of seconds, got {dt!r}")
    ngraph = read_nir(graph) if isinstance(graph, (str, Path)) else graph
    meta = own_metadata(ngraph, source)
    try:
        if meta is not None:
            if dt is not None and dt != meta["dt"]:
                raise NIRImportError(
                    f"this is a delaynir file and carries dt = {meta['dt']} s; omit --dt (or pass "
                    "that value): its delays are whole steps of that dt"
                )
            return _import_own(ngraph, meta)
        if dt is None:
            raise NIRImportError("this NIR graph carries no time step; pass dt (seconds), e.g. --dt 0.001")
        return _import_general(ngraph, dt)
    except NIRImportError as exc:
        raise NIRImportError(f"{source}: {exc}") from None
    except (KeyError, IndexError, TypeError, ValueError, AttributeError) as exc:  # malformed node parameters
        raise NIRImportError(
            f"{source}: its nodes are malformed or do not fit together ({type(exc).__name__}: "
            f"{exc}); fix or re-export the file"
        ) from None


def own_metadata(ngraph: nir.NIRGraph, source: str = "the NIR graph") -> dict[str, Any] | None:
    """The checked ``delaynir`` metadata of one of our files; None for a file without it (another tool's)."""
    raw = ngraph.metadata.get(META_KEY) if isinstance(ngraph.metadata, dict) else None
    if raw is None:
        return None
    try:
        meta = json.loads(raw if isinstance(raw, str) else bytes(raw).decode("utf-8"))
    except (TypeError, ValueError) as exc:
        raise NIRImportError(
            f"{source}: its {META_KEY!r} metadata is not valid JSON ({exc}); the file was damaged "
            "after export: re-export it"
        ) from None
    if (
        isinstance(meta, dict)
        and isinstance(meta.get("format_version"), int)
        and meta["format_version"] > FORMAT_VERSION
    ):
        raise NIRImportError(
            f"{source} was written by a newer delaynir (format {meta['format_version']}); upgrade delaynir"
        )
    problems = _own_metadata_problems(meta)
    if problems:
        raise NIRImportError(
            f"{source}: its {META_KEY!r} metadata is malformed ({'; '.join(problems[:5])}); the file "
            "was edited after export: re-export it"
        )
    return meta


#: Fields of our metadata (and of each of its layers and projections) that import and the converters read.
_META_FIELDS = {"dt": (int, float), "layers": list}
_LAYER_FIELDS = {
    "name": str,
    "node": str,
    "neuron": str,
    "reset": str,
    "size": int,
    "beta": list,
    "threshold": list,
    "bias": list,
    "projections": list,
}
_PROJECTION_FIELDS = {"source": str, "n": int}


def _own_metadata_problems(meta: Any) -> list[str]:
    """What in our metadata is missing or of the wrong type (empty: it can be read)."""

    def wrong(where: str, obj: Any, fields: dict[str, Any]) -> list[str]:
        if not isinstance(obj, dict):
            return [f"{where or 'the metadata'}: expected an object, found {type(obj).__name__}"]
        return [
            f"{where}{key}: expected {getattr(kind, '__name__', 'a number')}, found {obj.get(key)!r:.40}"
            for key, kind in fields.items()
            if not isinstance(obj.get(key), kind) or isinstance(obj.get(key), bool)
        ]

    problems = wrong("", meta, _META_FIELDS)
    if problems:
        return problems
    if not (math.isfinite(meta["dt"]) and meta["dt"] > 0) or not meta["layers"]:
        return [f"expected dt > 0 and at least one layer, found dt {meta['dt']!r} and {len(meta['layers'])} layers"]
    for k, lm in enumerate(meta["layers"]):
        problems += wrong(f"layers[{k}].", lm, _LAYER_FIELDS)
        for j, pm in enumerate(lm.get("projections", []) if isinstance(lm, dict) else []):
            problems += wrong(f"layers[{k}].projections[{j}].", pm, _PROJECTION_FIELDS)
    return problems


def _import_own(ngraph: nir.NIRGraph, meta: dict[str, Any]) -> DelayGraph:
    """Restore the exact DelayGraph from our node naming and metadata."""
    dt = float(meta["dt"])
    order = {INPUT: -1, **{lm["name"]: k for k, lm in enumerate(meta["layers"])}}
    n_inputs = int(np.asarray(ngraph.nodes["input"].input_type["input"]).prod())
    sizes = {INPUT: n_inputs, **{lm["name"]: lm["size"] for lm in meta["layers"]}}
    layers = []
    for lm in meta["layers"]:
        me = lm["node"]
        projections = []
        scale_of = {}
        for g in range(len(lm["projections"])):
            affine = ngraph.nodes.get(f"{me}.scale{g}")
            if affine is not None:
                scale_of[f"{me}.scale{g}"] = np.diag(affine.weight).astype(np.float64)
        unit = lm.get("unit")
        if unit is not None:  # computed in units of its scale: every projection has that scale (format 2)
            scale_of = dict.fromkeys(scale_of, np.array(unit, dtype=np.float64))
        for k, pm in enumerate(lm["projections"]):
            weight_node = f"{me}.p{k}.weight"
            group = next((dst for src, dst in ngraph.edges if src == weight_node), None)
            if pm["n"] and weight_node not in ngraph.nodes:
                raise NIRImportError(
                    f"layer {lm['name']!r}: node {weight_node!r} of its projection {k} ({pm['n']} "
                    "synapses) is missing; the file was edited after export: re-export it"
                )
            if pm["n"] == 0:
                scale = (
                    np.array(unit, dtype=np.float64)
                    if unit is not None
                    else scale_of.get(group or "", next(iter(scale_of.values()), np.ones(lm["size"])))
                )
                empty = np.zeros(0, dtype=np.int64)
                projections.append(Projection(pm["source"], empty, empty, empty, np.zeros(0), scale))
                continue
            weight = np.asarray(ngraph.nodes[weight_node].weight, dtype=np.float64)
            recurrent = order[pm["source"]] >= order[lm["name"]]
            chain = [f"{me}.p{k}.select", f"{me}.p{k}.delay"]
            if chain[0] in ngraph.nodes or weight.shape[1] != sizes[pm["source"]]:  # a delayed projection
                missing = [name for name in chain if name not in ngraph.nodes]
                if missing:
                    raise NIRImportError(
                        f"layer {lm['name']!r}: node(s) {', '.join(missing)} of its projection {k} "
                        "are missing; the file was edited after export: re-export it"
                    )
                select = np.asarray(ngraph.nodes[f"{me}.p{k}.select"].weight)
                pair_pre = select.argmax(1)
                pair_delay = np.rint(np.asarray(ngraph.nodes[f"{me}.p{k}.delay"].delay) / dt).astype(np.int64)
                post, col = np.nonzero(weight)
                pre, delay = pair_pre[col], pair_delay[col]
            else:
                post, pre = np.nonzero(weight)
                col, delay = pre, np.zeros(len(pre), dtype=np.int64)
            delay = delay + pm.get("offset", 1 if recurrent else 0)  # format 1: every recurrent projection
            if len(pre) != pm["n"]:
                raise NIRImportError(
                    f"layer {lm['name']!r}: projection {k} holds {len(pre)} synapses in its nodes, "
                    f"its metadata says {pm['n']}; the file was edited after export: re-export it"
                )
            if group is None:
                raise NIRImportError(
                    f"layer {lm['name']!r}: node {weight_node!r} of its projection {k} feeds no node; "
                    "the file was edited after export: re-export it"
                )
            order_syn = np.lexsort((delay, pre, post))
            projections.append(
                Projection(
                    pm["source"],
                    pre[order_syn],
                    post[order_syn],
                    delay[order_syn],
                    weight[post, col][order_syn],
                    scale_of[group],
                )
            )
        threshold = np.array([np.inf if v == "inf" else v for v in lm["threshold"]], dtype=np.float64)
        layers.append(
            Layer(
                lm["name"],
                lm["size"],
                lm["neuron"],
                np.array(lm["beta"]),
                threshold,
                np.array(lm["bias"]),
                projections,
                reset=lm["reset"],
                alpha=np.array(lm["alpha"]) if "alpha" in lm else None,
            )
        )
    owners = {"input", "output", *(lm["node"] for lm in meta["layers"])}
    strays = [
        n
        for n in ngraph.nodes
        if n not in owners and n.rsplit(".", 1)[0] not in owners and n.split(".p", 1)[0] not in owners
    ]
    if strays:
        raise NIRImportError(
            f"node(s) {', '.join(strays[:5])} belong to no layer of the file's delaynir metadata; "
            "the file was edited after export: re-export it"
        )
    graph = DelayGraph(
        dt=dt,
        n_inputs=n_inputs,
        layers=layers,
        target=meta.get("target", "float"),
        input=meta.get("input", {}),
        quantization=meta.get("quantization", {}),
        provenance=meta.get("provenance", {}),
    )
    _raise_if_invalid(graph)
    return graph


def _raise_if_invalid(graph: DelayGraph) -> None:
    problems = validate_graph(graph)
    if problems:
        raise NIRImportError("the NIR graph does not describe a valid DelayGraph:\n  " + "\n  ".join(problems))


def _input_size(ngraph: nir.NIRGraph) -> tuple[str, int]:
    inputs = [k for k, v in ngraph.nodes.items() if isinstance(v, nir.Input)]
    if len(inputs) != 1:
        raise NIRImportError(f"expected exactly one nir.Input node, found {len(inputs)}")
    shape = np.asarray(next(iter(ngraph.nodes[inputs[0]].input_type.values())))
    return inputs[0], int(shape.prod())


#: How far exact per-step coefficients in node metadata may differ from those recomputed from τ and r.
STEP_TOLERANCE = 1e-9


def _arr(x) -> np.ndarray:
    return np.asarray(x, dtype=np.float64).ravel()


class StepCoefficients(TypedDict):
    """``step_coefficients``' result: per-step decays, input gain and the node's unit (None: absent)."""

    beta: np.ndarray
    alpha: np.ndarray | None
    gain: np.ndarray
    unit: np.ndarray | None


def step_coefficients(name: str, node: nir.NIRNode, dt: float) -> StepCoefficients:
    """Per-step decays and input gain of a neuron node: v[t] = β v[t−1] + g · input (forward Euler).

    From τ and r: LIF and LI β = 1 − dt/τ, g = r·dt/τ; IF and I β = 1, g = r·dt; CubaLIF i[t] =
    α i[t−1] + g · input, v[t] = β v[t−1] + i[t] with α = 1 − dt/τ_syn, β = 1 − dt/τ_mem and
    g = w_in·dt/τ_syn · r·dt/τ_mem. A node written by delaynir carries its exact β (and α) in
    metadata (``delaynir.beta``, ``delaynir.alpha``) and has g = 1 exactly in real numbers; those
    exact values are returned, after checking that they agree with τ and r up to rounding (a file
    edited without its metadata is an error). ``unit`` is the node's ``delaynir.unit`` (the graph
    membrane is the node's membrane times unit), or None. Returns arrays (or scalars as 0-d arrays).
    """
    if isinstance(node, (nir.IF, nir.I)):
        beta, alpha, gain = np.ones_like(_arr(node.r)), None, _arr(node.r) * dt
    elif isinstance(node, (nir.LIF, nir.LI)):
        tau = _arr(node.tau)
        beta, alpha, gain = 1 - dt / tau, None, _arr(node.r) * dt / tau
    elif isinstance(node, nir.CubaLIF):
        tau_syn, tau_mem = _arr(node.tau_syn), _arr(node.tau_mem)
        beta, alpha = 1 - dt / tau_mem, 1 - dt / tau_syn
        gain = _arr(node.w_in) * dt / tau_syn * _arr(node.r) * dt / tau_mem
    else:
        raise NIRImportError(f"node {name!r} of type {type(node).__name__} is not a neuron delaynir can import")
    meta = node.metadata if isinstance(getattr(node, "metadata", None), dict) else {}
    unit = _arr(meta[STEP_UNIT]) if STEP_UNIT in meta else None
    if STEP_BETA not in meta:
        return {"beta": beta, "alpha": alpha, "gain": gain, "unit": unit}
    exact_beta = _arr(meta[STEP_BETA])
    exact_alpha = _arr(meta[STEP_ALPHA]) if alpha is not None and STEP_ALPHA in meta else alpha
    for what, found, recomputed in (
        ("delaynir.beta", exact_beta, beta),
        ("delaynir.alpha", exact_alpha, alpha),
        ("the input gain 1", np.ones_like(gain), gain),
    ):
        if recomputed is not None and found is not None and not _agree(found, recomputed):
            raise NIRImportError(
                f"node {name!r}: its metadata ({what}) disagrees with its parameters (τ, r) beyond "
                "rounding; the file was edited without its metadata. Re-export it, or delete the "
                f"node's {STEP_BETA!r} metadata to use τ and r"
            )
    return {"beta": exact_beta, "alpha": exact_alpha, "gain": np.ones_like(gain), "unit": unit}


def _agree(found: np.ndarray, recomputed: np.ndarray) -> bool:
    try:
        return bool(np.allclose(found, recomputed, rtol=0, atol=STEP_TOLERANCE))
    except ValueError:  # shapes that do not broadcast
        return False


def _neuron_params(name: str, node: nir.NIRNode, dt: float) -> dict[str, Any]:
    """β, θ, input gain g (applied to all incoming weights and biases), bias from v_leak, α."""

    def check_reset(v_reset):
        if v_reset is not None and np.any(_arr(v_reset) != 0):
            raise NIRImportError(f"node {name!r}: v_reset ≠ 0 is not supported (delaynir resets to 0)")

    if isinstance(node, (nir.IF, nir.LIF, nir.CubaLIF, nir.LI)):
        step = step_coefficients(name, node, dt)
    if isinstance(node, nir.IF):
        check_reset(node.v_reset)
        theta = _arr(node.v_threshold)
        return {
            "neuron": "lif",
            "beta": np.broadcast_to(step["beta"], theta.shape).copy(),
            "threshold": theta,
            "gain": step["gain"],
            "leak_bias": np.zeros_like(theta),
        }
    if isinstance(node, nir.LIF):
        check_reset(node.v_reset)
        return {
            "neuron": "lif",
            "beta": step["beta"],
            "threshold": _arr(node.v_threshold),
            "gain": step["gain"],
            "leak_bias": _arr(node.v_leak) * dt / _arr(node.tau),
        }
    if isinstance(node, nir.CubaLIF):
        check_reset(node.v_reset)
        return {
            "neuron": "cubalif",
            "beta": step["beta"],
            "alpha": step["alpha"],
            "threshold": _arr(node.v_threshold),
            "gain": step["gain"],
            "leak_bias": _arr(node.v_leak) * dt / _arr(node.tau_mem),
        }
    if isinstance(node, nir.LI):
        tau = _arr(node.tau)
        return {
            "neuron": "li",
            "beta": step["beta"],
            "threshold": np.full(tau.shape, np.inf),
            "gain": step["gain"],
            "leak_bias": _arr(node.v_leak) * dt / tau,
        }
    raise NIRImportError(f"node {name!r} of type {type(node).__name__} is not a neuron delaynir can import")


def _steps(name: str, delay: np.ndarray, dt: float) -> np.ndarray:
    steps = np.asarray(delay, dtype=np.float64).ravel() / dt
    rounded = np.rint(steps)
    if np.any(np.abs(steps - rounded) > 1e-6) or np.any(rounded < 0):
        raise NIRImportError(
            f"node {name!r}: delays {np.asarray(delay).ravel()[:5]} s are not non-negative "
            f"multiples of dt = {dt} s; pass the dt the graph was made for"
        )
    return rounded.astype(np.int64)


def _import_general(ngraph: nir.NIRGraph, dt: float) -> DelayGraph:
    """Neuron nodes become layers; the linear paths between them become projections."""
    input_name, n_inputs = _input_size(ngraph)
    for name, node in ngraph.nodes.items():
        if isinstance(node, nir.NIRGraph):
            raise NIRImportError(f"node {name!r} is a nested NIRGraph; flatten it before importing")
        if not isinstance(node, (*NEURON_NODES, *LINEAR_NODES, nir.Input, nir.Output)):
            raise NIRImportError(
                f"node {name!r} has type {type(node).__name__}, which delaynir cannot import "
                "(supported: Input, Output, Affine, Linear, Scale, Delay, LIF, CubaLIF, IF, LI)"
            )
    incoming = defaultdict(list)
    for src, dst in ngraph.edges:
        incoming[dst].append(src)
    neurons = [k for k, v in ngraph.nodes.items() if isinstance(v, NEURON_NODES)]
    order = _execution_order(ngraph, input_name, neurons)
    outputs = [k for k, v in ngraph.nodes.items() if isinstance(v, nir.Output)]
    out_sources = [s for o in outputs for s in incoming[o]]
    if len(out_sources) != 1 or out_sources[0] not in neurons:
        raise NIRImportError("the nir.Output must be fed by exactly one neuron node (the readout layer)")
    if out_sources[0] != order[-1]:
        order.remove(out_sources[0])
        order.append(out_sources[0])
    position = {name: k for k, name in enumerate(order)}
    position[input_name] = -1
    layers = []
    for name in order:
        params = _neuron_params(name, ngraph.nodes[name], dt)
        if KINDS[params["neuron"]].readout and name != order[-1]:
            raise NIRImportError(f"node {name!r}: LI is supported only as the output (its output is a membrane)")
        size = _layer_size(ngraph, name, incoming, params)
        params = {
            k: np.broadcast_to(v, (size,)).astype(np.float64) if isinstance(v, np.ndarray) else v
            for k, v in params.items()
        }  # scalar parameters (e.g. norse's exporter) apply to every neuron
        synapses, bias = _paths_into(ngraph, name, incoming, set(neurons) | {input_name}, size, dt)
        projections = []
        for source, per_delay in synapses.items():
            recurrent = position[source] >= position[name]
            pre, post, delay, weight = [], [], [], []
            for d, matrix in per_delay.items():
                j, i = np.nonzero(matrix)
                pre.append(i)
                post.append(j)
                delay.append(np.full(len(i), d + (1 if recurrent else 0)))
                weight.append(matrix[j, i] * params["gain"][j])
            projections.append(
                Projection(
                    INPUT if source == input_name else source,
                    np.concatenate(pre),
                    np.concatenate(post),
                    np.concatenate(delay),
                    np.concatenate(weight),
                    np.ones(size),
                )
            )
        layers.append(
            Layer(
                name,
                size,
                params["neuron"],
                params["beta"],
                params["threshold"],
                bias * params["gain"] + params["leak_bias"],
                projections,
                alpha=params.get("alpha"),
            )
        )
    graph = DelayGraph(
        dt=dt, n_inputs=n_inputs, layers=layers, target="float", provenance={"imported_from": "NIR", "dt_given": dt}
    )
    _raise_if_invalid(graph)
    return graph


def _layer_size(ngraph: nir.NIRGraph, name: str, incoming, params: dict[str, Any]) -> int:
    """Neurons of a neuron node: its per-neuron parameters, else the rows of an incoming Affine/Linear."""
    sizes = {len(v) for v in params.values() if isinstance(v, np.ndarray) and len(v) > 1}
    for src in incoming[name]:
        node = ngraph.nodes[src]
        if isinstance(node, (nir.Affine, nir.Linear)):
            sizes.add(np.asarray(node.weight).shape[0])
    if len(sizes) > 1:
        raise NIRImportError(f"node {name!r}: inconsistent sizes {sorted(sizes)} of its parameters and inputs")
    return sizes.pop() if sizes else 1


def _execution_order(ngraph: nir.NIRGraph, input_name: str, neurons: list[str]) -> list[str]:
    """Neuron nodes in order of first reach from the input (breadth-first), back edges ignored."""
    children = defaultdict(list)
    for src, dst in ngraph.edges:
        children[src].append(dst)
    seen, queue, order = {input_name}, [input_name], []
    while queue:
        node = queue.pop(0)
        for child in children[node]:
            if child not in seen:
                seen.add(child)
                queue.append(child)
                if child in neurons:
                    order.append(child)
    missing = [n for n in neurons if n not in order]
    if missing:
        raise NIRImportError(f"neuron nodes {missing} are not reachable from the input")
    return order


def _paths_into(ngraph: nir.NIRGraph, target: str, incoming, stops: set[str], size: int, dt: float):
    """Compose the linear nodes on every path into ``target``.

    Returns ({source: {delay steps: (size × n_source) matrix}}, bias (size,)). A path is walked
    backwards from the target carrying, per delay, the matrix from the current node's output
    to the target's input: Linear/Affine W multiplies it (M ← M W, an Affine bias b adds Σ_d M b),
    Scale s scales its columns, Delay δ moves column c from delay d to d + δ_c.
    """
    result: dict[str, dict[int, np.ndarray]] = defaultdict(dict)
    bias = np.zeros(size)

    def walk(node: str, by_delay: dict[int, np.ndarray], visiting: tuple[str, ...]) -> None:
        nonlocal bias
        for src in incoming[node]:
            if src in stops:
                acc = result[src]
                for d, m in by_delay.items():
                    acc[d] = acc[d] + m if d in acc else m.copy()
                continue
            if src in visiting:
                raise NIRImportError(f"a cycle through {src!r} contains no neuron node; cannot import it")
            n = ngraph.nodes[src]
            if isinstance(n, (nir.Affine, nir.Linear)):
                w = np.asarray(n.weight, dtype=np.float64)
                if isinstance(n, nir.Affine) and n.bias is not None:
                    b = np.asarray(n.bias, dtype=np.float64).ravel()
                    bias = bias + sum(m @ b for m in by_delay.values())
                walk(src, {d: m @ w for d, m in by_delay.items()}, visiting + (src,))
            elif isinstance(n, nir.Scale):
                s = np.asarray(n.scale, dtype=np.float64).ravel()
                walk(src, {d: m * s[None, :] for d, m in by_delay.items()}, visiting + (src,))
            elif isinstance(n, nir.Delay):
                steps = _steps(src, n.delay, dt)
                shifted: dict[int, np.ndarray] = {}
                for d, m in by_delay.items():
                    for value in np.unique(steps):
                        part = m * (steps == value)[None, :]
                        if part.any():
                            key = d + int(value)
                            shifted[key] = shifted[key] + part if key in shifted else part
                walk(src, shifted, visiting + (src,))

    walk(target, {0: np.eye(size)}, (target,))
    return result, bias
