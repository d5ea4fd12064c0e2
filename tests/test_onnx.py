"""ONNX export: the per-step model run in ONNX Runtime against the reference simulator, and the file contract."""

import json
import re
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from onnx import TensorProto, helper

from delaynir.converters.onnx_export import IR_VERSION, OPSET, export_onnx, fan_in_bands, padded_synapses
from delaynir.converters.onnxruntime import run_onnx
from delaynir.errors import ExportError
from delaynir.ir.graph import INPUT, DelayGraph, Layer, Projection
from delaynir.ir.graph_io import save_graph
from delaynir.reference.simulate import simulate

FIELDS = ("spikes", "membranes")
DOC = Path(__file__).resolve().parents[1] / "docs" / "onnx-format.md"


def projection(rng, source, n_pre, n_post, density, delays, *, integer, scale):
    post, pre = np.nonzero(rng.random((n_post, n_pre)) < density)
    weight = rng.integers(-8, 9, len(pre)).astype(float) if integer else rng.normal(0, 1.0, len(pre))
    return Projection(source, pre, post, rng.integers(delays[0], delays[1] + 1, len(pre)), weight, scale)


def random_graph(seed: int, *, integer: bool = True, max_delay: int = 5) -> DelayGraph:
    """1–3 hidden layers (lif / cubalif / relay, hard or subtract reset) and a li or lif output.

    Per layer: 1–2 feed-forward projections (delays 0..D), optionally a recurrent and a feedback
    projection from a later layer (delays 1..D), each possibly empty; projections of a layer share one of
    two scale vectors, so the simulator's scale groups get several members. Relays get unit scale,
    zero bias and no recurrence, so integer inputs stay integer through them.
    """
    rng = np.random.default_rng(seed)
    n_in = int(rng.integers(1, 6))
    kinds = [str(k) for k in rng.choice(["lif", "cubalif", "relay"], int(rng.integers(1, 4)))]
    kinds.append(str(rng.choice(["li", "lif"])))
    names = [f"l{k}" for k in range(len(kinds))]
    sizes = {INPUT: n_in, **{name: int(rng.integers(1, 7)) for name in names}}
    layers = []
    for k, (name, kind) in enumerate(zip(names, kinds)):
        n = sizes[name]
        pool = [np.ones(n)] if kind == "relay" else [rng.uniform(0.05, 0.3, n) for _ in range(2)]
        sources = [(s, (0, max_delay)) for s in rng.choice([INPUT, *names[:k]], int(rng.integers(1, 3)))]
        if kind != "relay":
            if rng.random() < 0.4:
                sources.append((name, (1, max_delay)))
            if k + 1 < len(names) and rng.random() < 0.4:
                sources.append((str(rng.choice(names[k + 1 :])), (1, max_delay)))
        projections = [
            projection(
                rng,
                str(s),
                sizes[str(s)],
                n,
                rng.choice([0.0, 0.3, 0.7, 1.0]),
                delays,
                integer=integer,
                scale=pool[rng.integers(len(pool))],
            )
            for s, delays in sources
        ]
        spiking = kind in ("lif", "cubalif")
        layers.append(
            Layer(
                name,
                n,
                kind,
                rng.uniform(0.5, 0.95, n),
                rng.uniform(0.5, 1.5, n) if spiking else np.full(n, np.inf),
                np.zeros(n) if kind == "relay" else rng.normal(0, 0.1, n),
                projections,
                reset=str(rng.choice(["hard", "subtract"])),
                alpha=rng.uniform(0.2, 0.8, n) if kind == "cubalif" else None,
            )
        )
    return DelayGraph(dt=0.001, n_inputs=n_in, layers=layers, target="test")


def integer_inputs(seed: int, graph: DelayGraph, T: int = 20, B: int = 3) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return ((rng.random((T, B, graph.n_inputs)) < 0.3) * rng.integers(1, 3, (T, B, graph.n_inputs))).astype(float)


def assert_identical(expected, found):
    for field in FIELDS:
        assert getattr(found, field).keys() == getattr(expected, field).keys()
        for name, value in getattr(expected, field).items():
            assert torch.equal(getattr(found, field)[name], value), f"{field} of layer {name!r} differ"
    assert torch.equal(found.output, expected.output)
    assert torch.equal(found.predictions, expected.predictions)


