"""Loihi 2 through Lava: the netx writer (always) and the Lava executor (marker ``lava``).

The writer tests check keys, units, delays with lags and every refusal. The Lava tests run the
exported file in Intel Lava (its own environment, targets/loihi2/build_lava_env.sh; skipped without
it, failing under CI=true, where .ci/run builds it) and compare it, step for step, with the reference
simulator in the loihi2-fixed arithmetic and with Lava's fixed-point CUBA neuron as LAVA_NOTES (d)
writes it, on the DelayGraph (``fixed_point_reference``, an implementation independent of both).
"""

import h5py
import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from delaynir.errors import ConfigError, ExportError
from delaynir.export import executors
from delaynir.export.executors import EXECUTORS, ExecutorUnavailable, external, formats
from delaynir.ir.graph import INPUT, DelayGraph, InputSpec, Layer, Projection, in_units, layer_lags
from delaynir.reference.simulate import simulate
from delaynir.targets.loihi2 import NETX, netx
from delaynir.targets.loihi2.netx import export_netx, lava_weights

EVEN_GRID = np.arange(-256, 255, 2)  #: targets/loihi2/loihi2.toml: even integers in [-256, 254]
INT8_GRID = np.arange(-128, 128)


def layer(name, size, kind, projections, *, dv=0, di=None, theta=10, bias=0, scale=1.0):
    """A layer as compile makes one for loihi2: β = (4096 − dv)/4096, θ and b on the weight grid (k · scale)."""
    return Layer(
        name,
        size,
        kind,
        np.full(size, (4096 - dv) / 4096),
        np.full(size, np.inf) if kind == "li" else np.full(size, theta * scale),
        np.asarray(bias, dtype=np.float64) * scale * np.ones(size),
        projections,
        alpha=None if di is None else np.full(size, (4096 - di) / 4096),
    )


def dense(source, weight, delay, scale=1.0):
    """A projection holding every non-zero entry of ``weight`` (out, in), with ``delay`` (out, in)."""
    post, pre = np.nonzero(weight)
    return Projection(
        source,
        pre,
        post,
        np.asarray(delay)[post, pre],
        np.asarray(weight, dtype=float)[post, pre],
        np.full(np.shape(weight)[0], scale),
    )


def loihi2_graph(n_inputs, layers):
    return DelayGraph(
        dt=1e-3, n_inputs=n_inputs, layers=layers, target="loihi2", quantization={"arithmetic": "loihi2-fixed"}
    )


def chain(weights, delays, *, kinds=None, scales=None, **kw):
    """input → hidden layers → li readout, one dense projection each (the last weight matrix feeds the readout)."""
    kinds = kinds or ["lif"] * (len(weights) - 1) + ["li"]
    scales = scales or [1.0] * len(weights)
    layers, source = [], INPUT
    for k, (w, d) in enumerate(zip(weights, delays)):
        name = "output" if k == len(weights) - 1 else f"h{k}"
        layers.append(layer(name, w.shape[0], kinds[k], [dense(source, w, d, scales[k])], scale=scales[k], **kw))
        source = name
    return loihi2_graph(weights[0].shape[1], layers)


def small_chain(**kw):
    w1 = np.array([[3, -2, 0], [0, 5, -1]])
    w2 = np.array([[2, -3], [-1, 4]])
    return chain([w1, w2], [np.array([[0, 62, 0], [0, 1, 7]]), np.array([[2, 0], [5, 3]])], **kw)


# ----------------------------------------------------------------------------------------- the writer


