"""Number formats: one quantiser for compile and fine-tuning, one representability test for the fit check,
and the arithmetic the simulator takes from the graph."""

import numpy as np
import pytest
import torch

from delaynir import plugins
from delaynir.compile.compiler import compare, compile_model
from delaynir.data import SpikeDataset, make_loader, validation_split
from delaynir.errors import GraphFormatError
from delaynir.hardware.fit import check_fit
from delaynir.hardware.profile import load_target
from delaynir.ir.graph import INPUT, DelayGraph, Layer, Projection
from delaynir.ir.neuron_kinds import TORCH
from delaynir.numerics.number_formats import (
    DECAY_KINDS,
    FLOAT64,
    Arithmetic,
    DecayFormat,
    FixedDecay,
    FloatState,
    IntegerState,
    NumberFormat,
    ShiftDecay,
    StateFormat,
    arithmetic_named,
    arithmetic_of,
    decay_format,
)
from delaynir.reference.simulate import simulate
from delaynir.train.loop import finetune
from delaynir.train.run_dir import Run


def test_fixed_decay_rounds_to_multiples_of_2_to_the_minus_bits_and_tests_them():
    fmt = FixedDecay(12)
    beta = np.array([0.95, 0.9, 0.0, 1.0])
    q = fmt.quantize(beta)
    np.testing.assert_array_equal(q, [1 - 205 / 4096, 1 - 410 / 4096, 0.0, 1.0])  # 0.05·4096 = 204.8 → 205
    assert not fmt.unrepresentable(q).any()
    np.testing.assert_array_equal(fmt.unrepresentable(beta), [True, True, False, False])
    assert FixedDecay(4).quantize(np.array([0.9]))[0] == 1 - 2 / 16  # 0.1·16 = 1.6 → 2


def test_shift_decay_picks_the_nearest_shift_within_its_limit():
    fmt = ShiftDecay(4)
    np.testing.assert_array_equal(fmt.quantize(np.array([0.9, 0.5, 0.999])), [1 - 2**-3, 0.5, 1 - 2**-4])
    np.testing.assert_array_equal(fmt.unrepresentable(np.array([0.875, 1 - 2**-5, 0.7])), [False, True, True])


def test_integer_state_puts_values_on_the_weight_grid_for_numpy_and_torch_alike():
    scale = np.array([0.25, 0.1])
    values = np.array([1.13, np.inf])
    np.testing.assert_array_equal(IntegerState(16).quantize(values, scale), [1.25, np.inf])
    t = IntegerState(16).quantize(torch.tensor([1.13, 0.26], dtype=torch.float64), torch.tensor(scale))
    np.testing.assert_allclose(t.numpy(), [1.25, 0.3])
    assert FloatState().quantize(values, scale) is values


def test_a_profile_names_its_format():
    loihi = NumberFormat.of(load_target("loihi2"))
    assert loihi.decay == FixedDecay(12) and loihi.threshold == IntegerState(17) and loihi.bias == IntegerState(24)
    int8 = NumberFormat.of(load_target("int8"))
    assert int8.threshold == FloatState() and int8.bias == FloatState()
    assert isinstance(NumberFormat.of(load_target("xylo-audio2")).decay, ShiftDecay)


def test_the_fit_check_uses_the_formats_representability_test():
    layer = Layer(
        "h",
        2,
        "lif",
        np.array([0.9, 1 - 205 / 4096]),
        np.ones(2),
        np.zeros(2),
        [Projection(INPUT, [0, 1], [0, 1], [0, 0], [1.0, 1.0], np.ones(2))],
    )
    graph = DelayGraph(dt=1e-3, n_inputs=2, layers=[layer])
    [violation] = [v for v in check_fit(graph, load_target("loihi2")) if v.limit == "decay"]
    assert violation.count == 1 and violation.found == 0.9 and "1 − dv/4096" in violation.message


def _one_neuron(quantization=None):
    layer = Layer("h", 1, "lif", [0.5], [1.5], [0.0], [Projection(INPUT, [0], [0], [0], [1.0], [1.0])])
    return DelayGraph(dt=1e-3, n_inputs=1, layers=[layer], quantization=quantization or {})


class _Doubling(type(TORCH)):  # an arithmetic whose every addition counts twice
    @staticmethod
    def add(a, b, out=None):
        return 2 * (a + b)


DOUBLING = Arithmetic("test-doubling", _Doubling())


@pytest.fixture
def doubling_target():
    """A target registered from code whose only contribution is the DOUBLING arithmetic; removed afterwards."""
    plugins.register(
        plugins.TargetPlugin(
            "test-doubling", "an arithmetic for tests", __name__, arithmetics={"test-doubling": f"{__name__}:DOUBLING"}
        )
    )
    yield
    plugins.unregister("test-doubling")


