"""The executors' registry, and each correction the norse and snnTorch loaders make to their library.

Every correction test shows first what the library does on its own with the NIR node (so that a
release that changes it fails here and the correction can be reconsidered), then that our loader runs
a tiny hand-built graph exactly as the reference simulator does.
"""

import sys

import nir
import numpy as np
import pytest
import torch

from delaynir.converters import norse as norse_conv
from delaynir.converters import snntorch as snntorch_conv
from delaynir.errors import DelayNIRError, NIRImportError
from delaynir.export import executors
from delaynir.export.executors import EXECUTORS, ExecutorUnavailable, external, formats, names
from delaynir.export.nir_io import export_nir, from_nir
from delaynir.ir.graph import INPUT, DelayGraph, Layer, Projection
from delaynir.reference.simulate import simulate

CONVERTERS = {"norse": norse_conv, "snntorch": snntorch_conv}
DT = 0.01


def tiny_graph(
    *,
    neuron="lif",
    beta=(0.9, 0.75, 0.5),
    threshold=(1.0, 2.0, 1.5),
    weight=(1.0, 2.0, 1.5, 1.0),
    delay=(0, 1, 2, 3),
    alpha=None,
) -> DelayGraph:
    """Input (2) → hidden h (3, per-neuron β and θ; synapses 0→0, 1→1, 0→2, 1→2) → li readout (2), dt = 10 ms."""
    n = len(beta)
    hidden = Layer(
        "h",
        n,
        neuron,
        np.array(beta),
        np.array(threshold),
        np.zeros(n),
        [Projection(INPUT, [0, 1, 0, 1], [0, 1, 2, 2], delay, weight, np.ones(n))],
        alpha=None if alpha is None else np.array(alpha),
    )
    readout = Layer(
        "output",
        2,
        "li",
        np.array([0.9, 0.8]),
        np.full(2, np.inf),
        np.zeros(2),
        [Projection("h", [0, 1, 2], [0, 1, 1], [1, 0, 2], [1.0, 1.0, -1.0], np.ones(2))],
    )
    return DelayGraph(dt=DT, n_inputs=2, layers=[hidden, readout])


def one_neuron_graph(neuron, beta, threshold, weight, alpha=None) -> DelayGraph:
    """Input (1) → one ``neuron`` h (synapse weight ``weight``, delay 0) → one li readout."""
    return DelayGraph(
        dt=DT,
        n_inputs=1,
        layers=[
            Layer(
                "h",
                1,
                neuron,
                np.array([beta]),
                np.array([threshold]),
                np.zeros(1),
                [Projection(INPUT, [0], [0], [0], [weight], np.ones(1))],
                alpha=None if alpha is None else np.array([alpha]),
            ),
            Layer(
                "output",
                1,
                "li",
                np.array([0.5]),
                np.full(1, np.inf),
                np.zeros(1),
                [Projection("h", [0], [0], [0], [1.0], np.ones(1))],
            ),
        ],
    )


def tiny_input(steps=16) -> np.ndarray:
    """Spike counts 0–2, (steps, 2 samples, 2 channels)."""
    return np.random.default_rng(7).integers(0, 3, (steps, 2, 2)).astype(float)


def assert_like_reference(result, reference, layers=("h",)):
    for layer in layers:
        assert reference.spikes[layer].sum() > 0, layer  # a check on a silent layer would prove little
        assert torch.equal(result.spikes[layer], reference.spikes[layer]), layer
    torch.testing.assert_close(result.output, reference.output, rtol=1e-12, atol=1e-12)
    assert torch.equal(result.predictions, reference.predictions)


def run_exported(converter, graph, x, tmp_path):
    return converter.load(export_nir(graph, tmp_path / "g.nir")).run(x)