def test_layer_lags_follow_feed_forward_sources_only():
    a = layer("a", 2, "lif", [dense(INPUT, np.eye(2), np.zeros((2, 2), int))])
    b = layer(
        "b", 2, "lif", [dense("a", np.eye(2), np.zeros((2, 2), int)), dense("b", np.eye(2), np.ones((2, 2), int))]
    )  # recurrent: does not count
    c = layer(
        "c", 2, "lif", [dense("b", np.eye(2), np.zeros((2, 2), int)), dense(INPUT, np.eye(2), np.zeros((2, 2), int))]
    )  # skip from the input
    graph = loihi2_graph(2, [a, b, c])
    assert layer_lags(graph) == {"a": 1, "b": 2, "c": 3}
    # the self-recurrent synapse gets d − 1, the skip d + 2, a chain synapse d
    assert netx.hardware_delay(np.array([1]), 2, 2).tolist() == [0]
    assert netx.hardware_delay(np.array([0]), 0, 3).tolist() == [2]
    assert netx.hardware_delay(np.array([5]), 1, 2).tolist() == [5]


def test_export_writes_the_netx_layout(tmp_path):
    graph = small_chain(dv=100, theta=7, bias=2, scales=[0.5, 0.25])
    path = export_netx(graph, tmp_path / "m.netx.h5")
    with h5py.File(path) as f:
        assert f["layer/0/type"][0] == b"input" and f["layer/0/shape"][()].tolist() == [3]
        assert "neuron" not in f["layer/0"]
        assert f["layer/1/type"][0] == b"dense" and f["layer/1/shape"][()].tolist() == [2]
        assert f["layer/1/weight"][()].tolist() == [[3, -2, 0], [0, 5, -1]]
        assert f["layer/1/delay"][()].tolist() == [[0, 62, 0], [0, 1, 7]]  # a chain: d_hw = d (absent: 0)
        assert f["layer/1/bias"][()].tolist() == [2, 2]  # b / s
        neuron = {k: f[f"layer/1/neuron/{k}"][()] for k in ("iDecay", "vDecay", "vThMant")}
        assert f["layer/1/neuron/type"][0] == b"CUBA" and neuron == {"iDecay": 4096, "vDecay": 100, "vThMant": 7}
        assert f["layer/2/neuron/vThMant"][()] == 2**17 - 1 and f["layer/2/delay"][()].tolist() == [[2, 0], [5, 3]]
        meta = f["delaynir"]
        assert meta.attrs["max_lag"] == 2 and meta.attrs["input_message_bits"] == 0
        assert [dict(meta[f"layers/{k}"].attrs) for k in (1, 2)] == [
            {"name": "h0", "kind": "lif", "lag": 1, "scale": 0.5},
            {"name": "output", "kind": "li", "lag": 2, "scale": 0.25},
        ]
    with pytest.raises(ExportError, match="already exists"):
        export_netx(graph, path)
    export_netx(graph, path, overwrite=True)


def test_cubalif_current_decay_is_idecay(tmp_path):
    graph = small_chain(kinds=["cubalif", "li"], di=1000)
    with h5py.File(export_netx(graph, tmp_path / "m.h5")) as f:
        assert f["layer/1/neuron/iDecay"][()] == 1000 and f["layer/2/neuron/iDecay"][()] == 4096


def refused(graph, match, tmp_path):
    with pytest.raises(ExportError, match=match):
        export_netx(graph, tmp_path / "refused.h5")
    assert not list(tmp_path.iterdir())  # nothing left behind


