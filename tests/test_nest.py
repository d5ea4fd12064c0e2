"""The spinnaker target's PyNN network file and NEST: exported graphs run in NEST spike for spike as the reference.

Semantic details are pinned with spike trains worked out by hand (threshold tie, reset step, bias, the per-layer
lag, recurrence); random graphs (feed-forward, skip and recurrent, integer and float weights, delays up to the
spinnaker profile's maximum) are compared with the reference simulator at every step. NEST runs in its own
environment (targets/spinnaker/build_nest_env.sh); those tests skip without it, and fail under CI=true.
"""

import json
import math
import sys

import h5py
import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from delaynir.cli import main
from delaynir.common.h5 import DIGEST_ATTR
from delaynir.errors import ExportError
from delaynir.export.executors import EXECUTORS, ExecutorUnavailable
from delaynir.hardware.profile import load_target
from delaynir.ir.graph import INPUT, DelayGraph, InputSpec, Layer, Projection
from delaynir.ir.graph_io import save_graph
from delaynir.reference.simulate import simulate
from delaynir.targets.spinnaker import nest_executor
from delaynir.targets.spinnaker.pynn_export import export_pynn, inexact_decays, tau_m
from delaynir.targets.spinnaker.run_pynn import read_network

MAX_DELAY = int(load_target("spinnaker").max_delay)


def dense(source: str, weight: np.ndarray, delay: np.ndarray, scale: float = 1.0) -> Projection:
    """A projection of every nonzero entry of weight (post, pre) with its delay."""
    post, pre = np.nonzero(weight)
    n_post = weight.shape[0]
    return Projection(source, pre, post, delay[post, pre], weight[post, pre], np.full(n_post, scale))


def lif(name, projections, *, size=1, beta=0.5, theta=1.0, bias=0.0, reset="hard", neuron="lif") -> Layer:
    return Layer(
        name, size, neuron, np.full(size, beta), np.full(size, theta), np.full(size, bias), projections, reset=reset
    )


def readout(name, projections, size=1, beta=0.5) -> Layer:
    return Layer(name, size, "li", np.full(size, beta), np.full(size, np.inf), np.zeros(size), projections)


def one(w: float, d: int) -> tuple[np.ndarray, np.ndarray]:
    return np.array([[w]]), np.array([[d]])


def run_nest(graph: DelayGraph, x: np.ndarray, tmp_path):
    return nest_executor.load(export_pynn(graph, tmp_path / "model.pynn.h5", overwrite=True)).run(x)


def spikes_at(result, layer: str, sample: int = 0, neuron: int = 0) -> list[int]:
    return torch.nonzero(result.spikes[layer][:, sample, neuron]).flatten().tolist()


def pulses(steps: list[int], T: int = 20) -> np.ndarray:
    x = np.zeros((T, 1, 1))
    x[steps, 0, 0] = 1
    return x


# ----------------------------------------------------------------------------- semantics, worked out by hand


@pytest.mark.usefixtures("need_nest")
def test_a_membrane_exactly_on_its_threshold_does_not_fire_and_the_reset_is_hard(tmp_path):
    """β = 0.5, θ = 1, weight 1: v[0] = 1 (= θ: no spike, the comparison is strict), v[1] = 0.5 + 1 (spike),
    v[2] = 0 + 1 after the hard reset (= θ again: no spike; a neuron without reset would fire at 1.75)."""
    graph = DelayGraph(0.001, 1, [lif("a", [dense(INPUT, *one(1.0, 0))])])
    result = run_nest(graph, pulses([0, 1, 2]), tmp_path)
    assert spikes_at(result, "a") == [1]
    assert spikes_at(simulate(graph, pulses([0, 1, 2]), record=True), "a") == [1]


@pytest.mark.usefixtures("need_nest")
def test_a_bias_acts_from_step_zero_of_every_layer(tmp_path):
    """No input, b = 0.3, β = 0.5, θ = 0.5: v = 0.3, 0.45, 0.525 (spike), then from 0 again: spikes at 2, 5, 8, …
    in the first layer and, with the same bias one layer deeper (lag 2), at the same steps there."""
    graph = DelayGraph(
        0.001,
        1,
        [
            lif("a", [dense(INPUT, *one(1.0, 0))], theta=0.5, bias=0.3),
            lif("b", [dense("a", *one(0.0001, 0))], theta=0.5, bias=0.3),
        ],
    )
    result = run_nest(graph, np.zeros((12, 2, 1)), tmp_path)
    for layer, sample in [("a", 0), ("a", 1), ("b", 0), ("b", 1)]:
        assert spikes_at(result, layer, sample) == [2, 5, 8, 11]