def foreign_graph(*, r_lif=2.0, r_li=3.0, v_reset=0.0) -> nir.NIRGraph:
    """Another tool's file (no delaynir metadata, dt = 1 ms): input (2) → Linear → LIF (r·dt/τ ≠ 1) → Linear → LI."""
    tau = np.array([0.004, 0.008])
    return nir.NIRGraph(
        nodes={
            "input": nir.Input(input_type={"input": np.array([2])}),
            "w1": nir.Linear(weight=np.array([[0.6, 0.3], [0.2, 0.9]])),
            "lif": nir.LIF(
                tau=tau,
                r=np.full(2, r_lif),
                v_leak=np.zeros(2),
                v_threshold=np.array([0.5, 0.7]),
                v_reset=np.full(2, v_reset),
            ),
            "w2": nir.Linear(weight=np.array([[1.0, -0.5], [0.5, 1.0]])),
            "li": nir.LI(tau=np.array([0.01, 0.02]), r=np.full(2, r_li), v_leak=np.zeros(2)),
            "output": nir.Output(output_type={"output": np.array([2])}),
        },
        edges=[("input", "w1"), ("w1", "lif"), ("lif", "w2"), ("w2", "li"), ("li", "output")],
    )


def assert_foreign_like_reference(converter, ngraph, dt=1e-3):
    x = tiny_input(40)
    assert_like_reference(
        converter.load(ngraph, dt=dt).run(x), simulate(from_nir(ngraph, dt=dt), x, record=True), layers=("lif",)
    )


def _linear_delay_graph():
    return nir.NIRGraph(
        nodes={
            "input": nir.Input(input_type={"input": np.array([2])}),
            "w": nir.Linear(weight=np.eye(2)),
            "d": nir.Delay(delay=np.array([0.002, 0.002])),
            "output": nir.Output(output_type={"output": np.array([2])}),
        },
        edges=[("input", "w"), ("w", "d"), ("d", "output")],
    )


# --- the registry ------------------------------------------------------------------------------------------------


def test_the_registry_lists_each_executor_once():
    assert names() == ("reference", "norse", "snntorch", "onnxruntime", "lava", "nest")
    assert len(set(names())) == len(names()) and external() == names()[1:]
    assert external(tiny_graph()) == ("norse", "snntorch", "onnxruntime", "nest")  # lava: loihi2-fixed graphs only
    assert [fmt.name for fmt in formats()] == ["DelayGraph", "NIR", "ONNX", "netx", "pynn"]
    assert [fmt.name for fmt in formats(tiny_graph())] == ["DelayGraph", "NIR", "ONNX", "pynn"]
    assert len({fmt.file for fmt in formats()}) == len(formats())
    assert {e.reproduces for e in EXECUTORS.values()} == {executors.TARGET_ARITHMETIC, executors.FLOAT_GRAPH}


@pytest.mark.parametrize("name", ["reference", *external(tiny_graph())])  # lava: tests/test_lava.py
def test_each_executor_runs_its_file_as_the_reference_simulator_does(name, tmp_path, request):
    if name == "nest":
        request.getfixturevalue("need_nest")
    executor = EXECUTORS[name]
    graph, x = tiny_graph(), tiny_input()
    path = executor.export(graph, tmp_path / executor.format.file)
    assert_like_reference(executor.load(path).run(x), simulate(graph, x, record=True))


def test_an_executor_whose_library_is_missing_says_which_and_how_to_install(monkeypatch, tmp_path):
    for name in [n for n in sys.modules if n == "norse" or n.startswith("norse.")]:
        monkeypatch.setitem(sys.modules, name, None)  # `import norse...` now fails as if it were not installed
    monkeypatch.delitem(sys.modules, "delaynir.converters.norse")
    with pytest.raises(ExecutorUnavailable, match=r"simulator 'norse' cannot run.*pip install 'norse") as info:
        EXECUTORS["norse"].load(tmp_path / "g.nir")
    assert isinstance(info.value, DelayNIRError)  # the CLI prints it without a traceback
    ours_missing = executors.Executor("x", executors.NIR, "delaynir.converters.absent", executors.FLOAT_GRAPH, "-")
    with pytest.raises(ModuleNotFoundError):  # a module of ours missing is a bug, not an installation problem
        ours_missing.load(tmp_path / "g.nir")


# --- delays -------------------------------------------------------------------------------------------------------


def test_norse_from_nir_drops_delay_nodes_so_the_graph_is_wired_here(tmp_path):
    import norse.torch

    module = norse.torch.from_nir(_linear_delay_graph())
    out = module(torch.ones(1, 2))
    out = out[0] if isinstance(out, tuple) else out
    assert torch.equal(out, torch.ones(1, 2))  # undelayed: the Delay node was dropped
    _assert_delays_kept(norse_conv, tmp_path)