@pytest.fixture
def small_graph() -> DelayGraph:
    return random_graph(7)


@settings(max_examples=100, deadline=None, derandomize=True)
@given(seed=st.integers(0, 2**32 - 1), max_delay=st.integers(1, 6))
def test_step_model_reproduces_the_simulator_exactly(tmp_path_factory, seed, max_delay):
    graph = random_graph(seed, max_delay=max_delay)
    x = integer_inputs(seed, graph)
    path = export_onnx(graph, tmp_path_factory.mktemp("onnx") / "model.onnx")
    found = run_onnx(path, x)
    assert_identical(simulate(graph, x, record=True), found)


@settings(max_examples=10, deadline=None, derandomize=True)
@given(seed=st.integers(0, 2**32 - 1))
def test_sequence_model_matches_the_step_model_exactly(tmp_path_factory, seed):
    graph = random_graph(seed, integer=seed % 2 == 0)
    x = integer_inputs(seed, graph, T=15, B=2)
    folder = tmp_path_factory.mktemp("onnx")
    step = run_onnx(export_onnx(graph, folder / "step.onnx"), x)
    whole = run_onnx(export_onnx(graph, folder / "sequence.onnx", sequence=True), x)
    assert_identical(step, whole)
    if seed % 2 == 0:
        assert_identical(simulate(graph, x, record=True), whole)


@settings(max_examples=15, deadline=None, derandomize=True)
@given(seed=st.integers(0, 2**32 - 1))
def test_float_weights_give_the_same_spikes(tmp_path_factory, seed):
    graph = random_graph(seed, integer=False)
    x = np.random.default_rng(seed).random((20, 2, graph.n_inputs))
    found = run_onnx(export_onnx(graph, tmp_path_factory.mktemp("onnx") / "model.onnx"), x)
    expected = simulate(graph, x, record=True)
    for name in expected.spikes:
        assert torch.equal(found.spikes[name], expected.spikes[name])
        torch.testing.assert_close(found.membranes[name], expected.membranes[name], rtol=1e-12, atol=1e-12)
    assert torch.equal(found.predictions, expected.predictions)


def test_recurrent_and_feedback_projections(tmp_path):
    """h reads itself (d ≥ 1) and the later layer o (feedback, d ≥ 1); o reads h with d = 0 in the same step."""
    rng = np.random.default_rng(0)
    h = Layer(
        "h",
        4,
        "lif",
        np.full(4, 0.9),
        np.full(4, 1.0),
        np.zeros(4),
        [
            projection(rng, INPUT, 3, 4, 0.8, (0, 3), integer=True, scale=np.full(4, 0.25)),
            projection(rng, "h", 4, 4, 0.5, (1, 4), integer=True, scale=np.full(4, 0.25)),
            projection(rng, "o", 2, 4, 1.0, (1, 2), integer=True, scale=np.full(4, 0.125)),
        ],
        reset="subtract",
    )
    o = Layer(
        "o",
        2,
        "lif",
        np.full(2, 0.8),
        np.full(2, 0.5),
        np.zeros(2),
        [Projection("h", [0, 1, 2, 3], [0, 0, 1, 1], [0, 0, 0, 2], [3.0, -1.0, 2.0, 2.0], np.full(2, 0.5))],
    )
    graph = DelayGraph(0.01, 3, [h, o])
    x = integer_inputs(1, graph, T=40, B=4)
    expected = simulate(graph, x, record=True)
    assert expected.spikes["h"].any() and expected.spikes["o"].any()
    assert_identical(expected, run_onnx(export_onnx(graph, tmp_path / "m.onnx"), x))


def test_skewed_fan_in_uses_bands_and_stays_exact(tmp_path):
    """One neuron with 60 synapses, others with 1–3 or none: padding stays ≤ 2× synapses, results exact."""
    post = np.concatenate([np.zeros(60, int), np.repeat([1, 2, 4, 5, 7], [1, 3, 2, 1, 3])])
    bands = fan_in_bands(post, 9)
    assert len(bands) > 1 and sorted(np.concatenate(bands)) == [0, 1, 2, 4, 5, 7]
    rows = np.arange(len(post))
    padded = sum(padded_synapses(rows, np.ones(len(post)), post, band)[0].size for band in bands)
    assert padded <= 2 * len(post)
    rng = np.random.default_rng(2)
    proj = Projection(
        INPUT,
        rng.integers(0, 30, len(post)),
        post,
        rng.integers(0, 5, len(post)),
        rng.integers(-4, 5, len(post)).astype(float),
        rng.uniform(0.05, 0.2, 9),
    )
    graph = DelayGraph(0.01, 30, [Layer("o", 9, "li", np.full(9, 0.9), np.full(9, np.inf), np.ones(9), [proj])])
    x = integer_inputs(3, graph, T=15)
    assert_identical(simulate(graph, x, record=True), run_onnx(export_onnx(graph, tmp_path / "m.onnx"), x))