@pytest.mark.parametrize(
    "change, match",
    [
        (lambda g: g.quantization.pop("arithmetic"), "'float64' arithmetic"),
        (lambda g: g.layers[0].projections[0].delay.__setitem__(0, 63), r"hardware delays .*, 63\]"),
        (lambda g: g.layers[0].beta.__setitem__(0, 0.5), "beta values"),
        (lambda g: g.layers[0].beta.__setitem__(slice(None), 0.3), "beta values"),
        (lambda g: g.layers[0].threshold.__setitem__(0, 3.0), r"thresholds \[3, 10\]"),
        (lambda g: g.layers[0].threshold.__setitem__(slice(None), 2.5), "thresholds .* not integers"),
        (lambda g: g.layers[0].bias.__setitem__(0, 0.5), "biases .* not integers"),
        (lambda g: g.layers[0].projections[0].weight.__setitem__(0, 1.5), "weights that are not integers"),
        (lambda g: g.layers[0].projections[0].scale.__setitem__(0, 2.0), "per-neuron weight scales"),
        (lambda g: setattr(g.layers[0], "reset", "subtract"), "reset 'subtract'"),
        (lambda g: setattr(g.layers[0], "neuron", "relay"), "is a relay layer"),
        (lambda g: setattr(g.layers[1], "neuron", "lif"), "is a lif layer"),
    ],
)
def test_refuses_what_netx_cannot_carry(change, match, tmp_path):
    graph = small_chain()
    change(graph)
    refused(graph, match, tmp_path)


def with_other_projections():
    """small_chain with a self-recurrent projection into h0 (d 1, 5) and a skip input → output (d 0, 3)."""
    graph = small_chain()
    graph.layers[0].projections.append(dense("h0", np.array([[0, -4], [6, 0]]), np.array([[0, 5], [1, 0]])))
    graph.layers[1].projections.append(
        dense(INPUT, np.array([[2, 0, 0], [0, 0, -2]]), np.array([[0, 0, 0], [0, 0, 3]]))
    )
    return graph


def test_other_projections_are_written_beside_the_chain(tmp_path):
    """Recurrent and skip projections go in delaynir/layers/k/extra with their hardware delays; netx's keys
    hold the chain as before."""
    graph = with_other_projections()
    assert layer_lags(graph) == {"h0": 1, "output": 2}
    with h5py.File(export_netx(graph, tmp_path / "m.h5")) as f:
        assert f["layer/1/weight"][()].tolist() == [[3, -2, 0], [0, 5, -1]] and "extra" not in f["layer/1"]
        assert f["delaynir"].attrs["format_version"] == 2
        (rec,) = f["delaynir/layers/1/extra"].values()
        assert rec["source"][()] == 1 and rec["weight"][()].tolist() == [[0, -4], [6, 0]]
        assert rec["delay"][()].tolist() == [[0, 4], [0, 0]]  # d − 1: the layer's own lag cancels
        (skip,) = f["delaynir/layers/2/extra"].values()
        assert skip["source"][()] == 0 and skip["weight"][()].tolist() == [[2, 0, 0], [0, 0, -2]]
        assert skip["delay"][()].tolist() == [[1, 0, 0], [0, 0, 4]]  # d + lag(output) − lag(input) − 1


def test_refuses_other_projections_lava_cannot_run_and_double_synapses(tmp_path):
    graph = small_chain()
    graph.layers[1].projections = [dense(INPUT, np.array([[1, 0, -1], [0, 2, 0]]), np.zeros((2, 3), int))]
    refused(graph, r"'output' is fed by input; a netx file is a chain", tmp_path)
    graph = small_chain()  # output (lag 2) → h0 (lag 1) with d = 1 arrives a step too early in Lava
    graph.layers[0].projections.append(dense("output", np.array([[1, 0], [0, -1]]), np.ones((2, 2), int)))
    refused(graph, r"in \[-1, -1\] on its projection from 'output' \(recurrent\).*needs d >= 2", tmp_path)
    graph = with_other_projections()
    graph.layers[1].projections[1].scale[:] = 0.5
    refused(graph, r"weight scales \[0.5\] on its projection from 'input'", tmp_path)
    graph = with_other_projections()
    graph.layers[0].projections[1].weight[:] = [300, 2]
    refused(graph, r"excitatory weights up to 300 .* from 'h0' \(recurrent\)", tmp_path)
    graph = small_chain()
    proj = graph.layers[0].projections[0]
    graph.layers[0].projections[0] = Projection(
        INPUT, [*proj.pre, 0], [*proj.post, 0], [*proj.delay, 5], [*proj.weight, 1.0], proj.scale
    )
    refused(graph, "one .pre, post. pair from .input. with different delays", tmp_path)


