"""NIR export/import and running the exported file in norse and snnTorch against the reference."""

import json

import nir
import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from delaynir.cli import main
from delaynir.converters import norse as norse_conv
from delaynir.converters import snntorch as snntorch_conv
from delaynir.data import SynthConfig, generate_synthetic
from delaynir.errors import ExportError, NIRImportError
from delaynir.export.nir_io import export_nir, from_nir, to_nir
from delaynir.ir.graph import INPUT, DelayGraph, InputSpec, Layer, Projection
from delaynir.ir.graph_io import load_graph, save_graph
from delaynir.numerics.number_formats import IntegerState
from delaynir.reference.simulate import simulate


def random_graph(seed, *, recurrent, neuron, relay, max_delay, reset="hard"):
    """Input → [relay] → hidden (lif/cubalif, hard or subtract reset, optional recurrence) → li readout; integer
    weights, per-neuron scales."""
    rng = np.random.default_rng(seed)
    n_in, n_h, n_out = 4, 6, 3

    def proj(source, n_pre, n_post, density, lo=0):
        post, pre = np.nonzero(rng.random((n_post, n_pre)) < density)
        weight = rng.integers(1, 9, len(pre)) * rng.choice([-1.0, 1.0], len(pre))
        return Projection(
            source,
            pre,
            post,
            rng.integers(lo, max(max_delay, lo) + 1, len(pre)),
            weight,
            rng.uniform(0.05, 0.3, n_post),
        )

    layers = []
    source = INPUT
    if relay:
        layers.append(
            Layer(
                "relay.1",
                n_in,
                "relay",
                np.zeros(n_in),
                np.full(n_in, np.inf),
                np.zeros(n_in),
                [
                    Projection(
                        INPUT,
                        np.arange(n_in),
                        np.arange(n_in),
                        rng.integers(1, 3, n_in),
                        np.full(n_in, 2.0),
                        np.full(n_in, 0.5),
                    )
                ],
            )
        )
        source = "relay.1"
    projections = [proj(source, n_in, n_h, 0.7)]
    if recurrent:
        projections.append(proj("h", n_h, n_h, 0.3, lo=1))
    layers.append(
        Layer(
            "h",
            n_h,
            neuron,
            rng.uniform(0.5, 0.95, n_h),
            rng.uniform(0.3, 1.2, n_h),
            rng.normal(0, 0.05, n_h),
            projections,
            reset=reset,
            alpha=rng.uniform(0.2, 0.8, n_h) if neuron == "cubalif" else None,
        )
    )
    layers.append(
        Layer(
            "output",
            n_out,
            "li",
            rng.uniform(0.5, 0.95, n_out),
            np.full(n_out, np.inf),
            np.zeros(n_out),
            [proj("h", n_h, n_out, 0.8)],
        )
    )
    return DelayGraph(
        dt=0.001,
        n_inputs=n_in,
        layers=layers,
        target="int8",
        input={"pool": 1},
        quantization={"weight_bits": 8},
        provenance={"seed": seed},
    )


graphs = st.builds(
    random_graph,
    seed=st.integers(0, 2**16),
    recurrent=st.booleans(),
    neuron=st.sampled_from(["lif", "cubalif"]),
    relay=st.booleans(),
    max_delay=st.integers(0, 7),
    reset=st.sampled_from(["hard", "subtract"]),
)


def _same_graph(a: DelayGraph, b: DelayGraph):
    assert (a.dt, a.n_inputs, a.target, a.input, a.quantization, a.provenance) == (
        b.dt,
        b.n_inputs,
        b.target,
        b.input,
        b.quantization,
        b.provenance,
    )
    for la, lb in zip(a.layers, b.layers, strict=True):
        assert (la.name, la.size, la.neuron, la.reset) == (lb.name, lb.size, lb.neuron, lb.reset)
        for f in ("beta", "threshold", "bias"):
            assert np.array_equal(getattr(la, f), getattr(lb, f)), (la.name, f)
        assert (la.alpha is None) == (lb.alpha is None) and (la.alpha is None or np.array_equal(la.alpha, lb.alpha))
        for pa, pb in zip(la.projections, lb.projections, strict=True):
            order = np.lexsort((pa.delay, pa.pre, pa.post))
            assert pa.source == pb.source and np.array_equal(pa.scale, pb.scale)
            for f in ("pre", "post", "delay", "weight"):
                assert np.array_equal(getattr(pa, f)[order], getattr(pb, f)), (la.name, f)