@pytest.mark.usefixtures("need_nest")
def test_delays_and_the_per_layer_lag_give_the_graph_s_own_steps(tmp_path):
    """An input spike at step 1 over delay 3 fires a at step 4; a over delay 4 fires b at step 8; b over delay 0
    into the readout: v[8] = 1, v[9] = β; a delay of 0 from the input straight into b (a skip, lag 2) at step 1."""
    graph = DelayGraph(
        0.001,
        1,
        [
            lif("a", [dense(INPUT, *one(2.0, 3))]),
            lif("b", [dense("a", *one(2.0, 4)), dense(INPUT, *one(0.5, 0))], theta=0.7),
            readout("out", [dense("b", *one(1.0, 0))], beta=0.25),
        ],
    )
    result = run_nest(graph, pulses([1], T=12), tmp_path)
    assert spikes_at(result, "a") == [4]
    assert spikes_at(result, "b") == [8]  # the skip's 0.5 at step 1 stays below θ = 0.7
    v = result.membranes["out"][:, 0, 0].tolist()
    assert v[7] == 0 and v[8] == 1.0 and v[9] == 0.25 and v[10] == 0.0625


@pytest.mark.usefixtures("need_nest")
def test_recurrent_delays_in_a_layer_and_from_a_deeper_layer(tmp_path):
    """a's self-connection (delay 5, weight 2) re-fires a spike every 5 steps; b (one layer deeper) fires one
    step after a and feeds a back over delay 2, which re-fires a 2 steps later too."""
    loop = DelayGraph(0.001, 1, [lif("a", [dense(INPUT, *one(2.0, 0)), dense("a", *one(2.0, 5))])])
    assert spikes_at(run_nest(loop, pulses([0]), tmp_path), "a") == [0, 5, 10, 15]
    back = DelayGraph(
        0.001,
        1,
        [
            lif("a", [dense(INPUT, *one(2.0, 0)), dense("b", *one(2.0, 2))]),
            lif("b", [dense("a", *one(2.0, 1))], beta=0.0),
        ],
    )
    result = run_nest(back, pulses([0], T=10), tmp_path)
    assert spikes_at(result, "a") == [0, 3, 6, 9] and spikes_at(result, "b") == [1, 4, 7]
    assert torch.equal(result.spikes["a"], simulate(back, pulses([0], T=10), record=True).spikes["a"])


@pytest.mark.usefixtures("need_nest")
def test_samples_of_a_batch_do_not_leak_into_each_other(tmp_path):
    """Long delays and a recurrent loop still busy at the end of a sample: every sample of a batch gives what it
    gives alone."""
    graph = DelayGraph(
        0.001, 1, [lif("a", [dense(INPUT, *one(2.0, MAX_DELAY)), dense("a", *one(2.0, 3))]), readout("o", [])]
    )
    graph.layers[1].projections.append(dense("a", *one(1.0, 1)))
    x = np.zeros((MAX_DELAY + 6, 3, 1))
    x[[0, MAX_DELAY + 4], 0, 0] = 1
    x[2, 2, 0] = 1
    together = run_nest(graph, x, tmp_path)
    for b in range(3):
        alone = run_nest(graph, x[:, b : b + 1], tmp_path)
        assert torch.equal(together.spikes["a"][:, b], alone.spikes["a"][:, 0])
        assert torch.equal(together.membranes["o"][:, b], alone.membranes["o"][:, 0])
    assert spikes_at(together, "a", 0) == [MAX_DELAY, MAX_DELAY + 3]


# ----------------------------------------------------------------------------- random graphs