@pytest.mark.parametrize(
    "weights, problem",
    [
        ([[400, 3, 0]], "excitatory weights up to 400"),
        ([[-255, -1, 0]], "one is 0"),
        ([[-5, -1, 0]], None),  # all ≤ 0 with a 0, yet exact: netx's 4 bits and Lava's truncation agree,
        ([[-128, -1, -3]], "minimum -128 is a power of two"),
        ([[-256, -4, -2]], "minimum -256 is a power of two"),
        ([[300, -3, 1]], "mixed-sign weights in [-3, 300]"),
        ([[0, 0, 0]], "every weight is 0"),
    ],
)
def test_lava_weights_names_the_patterns_lava_corrupts(weights, problem, tmp_path):
    if problem is None:
        assert lava_weights(np.array(weights))[2] is None
        return
    assert problem in lava_weights(np.array(weights))[2]
    refused(
        chain([np.array(weights)], [np.zeros((1, 3), int)]), "Lava would not compute these weights exactly", tmp_path
    )


@pytest.mark.parametrize("grid", [EVEN_GRID, INT8_GRID], ids=["even-256-254", "int8"])
def test_loihi2_grid_passes_exactly_when_signs_are_mixed(grid):
    rng = np.random.default_rng(0)
    for _ in range(300):
        w = rng.choice(grid, (rng.integers(1, 6), rng.integers(2, 9)))
        w.flat[0], w.flat[1] = rng.choice(grid[grid > 0]), rng.choice(grid[grid < 0])
        stored, exponent, problem = lava_weights(w)
        assert problem is None and np.array_equal(stored, w * 2**-exponent), w
    for extremes in ([[grid.min(), grid.max()]], [[grid.max(), -1 if grid is INT8_GRID else -2]]):
        assert lava_weights(np.array(extremes))[2] is None


def test_registry_names_lava_for_loihi2_fixed_graphs_only():
    lava = EXECUTORS["lava"]
    assert lava.format.file == "model.netx.h5" and lava.reproduces == executors.TARGET_ARITHMETIC
    assert "netx" in executors.export_formats()
    graph = small_chain()
    assert "lava" in external(graph) and NETX in formats(graph)
    graph.quantization.pop("arithmetic")
    assert "lava" not in external(graph) and NETX not in formats(graph)
    assert external(graph) == tuple(n for n in external() if n != "lava")


def test_verify_refuses_lava_for_a_float_graph():
    from delaynir.handoff.verify import verify

    graph = small_chain()
    graph.quantization.pop("arithmetic")
    with pytest.raises(ConfigError, match="'lava' runs only graphs in the loihi2-fixed arithmetic"):
        verify(graph, [], sims=["lava"])


def test_cli_exports_netx(tmp_path, capsys):
    from delaynir.cli import main
    from delaynir.ir.graph_io import save_graph

    save_graph(small_chain(), tmp_path / "g.h5")
    assert main(["export", str(tmp_path / "g.h5"), "--format", "netx", "-o", str(tmp_path / "m.netx.h5")]) == 0
    assert "NETX" in capsys.readouterr().out
    with h5py.File(tmp_path / "m.netx.h5") as f:
        assert f["delaynir"].attrs["arithmetic"] == "loihi2-fixed" and f["layer/2/type"][0] == b"dense"


def test_missing_lava_environment_says_how_to_build_it(tmp_path, monkeypatch):
    graph = small_chain()
    path = export_netx(graph, tmp_path / "m.h5")
    monkeypatch.setenv("DELAYNIR_LAVA_PYTHON", str(tmp_path / "nowhere" / "python"))
    with pytest.raises(ExecutorUnavailable, match="build_lava_env.sh --profile netx"):
        EXECUTORS["lava"].load(path)


