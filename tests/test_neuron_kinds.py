"""Each neuron kind has one step definition: the reference simulator and the training module call it, the ONNX
writer lowers it, and all agree; README and docs quote its equations verbatim."""

import dataclasses
import re
from pathlib import Path

import numpy as np
import pytest
import torch

from delaynir.converters.onnx_export import export_onnx
from delaynir.converters.onnxruntime import load_onnx
from delaynir.errors import GraphFormatError
from delaynir.ir import neuron_kinds
from delaynir.ir.graph import INPUT, DelayGraph, Layer, Projection
from delaynir.ir.neuron_kinds import KINDS
from delaynir.nn import neurons
from delaynir.numerics.number_formats import Arithmetic
from delaynir.reference.simulate import simulate

ROOT = Path(__file__).resolve().parents[1]
#: where the equations are quoted, and which kinds each text states
QUOTED = {"README.md": ("lif", "li"), "docs/design.md": tuple(KINDS), "docs/delaygraph-format.md": tuple(KINDS)}


def _flat(text: str) -> str:
    return re.sub(r"\s+", " ", text)


@pytest.mark.parametrize("path", sorted(QUOTED))
def test_the_docs_quote_each_kinds_equations_verbatim(path):
    text = _flat((ROOT / path).read_text())
    for name in QUOTED[path]:
        for line in KINDS[name].equations:
            assert _flat(line) in text, (
                f"{path} does not quote {name}'s equation {line!r} (delaynir/ir/neuron_kinds.py)"
            )


def test_the_equations_are_stated_in_one_docstring_only():
    """No other module restates an update equation: they point to delaynir.ir.neuron_kinds."""
    lines = [_flat(line) for kind in KINDS.values() for line in kind.equations]
    for path in [*(ROOT / "delaynir").rglob("*.py"), *(ROOT / "converters").rglob("*.py")]:
        if path.name == "neuron_kinds.py":
            continue
        text = _flat(path.read_text())
        assert not any(line in text for line in lines), f"{path.relative_to(ROOT)} restates a neuron equation"


def _graph(kind: str, reset: str = "hard") -> DelayGraph:
    """input (2 channels) → one layer of 3 neurons of ``kind``, with delays 0–2 and a bias."""
    rng = np.random.default_rng(7)
    pre, post = np.array([0, 1, 0, 1, 0]), np.array([0, 0, 1, 2, 2])
    proj = Projection(INPUT, pre, post, [0, 2, 1, 0, 2], rng.uniform(0.2, 0.9, 5), np.ones(3))
    layer = Layer(
        "L",
        3,
        kind,
        np.full(3, 0.8),
        np.full(3, 1.0) if kind != "li" else np.full(3, np.inf),
        np.array([0.05, 0.0, -0.1]),
        [proj],
        reset=reset,
        alpha=np.full(3, 0.6) if kind == "cubalif" else None,
    )
    return DelayGraph(dt=1e-3, n_inputs=2, layers=[layer])


CASES = [("lif", "hard"), ("lif", "subtract"), ("cubalif", "hard"), ("li", "hard"), ("relay", "hard")]


def _spy(monkeypatch, name: str) -> list:
    calls = []
    kind = KINDS[name]

    def step(ops, p, state, current):
        calls.append(type(ops).__name__)
        return kind.step(ops, p, state, current)

    monkeypatch.setitem(KINDS, name, dataclasses.replace(kind, step=step))
    return calls


