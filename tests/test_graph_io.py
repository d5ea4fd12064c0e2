"""DelayGraph files: exact round trips, determinism, atomic writes, and a reader that checks any file."""

from __future__ import annotations

import json
import logging
import math
import tempfile
from pathlib import Path

import h5py
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from delaynir.errors import DelayNIRError, GraphFormatError
from delaynir.export.nir_io import to_nir
from delaynir.ir.graph import INPUT, DelayGraph, InputSpec, Layer, Projection
from delaynir.ir.graph_io import load_graph, save_graph, validate_graph
from delaynir.ir.neuron_kinds import NEURON_TYPES, RESETS

INF = math.inf


# ----------------------------------------------------------------------------- graphs built by hand


def proj(source, pre, post, delay, weight, scale) -> Projection:
    return Projection(
        source, np.array(pre), np.array(post), np.array(delay), np.array(weight, float), np.array(scale, float)
    )


def lif_li_graph() -> DelayGraph:
    """input(3) -> lif 'hidden'(4, recurrent, delays >= 1) -> li 'out'(2)."""
    hidden = Layer(
        "hidden",
        4,
        "lif",
        beta=[0.9, 0.8, 1.0, 0.0],
        threshold=[1.0, 1.0, 0.5, 2.0],
        bias=[0.0, 0.1, -0.2, 0.0],
        projections=[
            proj(INPUT, [0, 1, 2, 2], [0, 1, 2, 3], [0, 3, 7, 24], [1.0, -2.0, 3.0, 127.0], [0.5, 0.25, 1.0, 2.0]),
            proj("hidden", [0, 3], [1, 2], [1, 5], [-1.0, 4.0], [1.0, 1.0, 1.0, 1.0]),
        ],
    )
    out = Layer(
        "out",
        2,
        "li",
        beta=[0.95, 0.95],
        threshold=[INF, INF],
        bias=[0.0, 0.0],
        projections=[proj("hidden", [0, 1, 3], [0, 1, 1], [2, 0, 1], [0.1, 0.2, -0.3], [1.0, 1.0])],
    )
    return DelayGraph(
        dt=0.01,
        n_inputs=3,
        layers=[hidden, out],
        target="loihi2",
        input={"n_channels": 700, "pool": 5, "encoding": "counts"},
        quantization={"weight_bits": 8, "scheme": "per-neuron", "signed": True},
        provenance={"delaynir": "0.1.0", "run": "runs/a", "seeds": [0, 1], "nested": {"x": 1.5, "n": None}},
    )


def all_kinds_graph() -> DelayGraph:
    """lif (subtract) -> cubalif -> relay -> li, with a feedback projection and an empty projection."""
    graph = lif_li_graph()
    hidden, out = graph.layers
    hidden.reset = "subtract"
    hidden.projections.append(proj("out", [1], [0], [3], [0.5], [1.0] * 4))  # from a later layer: recurrent
    syn = Layer(
        "syn",
        3,
        "cubalif",
        beta=[0.5] * 3,
        threshold=[1.0] * 3,
        bias=[0.0] * 3,
        alpha=[0.25, 0.5, 1.0],
        projections=[proj("hidden", [0, 1, 2], [0, 1, 2], [0, 0, 0], [1.0, 1.0, 1.0], [0.1, 0.2, 0.3])],
    )
    relay = Layer(
        "relay",
        3,
        "relay",
        beta=[0.0] * 3,
        threshold=[INF] * 3,
        bias=[0.0] * 3,
        projections=[
            proj("syn", [0, 1, 2], [2, 1, 0], [4, 4, 4], [1.0, 1.0, 1.0], [1.0] * 3),
            proj("hidden", [], [], [], [], [1.0] * 3),
        ],
    )
    out.projections = [proj("relay", [0, 2], [0, 1], [1, 1], [2.0, -2.0], [0.5, 0.5])]
    graph.layers = [hidden, syn, relay, out]
    return graph


def assert_same_array(a, b) -> None:
    if a is None or b is None:
        assert a is None and b is None
        return
    assert a.dtype == b.dtype and a.shape == b.shape and a.tobytes() == b.tobytes()