def test_the_simulator_takes_its_arithmetic_from_the_graph(doubling_target):
    assert arithmetic_of(_one_neuron()) is FLOAT64
    with pytest.raises(GraphFormatError, match="arithmetic 'nonesuch'"):
        simulate(_one_neuron({"arithmetic": "nonesuch"}), torch.ones(3, 1, 1))
    x = torch.ones(3, 1, 1)
    plain = simulate(_one_neuron(), x, record=True).membranes["h"].flatten().tolist()
    doubled = simulate(_one_neuron({"arithmetic": "test-doubling"}), x, record=True).membranes["h"].flatten().tolist()
    assert plain == [1.0, 1.5, 1.75]  # v = 0.5·v·(1 − z) + 1; 1.5 is not above θ = 1.5, so no reset
    assert doubled == [2.0, 2.0, 2.0]  # v = 2·(0.5·v·(1 − z) + 1): 2 > 1.5 spikes, so every step resets


def test_an_arithmetic_is_known_only_while_its_target_is_registered(doubling_target):
    assert arithmetic_named("test-doubling") is DOUBLING
    plugins.unregister("test-doubling")
    with pytest.raises(GraphFormatError, match="no installed target provides the arithmetic 'test-doubling'"):
        arithmetic_named("test-doubling")


def test_a_target_registering_something_else_as_an_arithmetic_is_refused():
    plugins.register(
        plugins.TargetPlugin("test-bad", "-", __name__, arithmetics={"test-bad": f"{__name__}:_one_neuron"})
    )
    try:
        with pytest.raises(plugins.PluginError, match="is not the Arithmetic named 'test-bad'"):
            arithmetic_named("test-bad")
    finally:
        plugins.unregister("test-bad")


@pytest.fixture(scope="module")
def source_run(small_run):
    """The session's small run: its folder, holding run/ and data/ (read-only)."""
    return small_run.parent


def _validation(root, config):
    dataset = SpikeDataset(root / "data" / "train.h5", n_steps=config["n_steps"])
    _, val_idx = validation_split(dataset, fraction=config["val_fraction"], seed=config["seed"])
    return make_loader(dataset, val_idx, batch_size=64, shuffle=False)


@pytest.mark.parametrize("target", ["int8", "loihi2"])
def test_finetuning_rounds_what_compile_rounds(source_run, tmp_path, target):
    """After ``finetune --target``, compile changes no threshold, bias or decay the model computes with, and
    for int8 the model (float64) and the compiled graph give identical spikes and predictions on validation."""
    finetune(source_run / "run", target, tmp_path / "ft", epochs=1)
    run = Run(tmp_path / "ft")
    model, payload = run.model, run.payload
    assert run.number_format == NumberFormat.of(load_target(target))  # stored in the run, not re-read
    profile = load_target(target)
    graph, _ = compile_model(model.double(), profile)
    loader = _validation(source_run, payload["config"])
    x, _ = next(iter(loader))
    model(x.double())  # sets each layer's weight scale
    for k, layer in enumerate(graph.layers):
        scale = model.delays[k].weight_transform.scale.numpy()
        np.testing.assert_allclose(layer.projections[0].scale, scale, rtol=1e-12)
        cell = model.neurons[k] if k < len(model.neurons) else model.readout
        np.testing.assert_array_equal(layer.beta, cell.beta.numpy())  # decays rounded by fine-tuning already
        bias = model.folding(k)[1]
        rounded = model.number_format.bias.quantize(bias, model.delays[k].weight_transform.scale)
        np.testing.assert_allclose(layer.bias, rounded.numpy(), rtol=1e-12, atol=1e-12)
        if k < len(model.neurons):
            theta = model.number_format.threshold.quantize(cell.threshold, model.delays[k].weight_transform.scale)
            np.testing.assert_allclose(layer.threshold, theta.numpy(), rtol=1e-12)
    if target == "loihi2":
        assert isinstance(model.number_format.threshold, IntegerState)
        assert not np.array_equal(graph.layers[0].threshold, model.neurons[0].threshold.numpy())  # θ was rounded
    result = compare(model, graph, loader)
    assert result["prediction_agreement"] == 1.0
    if target == "int8":
        assert all(v == 1.0 for v in result["spike_agreement"].values()), result["spike_agreement"]
    else:  # integer thresholds: a float64 model may still land on the other side of an exact tie
        assert all(v >= 0.999 for v in result["spike_agreement"].values()), result["spike_agreement"]


@pytest.mark.parametrize("target", ["float", "int8", "loihi2", "xylo-audio2"])
def test_a_targets_number_format_has_typed_parts(target):
    fmt = NumberFormat.of(load_target(target))
    assert isinstance(fmt.decay, DecayFormat) and isinstance(fmt.threshold, StateFormat)
    assert isinstance(fmt.bias, StateFormat) and not isinstance(fmt.bias, DecayFormat)
    assert all(isinstance(decay_format(kind), DecayFormat) for kind in DECAY_KINDS)