def test_layer_without_synapses_and_symbolic_batch(tmp_path):
    graph = DelayGraph(
        0.01,
        2,
        [
            Layer("b", 3, "lif", np.full(3, 0.5), np.full(3, 1.0), np.array([0.6, 0.3, -1.0]), []),
            Layer(
                "o",
                2,
                "li",
                np.full(2, 0.9),
                np.full(2, np.inf),
                np.zeros(2),
                [
                    Projection("b", [0, 1], [0, 1], [1, 0], [1.0, 2.0], np.ones(2)),
                    Projection(INPUT, [1], [1], [2], [1.0], np.ones(2)),
                ],
            ),
        ],
    )
    path = export_onnx(graph, tmp_path / "m.onnx")
    for batch in (1, 5):
        x = integer_inputs(batch, graph, T=12, B=batch)
        assert_identical(simulate(graph, x, record=True), run_onnx(path, torch.from_numpy(x)))


def anchor_graph(seed: int = 0, sizes=(140, 256, 256, 20), density=0.1, D=25) -> DelayGraph:
    """The anchor shape with int8-style weights and per-neuron scales, built directly with numpy."""
    rng = np.random.default_rng(seed)
    layers, source = [], INPUT
    for k, (n_pre, n) in enumerate(zip(sizes[:-1], sizes[1:])):
        readout = k == len(sizes) - 2
        proj = projection(rng, source, n_pre, n, density, (0, D - 1), integer=True, scale=rng.uniform(0.01, 0.02, n))
        proj.weight = rng.integers(-127, 128, len(proj)).astype(float)
        name = "out" if readout else f"h{k}"
        layers.append(
            Layer(
                name,
                n,
                "li" if readout else "lif",
                np.full(n, 0.9),
                np.full(n, np.inf) if readout else np.ones(n),
                np.zeros(n),
                [proj],
            )
        )
        source = name
    return DelayGraph(0.01, sizes[0], layers, target="test")


def test_file_is_no_larger_than_a_few_times_the_graph_file(tmp_path):
    graph = anchor_graph()
    h5 = save_graph(graph, tmp_path / "g.h5")
    model = export_onnx(graph, tmp_path / "g.onnx")
    assert graph.n_synapses > 10_000 and graph.max_delay == 24
    assert model.stat().st_size <= 4 * h5.stat().st_size


@pytest.mark.parametrize("sequence", [False, True], ids=["step", "sequence"])
def test_model_passes_the_checker_and_documents_every_input_and_output(tmp_path, small_graph, sequence):
    path = export_onnx(small_graph, tmp_path / "m.onnx", sequence=sequence)
    model = onnx.load(path)
    onnx.checker.check_model(model, full_check=True)
    assert model.ir_version == IR_VERSION and [(o.domain, o.version) for o in model.opset_import] == [("", OPSET)]
    meta = {p.key: p.value for p in model.metadata_props}
    assert meta["delaynir.format_version"] == "2" and meta["delaynir.target"] == "test"
    assert float(meta["delaynir.dt"]) == small_graph.dt
    assert [layer["name"] for layer in json.loads(meta["delaynir.layers"])] == [L.name for L in small_graph.layers]
    io = json.loads(meta["delaynir.io"])
    for documented, declared in ((io["inputs"], model.graph.input), (io["outputs"], model.graph.output)):
        assert [p["name"] for p in documented] == [v.name for v in declared]
        for p, v in zip(documented, declared):
            dims = [d.dim_param or d.dim_value for d in v.type.tensor_type.shape.dim]
            assert p["shape"] == dims and v.type.tensor_type.elem_type == TensorProto.DOUBLE
            assert p["doc"] and v.doc_string == p["doc"]
    assert meta["delaynir.format"] == ("delaynir.onnx.sequence" if sequence else "delaynir.onnx.step")
    outputs = {p["name"]: p for p in io["outputs"]}
    assert io["inputs"][0]["name"] == "x"
    assert io["inputs"][0]["shape"] == (["T"] if sequence else []) + ["B", small_graph.n_inputs]
    for layer in small_graph.layers:
        assert outputs[f"out.{layer.name}"]["shape"][-2:] == ["B", layer.size]
    for p in io["inputs"][1:]:  # state (step model only): every input has an output that carries it on
        assert p["role"] == "state" and outputs[p["next"]]["shape"] == p["shape"]
    assert len(io["inputs"]) > 1 or sequence