@settings(max_examples=20, deadline=None)
@given(graph=graphs)
def test_delaygraph_nir_delaygraph_is_identical(graph, tmp_path_factory):
    path = export_nir(graph, tmp_path_factory.mktemp("nir") / "g.nir")
    checked = nir.read(path, type_check=True)
    checked.validate_structure()
    _same_graph(graph, from_nir(path))


@settings(max_examples=8, deadline=None)
@given(graph=graphs, seed=st.integers(0, 100))
def test_norse_and_snntorch_reproduce_the_reference(graph, seed, tmp_path_factory):
    path = export_nir(graph, tmp_path_factory.mktemp("nir") / "g.nir")
    x = (np.random.default_rng(seed).random((25, 3, 4)) < 0.35) * np.random.default_rng(seed).integers(1, 3, (25, 3, 4))
    ref = simulate(graph, x, record=True)
    for converter in (norse_conv, snntorch_conv):
        out = converter.load(path).run(x)
        for layer in ("h", "relay.1"):
            if layer in ref.spikes:
                assert torch.equal(out.spikes[layer], ref.spikes[layer]), (converter.__name__, layer)
        torch.testing.assert_close(out.output, ref.output, rtol=1e-12, atol=1e-12)
        assert torch.equal(out.predictions, ref.predictions)


@pytest.mark.parametrize("reset", ["hard", "subtract"])
def test_a_quantised_layer_is_written_in_units_of_its_scale_with_integers_in_the_spiking_path(reset):
    """Thresholds and biases on the weight grid become the integers θ/s and b/s in the file; the Affine is
    the identity (the scale is kept out of the spiking path, in the metadata); the layer imports back."""
    graph = random_graph(11, recurrent=True, neuron="lif", relay=False, max_delay=3, reset=reset)
    h = graph.layer("h")
    h.projections[1].scale = h.projections[0].scale.copy()  # one scale for the layer: units of it
    s = h.projections[0].scale
    k, m = np.arange(5, 5 + h.size, dtype=float), -np.arange(h.size, dtype=float)
    h.threshold, h.bias = IntegerState().quantize(s * k, s), IntegerState().quantize(s * m, s)
    ngraph = to_nir(graph)
    affine = ngraph.nodes["layer_h.scale0"]
    assert np.array_equal(affine.weight, np.eye(h.size)) and np.array_equal(affine.bias, m)
    for name in ("layer_h.p0.weight", "layer_h.p1.weight"):
        weight = np.asarray(ngraph.nodes[name].weight)
        assert np.array_equal(weight, np.rint(weight)), name
    if reset == "hard":
        assert isinstance(ngraph.nodes["layer_h"], nir.LIF)
        assert np.array_equal(ngraph.nodes["layer_h"].v_threshold, k)
    else:  # v = β v − θ z[t−1] + I: an LI membrane, a Threshold (the layer's output), a reset Linear fed back
        assert isinstance(ngraph.nodes["layer_h"], nir.LI)
        assert np.array_equal(ngraph.nodes["layer_h.spike"].threshold, k)
        assert np.array_equal(ngraph.nodes["layer_h.reset"].weight, np.diag(-k))
        assert {("layer_h", "layer_h.spike"), ("layer_h.spike", "layer_h.reset"), ("layer_h.reset", "layer_h")} <= set(
            ngraph.edges
        )
        assert {
            src for src, dst in ngraph.edges if dst.startswith("layer_output.p0") and not src.startswith("layer_output")
        } == {"layer_h.spike"}  # the layer's output is its Threshold
    assert np.array_equal(ngraph.nodes["layer_h"].metadata["delaynir.unit"], s)
    _same_graph(graph, from_nir(ngraph))
    x = (np.random.default_rng(1).random((30, 2, 4)) < 0.4) * 2.0
    ref = simulate(graph, x, record=True)
    for converter in (norse_conv, snntorch_conv):
        out = converter.load(ngraph).run(x)
        assert torch.equal(out.spikes["h"], ref.spikes["h"]), converter.__name__
        quiet = ref.spikes["h"] == 0  # (norse and snnTorch keep the membrane after its reset)
        torch.testing.assert_close(out.membranes["h"][quiet], ref.membranes["h"][quiet], rtol=1e-12, atol=1e-12)


