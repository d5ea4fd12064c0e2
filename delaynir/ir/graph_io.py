"""Save, load and validate DelayGraph files: versioned HDF5, layout in docs/delaygraph-format.md.

    /                          attrs format, format_version, dt, n_inputs, target,
                                     input, quantization, provenance (JSON strings)
    layers/NNN/                one group per layer, NNN = execution index (000, 001, ...)
        attrs                  name, neuron, reset, size
        beta, threshold, bias  float64 (size,);  alpha  float64 (size,), cubalif only
        projections/MMM/       attrs source;  pre, post, delay uint32 (S,);
                               weight float64 (S,);  scale float64 (size,)

``validate_graph`` holds every check. ``save_graph`` runs it before writing; ``load_graph``
reads a file into a draft (``_Read``: same field names, None where the file lacks a field)
and runs it on the draft, so files written by other tools get exactly the same checks.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import os
from collections import Counter
from pathlib import Path
from types import SimpleNamespace
from typing import Any, TypeGuard

import h5py
import numpy as np

from delaynir.common.h5 import DIGEST_ATTR, reading_hdf5, writing_hdf5
from delaynir.common.memory import check_memory
from delaynir.errors import GraphFormatError
from delaynir.ir.graph import FORMAT_VERSION, INPUT, DelayGraph, InputSpec, Layer, Projection
from delaynir.ir.neuron_kinds import KINDS, NEURON_TYPES, RESETS, NeuronKind

logger = logging.getLogger(__name__)

FORMAT = "delaynir.DelayGraph"
LAYERS, PROJECTIONS = "layers", "projections"
METADATA = ("input", "quantization", "provenance")  #: root attributes holding JSON objects
NEURON_ARRAYS = ("beta", "threshold", "bias", "alpha")  #: float64 (size,) datasets of a layer
INDEX_ARRAYS = ("pre", "post", "delay")  #: integer (S,) datasets of a projection
INDEX_DTYPE = np.uint32  #: how pre, post and delay are written
INDEX_MAX = int(np.iinfo(INDEX_DTYPE).max)
ROOT_ATTRS = ("format", "format_version", "dt", "n_inputs", "target", *METADATA, DIGEST_ATTR)
LAYER_ATTRS = ("name", "neuron", "reset", "size")
DOC = "docs/delaygraph-format.md"


class _Read(SimpleNamespace):
    """A graph, layer or projection as read from a file, before validation; None = absent."""


class _Unreadable:
    """Stands for an attribute or dataset h5py cannot read (e.g. an unsupported type)."""

    def __init__(self, why: str):
        self.why = why

    def __repr__(self) -> str:
        return f"<unreadable: {self.why}>"


# ----------------------------------------------------------------------------- validation


def validate_graph(graph: object) -> list[str]:
    """Every problem of ``graph``, one line each naming the layer/projection (empty = valid)."""
    if not isinstance(graph, (DelayGraph, _Read)):
        return [f"expected a DelayGraph, found {type(graph).__name__}"]
    problems = _header_problems(graph)
    layers = graph.layers if isinstance(graph.layers, list) else []
    first: dict[str, int] = {}  # name -> index of the first layer with that name
    for k, layer in enumerate(layers):
        name = _name(layer)
        if name is not None:
            first.setdefault(name, k)
    for k, layer in enumerate(layers):
        problems += _layer_problems(graph, k, layer, first)
    return problems


def _header_problems(graph: DelayGraph | _Read) -> list[str]:
    """dt, n_inputs, target, metadata, the layer list and duplicate layer names."""
    problems = []
    if not (_is_real(graph.dt) and math.isfinite(graph.dt) and graph.dt > 0):
        problems.append(f"dt: expected a finite number of seconds > 0, found {_found(graph.dt)}")
    problems += _optional([_count_problem("n_inputs", graph.n_inputs), _string_problem("target", graph.target)])
    for key in METADATA:
        problems += _metadata_problems(key, _metadata(graph, key))
    spec = _metadata(graph, "input")
    if isinstance(spec, dict):
        problems += _input_spec_problems(InputSpec.from_dict(spec))
    if not isinstance(graph.layers, list) or not graph.layers:
        expected = "a non-empty list of layers (the last is the output)"
        problems.append(f"layers: expected {expected}, found {_found(graph.layers)}")
        return problems
    names = [_name(layer) for layer in graph.layers]
    for name, count in Counter(n for n in names if n is not None).items():
        if count > 1:
            where = ", ".join(str(k) for k, n in enumerate(names) if n == name)
            problems.append(f"duplicate layer name {name!r} (layers {where}); layer names must be unique")
    return problems


def _layer_problems(graph: DelayGraph | _Read, k: int, layer: Layer, first: dict[str, int]) -> list[str]:
    """Problems of layer ``k`` and of its projections."""
    if not isinstance(layer, (Layer, _Read)):
        return [f"layer {k}: expected a Layer, found {type(layer).__name__}"]
    where = f"layer {k} {layer.name!r}" if isinstance(layer.name, str) else f"layer {k}"
    kind = _kind(layer.neuron)
    problems = _optional(
        [
            _string_problem("name", layer.name),
            f"name: {INPUT!r} is reserved for the network input" if _is(layer.name, INPUT) else None,
            _string_problem("neuron", layer.neuron, NEURON_TYPES),
            _string_problem("reset", layer.reset, RESETS),
            _count_problem("size", layer.size),
            "alpha: missing, a cubalif layer needs alpha (synaptic current decay)"
            if kind is not None and kind.current_based and layer.alpha is None
            else None,
        ]
    )
    size = _valid_count(layer.size)
    for key in NEURON_ARRAYS:
        value = getattr(layer, key)
        if key != "alpha" or value is not None:
            problems += _neuron_array_problems(key, value, size, kind)
    lines = [f"{where}: {p}" for p in problems]
    if not isinstance(layer.projections, list):
        return lines + [f"{where}: projections: expected a list of projections, found {_found(layer.projections)}"]
    for m, projection in enumerate(layer.projections):
        lines += _projection_problems(graph, k, size, f"{where} projection {m}", projection, first)
    return lines


def _neuron_array_problems(key: str, values: Any, size: int | None, kind: NeuronKind | None) -> list[str]:
    """Shape and value checks of beta, threshold, bias or alpha (one value per neuron)."""
    problem = _array_problem(key, values, integer=False, length=size, note=" (one per neuron)")
    if problem:
        return [problem]
    if key in ("beta", "alpha"):
        return _violations(key, values, ~((values >= 0) & (values <= 1)), "decay factors in [0, 1]", "neuron")
    if key == "threshold":
        if kind is not None and not kind.spiking:
            return _violations(key, values, np.isnan(values) | np.isneginf(values), "finite values or +inf", "neuron")
        expected = "finite values (+inf only for li and relay layers)"
        return _violations(key, values, ~np.isfinite(values), expected, "neuron")
    return _violations(key, values, ~np.isfinite(values), "finite values", "neuron")


def _projection_problems(
    graph: DelayGraph | _Read, k: int, size: int | None, where: str, projection: Projection, first: dict[str, int]
) -> list[str]:
    """Problems of one projection into layer ``k`` (of ``size`` neurons, None if invalid)."""
    if not isinstance(projection, (Projection, _Read)):
        return [f"{where}: expected a Projection, found {type(projection).__name__}"]
    source = projection.source
    where = f"{where} (source {source!r})"
    problems, source_size, recurrent = _source(graph, k, source, first)
    arrays = {key: getattr(projection, key) for key in (*INDEX_ARRAYS, "weight")}
    shape = {key: _array_problem(key, v, integer=key != "weight") for key, v in arrays.items()}
    problems += _optional(shape.values())
    lengths = {key: len(v) for key, v in arrays.items() if shape[key] is None}
    if len(set(lengths.values())) > 1:
        found = ", ".join(f"{key} {n}" for key, n in lengths.items())
        problems.append(f"expected pre, post, delay and weight of equal length (one entry per synapse), found {found}")
    checks = {
        "pre": _index_check(source_size, f"source {source!r}"),
        "post": _index_check(size, "this layer"),
        "delay": _delay_check(recurrent),
        "weight": (np.isfinite, "finite values"),
    }
    for key, (valid, expected) in checks.items():
        if shape[key] is None:
            problems += _violations(key, arrays[key], ~valid(arrays[key]), expected, "synapse")
    scale = projection.scale
    problem = _array_problem("scale", scale, integer=False, length=size, note=" (one per neuron of this layer)")
    problems += [problem] if problem else _violations("scale", scale, ~np.isfinite(scale), "finite values", "neuron")
    return [f"{where}: {p}" for p in problems]


def _source(
    graph: DelayGraph | _Read, k: int, source: Any, first: dict[str, int]
) -> tuple[list[str], int | None, bool]:
    """(problems, size of the source or None if unknown, whether the projection is recurrent)."""
    if _is(source, INPUT):
        return [], _valid_count(graph.n_inputs), False
    if isinstance(source, str) and source in first:
        j = first[source]
        return [], _valid_count(graph.layers[j].size), j >= k
    expected = f"{INPUT!r} or the name of a layer"
    return [f"source: expected {expected}, found {_found(source)}"], None, False


def _index_check(limit: int | None, of: str) -> tuple[Any, str]:
    """(validity test, expectation) of pre or post indices into a population of ``limit`` neurons."""
    if limit is None:
        return (lambda a: a >= 0), "indices >= 0"
    return (lambda a: (a >= 0) & (a < limit)), f"indices in 0..{limit - 1} ({of} has {limit} neurons)"


def _delay_check(recurrent: bool) -> tuple[Any, str]:
    """(validity test, expectation) of delays in steps; recurrent synapses need d >= 1."""
    low = int(recurrent)
    why = " (the projection is recurrent: its source is this layer or a later one)" if recurrent else ""
    return (lambda a: (a >= low) & (a <= INDEX_MAX)), f"delays in {low}..{INDEX_MAX} steps{why}"


def _input_spec_problems(spec: InputSpec) -> list[str]:
    """The input spec (graph.py): quantised graded input needs bits, input_scale and code_range. Any other
    encoding (absent, "spikes", or what a version-1 file says, e.g. "counts") is spike input."""
    if not spec.quantized:
        return []
    bits, scale, codes = spec.bits, spec.input_scale, spec.code_range
    problems = []
    if _valid_count(bits) is None:
        problems.append(f"input: bits: expected an integer >= 1 (bits of a graded input code), found {_found(bits)}")
    if not (_is_real(scale) and math.isfinite(scale) and scale > 0):
        problems.append(f"input: input_scale: expected a finite number > 0 (value per code), found {_found(scale)}")
    if not (
        isinstance(codes, tuple) and len(codes) == 2 and all(isinstance(c, int) for c in codes) and codes[0] <= codes[1]
    ):
        found = _found(list(codes) if isinstance(codes, tuple) else codes)
        problems.append(f"input: code_range: expected [q_min, q_max], two integers, found {found}")
    return problems


def _metadata(graph: DelayGraph | _Read, key: str) -> Any:
    """Metadata ``key`` of ``graph`` as the JSON object it is written as (the input spec's ``to_dict``)."""
    value = getattr(graph, key)
    return value.to_dict() if isinstance(value, InputSpec) else value


def _metadata_problems(key: str, value: Any) -> list[str]:
    """Problems of a metadata dict: it must round-trip exactly through JSON."""
    if not isinstance(value, dict):
        return [f"{key}: expected a dict, found {_found(value)}"]
    return _json_problems(key, value)


def _json_problems(where: str, value: Any) -> list[str]:
    """Parts of ``value`` that JSON would not give back unchanged."""
    if value is None or isinstance(value, (str, bool, int)):
        return []
    if isinstance(value, float):
        return [] if math.isfinite(value) else [f"{where}: expected a finite number, found {value!r}"]
    if isinstance(value, list):
        return [p for i, item in enumerate(value) for p in _json_problems(f"{where}[{i}]", item)]
    if isinstance(value, dict):
        return [
            p
            for key, item in value.items()
            for p in (
                _json_problems(f"{where}.{key}", item)
                if isinstance(key, str)
                else [f"{where}: expected string keys, found key {key!r}"]
            )
        ]
    return [f"{where}: expected str, int, float, bool, None, list or dict, found {type(value).__name__}"]


def _array_problem(key: str, value: Any, *, integer: bool, length: int | None = None, note: str = "") -> str | None:
    """Why ``value`` is not a 1-D numeric array (of ``length``), or None."""
    kind = "integer" if integer else "real"
    expected = f"a 1-D {kind} array" + (f" of length {length}{note}" if length is not None else "")
    if value is None:
        found = "nothing (missing)"
    elif not isinstance(value, np.ndarray):
        found = repr(value) if isinstance(value, _Unreadable) else type(value).__name__
    elif value.ndim != 1:
        found = f"shape {value.shape}"
    elif value.dtype.kind not in ("iu" if integer else "iuf"):
        found = f"dtype {value.dtype}"
    elif length is not None and len(value) != length:
        found = f"length {len(value)}"
    else:
        return None
    return f"{key}: expected {expected}, found {found}"


def _violations(key: str, values: np.ndarray, bad: np.ndarray, expected: str, unit: str) -> list[str]:
    """One line for the entries of ``values`` flagged in ``bad``, quoting the first."""
    n = int(np.count_nonzero(bad))
    if not n:
        return []
    i = int(np.flatnonzero(bad)[0])
    return [f"{key}: expected {expected}, found {n} value(s) that are not (first: {unit} {i} = {values[i].item()!r})"]


def _count_problem(key: str, value: Any) -> str | None:
    if _valid_count(value) is None:
        return f"{key}: expected an integer in 1..{INDEX_MAX + 1}, found {_found(value)}"
    return None


def _valid_count(value: Any) -> int | None:
    """``value`` as int if it is an integer in 1..2**32 (indices then fit in uint32), else None."""
    is_int = isinstance(value, (int, np.integer)) and not isinstance(value, bool)
    return int(value) if is_int and 1 <= value <= INDEX_MAX + 1 else None


def _string_problem(key: str, value: Any, allowed: tuple[str, ...] | None = None) -> str | None:
    if allowed is not None:
        if isinstance(value, str) and value in allowed:
            return None
        return f"{key}: expected one of {', '.join(map(repr, allowed))}, found {_found(value)}"
    if isinstance(value, str) and value and "\0" not in value and _utf8(value):
        return None
    return f"{key}: expected a non-empty UTF-8 string without NUL characters, found {_found(value)}"


def _utf8(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _is(value: Any, text: str) -> bool:
    """``value == text`` for a value of any type (arrays included)."""
    return isinstance(value, str) and value == text


def _kind(neuron: Any) -> NeuronKind | None:
    """The neuron kind a layer's ``neuron`` names, None for a value that names none."""
    return KINDS.get(neuron) if isinstance(neuron, str) else None


def _name(layer: Any) -> str | None:
    """The layer's name if it is a layer with a string name, else None."""
    name = getattr(layer, "name", None) if isinstance(layer, (Layer, _Read)) else None
    return name if isinstance(name, str) else None


def _is_real(value: Any) -> TypeGuard[float]:
    return isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool)


def _found(value: Any) -> str:
    """How a found value is quoted in a message."""
    text = "nothing (missing)" if value is None else repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _optional(problems: Any) -> list[str]:
    return [p for p in problems if p]


def _raise_if_any(problems: list[str], header: str) -> None:
    if problems:
        listing = "\n  ".join(problems)
        raise GraphFormatError(f"{header}: {len(problems)} problem(s) (layout: {DOC}):\n  {listing}")


# ----------------------------------------------------------------------------- writing


def save_graph(graph: DelayGraph, path: str | os.PathLike, *, overwrite: bool = False) -> Path:
    """Validate ``graph`` and write it to ``path`` atomically and deterministically; return the path.

    Raises GraphFormatError (and writes nothing) if the graph is invalid, or if ``path`` exists
    and ``overwrite`` is False.
    """
    path = Path(path)
    _raise_if_any(validate_graph(graph), f"refusing to write {path}: the DelayGraph is invalid")
    with writing_hdf5(path, overwrite=overwrite, error=GraphFormatError, track_order=True) as f:
        _write_graph(f, graph)
    logger.info(
        "wrote %s: %d layers, %d neurons, %d synapses", path, len(graph.layers), graph.n_neurons, graph.n_synapses
    )
    return path


def _write_graph(f: h5py.File, graph: DelayGraph) -> None:
    f.attrs["format"] = FORMAT
    f.attrs["format_version"] = np.int64(FORMAT_VERSION)
    f.attrs["dt"] = np.float64(graph.dt)
    f.attrs["n_inputs"] = np.int64(graph.n_inputs)
    f.attrs["target"] = str(graph.target)
    for key in METADATA:
        f.attrs[key] = json.dumps(_metadata(graph, key), allow_nan=False)
    layers = f.create_group(LAYERS, track_order=True)
    for k, layer in enumerate(graph.layers):
        _write_layer(layers.create_group(_index_name(k), track_order=True), layer)


def _write_layer(group: h5py.Group, layer: Layer) -> None:
    for key in LAYER_ATTRS:
        value = getattr(layer, key)
        group.attrs[key] = np.int64(value) if key == "size" else str(value)
    for key in NEURON_ARRAYS:
        if getattr(layer, key) is not None:
            _write_array(group, key, getattr(layer, key), np.float64)
    projections = group.create_group(PROJECTIONS, track_order=True)
    for m, projection in enumerate(layer.projections):
        sub = projections.create_group(_index_name(m), track_order=True)
        sub.attrs["source"] = str(projection.source)
        for key in INDEX_ARRAYS:
            _write_array(sub, key, getattr(projection, key), INDEX_DTYPE)
        for key in ("weight", "scale"):
            _write_array(sub, key, getattr(projection, key), np.float64)


def _write_array(group: h5py.Group, key: str, values: np.ndarray, dtype: type) -> None:
    """Contiguous, uncompressed, without timestamps: identical input gives identical bytes."""
    group.create_dataset(key, data=np.asarray(values, dtype=dtype), track_times=False)


def _index_name(k: int) -> str:
    return f"{k:03d}"


# ----------------------------------------------------------------------------- reading


def load_graph(path: str | os.PathLike) -> DelayGraph:
    """Read and validate a DelayGraph file; GraphFormatError lists every problem at once."""
    path = Path(path)
    with _open(path) as f:
        draft, problems = _read_graph(f, path)
    problems += validate_graph(draft)
    _raise_if_any(problems, f"{path} is not a valid DelayGraph file")
    graph = _to_graph(draft)
    check_memory(
        graph.simulation_bytes(1, 1),
        f"{path}: running this DelayGraph (delays up to {graph.max_delay} "
        f"steps, {graph.n_neurons} neurons) for one step of one sample",
        "the file's delays or layer sizes are too large to be simulated; check how it was made",
    )
    logger.info("read %s: %d layers, %d synapses", path, len(graph.layers), graph.n_synapses)
    return graph


def _open(path: Path) -> contextlib.AbstractContextManager[h5py.File]:
    """``path`` opened read-only for a ``with`` block; GraphFormatError if it is missing, not HDF5 or damaged."""
    return reading_hdf5(path, GraphFormatError, f"a DelayGraph HDF5 file, see {DOC}")


def _read_graph(f: h5py.File, path: Path) -> tuple[_Read, list[str]]:
    """The file as a draft graph, and the problems only the reader can see (header, group names)."""
    problems = _format_problems(f, path)
    _warn_unknown(f, ROOT_ATTRS, (LAYERS,))
    metadata = {key: _json_attr(f, key, problems) for key in METADATA}
    layers = _indexed(f, LAYERS, problems, lambda g: _read_layer(g, problems))
    draft = _Read(dt=_attr(f, "dt"), n_inputs=_attr(f, "n_inputs"), target=_attr(f, "target"), layers=layers)
    draft.__dict__.update(metadata)
    return draft, problems


def _format_problems(f: h5py.File, path: Path) -> list[str]:
    """Problems of the root attributes format and format_version; raises for a newer version."""
    fmt, version = _attr(f, "format"), _attr(f, "format_version")
    problems = [] if _is(fmt, FORMAT) else [f"root attribute 'format': expected {FORMAT!r}, found {_found(fmt)}"]
    if _valid_count(version) is None:
        expected = f"an integer 1..{FORMAT_VERSION}"
        problems.append(f"root attribute 'format_version': expected {expected}, found {_found(version)}")
    elif version > FORMAT_VERSION:
        raise GraphFormatError(
            f"{path}: format_version {version} is newer than this delaynir reads ({FORMAT_VERSION}); "
            "upgrade delaynir to read it"
        )
    return problems


def _read_layer(group: h5py.Group, problems: list[str]) -> _Read:
    _warn_unknown(group, LAYER_ATTRS, (*NEURON_ARRAYS, PROJECTIONS))
    layer = _Read(**{key: _attr(group, key) for key in LAYER_ATTRS})
    layer.__dict__.update({key: _dataset(group, key) for key in NEURON_ARRAYS})
    layer.projections = _indexed(group, PROJECTIONS, problems, _read_projection)
    return layer


def _read_projection(group: h5py.Group) -> _Read:
    keys = (*INDEX_ARRAYS, "weight", "scale")
    _warn_unknown(group, ("source",), keys)
    return _Read(source=_attr(group, "source"), **{key: _dataset(group, key) for key in keys})


def _indexed(parent: h5py.Group, key: str, problems: list[str], read: Any) -> Any:
    """Subgroups of ``parent[key]`` named 000, 001, ... read in index order.

    Returns what ``parent`` holds at ``key`` unchanged (None if absent) when it is not a group, so
    that validation reports it; a member that is not a group is passed on likewise.
    """
    group = parent.get(key)
    if not isinstance(group, h5py.Group):
        return group
    numbered = {int(name): name for name in group if _is_index(name)}
    strays = [name for name in group if not _is_index(name)]
    if strays or sorted(numbered) != list(range(len(numbered))) or len(numbered) != len(group):
        problems.append(
            f"{group.name}: expected members named by index {_index_name(0)}, {_index_name(1)}, ... "
            f"without gaps, found {', '.join(sorted(group))}"
        )
    members = [group[numbered[i]] for i in sorted(numbered)]
    return [read(m) if isinstance(m, h5py.Group) else m for m in members]


def _is_index(name: str) -> bool:
    return name.isascii() and name.isdigit()


def _attr(obj: h5py.HLObject, key: str) -> Any:
    """Attribute ``key`` as a plain Python value (bytes decoded), or None if absent."""
    if key not in obj.attrs:
        return None
    try:
        value = obj.attrs[key]
    except (OSError, TypeError, ValueError) as exc:
        return _Unreadable(str(exc))
    if isinstance(value, np.ndarray) and value.shape == ():
        value = value[()]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, bytes):
        with contextlib.suppress(UnicodeDecodeError):  # left as bytes: validation reports it
            value = value.decode("utf-8")
    return value