def test_a_python_without_lava_is_named_by_the_variable_that_chose_it(tmp_path, monkeypatch):
    """#28: the error named the deleted temporary netx file and not the environment variable that chose the Python."""
    import sys

    path = export_netx(small_chain(), tmp_path / "m.h5")
    monkeypatch.setenv("DELAYNIR_LAVA_PYTHON", sys.executable)  # numpy, but no Lava
    model = EXECUTORS["lava"].load(path)
    with pytest.raises(ExecutorUnavailable) as refused:
        model.run(torch.zeros(4, 1, 3))
    message = str(refused.value)
    assert f"$DELAYNIR_LAVA_PYTHON={sys.executable} cannot import" in message and "No module named 'lava" in message
    assert "build_lava_env.sh --profile netx" in message and str(path) not in message


def test_a_loihi2_bundle_without_lava_is_written_with_lava_unavailable(tmp_path, monkeypatch):
    from delaynir.handoff.bundle import check_bundle, write_graph_bundle

    monkeypatch.setenv("DELAYNIR_LAVA_PYTHON", str(tmp_path / "nowhere" / "python"))
    x = (np.random.default_rng(0).random((20, 2, 3)) < 0.5).astype(float)
    manifest = write_graph_bundle(small_chain(theta=3, dv=100), tmp_path / "b", x)
    assert "model.netx.h5" in manifest.files and manifest.verification["lava"]["status"] == "unavailable"
    assert {r["status"] for s, r in manifest.verification.items() if s != "lava"} == {"exact"}
    assert "model.netx.h5" in (tmp_path / "b" / "README.md").read_text()
    report = check_bundle(tmp_path / "b")
    assert report.ok and any(n.startswith("lava: not run, not installed here") for n in report.notes)


def test_a_loihi2_graph_netx_cannot_carry_is_bundled_without_the_netx_file(tmp_path):
    from delaynir.handoff.bundle import check_bundle, write_graph_bundle
    from delaynir.handoff.verify import verify

    graph = small_chain(theta=3, dv=100)
    graph.layers[0].threshold[0] = 4.0  # per-neuron thresholds: one vThMant per netx layer
    x = (np.random.default_rng(0).random((20, 2, 3)) < 0.5).astype(float)
    manifest = write_graph_bundle(graph, tmp_path / "b", x)
    lava = manifest.verification["lava"]
    assert lava["status"] == "not exported" and "thresholds [3, 4]" in lava["error"]
    assert "model.netx.h5" not in manifest.files and not (tmp_path / "b" / "model.netx.h5").exists()
    report = check_bundle(tmp_path / "b")
    assert report.ok and any(n.startswith("lava: not run, its file was left out") for n in report.notes)
    assert "lava" not in verify(graph, [(torch.from_numpy(x), torch.zeros(2, dtype=torch.int64))])["simulators"]
    with pytest.raises(ExportError, match="thresholds"):
        verify(graph, [], sims=["lava"])


# --------------------------------------------------------------------------------------- the Lava runs


