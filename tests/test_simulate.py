"""The reference simulator against a synapse-by-synapse reading of graph.py's equations."""

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from delaynir.compile.relay import expand_relays
from delaynir.errors import ShapeError, TargetError
from delaynir.ir.graph import INPUT, DelayGraph, Layer, Projection
from delaynir.reference.simulate import simulate


def naive(graph: DelayGraph, x: np.ndarray):
    """Step by step, synapse by synapse; returns {layer: (z, v)} arrays (T, B, n)."""
    T, B, _ = x.shape
    out = {INPUT: x}
    z = {L.name: np.zeros((T, B, L.size)) for L in graph.layers}
    v = {L.name: np.zeros((T, B, L.size)) for L in graph.layers}
    syn = {L.name: np.zeros((B, L.size)) for L in graph.layers}
    for t in range(T):
        for L in graph.layers:
            current = np.tile(L.bias, (B, 1)).astype(float)
            for P in L.projections:
                src = out[P.source] if P.source == INPUT else z[P.source]
                for i, j, d, w in zip(P.pre, P.post, P.delay, P.weight):
                    if t - d >= 0:
                        current[:, j] += w * P.scale[j] * src[t - d, :, i]
            prev_v = v[L.name][t - 1] if t else np.zeros((B, L.size))
            prev_z = z[L.name][t - 1] if t else np.zeros((B, L.size))
            if L.neuron == "relay":
                z[L.name][t] = v[L.name][t] = current
                continue
            if L.neuron == "li":
                v[L.name][t] = L.beta * prev_v + current
                continue
            if L.neuron == "cubalif":
                syn[L.name] = L.alpha * syn[L.name] + current
                current = syn[L.name]
            if L.reset == "hard":
                v[L.name][t] = L.beta * prev_v * (1 - prev_z) + current
            else:
                v[L.name][t] = L.beta * prev_v - L.threshold * prev_z + current
            z[L.name][t] = (v[L.name][t] > L.threshold).astype(float)
        out.update(z)
    return z, v


def random_projection(rng, source, n_pre, n_post, density, max_delay, min_delay=0, integer=False):
    mask = rng.random((n_post, n_pre)) < density
    post, pre = np.nonzero(mask)
    weight = rng.integers(-8, 9, len(pre)).astype(float) if integer else rng.normal(0, 1.0, len(pre))
    scale = rng.uniform(0.1, 0.3, n_post) if integer else np.ones(n_post)
    return Projection(source, pre, post, rng.integers(min_delay, max_delay + 1, len(pre)), weight, scale)


def random_graph(seed, *, recurrent=False, neuron="lif", reset="hard", max_delay=6, integer=False):
    rng = np.random.default_rng(seed)
    n_in, n_h, n_out = 5, 7, 3
    p1 = [random_projection(rng, INPUT, n_in, n_h, 0.6, max_delay, integer=integer)]
    if recurrent:
        p1.append(random_projection(rng, "h", n_h, n_h, 0.3, max_delay, min_delay=1, integer=integer))
    h = Layer(
        "h",
        n_h,
        neuron,
        rng.uniform(0.5, 0.95, n_h),
        rng.uniform(0.5, 1.5, n_h),
        rng.normal(0, 0.1, n_h),
        p1,
        reset=reset,
        alpha=rng.uniform(0.2, 0.8, n_h) if neuron == "cubalif" else None,
    )
    o = Layer(
        "o",
        n_out,
        "li",
        rng.uniform(0.5, 0.95, n_out),
        np.full(n_out, np.inf),
        np.zeros(n_out),
        [random_projection(rng, "h", n_h, n_out, 0.8, max_delay, integer=integer)],
    )
    return DelayGraph(dt=0.01, n_inputs=n_in, layers=[h, o])


