"""Compile: the DelayGraph reproduces the trained model; quantisation, fit policies, errors."""

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from delaynir.cli import main
from delaynir.compile.compiler import compare, compile_model, folded_layer
from delaynir.data import SpikeDataset, make_loader
from delaynir.errors import TargetError
from delaynir.hardware.profile import load_target, parse_target
from delaynir.ir.graph_io import load_graph
from delaynir.numerics.number_formats import decay_format
from delaynir.reference.simulate import simulate
from delaynir.train.run_dir import Run


@pytest.fixture(scope="module", params=["small_run_no_bn", "small_run"], ids=["no-bn", "bn"])
def run(request):
    """The session's small run without and with BatchNorm (read-only)."""
    return request.getfixturevalue(request.param)


@pytest.fixture(scope="module")
def data(small_task):
    return small_task / "data"


def _test_batches(data):
    ds = SpikeDataset(data / "test.h5", dt=0.01, n_steps=40, pool=1)
    return make_loader(ds, list(range(len(ds))), batch_size=48, shuffle=False)


def test_float_compile_reproduces_the_trained_model(run, data):
    model = Run(run).model
    graph, report = compile_model(model, load_target("float"))
    result = compare(model, graph, _test_batches(data))
    assert result["prediction_agreement"] == 1.0
    assert result["compiled_accuracy"] == result["trained_accuracy"]
    spikes = result["spike_agreement"]
    if not model.config.batchnorm:
        assert all(v == 1.0 for v in spikes.values()), spikes  # exactly the same spikes
    else:
        assert all(v >= 0.9999 for v in spikes.values()), spikes  # folded BatchNorm: rounding only
    assert report.layers[0]["weights_clipped"] == 0
    x, _ = next(iter(_test_batches(data)))
    assert 0 < float(simulate(graph, x, record=True).spikes["hidden1"].mean()) < 1  # the check is not vacuous


def test_batchnorm_folding_matches_the_layer_with_batchnorm(run):
    model = Run(run).model
    if not model.config.batchnorm:  # nothing to fold: the layer's own weights, bias 0
        w, b, d = folded_layer(model, 0)
        assert torch.equal(w, model.delays[0].weight.detach().double()) and not b.any()
        assert torch.equal(d, model.delays[0].integer_delays())
        return
    T = 20  # longer than every delay (max_delay 12)
    x = (torch.rand(T, 3, model.config.n_inputs) < 0.3).float()
    with torch.no_grad():
        expected = model.norms[0](model.delays[0](x).reshape(T * 3, -1)).view(T, 3, -1).double()
        w, b, d = folded_layer(model, 0)
        folded = torch.zeros_like(expected)
        for j in range(w.shape[0]):
            for i in range(w.shape[1]):
                folded[int(d[j, i]) :, :, j] += w[j, i] * x[: T - int(d[j, i]), :, i].double()
        folded += b
    torch.testing.assert_close(folded, expected, rtol=1e-5, atol=1e-5)


def test_int8_and_loihi2_weights_lie_on_the_grid(run):
    model = Run(run).model
    for name, lo, hi, step in (("int8", -128, 127, 1), ("loihi2", -256, 254, 2)):
        graph, _ = compile_model(model, load_target(name))
        for layer in graph.layers:
            w = layer.projections[0].weight
            assert np.all(w == np.round(w)) and w.min() >= lo and w.max() <= hi and np.all(w % step == 0)
            assert np.all(w != 0)  # zero weights removed
            if name == "loihi2" and np.isfinite(layer.threshold).all():  # integer thresholds: on the weight grid
                ratio = layer.threshold / layer.projections[0].scale
                np.testing.assert_allclose(ratio, np.round(ratio), atol=1e-9)
    graph, _ = compile_model(model, load_target("loihi2"))
    beta = graph.layers[0].beta
    np.testing.assert_allclose(4096 * (1 - beta), np.round(4096 * (1 - beta)), atol=1e-9)


def test_decay_representations():
    beta = np.array([0.9, 0.5, 0.99])
    np.testing.assert_allclose(decay_format("fixed12").quantize(beta), 1 - np.round(4096 * (1 - beta)) / 4096)
    np.testing.assert_allclose(decay_format("bitshift", 15).quantize(beta), [1 - 2**-3, 0.5, 1 - 2**-7])
    np.testing.assert_allclose(decay_format("bitshift", 4).quantize(beta), [1 - 2**-3, 0.5, 1 - 2**-4])


