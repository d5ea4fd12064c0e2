"""The loihi2-fixed arithmetic (targets/loihi2/arithmetic.py) against hand computations of Lava's fixed-point
LIF (lava/proc/lif/models.py): 64 state units per weight unit, 12-bit decays truncated toward zero, u wrapping,
v saturating, hard reset of v. Every expected value below is worked out by hand in the comment beside it."""

import subprocess
import sys

import numpy as np
import pytest
import torch

from delaynir.compile.compiler import compile_model
from delaynir.hardware.profile import load_target
from delaynir.ir.graph import INPUT, DelayGraph, Layer, Projection
from delaynir.nn.model import DelaySNN, ModelConfig
from delaynir.numerics.number_formats import arithmetic_named
from delaynir.reference.simulate import simulate

DV = 410  # β = (4096 − 410) / 4096: a decayed value is trunc(x · 3686 / 4096)


def _neuron(kind="lif", weight=3.0, scale=0.5, theta_units=10, bias_units=1, alpha=None, beta=1 - DV / 4096):
    """One neuron fed by one input channel (delay 0) in the loihi2-fixed arithmetic; θ and b in weight units."""
    layer = Layer(
        "h",
        1,
        kind,
        [beta],
        [theta_units * scale],
        [bias_units * scale],
        [Projection(INPUT, [0], [0], [0], [weight], [scale])],
        alpha=alpha,
    )
    return DelayGraph(dt=1e-3, n_inputs=1, layers=[layer], quantization={"arithmetic": "loihi2-fixed"})


def _run(graph, inputs):
    result = simulate(graph, torch.tensor(inputs, dtype=torch.float64).view(-1, 1, 1), record=True)
    return result.spikes["h"].flatten().tolist(), result.membranes["h"].flatten().tolist()


def test_lif_leak_truncates_bias_adds_to_v_and_reset_is_hard():
    spikes, membranes = _run(_neuron(), [1, 1, 1, 1, 0])
    # u = 64·3 = 192 per input spike, bias 64·1 = 64, threshold 64·10 = 640 (Lava units):
    # t0: v = 0 + 192 + 64 = 256
    # t1: trunc(256·3686/4096) = trunc(230.4) = 230; + 256 = 486
    # t2: trunc(486·3686/4096) = trunc(437.35) = 437; + 256 = 693 > 640: spike
    # t3: v was reset to 0: 0 + 256 = 256
    # t4: trunc(256·3686/4096) = 230; + 0 + 64 = 294
    assert spikes == [0, 0, 1, 0, 0]
    lava = [256, 486, 693, 256, 294]
    assert membranes == [v / 64 * 0.5 for v in lava]  # reported in real units: v / 64 · scale


def test_the_decay_rounds_toward_zero_not_down():
    _, membranes = _run(_neuron(weight=-3.0, bias_units=0), [1, 1])
    # t0: v = −192; t1: trunc(−192·3686/4096) = trunc(−172.78) = −172 (floor would give −173); −172 − 192 = −364
    assert membranes == [-192 / 64 * 0.5, -364 / 64 * 0.5]


def test_u_wraps_once_into_its_24_bit_range_and_v_saturates():
    graph = _neuron("cubalif", weight=1.0, scale=1.0, theta_units=2**17 - 1, bias_units=0, alpha=[1.0], beta=1.0)
    spikes, membranes = _run(graph, [2**17, 2**17, 0])
    # α = β = 1 (no decay), a = 2^17 per step, threshold 64·(2^17 − 1) = 8388544:
    # t0: u = 64·2^17 = 2^23 (not above 2^23: kept); v = clip(2^23) = 2^23 − 1 = 8388607 > 8388544: spike
    # t1: u = 2^23 + 2^23 = 2^24 > 2^23: wraps to 0; v was reset: 0 + 0 = 0
    # t2: u = 0, v = 0
    assert spikes == [1, 0, 0]
    assert membranes == [8388607 / 64, 0.0, 0.0]
    _, membranes = _run(graph, [-(2**17)])
    # u = −2^23 ≤ −2^23: wraps to +2^23; v = clip(2^23) = 2^23 − 1
    assert membranes == [8388607 / 64]


def test_cubalif_current_decays_by_truncation_and_is_not_reset():
    graph = _neuron(
        "cubalif", weight=2.0, scale=1.0, theta_units=3, bias_units=0, alpha=[1 - 1024 / 4096], beta=1 - 2048 / 4096
    )
    spikes, membranes = _run(graph, [1, 0, 0])
    # α = 3072/4096, β = 2048/4096, threshold 64·3 = 192:
    # t0: u = 128; v = 128
    # t1: u = trunc(128·3072/4096) = 96; v = trunc(128·2048/4096) + 96 = 64 + 96 = 160
    # t2: u = 72; v = 80 + 72 = 152
    assert spikes == [0, 0, 0]
    assert membranes == [128 / 64, 160 / 64, 152 / 64]