def assert_graph_equal(a: DelayGraph, b: DelayGraph) -> None:
    """Every field equal; arrays bit for bit (dtype included); dicts equal with the same JSON types."""
    assert (a.dt, a.n_inputs, a.target) == (b.dt, b.n_inputs, b.target)
    assert type(b.dt) is float and type(b.n_inputs) is int
    assert a.input == b.input and json.dumps(a.input.to_dict()) == json.dumps(b.input.to_dict())
    for key in ("quantization", "provenance"):
        assert getattr(a, key) == getattr(b, key)
        assert json.dumps(getattr(a, key)) == json.dumps(getattr(b, key))
    assert len(a.layers) == len(b.layers)
    for la, lb in zip(a.layers, b.layers):
        assert (la.name, la.size, la.neuron, la.reset) == (lb.name, lb.size, lb.neuron, lb.reset)
        for key in ("beta", "threshold", "bias", "alpha"):
            assert_same_array(getattr(la, key), getattr(lb, key))
        assert len(la.projections) == len(lb.projections)
        for pa, pb in zip(la.projections, lb.projections):
            assert pa.source == pb.source
            for key in ("pre", "post", "delay", "weight", "scale"):
                assert_same_array(getattr(pa, key), getattr(pb, key))


# ----------------------------------------------------------------------------- writer and round trip


@pytest.mark.parametrize("make", [lif_li_graph, all_kinds_graph])
def test_round_trip_is_exact(tmp_path, make):
    graph = make()
    assert validate_graph(graph) == []
    path = save_graph(graph, tmp_path / "g.h5")
    assert path == tmp_path / "g.h5"
    assert_graph_equal(graph, load_graph(path))


def test_layout_is_as_documented(tmp_path):
    path = save_graph(all_kinds_graph(), tmp_path / "g.h5")
    with h5py.File(path, "r") as f:
        assert f.attrs["format"] == "delaynir.DelayGraph" and f.attrs["format_version"] == 2
        assert list(f.attrs) == [
            "format",
            "format_version",
            "dt",
            "n_inputs",
            "target",
            "input",
            "quantization",
            "provenance",
            "delaynir_content_sha256",
        ]
        assert list(f["layers"]) == ["000", "001", "002", "003"]
        assert f["layers/001"].attrs["name"] == "syn" and f["layers/001/alpha"].dtype == np.float64
        assert "alpha" not in f["layers/000"]
        p = f["layers/002/projections"]
        assert list(p) == ["000", "001"] and p["001/pre"].shape == (0,)
        assert {p[f"000/{k}"].dtype for k in ("pre", "post", "delay")} == {np.dtype(np.uint32)}
        assert json.loads(f.attrs["quantization"]) == {"weight_bits": 8, "scheme": "per-neuron", "signed": True}


#: input specs as compile writes them (a run's data record, then the codes), a version-1 file's and a hand-written one
SPECS = {
    "graded": {
        "n_channels": 8,
        "pool": 1,
        "n_steps": 30,
        "dt": 0.01,
        "encoding": "graded",
        "value_range": [0.0003161257482133806, 1.698679804801941],
        "bits": 8,
        "input_scale": 0.006661489430595847,
        "code_range": [0, 255],
    },
    "graded float": {"n_steps": 30, "dt": 0.01, "encoding": "graded", "value_range": [-1.5, 2.0]},
    "spikes": {"n_channels": 12, "pool": 1, "n_steps": 40, "dt": 0.001, "encoding": "spikes"},
    "version 1": {"n_channels": 700, "pool": 5, "encoding": "counts"},
    "unknown entries": {"pool": 2, "note": "x", "extra": [1, {"a": None}]},
    "empty": {},
}