def test_delays_beyond_the_target_are_an_error_unless_a_policy_is_chosen(run, data):
    model = Run(run).model
    with torch.no_grad():
        model.delays[0].positions[:, :4] = 11.0  # delays of 11 steps, SpiNNaker2 allows 8
    profile = load_target("spinnaker2")
    with pytest.raises(TargetError) as err:
        compile_model(model, profile)
    message = str(err.value)
    assert message.startswith("model does not fit target spinnaker2")
    assert "layer 'hidden1'" in message and "delays above the maximum of 8 steps" in message
    assert "--fit relay-neurons" in message
    clipped, report = compile_model(model, profile, fit="clip-delays")
    assert clipped.max_delay <= 8 and report.layers[0]["delays_clipped"] >= 4 * 16
    relayed, report = compile_model(model, profile, fit="relay-neurons")
    assert relayed.max_delay <= 8 and report.relay_neurons > 0
    assert relayed.n_neurons == clipped.n_neurons + report.relay_neurons
    unlimited = parse_target(
        Path(profile.path).read_text().replace("max_delay = { value = 8,", "max_delay = { value = inf,"),
        source="spinnaker2 without a delay limit",
    )
    unexpanded, _ = compile_model(model, unlimited)
    assert unexpanded.max_delay == 11
    x, _ = next(iter(_test_batches(data)))
    a, b = simulate(relayed, x, record=True), simulate(unexpanded, x, record=True)
    assert torch.equal(a.output, b.output) and torch.equal(a.spikes["hidden1"], b.spikes["hidden1"])


def test_a_model_too_large_for_xylo_lists_every_violation(run):
    model = Run(run).model
    with pytest.raises(TargetError) as err:
        compile_model(model, load_target("xylo-audio2"))
    message = str(err.value)
    assert "12 input channels" not in message  # 12 inputs fit Xylo's 16
    assert "uses the 'hard' reset" in message and "no programmable delays" in message
    assert message.count("\n  - ") >= 2  # several violations in one error


def test_cli_targets_and_compile(run, tmp_path, capsys):
    assert main(["targets", "--json"]) == 0
    names = [t["name"] for t in json.loads(capsys.readouterr().out)]
    assert {"float", "int8", "loihi2", "spinnaker2", "xylo-audio2", "seneca"} <= set(names)
    out = tmp_path / "g.h5"
    assert main(["compile", str(run), "--target", "int8", "--out", str(out), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["target"] == "int8" and report["validation"]["n"] > 0
    graph = load_graph(out)
    assert graph.target == "int8" and graph.provenance["source_run"] == str(run.resolve())
    before = out.read_bytes()
    assert main(["compile", str(run), "--target", "int8", "--out", str(out)]) == 2
    assert "overwrite" in capsys.readouterr().err
    assert out.read_bytes() == before
    assert main(["compile", str(run), "--target", "nonesuch", "--out", str(tmp_path / "x.h5")]) == 2
    assert "built-in targets" in capsys.readouterr().err
    assert not (tmp_path / "x.h5").exists()


def test_finetuning_makes_the_model_compute_what_the_compiled_graph_computes(run, data, tmp_path, capsys):
    from delaynir.train.loop import finetune

    out = tmp_path / "ft"
    summary = finetune(run, "int8", out, epochs=1)
    assert summary["epochs"] == 1
    tuned = Run(out)
    model = tuned.model
    assert tuned.config.quantize_target == "int8" and tuned.weight_grid is not None
    assert all(layer.kernel == "rounded" and layer.weight_transform is not None for layer in model.delays)
    graph, _ = compile_model(model, load_target("int8"))
    result = compare(model, graph, _test_batches(data))
    assert result["prediction_agreement"] == 1.0
    assert all(v >= 0.9999 for v in result["spike_agreement"].values()), result["spike_agreement"]
    assert main(["finetune", str(run), "--target", "int8", "--epochs", "1", "--out", str(out)]) == 2
    assert "not empty" in capsys.readouterr().err