def test_snntorch_rejects_delay_nodes_so_the_graph_is_wired_here(tmp_path):
    from snntorch.import_nir import import_from_nir

    with pytest.raises(ValueError, match="Unknown node type"):
        import_from_nir(_linear_delay_graph())
    _assert_delays_kept(snntorch_conv, tmp_path)


def _assert_delays_kept(converter, tmp_path):
    graph, x = tiny_graph(), tiny_input()
    undelayed = tiny_graph(delay=(0, 0, 0, 0))
    reference = simulate(graph, x, record=True)
    assert not torch.equal(simulate(undelayed, x, record=True).spikes["h"], reference.spikes["h"])  # delays matter
    assert_like_reference(run_exported(converter, graph, x, tmp_path), reference)


# --- r, dt and v_reset ------------------------------------------------------------------------------------------


def test_norse_ignores_r_and_v_reset_so_the_input_gain_is_applied_here_and_v_reset_refused():
    from norse.torch.utils.import_nir import _import_norse_module

    node = nir.LIF(
        tau=np.array([0.01]),
        r=np.array([2.0]),
        v_leak=np.array([0.0]),
        v_threshold=np.array([10.0]),
        v_reset=np.array([0.5]),
    )
    cell = _import_norse_module(node, ignore_warnings=True, dt=0.001)
    _, state = cell(torch.ones(1, 1))
    assert torch.allclose(state.v, torch.tensor([[0.1]]))  # dt/τ · 1, not dt/τ · r · 1
    assert float(cell.p.v_reset) == 0.0  # v_reset of the node not taken over
    assert_foreign_like_reference(norse_conv, foreign_graph())
    with pytest.raises(NIRImportError, match="v_reset"):
        norse_conv.load(foreign_graph(v_reset=0.5), dt=1e-3)


def test_snntorch_hardcodes_dt_and_folds_r_into_the_threshold_so_both_are_applied_here(capsys):
    from snntorch.import_nir import _nir_to_snntorch_module

    lif = _nir_to_snntorch_module(
        nir.LIF(tau=np.array([0.02]), r=np.array([1.0]), v_leak=np.array([0.0]), v_threshold=np.array([1.0]))
    )
    assert float(lif.beta) == pytest.approx(1 - 1e-4 / 0.02)  # dt = 1e-4 s whatever the file's dt
    assert float(lif.threshold) == pytest.approx(1.0 / (1e-4 / 0.02))  # θ / (r·dt/τ): r folded into θ
    capsys.readouterr()
    assert_foreign_like_reference(snntorch_conv, foreign_graph())


def test_snntorch_ignores_v_reset_so_it_is_refused_here():
    from snntorch.import_nir import _nir_to_snntorch_module

    node = nir.LIF(
        tau=np.array([0.02]),
        r=np.array([1.0]),
        v_leak=np.array([0.0]),
        v_threshold=np.array([1.0]),
        v_reset=np.array([0.5]),
    )
    assert _snntorch_quiet(_nir_to_snntorch_module, node).reset_mechanism == "zero"  # to 0, not to v_reset
    with pytest.raises(NIRImportError, match="v_reset"):
        snntorch_conv.load(foreign_graph(v_reset=0.5), dt=1e-3)


def test_norse_defaults_dt_to_a_millisecond_so_the_file_dt_is_used_here():
    from norse.torch.utils.import_nir import _import_norse_module

    node = nir.LIF(tau=np.array([0.02]), r=np.array([1.0]), v_leak=np.array([0.0]), v_threshold=np.array([1.0]))
    assert _import_norse_module(node, ignore_warnings=True).dt == 0.001
    assert_foreign_like_reference(norse_conv, foreign_graph(), dt=2e-3)


# --- neurons ------------------------------------------------------------------------------------------------------