@pytest.mark.parametrize("name", sorted(SPECS))
def test_an_input_spec_is_written_as_the_object_it_was_read_from(name, tmp_path):
    """Same keys, order, values and JSON types in the DelayGraph file and the NIR metadata."""
    spec = InputSpec.from_dict(SPECS[name])
    assert json.dumps(spec.to_dict()) == json.dumps(SPECS[name])
    assert (spec.graded, spec.quantized) == (name.startswith("graded"), name == "graded")
    readout = Layer("out", 1, "li", [0.9], [INF], [0.0], [Projection(INPUT, [0], [0], [0], [1.0], [1.0])])
    graph = DelayGraph(dt=0.01, n_inputs=1, layers=[readout], input=spec)
    with h5py.File(save_graph(graph, tmp_path / "g.h5")) as f:
        assert f.attrs["input"] == json.dumps(SPECS[name])
    assert load_graph(tmp_path / "g.h5").input == spec
    assert json.dumps(json.loads(to_nir(graph).metadata["delaynir"])["input"]) == json.dumps(SPECS[name])


def test_same_graph_gives_byte_identical_files(tmp_path):
    a = save_graph(all_kinds_graph(), tmp_path / "a.h5")
    b = save_graph(all_kinds_graph(), tmp_path / "sub" / "b.h5")
    assert a.read_bytes() == b.read_bytes()


def test_no_object_stores_a_timestamp(tmp_path):
    """HDF5 stamps objects only to the second; read each object's stored mtime instead of sleeping."""
    path = save_graph(all_kinds_graph(), tmp_path / "g.h5")
    with h5py.File(path, "r") as f:
        names = ["."]
        f.visit(names.append)
        stamped = [name for name in names if h5py.h5g.get_objinfo(f.id, name.encode()).mtime]
    assert len(names) > 40 and stamped == []


def test_existing_file_is_not_overwritten(tmp_path):
    path = save_graph(lif_li_graph(), tmp_path / "g.h5")
    before = path.read_bytes()
    with pytest.raises(GraphFormatError, match=r"g\.h5 already exists; pass --overwrite \(overwrite=True"):
        save_graph(all_kinds_graph(), path)
    assert path.read_bytes() == before
    save_graph(all_kinds_graph(), path, overwrite=True)
    assert_graph_equal(all_kinds_graph(), load_graph(path))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["g.h5"]  # no temporary file left


def test_invalid_graph_is_not_written(tmp_path):
    graph = lif_li_graph()
    graph.layers[0].projections[0].weight[1] = np.nan
    graph.layers[0].projections[1].delay[0] = 0  # recurrent
    graph.layers[1].beta[0] = 1.5
    graph.dt = 0.0
    problems = validate_graph(graph)
    assert len(problems) == 4
    with pytest.raises(GraphFormatError) as info:
        save_graph(graph, tmp_path / "g.h5")
    message = str(info.value)
    assert "refusing to write" in message and "4 problem(s)" in message
    assert all(p in message for p in problems)
    assert list(tmp_path.iterdir()) == []


def test_validate_graph_in_memory():
    graph = lif_li_graph()
    graph.layers[0].name = "input"
    graph.layers[1].projections[0].pre = np.array([0, 1, 9])
    graph.layers[1].alpha = np.array([0.5])  # alpha on an li layer: allowed but checked
    graph.provenance = {"bad": (1, 2), 3: "x", "nan": math.nan}
    problems = "\n".join(validate_graph(graph))
    assert "layer 0 'input': name: 'input' is reserved" in problems
    assert "layer 1 'out' projection 0 (source 'hidden'): source: expected 'input' or the name of a layer" in problems
    assert "layer 1 'out': alpha: expected a 1-D real array of length 2 (one per neuron), found length 1" in problems
    assert "provenance.bad: expected str, int, float, bool, None, list or dict, found tuple" in problems
    assert "provenance: expected string keys, found key 3" in problems
    assert "provenance.nan: expected a finite number, found nan" in problems
    assert validate_graph("not a graph") == ["expected a DelayGraph, found str"]
    assert issubclass(GraphFormatError, DelayNIRError)


# ----------------------------------------------------------------------------- files written by others (raw h5py)