def test_the_li_readout_never_resets_and_reports_its_voltage():
    layer = Layer("h", 1, "li", [1 - DV / 4096], [np.inf], [0.0], [Projection(INPUT, [0], [0], [0], [4.0], [0.25])])
    graph = DelayGraph(dt=1e-3, n_inputs=1, layers=[layer], quantization={"arithmetic": "loihi2-fixed"})
    result = simulate(graph, torch.ones(3, 1, 1, dtype=torch.float64), record=True)
    # u = 64·4 = 256 per step: t0 256; t1 trunc(256·3686/4096) = 230 + 256 = 486; t2 437 + 256 = 693
    assert result.output.flatten().tolist() == [v / 64 * 0.25 for v in (256, 486, 693)]


def test_float64_and_loihi2_fixed_differ_only_by_the_chips_rounding():
    graph = _neuron(bias_units=0, theta_units=100)
    float_graph = graph.in_arithmetic("float64")
    assert float_graph.arithmetic == "float64" and graph.arithmetic == "loihi2-fixed"
    _, fixed = _run(graph, [1, 1])
    _, exact = _run(float_graph, [1, 1])
    assert exact == [1.5, 1.5 * (1 - DV / 4096) + 1.5]  # 3·0.5 = 1.5 per spike, exact decay
    assert fixed == [192 / 64 * 0.5, (172 + 192) / 64 * 0.5]  # trunc(192·3686/4096) = trunc(172.78) = 172


def test_the_core_finds_the_arithmetic_from_the_targets_package_alone():
    code = (
        "from delaynir.numerics.number_formats import arithmetic_named; "
        "a = arithmetic_named('loihi2-fixed'); print(a.name, a.state_per_unit)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["loihi2-fixed", "64"]
    assert arithmetic_named("loihi2-fixed").separate_bias


def test_compiling_for_loihi2_records_its_arithmetic_and_int8_does_not():
    model = DelaySNN(ModelConfig(n_inputs=4, n_outputs=2, hidden=[3], max_delay=3)).eval()
    loihi, _ = compile_model(model, load_target("loihi2"))
    int8, _ = compile_model(model, load_target("int8"))
    assert loihi.quantization["arithmetic"] == "loihi2-fixed" and "arithmetic" not in int8.quantization
    unit = loihi.layers[0].projections[0].scale
    assert np.all(unit == unit[0])  # one weight scale per layer: one threshold and decay per Lava process


def test_a_profile_naming_an_unknown_arithmetic_is_refused_at_compile():
    from delaynir.errors import TargetError
    from delaynir.hardware.profile import parse_target

    profile = parse_target(
        'name = "chip"\ndescription = "test"\nformat_version = 1\n\n[limits]\n'
        'weight_bits = { value = 8, source = "test", confirmed = true }\n'
        'max_delay = { value = 10, source = "test", confirmed = true }\n'
        'arithmetic = { value = "nonesuch-fixed", source = "test", confirmed = false }\n',
        source="chip.toml",
    )
    model = DelaySNN(ModelConfig(n_inputs=4, n_outputs=2, hidden=[3], max_delay=3)).eval()
    with pytest.raises(TargetError, match="target chip: no installed target provides the arithmetic 'nonesuch-fixed'"):
        compile_model(model, profile)


def test_the_fit_check_lists_what_lava_processes_cannot_hold():
    from delaynir.hardware.fit import check_fit

    h = Layer(
        "h",
        2,
        "lif",
        [0.5, 0.75],
        [200000.0, 200000.0],
        [5000.0, 0.0],
        [Projection(INPUT, [0, 1], [0, 1], [0, 0], [1.0, 1.0], [1.0, 1.0])],
    )
    relay = Layer("r", 1, "relay", [0.0], [0.0], [0.0], [Projection("h", [0], [0], [1], [1.0], [1.0])])
    graph = DelayGraph(dt=1e-3, n_inputs=2, layers=[h, relay])
    found = {(v.layer, v.limit) for v in check_fit(graph, load_target("loihi2"))}
    assert {("h", "beta"), ("h", "threshold_bits"), ("h", "state_bits"), ("r", "arithmetic")} <= found
    h.beta, h.threshold, h.bias = np.full(2, 0.5), np.full(2, 131071.0), np.array([4095.0, -4096.0])
    graph.layers = [h]
    assert not [
        v
        for v in check_fit(graph, load_target("loihi2"))
        if v.limit in ("beta", "threshold_bits", "state_bits", "arithmetic")
    ]


def test_the_demos_chip_leg_reports_fixed_point_accuracy_against_the_trained_model(small_run, tmp_path):
    from delaynir.handoff import demo
    from delaynir.train.evaluate import evaluate_run

    test = small_run.parent / "data" / "test.h5"
    trained = evaluate_run(small_run, test, device="cpu")["accuracy"]
    from delaynir import plugins

    assert plugins.default_chip() == "loihi2"  # the demo's chip leg is this target's, found through its PLUGIN
    leg = demo._chip_leg(small_run, "loihi2", tmp_path, test, trained, progress=False)
    assert leg["arithmetic"] == "loihi2-fixed" and (tmp_path / "run.loihi2.delaygraph.h5").is_file()
    assert leg["cost_pp"] == pytest.approx(100 * (trained - leg["test_accuracy"]))
    for name, sim in leg["verification"].simulators.items():  # float64 executors: against the float graph
        assert sim["compared_with"] == "float64", name
        assert sim["prediction_agreement"] == 1.0 and set(sim["spike_agreement"].values()) == {1.0}