def test_general_import_of_a_file_without_our_metadata(tmp_path):
    graph = random_graph(3, recurrent=True, neuron="lif", relay=False, max_delay=5)
    foreign = to_nir(graph)
    foreign.metadata = {}
    with pytest.raises(NIRImportError, match="pass dt"):
        from_nir(foreign)
    imported = from_nir(foreign, dt=graph.dt)
    x = (np.random.default_rng(0).random((30, 2, 4)) < 0.3).astype(float)
    a, b = simulate(graph, x, record=True), simulate(imported, x, record=True)
    assert torch.equal(a.spikes["h"], b.spikes["layer_h"])
    torch.testing.assert_close(a.output, b.output, rtol=1e-12, atol=1e-12)


def test_single_lif_neuron_spikes_at_the_same_steps_everywhere():
    """NIR paper-style check: one LIF, τ = 2.5 ms, θ = 0.1, dt = 0.1 ms, a fixed input spike train."""
    dt = 1e-4
    g = nir.NIRGraph(
        nodes={
            "input": nir.Input(input_type={"input": np.array([1])}),
            "w": nir.Linear(weight=np.array([[1.0]])),
            "lif": nir.LIF(
                tau=np.array([2.5e-3]),
                r=np.array([1.0]),
                v_leak=np.array([0.0]),
                v_threshold=np.array([0.1]),
                v_reset=np.array([0.0]),
            ),
            "output": nir.Output(output_type={"output": np.array([1])}),
        },
        edges=[("input", "w"), ("w", "lif"), ("lif", "output")],
    )
    x = np.zeros((200, 1, 1))
    x[[5, 10, 11, 12, 13, 40, 41, 42, 43, 44, 45, 90, 150, 151, 152, 153], 0, 0] = 1.0
    ref = simulate(from_nir(g, dt=dt), x, record=True).spikes["lif"][:, 0, 0].nonzero().ravel().tolist()
    assert ref  # the neuron spikes (input r·dt/τ = 0.04 per spike, θ = 0.1)
    for converter in (norse_conv, snntorch_conv):
        got = converter.load(g, dt=dt).run(x).spikes["lif"][:, 0, 0].nonzero().ravel().tolist()
        assert got == ref, converter.__name__


def test_unsupported_graphs_give_clear_errors(tmp_path):
    graph = random_graph(1, recurrent=False, neuron="lif", relay=False, max_delay=3)
    graph.layers[0].reset = "subtract"
    stripped = to_nir(graph)  # the subtract reset is exported (LI, Threshold, reset Linear) ...
    stripped.metadata = {}  # ... and read back from our own files only
    with pytest.raises(NIRImportError, match="layer_h.spike. has type Threshold"):
        from_nir(stripped, dt=graph.dt)
    graph.layers[0].beta[:] = 1.0
    with pytest.raises(ExportError, match="subtract-reset layer without leak"):
        to_nir(graph)
    g = nir.NIRGraph(
        nodes={
            "input": nir.Input(input_type={"input": np.array([2])}),
            "t": nir.Threshold(threshold=np.array([0.5, 0.5])),
            "output": nir.Output(output_type={"output": np.array([2])}),
        },
        edges=[("input", "t"), ("t", "output")],
    )
    with pytest.raises(NIRImportError, match="'t' has type Threshold"):
        from_nir(g, dt=1e-3)
    (tmp_path / "bad.nir").write_bytes(b"not hdf5")
    with pytest.raises(NIRImportError, match="bad.nir"):
        from_nir(tmp_path / "bad.nir")