def raw_spec() -> dict:
    """A valid lif -> li graph as {group path: {"attrs": ..., dataset: array}}, in other tools' styles:
    int64 / uint8 indices, float32 arrays, fixed-length bytes strings, no metadata attributes."""
    return {
        "/": {
            "attrs": {
                "format": "delaynir.DelayGraph",
                "format_version": np.int32(1),
                "dt": 0.001,
                "n_inputs": np.uint16(3),
                "target": np.bytes_(b"float"),
            }
        },
        "layers/000": {
            "attrs": {"name": "hidden", "neuron": np.bytes_(b"lif"), "reset": "hard", "size": 3},
            "beta": np.array([0.9, 0.9, 0.5], np.float32),
            "threshold": np.ones(3),
            "bias": np.zeros(3),
        },
        "layers/000/projections/000": {
            "attrs": {"source": "input"},
            "pre": np.array([0, 1, 2], np.int64),
            "post": np.array([0, 1, 2], np.uint8),
            "delay": np.array([0, 2, 5], np.int16),
            "weight": np.array([1.0, -1.0, 2.0]),
            "scale": np.ones(3),
        },
        "layers/000/projections/001": {
            "attrs": {"source": "hidden"},
            "pre": np.array([2]),
            "post": np.array([0]),
            "delay": np.array([1]),
            "weight": np.array([0.5]),
            "scale": np.ones(3),
        },
        "layers/001": {
            "attrs": {"name": "out", "neuron": "li", "reset": "hard", "size": 2},
            "beta": np.array([0.8, 0.8]),
            "threshold": np.array([INF, INF]),
            "bias": np.zeros(2),
        },
        "layers/001/projections/000": {
            "attrs": {"source": "hidden"},
            "pre": np.array([0, 1]),
            "post": np.array([0, 1]),
            "delay": np.array([3, 3]),
            "weight": np.array([1.0, 1.0]),
            "scale": np.ones(2),
        },
    }


def write_raw(path: Path, spec: dict) -> Path:
    """Write ``spec`` with plain h5py (not with delaynir's writer)."""
    with h5py.File(path, "w") as f:
        for group_path, content in spec.items():
            group = f if group_path == "/" else f.require_group(group_path)
            for key, value in content.items():
                if key == "attrs":
                    group.attrs.update(value)
                else:
                    group.create_dataset(key, data=value)
    return path


def load_problems(tmp_path: Path, spec: dict) -> str:
    with pytest.raises(GraphFormatError) as info:
        load_graph(write_raw(tmp_path / "raw.h5", spec))
    return str(info.value)


def test_file_written_by_another_tool_loads(tmp_path):
    graph = load_graph(write_raw(tmp_path / "raw.h5", raw_spec()))
    assert graph.target == "float" and graph.n_inputs == 3 and graph.dt == 0.001
    assert graph.layers[0].neuron == "lif" and graph.layers[0].beta.dtype == np.float64
    assert graph.layers[0].beta[2] == 0.5 and graph.layers[0].projections[0].post.dtype == np.int64
    assert graph.layers[0].projections[0].delay.tolist() == [0, 2, 5]
    assert graph.provenance == {} and graph.layers[1].alpha is None


def _set(path, key, value):
    def mutate(spec):
        spec[path][key] = value

    return mutate


def _set_attr(path, key, value):
    def mutate(spec):
        spec[path]["attrs"][key] = value

    return mutate


def _drop(path, key=None):
    def mutate(spec):
        if key is None:
            for p in [p for p in spec if p == path or p.startswith(path + "/")]:
                del spec[p]
        elif key in spec[path].get("attrs", {}):
            del spec[path]["attrs"][key]
        else:
            del spec[path][key]

    return mutate


def _no_layers(spec):
    for p in [p for p in spec if p.startswith("layers")]:
        del spec[p]
    spec["layers"] = {}


def _rename_layer(spec):
    spec["layers/001"]["attrs"]["name"] = "hidden"


def _skip_index(spec):
    for p in [p for p in spec if p.startswith("layers/001")]:
        spec[p.replace("layers/001", "layers/002")] = spec.pop(p)