def fixed_point_reference(graph, x):
    """Lava's fixed-point CUBA (LAVA_NOTES (d)) on the DelayGraph with its zero-latency delays.

    Per layer, a[t] = Σ w · s[t − d] (integers) over its projections (from earlier layers, the input and
    itself: recurrent, d ≥ 1); u = wrap(trunc(u (4096 − δu) / 4096) + 64 a);
    v = clip(trunc(v (4096 − δv) / 4096) + u + 64 b); z = v > 64 θ, v ← 0 where z. Returns the spikes
    (T, B, n) and membranes v / 64 · s of every layer."""
    T, B, _ = x.shape
    outputs, spikes, membranes = {INPUT: np.asarray(x, dtype=np.int64)}, {}, {}
    half = 1 << 23

    def decay(value, delta):
        y = value * (4096 - delta)
        return np.sign(y) * (np.abs(y) >> 12)

    def synapses(proj):
        return zip(proj.pre, proj.post, proj.delay, proj.weight.astype(np.int64))

    for la in graph.layers:
        unit = la.projections[0].scale[0]
        a = np.zeros((T, B, la.size), np.int64)
        for proj in la.projections:
            if proj.source != la.name:
                for i, j, d, w in synapses(proj):
                    if d < T:
                        a[d:, :, j] += w * outputs[proj.source][: T - d, :, i]
        recurrent = [syn for proj in la.projections if proj.source == la.name for syn in synapses(proj)]
        du = 4096 if la.alpha is None else int(round(4096 * (1 - la.alpha[0])))
        dv = int(round(4096 * (1 - la.beta[0])))
        bias = in_units(la.bias, unit).astype(np.int64)
        theta = np.inf if la.neuron == "li" else in_units(la.threshold, unit)[0]
        u = np.zeros((B, la.size), np.int64)
        v = np.zeros((B, la.size), np.int64)
        s_all, v_all = np.zeros((T, B, la.size), np.int64), np.zeros((T, B, la.size), np.int64)
        for t in range(T):
            for i, j, d, w in recurrent:
                if t >= d:
                    a[t, :, j] += w * s_all[t - d, :, i]
            u = decay(u, du) + (a[t] << 6)
            u = np.where(u > half, u - 2 * half, u)
            u = np.where(u <= -half, u + 2 * half, u)
            v = np.clip(decay(v, dv) + u + (bias << 6), -(half - 1), half - 1)
            s = v > theta * 64
            v = np.where(s, 0, v)
            s_all[t], v_all[t] = s, v
        outputs[la.name] = s_all
        spikes[la.name] = s_all.astype(np.float64)
        membranes[la.name] = v_all / 64 * unit
    return spikes, membranes


def run_lava(graph, x, tmp_path):
    from delaynir.targets.loihi2 import executor as lava

    return lava.load(export_netx(graph, tmp_path / "model.netx.h5", overwrite=True)).run(x)


def assert_lava_is_reference(graph, x, tmp_path):
    """Lava's spikes and membranes at every step equal the reference simulator's (loihi2-fixed) and
    ``fixed_point_reference``'s. Lava's v is read after the reset (0 where the neuron spiked), the reference
    simulator's before it."""
    result = run_lava(graph, x, tmp_path)
    reference = simulate(graph, x, record=True)
    spikes, membranes = fixed_point_reference(graph, x)
    for la in graph.layers:
        assert torch.equal(result.spikes[la.name], reference.spikes[la.name]), la.name
        after_reset = torch.where(reference.spikes[la.name] > 0, 0.0, reference.membranes[la.name])
        assert torch.equal(result.membranes[la.name], after_reset), la.name
        assert np.array_equal(result.spikes[la.name].numpy(), spikes[la.name]), la.name
        assert np.array_equal(result.membranes[la.name].numpy(), membranes[la.name]), la.name
    assert torch.equal(result.output, reference.output) and torch.equal(result.predictions, reference.predictions)
    return result, spikes


def effective_weights(graph, tmp_path):
    """Lava's effective weights of a one-projection readout (β = 1): input j spikes alone at step j."""
    n_in = graph.n_inputs
    out = run_lava(graph, np.eye(n_in)[:, None, :], tmp_path).output[:, 0].numpy().T  # (n_out, T)
    return np.diff(np.concatenate([np.zeros((out.shape[0], 1)), out], 1), axis=1)