def test_export_import_verify_commands(tmp_path, capsys):
    graph = random_graph(5, recurrent=True, neuron="lif", relay=True, max_delay=4)
    graph.input = InputSpec(dt=graph.dt, n_steps=30, pool=1)
    save_graph(graph, tmp_path / "g.h5")
    assert main(["export", str(tmp_path / "g.h5"), "--format", "nir", "-o", str(tmp_path / "g.nir"), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["format"] == "nir"
    assert main(["import", str(tmp_path / "g.nir"), "--out", str(tmp_path / "back.h5")]) == 0
    _same_graph(graph, load_graph(tmp_path / "back.h5"))
    assert main(["export", str(tmp_path / "g.h5"), "--format", "nir", "-o", str(tmp_path / "g.nir")]) == 2
    assert "--overwrite" in capsys.readouterr().err
    generate_synthetic(
        tmp_path / "data",
        SynthConfig(n_channels=4, n_classes=3, n_train=8, n_test=16, duration=0.03, dt=0.001, spread=12, n_groups=3),
    )
    argv = ["verify", str(tmp_path / "g.h5"), "--data", str(tmp_path / "data"), "--json"]
    assert main(argv) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["n"] == 16 and report["passed"] and set(report["simulators"]) == {"norse", "snntorch"}
    assert all(v == 1.0 for r in report["simulators"].values() for v in r["spike_agreement"].values())
    assert report["reference_samples_per_second"] > 0  # each simulator's own rate, its file loaded
    assert all(r["samples_per_second"] > 0 for r in report["simulators"].values())
    assert main(argv[:-1]) == 0 and "samples/s" in capsys.readouterr().out
    assert main(argv + ["--threshold", "1.5"]) == 1  # an unreachable threshold fails the command
    assert not json.loads(capsys.readouterr().out)["passed"]
    assert main(argv + ["--samples", "5"]) == 0  # the first 5 samples only
    first = json.loads(capsys.readouterr().out)
    assert first["n"] == 5 and first["passed"]
    assert main(argv + ["--samples", "0"]) == 2 and "--samples must be at least 1" in capsys.readouterr().err


# --- files written by other tools ---------------------------------------------------------------------------------


def test_import_of_a_file_exported_by_snntorch_reproduces_snntorch():
    import snntorch as snn
    from snntorch import utils
    from snntorch.export_nir import export_to_nir

    torch.manual_seed(0)

    class Net(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.fc1, self.fc2 = torch.nn.Linear(4, 6), torch.nn.Linear(6, 3)
            self.lif1 = snn.Leaky(
                beta=torch.full((6,), 0.9), threshold=torch.ones(6), reset_mechanism="zero", init_hidden=True
            )
            self.lif2 = snn.Leaky(
                beta=torch.full((3,), 0.8),
                threshold=torch.ones(3),
                reset_mechanism="zero",
                init_hidden=True,
                output=True,
            )

        def forward(self, x):
            return self.lif2(self.fc2(self.lif1(self.fc1(x))))

    net = Net()
    with torch.no_grad():
        net.fc1.weight.mul_(3)
        net.fc2.weight.mul_(3)
    graph = from_nir(export_to_nir(net, torch.zeros(4)), dt=1e-4)  # snnTorch writes τ = 1e-4 s / (1 − β)
    x = (torch.rand(40, 2, 4, generator=torch.Generator().manual_seed(1)) < 0.4).float()
    utils.reset(net)
    with torch.no_grad():
        expected = torch.stack([net(x[t])[0] for t in range(40)]).double()
    got = simulate(graph, x, record=True).spikes["lif2"]
    assert expected.sum() > 0 and torch.equal(got, expected)


def test_norse_exporter_writes_tau_times_dt_and_imports_once_corrected():
    import norse.torch as norse
    from norse.torch.functional.lif_box import LIFBoxParameters

    torch.manual_seed(0)
    net = norse.SequentialState(
        torch.nn.Linear(4, 6),
        norse.LIFBoxCell(LIFBoxParameters(tau_mem_inv=torch.tensor(100.0), v_th=torch.tensor(0.2))),
        torch.nn.Linear(6, 3),
        norse.LIFBoxCell(LIFBoxParameters(tau_mem_inv=torch.tensor(50.0), v_th=torch.tensor(0.2))),
    )
    ngraph = norse.to_nir(net, torch.zeros(1, 4))
    lifs = [n for n in ngraph.nodes.values() if isinstance(n, nir.LIF)]
    assert float(lifs[0].tau) == pytest.approx(0.01 * 1e-3)  # norse issue #411: τ written as τ·dt (true τ = 10 ms)
    for node in lifs:
        node.tau = node.tau / 1e-3
    graph = from_nir(ngraph, dt=1e-3)  # scalar parameters are broadcast to the layer
    assert [layer.size for layer in graph.layers] == [6, 3]
    x = (torch.rand(40, 2, 4, generator=torch.Generator().manual_seed(2)) < 0.5).float() * 3
    with torch.no_grad():
        state, expected = None, []
        for t in range(40):
            out, state = net(x[t], state)
            expected.append(out)
    expected = torch.stack(expected).double()
    got = simulate(graph, x, record=True).spikes[graph.layers[-1].name]
    assert expected.sum() > 0 and torch.equal(got, expected)