H0, H1 = "layer 0 'hidden'", "layer 1 'out'"
P00 = f"{H0} projection 0 (source 'input')"
P01 = f"{H0} projection 1 (source 'hidden')"
P10 = f"{H1} projection 0 (source 'hidden')"
PER_NEURON = "expected a 1-D real array of length 3 (one per neuron)"
BAD = "found 1 value(s) that are not"
PROJ10 = "layers/001/projections/000"


def _beta_is_group(spec):
    del spec["layers/000"]["beta"]
    spec["layers/000/beta"] = {}


# case id: (mutation of raw_spec(), [text the message must contain, ...])
MALFORMED = {
    "no format_version": (
        _drop("/", "format_version"),
        ["root attribute 'format_version': expected an integer 1..2, found nothing (missing)"],
    ),
    "wrong format": (
        _set_attr("/", "format", "nir"),
        ["root attribute 'format': expected 'delaynir.DelayGraph', found 'nir'"],
    ),
    "no layers group": (_drop("layers"), ["layers: expected a non-empty list of layers", "found nothing (missing)"]),
    "no layers": (_no_layers, ["layers: expected a non-empty list of layers (the last is the output), found []"]),
    "dt zero": (_set_attr("/", "dt", 0.0), ["dt: expected a finite number of seconds > 0, found 0.0"]),
    "n_inputs zero": (_set_attr("/", "n_inputs", 0), ["n_inputs: expected an integer in 1..4294967296, found 0"]),
    "bad json": (
        _set_attr("/", "provenance", "{oops"),
        ["root attribute 'provenance': expected a JSON object, found invalid JSON"],
    ),
    "json not a dict": (_set_attr("/", "input", "[1, 2]"), ["input: expected a dict, found [1, 2]"]),
    "missing beta": (_drop("layers/000", "beta"), [f"{H0}: beta: {PER_NEURON}, found nothing (missing)"]),
    "missing size": (
        _drop("layers/000", "size"),
        [f"{H0}: size: expected an integer in 1..4294967296, found nothing (missing)"],
    ),
    "missing projections": (
        _drop("layers/001/projections"),
        [f"{H1}: projections: expected a list of projections, found nothing (missing)"],
    ),
    "missing pre": (_drop(PROJ10, "pre"), [f"{P10}: pre: expected a 1-D integer array, found nothing (missing)"]),
    "beta is a group": (_beta_is_group, [f"{H0}: beta: {PER_NEURON}, found Group"]),
    "2-D bias": (_set("layers/000", "bias", np.zeros((3, 1))), [f"{H0}: bias: {PER_NEURON}, found shape (3, 1)"]),
    "float pre": (
        _set(PROJ10, "pre", np.array([0.0, 1.0])),
        [f"{P10}: pre: expected a 1-D integer array, found dtype float64"],
    ),
    "mismatched lengths": (
        _set(PROJ10, "delay", np.array([3])),
        [
            f"{P10}: expected pre, post, delay and weight of equal length (one entry per synapse), "
            "found pre 2, post 2, delay 1, weight 2"
        ],
    ),
    "pre out of range": (
        _set("layers/000/projections/000", "pre", np.array([0, 3, 2])),
        [f"{P00}: pre: expected indices in 0..2 (source 'input' has 3 neurons), {BAD} (first: synapse 1 = 3)"],
    ),
    "post out of range": (
        _set(PROJ10, "post", np.array([0, 2])),
        [f"{P10}: post: expected indices in 0..1 (this layer has 2 neurons), {BAD} (first: synapse 1 = 2)"],
    ),
    "unknown source": (
        _set_attr(PROJ10, "source", "nowhere"),
        [f"{H1} projection 0 (source 'nowhere'): source: expected 'input' or the name of a layer, found 'nowhere'"],
    ),
    "negative delay": (
        _set("layers/000/projections/000", "delay", np.array([0, -1, 5])),
        [f"{P00}: delay: expected delays in 0..4294967295 steps, {BAD} (first: synapse 1 = -1)"],
    ),
    "recurrent delay 0": (
        _set("layers/000/projections/001", "delay", np.array([0])),
        [f"{P01}: delay: expected delays in 1..4294967295 steps (the projection is recurrent"],
    ),
    "nan weight": (
        _set(PROJ10, "weight", np.array([1.0, np.nan])),
        [f"{P10}: weight: expected finite values, {BAD} (first: synapse 1 = nan)"],
    ),
    "inf scale": (
        _set(PROJ10, "scale", np.array([1.0, -INF])),
        [f"{P10}: scale: expected finite values, {BAD} (first: neuron 1 = -inf)"],
    ),
    "scale length": (
        _set(PROJ10, "scale", np.ones(3)),
        [f"{P10}: scale: expected a 1-D real array of length 2 (one per neuron of this layer), found length 3"],
    ),
    "nan beta": (
        _set("layers/000", "beta", np.array([0.5, np.nan, 0.5])),
        [f"{H0}: beta: expected decay factors in [0, 1], {BAD} (first: neuron 1 = nan)"],
    ),
    "beta above 1": (
        _set("layers/001", "beta", np.array([0.5, 1.5])),
        [f"{H1}: beta: expected decay factors in [0, 1], {BAD} (first: neuron 1 = 1.5)"],
    ),
    "inf threshold on lif": (
        _set("layers/000", "threshold", np.array([1.0, INF, 1.0])),
        [f"{H0}: threshold: expected finite values (+inf only for li and relay layers), {BAD} (first: neuron 1 = inf)"],
    ),
    "nan threshold on li": (
        _set("layers/001", "threshold", np.array([INF, np.nan])),
        [f"{H1}: threshold: expected finite values or +inf, {BAD} (first: neuron 1 = nan)"],
    ),
    "inf bias": (
        _set("layers/000", "bias", np.array([0.0, 0.0, INF])),
        [f"{H0}: bias: expected finite values, {BAD} (first: neuron 2 = inf)"],
    ),
    "unknown neuron": (
        _set_attr("layers/000", "neuron", "izhikevich"),
        [f"{H0}: neuron: expected one of 'lif', 'cubalif', 'li', 'relay', found 'izhikevich'"],
    ),
    "unknown reset": (
        _set_attr("layers/000", "reset", "soft"),
        [f"{H0}: reset: expected one of 'hard', 'subtract', found 'soft'"],
    ),
    "cubalif without alpha": (
        _set_attr("layers/000", "neuron", "cubalif"),
        [f"{H0}: alpha: missing, a cubalif layer needs alpha"],
    ),
    "alpha wrong length": (
        _set("layers/000", "alpha", np.array([0.5, 0.5])),
        [f"{H0}: alpha: {PER_NEURON}, found length 2"],
    ),
    "duplicate names": (_rename_layer, ["duplicate layer name 'hidden' (layers 0, 1); layer names must be unique"]),
    "gap in layer indices": (
        _skip_index,
        ["/layers: expected members named by index 000, 001, ... without gaps, found 000, 002"],
    ),
}