def test_if_nodes_lose_r_and_dt_in_norse_and_leak_in_snntorch_so_they_are_built_here():
    from norse.torch.utils.import_nir import _import_norse_module
    from snntorch.import_nir import _nir_to_snntorch_module

    node = nir.IF(r=np.array([1000.0]), v_threshold=np.array([10.0]))
    with torch.no_grad():
        _, state = _import_norse_module(node, ignore_warnings=True, dt=1e-3)(torch.ones(1, 1))
    assert float(state.v) == 1.0  # v ← v + input: r·dt (here 1) ignored
    assert float(
        _snntorch_quiet(_nir_to_snntorch_module, nir.IF(r=np.array([1.0]), v_threshold=np.array([1.0]))).beta
    ) == pytest.approx(0.9)  # IF becomes a leaky neuron
    g = nir.NIRGraph(
        nodes={
            "input": nir.Input(input_type={"input": np.array([2])}),
            "w": nir.Linear(weight=np.array([[0.6, 0.3], [0.2, 0.9]])),
            "if": nir.IF(r=np.array([2000.0, 2000.0]), v_threshold=np.array([1.0, 1.5]), v_reset=np.array([0.0, 0.0])),
            "output": nir.Output(output_type={"output": np.array([2])}),
        },
        edges=[("input", "w"), ("w", "if"), ("if", "output")],
    )
    x = (np.random.default_rng(3).random((50, 2, 2)) < 0.5).astype(float)
    ref = simulate(from_nir(g, dt=1e-3), x, record=True).spikes["if"]
    assert ref.sum() > 0
    for converter in CONVERTERS.values():
        assert torch.equal(converter.load(g, dt=1e-3).run(x).spikes["if"], ref), converter.__name__


def test_snntorch_takes_one_threshold_per_layer_so_per_neuron_values_are_set_here(tmp_path):
    from snntorch.import_nir import _nir_to_snntorch_module

    node = nir.LIF(tau=np.full(2, 0.02), r=np.full(2, 20.0), v_leak=np.zeros(2), v_threshold=np.array([1.0, 2.0]))
    with pytest.raises(AssertionError, match="v_threshold must be same"):
        _snntorch_quiet(_nir_to_snntorch_module, node)
    graph, x = tiny_graph(), tiny_input()  # per-neuron β and θ
    assert_like_reference(run_exported(snntorch_conv, graph, x, tmp_path), simulate(graph, x, record=True))


def test_li_nodes_are_dropped_by_norse_and_rejected_by_snntorch_so_they_are_built_here(tmp_path):
    import norse.torch
    from snntorch.import_nir import import_from_nir

    g = nir.NIRGraph(
        nodes={
            "input": nir.Input(input_type={"input": np.array([1])}),
            "w": nir.Linear(weight=np.array([[2.0]])),
            "li": nir.LI(tau=np.array([0.02]), r=np.array([1.0]), v_leak=np.zeros(1)),
            "output": nir.Output(output_type={"output": np.array([1])}),
        },
        edges=[("input", "w"), ("w", "li"), ("li", "output")],
    )
    out = norse.torch.from_nir(g)(torch.ones(1, 1))
    assert torch.equal(out[0] if isinstance(out, tuple) else out, torch.full((1, 1), 2.0))  # the Linear's output
    with pytest.raises(ValueError, match="Unknown node type"):
        _snntorch_quiet(import_from_nir, g)
    graph, x = tiny_graph(), tiny_input()
    for converter in CONVERTERS.values():  # the li readout: outputs and predictions as the reference's
        assert_like_reference(
            run_exported(converter, graph, x, tmp_path / converter.__name__), simulate(graph, x, record=True)
        )


def test_snntorch_synaptic_drops_the_input_after_a_spike_so_cubalif_is_built_here(tmp_path):
    import snntorch as snn

    alpha, beta = 0.5, 0.75
    graph = one_neuron_graph("cubalif", beta, 1.0, 0.25, alpha=alpha)
    x = np.array([2, 2, 2, 2, 0, 0, 1, 0, 2, 2, 2, 0], dtype=float)[:, None, None]
    reference = simulate(graph, x, record=True)
    cell = snn.Synaptic(alpha=alpha, beta=beta, threshold=1.0, reset_mechanism="zero")
    syn = mem = torch.zeros(1, 1, dtype=torch.float64)
    upstream = []
    for t in range(len(x)):
        spike, syn, mem = cell(torch.from_numpy(x[t]) * 0.25, syn, mem)
        upstream.append(spike)
    assert not torch.equal(torch.stack(upstream).double(), reference.spikes["h"])
    for converter in CONVERTERS.values():
        result = run_exported(converter, graph, x, tmp_path / converter.__name__)
        assert torch.equal(result.spikes["h"], reference.spikes["h"]), converter.__name__
    graph, x = tiny_graph(neuron="cubalif", alpha=(0.5, 0.25, 0.75)), tiny_input()
    assert_like_reference(run_exported(snntorch_conv, graph, x, tmp_path), simulate(graph, x, record=True))