@settings(max_examples=20, deadline=None)
@given(
    seed=st.integers(0, 2**16),
    recurrent=st.booleans(),
    neuron=st.sampled_from(["lif", "cubalif"]),
    reset=st.sampled_from(["hard", "subtract"]),
)
def test_simulator_follows_the_equations(seed, recurrent, neuron, reset):
    graph = random_graph(seed, recurrent=recurrent, neuron=neuron, reset=reset)
    x = (np.random.default_rng(seed + 1).random((25, 3, 5)) < 0.3) * np.random.default_rng(seed).integers(
        1, 3, (25, 3, 5)
    )
    result = simulate(graph, x, record=True)
    z, v = naive(graph, x.astype(float))
    for name in ("h", "o"):
        np.testing.assert_allclose(result.membranes[name].numpy(), v[name], rtol=1e-12, atol=1e-12)
    np.testing.assert_array_equal(result.spikes["h"].numpy(), z["h"])
    np.testing.assert_allclose(result.output.numpy(), v["o"], rtol=1e-12, atol=1e-12)
    expected_pred = torch.softmax(torch.from_numpy(v["o"]), -1).sum(0).argmax(1)
    assert torch.equal(result.predictions, expected_pred)


def test_relay_layer_passes_its_input_on():
    relay = Layer(
        "r",
        2,
        "relay",
        np.zeros(2),
        np.full(2, np.inf),
        np.zeros(2),
        [Projection(INPUT, [0, 1], [0, 1], [3, 0], [1.0, 1.0], np.ones(2))],
    )
    out = Layer(
        "o",
        1,
        "li",
        np.zeros(1),
        np.full(1, np.inf),
        np.zeros(1),
        [Projection("r", [0, 1], [0, 0], [0, 0], [1.0, 10.0], np.ones(1))],
    )
    x = np.zeros((6, 1, 2))
    x[0, 0, 0], x[1, 0, 1] = 2.0, 1.0
    res = simulate(DelayGraph(0.01, 2, [relay, out]), x, record=True)
    assert res.spikes["r"][:, 0, 0].tolist() == [0, 0, 0, 2.0, 0, 0]
    assert res.output[:, 0, 0].tolist() == [0, 10.0, 0, 2.0, 0, 0]


@settings(max_examples=15, deadline=None)
@given(seed=st.integers(0, 2**16), hop=st.integers(1, 5), recurrent=st.booleans())
def test_relay_expansion_reproduces_every_output_exactly(seed, hop, recurrent):
    graph = random_graph(seed, recurrent=recurrent, max_delay=14, integer=True)
    expanded, added = expand_relays(graph, hop, weight_step=2)
    assert expanded.max_delay <= hop
    assert added > 0 or graph.max_delay <= hop
    assert expanded.n_neurons == graph.n_neurons + added
    x = (np.random.default_rng(seed).random((30, 2, 5)) < 0.3).astype(float)
    a, b = simulate(graph, x, record=True), simulate(expanded, x, record=True)
    assert torch.equal(a.output, b.output)
    assert torch.equal(a.spikes["h"], b.spikes["h"])


def test_relays_need_a_delay_capable_target():
    with pytest.raises(TargetError, match="cannot realise synaptic delays"):
        expand_relays(random_graph(0), 0)


def test_input_shape_is_checked():
    with pytest.raises(ShapeError, match=r"\(T, B, 5\)"):
        simulate(random_graph(0), np.zeros((4, 2, 6)))


def test_whole_sequence_and_step_by_step_paths_agree_bit_for_bit():
    graph = random_graph(7, max_delay=5)
    stepwise = random_graph(7, max_delay=5)
    empty = np.zeros(0, dtype=np.int64)
    stepwise.layers[0].projections.append(Projection("h", empty, empty, empty, np.zeros(0), np.ones(7)))
    x = (np.random.default_rng(7).random((40, 3, 5)) < 0.3).astype(float)
    a, b = simulate(graph, x, record=True), simulate(stepwise, x, record=True)  # b: recurrent, so step by step
    for name in ("h", "o"):
        assert torch.equal(a.membranes[name], b.membranes[name])
    assert torch.equal(a.spikes["h"], b.spikes["h"])