@pytest.mark.lava
def test_lava_effective_weights_are_what_lava_weights_predicts(need_lava, tmp_path, monkeypatch):
    """Accepted matrices come out exactly; each refused pattern comes out as ``lava_weights`` says (not w)."""
    rng = np.random.default_rng(1)
    accepted = [
        rng.choice(EVEN_GRID, (3, 8)),
        rng.choice(INT8_GRID, (3, 8)),
        np.array([[-256, 254, 2, -2, 0, 100, -100, 6]]),
        np.array([[-128, 127, 1, -1, 0, 5, -3, 64]]),
        np.array([[201, -255, 254, -256, 1, 7, 99, -3]]),
        np.array([[255, 1, 128, 0, 77, 254, 3, 200]]),
        np.array([[-100, -4, -20, -8, -76, -60, -12, -2]]),
        np.array([[-5, -1, 0, -3, 0, -4, -2, -5]]),
    ]
    for w in accepted[:2]:
        w[0, :2] = [8, -2]  # mixed signs
    corrupted = [
        np.array([[400, 3, 128, 0, 77, 254, 1, 200]]),
        np.array([[-255, -1, -128, 0, -77, -256, -3, -2]]),
        np.array([[-128, -1, -100, -5, -77, -64, -3, -2]]),
        np.array([[-64, -2, -4, -8, -6, -62, -10, -2]]),
    ]
    for w, exact in [(w, True) for w in accepted] + [(w, False) for w in corrupted]:
        stored, exponent, problem = lava_weights(w)
        assert (problem is None) == exact, (w, problem)
        monkeypatch.setattr(netx, "lava_weights", lambda m: (m, 0, None))  # write even what is refused
        measured = effective_weights(chain([w], [np.zeros(w.shape, int)], dv=0), tmp_path)
        monkeypatch.undo()
        assert np.array_equal(measured, w) == exact, (w, measured)
        if stored is not None:
            assert np.array_equal(measured, stored >> -exponent), (w, measured)


@pytest.mark.lava
def test_lava_runs_a_small_chain_like_the_reference_simulator(need_lava, tmp_path):
    graph = small_chain(dv=300, theta=3, bias=1, scales=[0.5, 0.125])
    x = (np.random.default_rng(2).random((80, 3, 3)) < 0.4).astype(float)
    result, spikes = assert_lava_is_reference(graph, x, tmp_path)
    assert spikes["h0"].sum() > 10 and result.output.abs().sum() > 0
    assert torch.equal(result.spikes["output"], torch.zeros_like(result.spikes["output"]))
    from delaynir.ir.neuron_kinds import predictions_of

    assert torch.equal(result.predictions, predictions_of(result.output, readout=True))


@pytest.mark.lava
def test_lava_takes_graded_codes_and_spike_counts(need_lava, tmp_path):
    """Graded input codes (negative too) and spike counts above 1 reach the first layer as payload · weight."""
    rng = np.random.default_rng(3)
    graph = small_chain(dv=50, theta=40)
    graph.input = InputSpec(
        encoding="graded", bits=8, input_scale=0.1, code_range=(-128, 127), value_range=(-12.8, 12.7)
    )
    with h5py.File(export_netx(graph, tmp_path / "graded.h5")) as f:
        assert f["delaynir"].attrs["input_message_bits"] == 8
    assert_lava_is_reference(graph, rng.integers(-128, 128, (30, 2, 3)).astype(float), tmp_path)
    graph.input = InputSpec()
    assert_lava_is_reference(graph, rng.integers(0, 4, (30, 2, 3)).astype(float), tmp_path)