@st.composite
def nest_graphs(draw):
    """1–2 lif layers and (mostly) an li readout: skip projections from the input, self-recurrence and feedback
    from a deeper layer; integer weights on a scale (compiled graphs, threshold ties common) or float weights;
    delays from 0 (recurrent: the least PyNN can carry) up to the profile's maximum; and their input."""
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    integer = draw(st.booleans())
    n_hidden = draw(st.integers(1, 2))
    sizes = [draw(st.integers(1, 5)) for _ in range(n_hidden + 2)]
    max_delay = draw(st.sampled_from([3, 12, MAX_DELAY]))

    def weights(n_out, n_in):
        w = rng.integers(-4, 9, (n_out, n_in)).astype(float) if integer else rng.normal(0.3, 0.6, (n_out, n_in))
        return w * (rng.random((n_out, n_in)) < 0.7)

    def delays(n_out, n_in, least=0):
        return rng.integers(least, max_delay + 1, (n_out, n_in))

    layers, source = [], INPUT
    for k in range(n_hidden):
        n_in, n = sizes[k], sizes[k + 1]
        scale = float(draw(st.sampled_from([1.0, 0.25, 0.01]))) if integer else 1.0
        projections = [dense(source, weights(n, n_in), delays(n, n_in), scale)]
        if draw(st.booleans()):
            projections.append(dense(f"h{k}", weights(n, n), delays(n, n, least=1), scale))
        if k == 1 and draw(st.booleans()):
            projections.append(dense(INPUT, weights(n, sizes[0]), delays(n, sizes[0]), scale))
        theta = rng.integers(1, 6, n) * scale if integer else rng.uniform(0.3, 1.5, n)
        bias = rng.integers(-1, 2, n) * scale if integer else rng.normal(0, 0.1, n)
        beta = rng.choice([0.5, 0.75, 0.9, 1 - 1 / 10.05, 0.96, 1.0, 0.0], n)
        layers.append(Layer(f"h{k}", n, "lif", beta, theta, bias, projections))
        source = f"h{k}"
    if n_hidden == 2 and draw(st.booleans()):  # feedback from h1 (lag 2) into h0 (lag 1): delay ≥ 2
        n0, n1 = sizes[1], sizes[2]
        scale = float(layers[0].projections[0].scale[0])
        layers[0].projections.append(dense("h1", weights(n0, n1), delays(n0, n1, least=2), scale))
    if draw(st.booleans()) or n_hidden == 1:
        n = sizes[-1]
        layers.append(readout("out", [dense(source, weights(n, sizes[n_hidden]), delays(n, sizes[n_hidden]))], n))
    steps = draw(st.integers(1, 60))
    x = (rng.random((steps, draw(st.integers(1, 3)), sizes[0])) < rng.uniform(0.05, 0.6)).astype(float)
    return DelayGraph(0.001, sizes[0], layers), x


@pytest.mark.usefixtures("need_nest")
@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(case=nest_graphs())
def test_nest_runs_random_graphs_spike_for_spike_as_the_reference(case, tmp_path):
    graph, x = case
    ours = simulate(graph, x, record=True)
    theirs = run_nest(graph, x, tmp_path)
    for layer in graph.layers:
        if layer.kind.spiking:
            assert torch.equal(theirs.spikes[layer.name], ours.spikes[layer.name]), layer.name
        else:
            torch.testing.assert_close(theirs.membranes[layer.name], ours.membranes[layer.name], rtol=0, atol=1e-12)
    assert torch.equal(theirs.predictions, ours.predictions)


# ----------------------------------------------------------------------------- what the file refuses


def test_decays_are_exact_through_tau_m_where_a_float64_tau_exists():
    h = 1.0
    good = np.array([0.0, 0.5, 0.75, 0.9, 1 - 1 / 10.05, 0.99, 1.0])
    assert not inexact_decays(good, tau_m(good, h), h).any()
    assert [math.exp(-h / t) for t in tau_m(good, h)] == good.tolist()
    assert inexact_decays(np.array([1 - 4095 / 4096]), tau_m(np.array([1 - 4095 / 4096]), h), h).all()


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda g: setattr(g.layers[0], "reset", "subtract"), "resets by subtraction"),
        (lambda g: setattr(g.layers[0], "neuron", "cubalif") or setattr(g.layers[0], "alpha", np.ones(1)), "cubalif"),
        (lambda g: setattr(g, "input", InputSpec(encoding="graded")), "graded"),
        (lambda g: setattr(g.layers[0], "beta", np.array([1 - 4095 / 4096])), "exp(−h/τ_m)"),
        (lambda g: setattr(g.layers[0], "threshold", np.array([-1.0])), "negative thresholds"),
        (lambda g: setattr(g, "dt", 1.5e-7), "whole number of microseconds"),
        (lambda g: g.layers[0].projections.append(dense("b", *one(1.0, 1))), "shorter than the 2 steps"),
    ],
)
def test_what_pynn_cannot_carry_exactly_is_refused_before_anything_is_written(tmp_path, change, message):
    graph = DelayGraph(0.001, 1, [lif("a", [dense(INPUT, *one(2.0, 0))]), lif("b", [dense("a", *one(2.0, 0))])])
    change(graph)
    with pytest.raises(ExportError, match="cannot export to PyNN") as refused:
        export_pynn(graph, tmp_path / "m.pynn.h5")
    assert message in str(refused.value)
    assert list(tmp_path.iterdir()) == []