# --- numbers ------------------------------------------------------------------------------------------------------


def test_importers_build_float32_parameters_so_they_are_rebuilt_in_float64_here(tmp_path):
    from norse.torch.utils.import_nir import _import_norse_module
    from snntorch.import_nir import _nir_to_snntorch_module

    linear = nir.Linear(weight=np.array([[1 + 2**-30]]))
    assert _import_norse_module(linear, ignore_warnings=True).weight.dtype == torch.float32
    assert _snntorch_quiet(_nir_to_snntorch_module, linear).weight.dtype == torch.float32
    lif = nir.LIF(tau=np.array([0.02]), r=np.array([1.0]), v_leak=np.zeros(1), v_threshold=np.array([1 + 2**-30]))
    assert float(_import_norse_module(lif, ignore_warnings=True).p.v_th) == 1.0  # rounded to float32
    # weight 1 + 2^-30 above threshold 1 + 2^-31: a spike in float64, none once both round to 1.0 in float32
    graph = one_neuron_graph("lif", 0.5, 1 + 2**-31, 1 + 2**-30)
    x = np.zeros((4, 1, 1))
    x[1, 0, 0] = 1.0
    reference = simulate(graph, x, record=True)
    assert reference.spikes["h"][1, 0, 0] == 1.0
    for converter in CONVERTERS.values():
        result = run_exported(converter, graph, x, tmp_path / converter.__name__)
        assert torch.equal(result.spikes["h"], reference.spikes["h"]), converter.__name__


def test_norse_lif_step_misses_beta_v_plus_i_by_an_ulp_so_the_membrane_is_scaled_here(tmp_path):
    from norse.torch.functional.lif_box import LIFBoxParameters
    from norse.torch.module.lif_box import LIFBoxCell

    beta, current = 1 - 5 / 4096, 7.0  # v = β·0 + 7 lands exactly on θ = 7: no spike (strict v > θ)
    leak = torch.tensor([1 - beta], dtype=torch.float64)
    cell = LIFBoxCell(LIFBoxParameters(tau_mem_inv=leak, v_th=torch.tensor([7.0], dtype=torch.float64)), dt=1.0)
    spike, _state = cell(torch.tensor([[1 / (1 - beta) * current]], dtype=torch.float64))  # input r·I, r = 1/(1 − β)
    assert float(spike) == 1.0  # (1 − β)·(r·I) is an ulp above I = θ: it spikes
    graph = one_neuron_graph("lif", beta, 7.0, current)
    x = np.zeros((3, 1, 1))
    x[0] = 1.0
    reference = simulate(graph, x, record=True)
    assert float(reference.membranes["h"][0, 0, 0]) == 7.0 and reference.spikes["h"].sum() == 0
    result = run_exported(norse_conv, graph, x, tmp_path)
    assert torch.equal(result.spikes["h"], reference.spikes["h"])
    assert torch.equal(result.membranes["h"], reference.membranes["h"])


def test_snntorch_prints_so_its_calls_are_silenced_here(capsys, tmp_path):
    from snntorch.import_nir import _nir_to_snntorch_module

    _nir_to_snntorch_module(
        nir.LIF(tau=np.array([0.02]), r=np.array([1.0]), v_leak=np.array([0.0]), v_threshold=np.array([1.0]))
    )
    assert "warning" in capsys.readouterr().out  # r·dt/τ ≠ 1: it prints
    run_exported(snntorch_conv, tiny_graph(), tiny_input(), tmp_path)
    assert capsys.readouterr().out == ""


def _snntorch_quiet(fn, *args):
    from delaynir.converters._nirtorch import quiet

    return quiet(fn, *args)