@st.composite
def lava_graphs(draw):
    """Chains of 1–2 lif/cubalif layers and an li readout within Loihi 2's limits, some hidden layers
    recurrent (delays 1–63) and the readout sometimes fed from the input too, and their input."""
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    n_hidden = draw(st.integers(1, 2))
    grid = draw(st.sampled_from([EVEN_GRID, INT8_GRID]))
    sizes = [draw(st.integers(1, 4))] + [draw(st.integers(1, 4)) for _ in range(n_hidden)] + [draw(st.integers(1, 3))]

    def weights(n_out, n_in):
        w = rng.choice(grid, (n_out, n_in)) * (rng.random((n_out, n_in)) < 0.8)
        w.flat[rng.integers(w.size)] = rng.choice(grid[grid > 0])
        if w.size > 1:  # mixed signs: an all-positive or all-negative matrix is a separate case
            w.flat[rng.integers(w.size)] = rng.choice(grid[grid < 0])
        return w

    layers, source = [], INPUT
    for k in range(n_hidden + 1):
        n_in, n_out = sizes[k], sizes[k + 1]
        scale = float(draw(st.sampled_from([1.0, 0.5, 0.01, 3.0])))
        kind = "li" if k == n_hidden else draw(st.sampled_from(["lif", "cubalif"]))
        name = "output" if kind == "li" else f"h{k}"
        projections = [dense(source, weights(n_out, n_in), rng.choice([0, 62, *range(63)], (n_out, n_in)), scale)]
        if kind != "li" and draw(st.booleans()):
            projections.append(
                dense(name, weights(n_out, n_out), rng.choice([1, 63, *range(1, 64)], (n_out, n_out)), scale)
            )
        if kind == "li" and n_hidden == 2 and draw(st.booleans()):  # lag(output) = 3: input delays up to 60
            projections.append(dense(INPUT, weights(n_out, sizes[0]), rng.integers(0, 61, (n_out, sizes[0])), scale))
        dv = int(draw(st.sampled_from([0, 1, 4096, int(rng.integers(0, 4097))])))
        di = int(rng.integers(0, 4097)) if kind == "cubalif" else None
        layers.append(
            layer(
                name,
                n_out,
                kind,
                projections,
                dv=dv,
                di=di,
                theta=int(rng.integers(0, 200)),
                bias=rng.integers(-20, 21, n_out),
                scale=scale,
            )
        )
        source = name
    graph = loihi2_graph(sizes[0], layers)
    steps = draw(st.integers(1, 80))
    x = (rng.random((steps, draw(st.integers(1, 2)), sizes[0])) < 0.1 + 0.8 * rng.random()).astype(float)
    return graph, x


@pytest.mark.lava
def test_lava_runs_recurrent_and_skip_projections_like_the_reference_simulator(need_lava, tmp_path):
    """The DelayDense synapses the runner adds for delaynir/layers/k/extra compute what the graph says."""
    graph = with_other_projections()
    x = (np.random.default_rng(4).random((60, 2, 3)) < 0.4).astype(float)
    plain, _ = assert_lava_is_reference(small_chain(), x, tmp_path)
    result, spikes = assert_lava_is_reference(graph, x, tmp_path)
    assert not torch.equal(result.spikes["h0"], plain.spikes["h0"])  # the recurrent synapses changed h0's spikes
    assert spikes["h0"].sum() > 5


@pytest.mark.lava
@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(lava_graphs())
def test_lava_equals_the_reference_simulator_on_random_graphs(need_lava, tmp_path, case):
    graph, x = case
    try:
        netx.netx_layers(graph)
    except ExportError:  # the rare matrix that is all ≥ 0 with a weight 256, or all ≤ 0
        assume(False)
    assert_lava_is_reference(graph, x, tmp_path)


@pytest.mark.lava
def test_a_trained_model_bundled_for_loihi2_runs_in_lava_exactly(need_lava, small_run, tmp_path):
    """compile → bundle (exports model.netx.h5, Lava reproduces the test vectors) → bundle --check."""
    import json

    from delaynir.cli import main
    from delaynir.handoff.bundle import check_bundle

    out = tmp_path / "bundle"
    assert main(["-q", "bundle", str(small_run), "--target", "loihi2", "--out", str(out), "--samples", "4"]) == 0
    manifest = json.loads((out / "manifest.json").read_text())
    assert "model.netx.h5" in manifest["files"]
    lava = manifest["verification"]["lava"]
    assert lava["status"] == "exact" and lava["reproduces"] == executors.TARGET_ARITHMETIC
    report = check_bundle(out)
    assert report.ok and report.simulators["lava"]["status"] == "exact", report.problems