@pytest.mark.parametrize("kind,reset", CASES, ids=[f"{k}-{r}" for k, r in CASES])
def test_simulator_onnx_and_training_use_the_one_step_and_agree(kind, reset, tmp_path, monkeypatch):
    graph = _graph(kind, reset)
    x = torch.from_numpy(np.random.default_rng(1).poisson(0.6, (12, 4, 2)).astype(np.float64))
    calls = _spy(monkeypatch, kind)

    ref = simulate(graph, x, record=True)
    assert calls.count("TorchOps") == 12  # one step call per time step
    assert (ref.spikes["L"] > 0).any() or kind == "li"

    calls.clear()
    path = export_onnx(graph, tmp_path / "m.onnx")
    assert calls and "TorchOps" not in calls  # the writer lowered the step with its own ops
    onnx = load_onnx(path).run(x)
    torch.testing.assert_close(onnx.membranes["L"], ref.membranes["L"], rtol=0, atol=0)
    torch.testing.assert_close(onnx.spikes["L"].double(), ref.spikes["L"], rtol=0, atol=0)

    if kind not in ("lif", "li"):
        return  # training has lif hidden layers and the li readout only
    proj, layer = graph.layers[0].projections[0], graph.layers[0]
    current = torch.zeros(12, 4, 3, dtype=torch.float64) + torch.from_numpy(layer.bias)
    for i, j, d, w in zip(proj.pre, proj.post, proj.delay, proj.weight):
        current[d:, :, j] += w * x[: 12 - d, :, i]
    calls.clear()
    monkeypatch.setattr(neurons, "_kernels", lambda *tensors: None)  # the torch loop, not a compiled lowering
    if kind == "lif":
        spikes, membranes = neurons.lif_sequence(
            current, torch.from_numpy(layer.beta), torch.from_numpy(layer.threshold), reset=reset
        )
        torch.testing.assert_close(spikes, ref.spikes["L"], rtol=0, atol=0)
    else:
        membranes = neurons.li_sequence(current, torch.from_numpy(layer.beta))
    assert calls.count("TorchOps") == 12
    torch.testing.assert_close(membranes, ref.membranes["L"], rtol=0, atol=1e-12)


def test_the_compiled_training_loops_agree_with_the_step_definition(monkeypatch):
    """numba's lowering of the lif step (CPU training) gives the torch loop's spikes and membranes bit for bit."""
    current = torch.randn(30, 5, 7, dtype=torch.float64)
    beta, theta = torch.full((7,), 0.85, dtype=torch.float64), torch.full((7,), 0.7, dtype=torch.float64)
    for reset in neuron_kinds.RESETS:
        compiled = neurons.lif_sequence(current, beta, theta, reset=reset)
        with monkeypatch.context() as m:
            m.setattr(neurons, "_kernels", lambda *tensors: None)
            loop = neurons.lif_sequence(current, beta, theta, reset=reset)
        for a, b in zip(compiled, loop):
            torch.testing.assert_close(a, b, rtol=0, atol=0)


#: kind: (spiking, readout, relay, in_units, current_based, decays)
FACTS = {
    "lif": (True, False, False, True, False, ("beta",)),
    "cubalif": (True, False, False, True, True, ("beta", "alpha")),
    "li": (False, True, False, False, False, ("beta",)),
    "relay": (False, False, True, False, False, ()),
}


@pytest.mark.parametrize("name", sorted(FACTS))
def test_each_kind_states_its_facts(name):
    kind = KINDS[name]
    assert (kind.spiking, kind.readout, kind.relay, kind.in_units, kind.current_based, kind.decays) == FACTS[name]
    assert _graph(name).layers[0].kind is kind
    assert set(kind.decays) <= set(neuron_kinds.DECAYS)


def test_the_kinds_in_units_of_their_scale_are_the_default_everywhere():
    assert neuron_kinds.UNIT_KINDS == ("lif", "cubalif")
    assert Arithmetic("x").unit_kinds == neuron_kinds.UNIT_KINDS


def test_a_layer_of_no_kind_says_so():
    layer = _graph("lif").layers[0]
    layer.neuron = "izhikevich"
    with pytest.raises(GraphFormatError, match="'izhikevich' is not a neuron kind"):
        assert layer.kind


#: A neuron kind's name compared with a string literal (either side), or passed to graph_io's string test.
KINDS_ = "(li|lif|cubalif|relay)"
KIND_LITERAL = re.compile(
    rf"""(==|!=|\bin)\s*[(\[{{]?\s*["']{KINDS_}["']|["']{KINDS_}["']\s*(==|!=|\bin\b)|_is\([^)]*["']{KINDS_}["']\)"""
)


def test_no_module_compares_a_neuron_kind_name_with_a_literal():
    """Whether a layer spikes, is the readout or a relay is asked of its kind (NeuronKind), never of its name."""
    found = [
        f"{path.relative_to(ROOT)}:{number}: {line.strip()}"
        for folder in ("delaynir", "converters", "targets")
        for path in sorted((ROOT / folder).rglob("*.py"))
        if path.name != "neuron_kinds.py"
        for number, line in enumerate(path.read_text().splitlines(), start=1)
        if KIND_LITERAL.search(line)
    ]
    assert found == []