@pytest.mark.parametrize("case", MALFORMED, ids=list(MALFORMED))
def test_malformed_file_is_reported(tmp_path, case):
    mutate, expected = MALFORMED[case]
    spec = raw_spec()
    mutate(spec)
    message = load_problems(tmp_path, spec)
    assert "raw.h5 is not a valid DelayGraph file" in message and "docs/delaygraph-format.md" in message
    for text in expected:
        assert text in message


def test_every_problem_is_reported_at_once(tmp_path):
    spec = raw_spec()
    for mutate in (
        _set_attr("/", "dt", -1.0),
        _drop("layers/000", "bias"),
        _set("layers/000/projections/001", "delay", np.array([0])),
        _set("layers/001/projections/000", "weight", np.array([np.nan, 1.0])),
        _set_attr("layers/001", "reset", "none"),
    ):
        mutate(spec)
    message = load_problems(tmp_path, spec)
    assert "5 problem(s)" in message
    for text in (
        "dt: expected",
        f"{H0}: bias: expected",
        f"{P01}: delay: expected",
        f"{P10}: weight: expected",
        f"{H1}: reset: expected",
    ):
        assert text in message


def test_newer_format_version_is_refused(tmp_path):
    spec = raw_spec()
    spec["/"]["attrs"]["format_version"] = 3
    assert "format_version 3 is newer than this delaynir reads (2); upgrade delaynir" in load_problems(tmp_path, spec)