def test_overwrite_is_refused_and_the_old_file_kept(tmp_path, small_graph):
    path = tmp_path / "m.onnx"
    path.write_bytes(b"old")
    with pytest.raises(ExportError, match=r"m\.onnx already exists.*overwrite=True"):
        export_onnx(small_graph, path)
    assert path.read_bytes() == b"old"
    export_onnx(small_graph, path, overwrite=True)
    onnx.checker.check_model(onnx.load(path), full_check=True)
    assert [p.name for p in tmp_path.iterdir()] == ["m.onnx"]  # no temporary file left behind
    assert export_onnx(small_graph, tmp_path / "again.onnx").read_bytes() == path.read_bytes()  # deterministic


def test_invalid_graph_is_refused(tmp_path, small_graph):
    small_graph.layers[0].projections.append(
        Projection(small_graph.layers[0].name, [0], [0], [0], [1.0], np.ones(small_graph.layers[0].size))
    )
    with pytest.raises(ExportError, match="(?s)DelayGraph is invalid.*recurrent"):
        export_onnx(small_graph, tmp_path / "m.onnx")
    assert not (tmp_path / "m.onnx").exists()


@pytest.mark.parametrize("content", [b"", b"not an onnx model at all", None], ids=["empty", "text", "truncated"])
def test_malformed_files_raise_export_error(tmp_path, small_graph, content):
    path = tmp_path / "bad.onnx"
    if content is None:
        data = export_onnx(small_graph, tmp_path / "good.onnx").read_bytes()
        content = data[: len(data) // 2]
    path.write_bytes(content)
    with pytest.raises(ExportError, match=r"bad\.onnx"):
        run_onnx(path, np.zeros((2, 1, small_graph.n_inputs)))


def test_missing_file_raises_export_error(tmp_path):
    with pytest.raises(ExportError, match="no such file"):
        run_onnx(tmp_path / "absent.onnx", np.zeros((1, 1, 1)))


def test_foreign_model_and_wrong_input_width_raise_export_error(tmp_path, small_graph):
    value = helper.make_tensor_value_info("x", TensorProto.DOUBLE, ["B", 3])
    foreign = helper.make_model(
        helper.make_graph(
            [helper.make_node("Identity", ["x"], ["y"])],
            "g",
            [value],
            [helper.make_tensor_value_info("y", TensorProto.DOUBLE, ["B", 3])],
        ),
        opset_imports=[helper.make_opsetid("", OPSET)],
        ir_version=IR_VERSION,
    )
    onnx.save(foreign, tmp_path / "foreign.onnx")
    with pytest.raises(ExportError, match=r"foreign\.onnx.*not exported by delaynir"):
        run_onnx(tmp_path / "foreign.onnx", np.zeros((2, 1, 3)))
    path = export_onnx(small_graph, tmp_path / "m.onnx")
    with pytest.raises(ExportError, match=rf"m\.onnx takes inputs \(T, B, {small_graph.n_inputs}\)"):
        run_onnx(path, np.zeros((2, 1, small_graph.n_inputs + 1)))


def test_the_documented_python_snippet_drives_the_step_model(tmp_path, small_graph):
    """docs/onnx-format.md's snippet (numpy + onnxruntime only) gives the simulator's output."""
    snippet = re.search(r"## Driving the step model.*?```python\n(.*?)```", DOC.read_text(), re.S).group(1)
    x = integer_inputs(5, small_graph)
    scope = {"path": export_onnx(small_graph, tmp_path / "m.onnx"), "frames": x}
    exec(snippet, scope)
    assert np.array_equal(scope["readout"], simulate(small_graph, x).output.numpy())