def _network_file(tmp_path) -> str:
    graph = DelayGraph(0.001, 2, [lif("a", [dense(INPUT, np.array([[1.0, 2.0]]), np.array([[0, 3]]))])])
    return str(export_pynn(graph, tmp_path / "m.pynn.h5"))


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (lambda f: f.attrs.__setitem__("format", "other"), "not a PyNN network file"),
        (lambda f: f.attrs.__setitem__("format_version", 99), "format version 99"),
        (lambda f: f["projections/0/weight"].__setitem__(0, np.nan), "'weight' holds 1 NaN or inf"),
        (lambda f: f["projections/0/pre"].__setitem__(0, 7), "outside"),
        (lambda f: f["projections/0/delay"].__setitem__(0, 0), "at least 1 timestep"),
        (lambda f: f.__delitem__("populations/0/tau_m"), "no dataset 'tau_m'"),
        (lambda f: f["populations/0"].attrs.__setitem__("kind", "izhikevich"), "kind 'izhikevich'"),
        (lambda f: f["populations/0/tau_m"].__setitem__(0, -1.0), "tau_m and unit must be positive"),
        (lambda f: f["projections/0"].attrs.__setitem__("source", "nowhere"), "must name populations"),
    ],
)
def test_a_damaged_network_file_is_refused_naming_the_file_and_the_fault(tmp_path, damage, message):
    path = _network_file(tmp_path)
    with h5py.File(path, "r+") as f:
        damage(f)
    with pytest.raises(ExportError, match="contents changed after delaynir wrote it"):
        nest_executor.load(path)  # the content digest sees any change first
    with h5py.File(path, "r+") as f:
        del f.attrs[DIGEST_ATTR]  # a file made elsewhere carries none: the reader's own checks
    with pytest.raises(ExportError, match="export it again") as refused:
        nest_executor.load(path)
    assert path in str(refused.value) and message in str(refused.value)


def test_the_network_file_holds_the_graph_in_the_units_and_lags_the_reference_computes_in(tmp_path):
    """A compiled layer (integer weights on a scale) is written in units of the scale: its integer weights, θ / s
    and b / s, unit s, the readout too; a layer whose projections differ in scale in real units; delays with the
    lags added."""
    s = 0.25
    graph = DelayGraph(
        0.001,
        2,
        [
            lif("a", [dense(INPUT, np.array([[3.0, -2.0]]), np.array([[0, 4]]), s)], theta=5 * s, bias=-1 * s),
            readout("o", [dense("a", *one(3.0, 2), s)]),
        ],
    )
    network = read_network(export_pynn(graph, tmp_path / "m.pynn.h5"))
    a, o = network.populations
    assert (a.lag, o.lag) == (1, 2) and a.threshold.tolist() == [5.0] and a.bias.tolist() == [-1.0]
    assert a.unit.tolist() == [s] and o.unit.tolist() == [s] and np.isinf(o.threshold).all()
    into_a, into_o = network.projections
    assert into_a.weight.tolist() == [3.0, -2.0] and into_a.delay.tolist() == [1, 5]
    assert into_o.weight.tolist() == [3.0] and into_o.delay.tolist() == [3]
    graph.layers[1].projections.append(dense(INPUT, np.array([[1.0, 0.0]]), np.array([[0, 0]]), 0.5))
    mixed = read_network(export_pynn(graph, tmp_path / "mixed.pynn.h5")).populations[1]
    assert mixed.unit.tolist() == [1.0] and read_network(tmp_path / "mixed.pynn.h5").projections[1].weight[0] == 3 * s


# ----------------------------------------------------------------------------- commands and environment


def test_export_writes_the_pynn_script_beside_the_file_and_keeps_a_different_one(tmp_path, capsys):
    graph = DelayGraph(0.001, 2, [lif("a", [dense(INPUT, np.array([[1.0, 2.0]]), np.array([[0, 3]]))])])
    g = save_graph(graph, tmp_path / "g.h5")
    out = tmp_path / "out"
    assert main(["-q", "export", str(g), "--format", "pynn", "--out", str(out / "m.pynn.h5"), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["companions"] == [str(out / "run_pynn.py")]
    script = (out / "run_pynn.py").read_text()
    assert "IF_curr_delta" in script and "import delaynir" not in script
    assert main(["-q", "export", str(g), "--format", "pynn", "--out", str(out / "second.pynn.h5")]) == 0  # same
    (out / "run_pynn.py").write_text("# mine\n")
    assert main(["-q", "export", str(g), "--format", "pynn", "--out", str(out / "third.pynn.h5")]) == 2
    assert (out / "run_pynn.py").read_text() == "# mine\n" and not (out / "third.pynn.h5").exists()


def test_a_missing_or_wrong_nest_environment_is_named_with_how_to_build_it(tmp_path, monkeypatch):
    path = _network_file(tmp_path)
    monkeypatch.setenv("DELAYNIR_NEST_PYTHON", str(tmp_path / "nowhere" / "python"))
    with pytest.raises(ExecutorUnavailable, match="DELAYNIR_NEST_PYTHON") as missing:
        nest_executor.load(path)
    assert "build_nest_env.sh" in str(missing.value)
    monkeypatch.setenv("DELAYNIR_NEST_PYTHON", sys.executable)  # numpy and h5py, but no NEST
    with pytest.raises(ExecutorUnavailable, match="cannot import what NEST needs"):
        EXECUTORS["nest"].load(path).run(np.zeros((3, 1, 2)))