def test_missing_and_non_hdf5_files(tmp_path):
    with pytest.raises(GraphFormatError, match="nothing.h5: no such file"):
        load_graph(tmp_path / "nothing.h5")
    (tmp_path / "text.h5").write_text("not hdf5")
    with pytest.raises(GraphFormatError, match="text.h5: not an HDF5 file"):
        load_graph(tmp_path / "text.h5")


def test_unknown_members_are_logged_not_dropped_silently(tmp_path, caplog):
    spec = raw_spec()
    spec["layers/000"]["attrs"]["colour"] = "red"
    spec["layers/000"]["extra"] = np.zeros(2)
    with caplog.at_level(logging.WARNING, logger="delaynir.ir.graph_io"):
        load_graph(write_raw(tmp_path / "raw.h5", spec))
    assert "/layers/000: ignoring members the DelayGraph layout does not define: colour, extra/" in caplog.text


# ----------------------------------------------------------------------------- property: random valid graphs


FLOATS = st.floats(allow_nan=False, allow_infinity=False)
UNIT = st.floats(0.0, 1.0)
NAMES = st.text(st.characters(exclude_characters="\0", exclude_categories=("Cs",)), min_size=1, max_size=6).filter(
    lambda s: s != INPUT
)
JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | FLOATS | st.text(max_size=5),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner, max_size=3),
    max_leaves=8,
)


def floats(draw, n, elements=FLOATS) -> np.ndarray:
    return np.array(draw(st.lists(elements, min_size=n, max_size=n)), dtype=np.float64)


@st.composite
def random_projection(draw, k, size, sources) -> Projection:
    j, source, source_size = draw(st.sampled_from(sources))
    n = draw(st.integers(0, 5))

    def ints(lo, hi):
        return np.array(draw(st.lists(st.integers(lo, hi), min_size=n, max_size=n)), dtype=np.int64)

    return Projection(
        source, ints(0, source_size - 1), ints(0, size - 1), ints(int(j >= k), 30), floats(draw, n), floats(draw, size)
    )


@st.composite
def random_graph(draw) -> DelayGraph:
    names = draw(st.lists(NAMES, min_size=1, max_size=3, unique=True))
    sizes = [draw(st.integers(1, 4)) for _ in names]
    n_inputs = draw(st.integers(1, 4))
    sources = [(-1, INPUT, n_inputs)] + [(j, name, size) for j, (name, size) in enumerate(zip(names, sizes))]
    layers = []
    for k, (name, size) in enumerate(zip(names, sizes)):
        neuron = draw(st.sampled_from(NEURON_TYPES))
        threshold = FLOATS | st.just(INF) if neuron in ("li", "relay") else FLOATS
        layers.append(
            Layer(
                name,
                size,
                neuron,
                beta=floats(draw, size, UNIT),
                threshold=floats(draw, size, threshold),
                bias=floats(draw, size),
                reset=draw(st.sampled_from(RESETS)),
                alpha=floats(draw, size, UNIT) if neuron == "cubalif" or draw(st.booleans()) else None,
                projections=draw(st.lists(random_projection(k, size, sources), max_size=3)),
            )
        )
    metadata = st.dictionaries(st.text(max_size=4), JSON, max_size=3)
    return DelayGraph(
        dt=draw(st.floats(1e-6, 1.0)),
        n_inputs=n_inputs,
        layers=layers,
        target=draw(NAMES),
        input=draw(metadata),
        quantization=draw(metadata),
        provenance=draw(metadata),
    )


@settings(max_examples=60, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
@given(graph=random_graph())
def test_random_valid_graphs_round_trip_exactly(graph):
    assert validate_graph(graph) == []
    with tempfile.TemporaryDirectory() as tmp:
        a = save_graph(graph, Path(tmp) / "a.h5")
        assert_graph_equal(graph, load_graph(a))
        b = save_graph(graph, Path(tmp) / "b.h5")
        assert a.read_bytes() == b.read_bytes()