def _dataset(group: h5py.Group, key: str) -> Any:
    """The array at ``key``; None if absent; a non-dataset object unchanged (validation reports it)."""
    obj = group.get(key)
    if not isinstance(obj, h5py.Dataset):
        return obj
    try:
        return np.asarray(obj[()])
    except (OSError, TypeError, ValueError) as exc:
        return _Unreadable(str(exc))


def _json_attr(f: h5py.File, key: str, problems: list[str]) -> Any:
    """Root attribute ``key`` decoded from JSON; {} if absent (metadata are optional)."""
    value = _attr(f, key)
    if value is None:
        return {}
    if not isinstance(value, str):
        return value  # validation reports the type
    try:
        return json.loads(value)
    except json.JSONDecodeError as exc:
        problems.append(f"root attribute {key!r}: expected a JSON object, found invalid JSON ({exc})")
        return {}


def _warn_unknown(obj: h5py.Group, attrs: tuple[str, ...], members: tuple[str, ...]) -> None:
    """Log what the layout does not define: it is ignored, but never silently."""
    unknown = sorted(set(obj.attrs) - set(attrs)) + [f"{m}/" for m in sorted(set(obj) - set(members))]
    if unknown:
        logger.warning("%s: ignoring members the DelayGraph layout does not define: %s", obj.name, ", ".join(unknown))


def _to_graph(draft: _Read) -> DelayGraph:
    """The validated draft as a DelayGraph (arrays converted to int64/float64)."""
    layers = [
        Layer(
            name=d.name,
            size=int(d.size),
            neuron=d.neuron,
            reset=d.reset,
            beta=d.beta,
            threshold=d.threshold,
            bias=d.bias,
            alpha=d.alpha,
            projections=[Projection(p.source, p.pre, p.post, p.delay, p.weight, p.scale) for p in d.projections],
        )
        for d in draft.layers
    ]
    return DelayGraph(
        dt=float(draft.dt),
        n_inputs=int(draft.n_inputs),
        layers=layers,
        target=draft.target,
        input=draft.input,
        quantization=draft.quantization,
        provenance=draft.provenance,
    )
