"""Graded (real-valued) input through the pipeline: input spec, quantisation for a target, every simulator."""

import json
from dataclasses import replace

import h5py
import numpy as np
import pytest
import torch

from delaynir.cli import main
from delaynir.common.h5 import DIGEST_ATTR
from delaynir.compile.compiler import compile_run
from delaynir.errors import GraphFormatError, TargetError
from delaynir.handoff.verify import verify_path
from delaynir.hardware.fit import check_fit
from delaynir.hardware.profile import load_target
from delaynir.ir.graph import decode_input, encode_input, quantize_input
from delaynir.ir.graph_io import load_graph, save_graph, validate_graph
from delaynir.numerics.quantize import input_grid
from delaynir.train.run_dir import Run


def test_input_grid_and_codes():
    assert input_grid((0.0, 2.55), 8) == (pytest.approx(0.01), 0, 255)
    scale, q_min, q_max = input_grid((-1.0, 0.5), 4)
    assert (q_min, q_max) == (-7, 7) and scale == pytest.approx(1 / 7)
    codes = quantize_input(torch.tensor([-0.1, 0.004, 0.006, 1.0, 9.0]), 0.01, 0, 255)
    assert codes.tolist() == [0, 0, 1, 100, 255] and codes.dtype == torch.float64


def test_a_graded_run_records_its_input(graded_run):
    info = Run(graded_run).data_info
    assert info["encoding"] == "graded" and info["n_inputs"] == 8 and info["n_steps"] == 30
    lo, hi = info["value_range"]
    assert lo >= 0 and 1.5 < hi < 1.8


def test_compile_quantises_graded_input_and_reports_its_cost(graded_run, tmp_path):
    report = compile_run(graded_run, "int8", tmp_path / "g.h5")
    graph = load_graph(tmp_path / "g.h5")
    spec = graph.input.to_dict()
    assert graph.encoding == "graded" and spec["bits"] == 8 and spec["code_range"] == [0, 255]
    assert spec["input_scale"] == pytest.approx(spec["value_range"][1] / 255)
    assert report.input["bits"] == 8
    val = report.validation
    assert set(val) >= {"trained_accuracy", "trained_accuracy_quantized_input", "compiled_accuracy"}
    x = torch.rand(5, 2, 8) * 1.6
    codes = encode_input(graph, x)
    assert torch.equal(codes, torch.round(codes)) and codes.max() <= 255
    assert torch.allclose(decode_input(graph, codes), x.double(), atol=spec["input_scale"] / 2 + 1e-12)
    float_graph = load_graph(compile_run(graded_run, "float", tmp_path / "f.h5").out)
    assert float_graph.encoding == "graded" and "bits" not in float_graph.input.to_dict()  # float input: unquantised
    assert torch.equal(encode_input(float_graph, x), x)


@pytest.mark.parametrize("target", ["int8", "float"])
def test_verify_is_spike_exact_with_graded_input_in_every_simulator(graded_run, target):
    report = verify_path(
        graded_run, graded_run.parent / "data", sims=["norse", "snntorch", "onnxruntime"], target=target, batch_size=16
    )
    assert report.worst_agreement == 1.0
    for name in ("norse", "snntorch", "onnxruntime"):
        assert set(report.simulators[name]["spike_agreement"].values()) == {1.0}


def test_graded_input_on_a_spikes_only_target_is_refused(graded_run, tmp_path, capsys):
    out = tmp_path / "s2.h5"
    code = main(["compile", str(graded_run), "--target", "spinnaker2", "--fit", "relay-neurons", "--out", str(out)])
    err = capsys.readouterr().err
    assert code == 2 and not out.exists()
    assert "graded" in err and "spikes only" in err and "first layer on the host" in err
    float_graph = load_graph(compile_run(graded_run, "float", tmp_path / "f.h5").out)
    limits = {v.limit for v in check_fit(float_graph, load_target("int8"))}
    assert "input_bits" in limits  # float input on an 8-bit-input target


def test_graded_spec_round_trips_and_is_validated(graded_run, tmp_path):
    compile_run(graded_run, "int8", tmp_path / "g.h5")
    graph = load_graph(tmp_path / "g.h5")
    again = load_graph(save_graph(graph, tmp_path / "again.h5"))
    assert again.input == graph.input
    graph.input = replace(graph.input, bits=0, input_scale=-1.0)
    problems = validate_graph(graph)
    assert any("input: bits" in p for p in problems) and any("input: input_scale" in p for p in problems)
    with pytest.raises(GraphFormatError, match="input_scale"):
        save_graph(graph, tmp_path / "bad.h5")


def test_a_version_1_file_reads_as_spike_input(graded_run, tmp_path):
    compile_run(graded_run, "int8", tmp_path / "g.h5")
    with h5py.File(tmp_path / "g.h5", "r+") as f:  # as version 1 wrote it: no content digest yet
        f.attrs["format_version"] = np.int64(1)
        f.attrs["input"] = json.dumps({"n_channels": 8, "encoding": "counts"})
        del f.attrs[DIGEST_ATTR]
    graph = load_graph(tmp_path / "g.h5")
    assert graph.encoding == "spikes" and graph.input.encoding == "counts"


def test_bundle_and_report_with_graded_input(graded_run, tmp_path):
    assert (
        main(["-q", "bundle", str(graded_run), "--target", "int8", "--out", str(tmp_path / "b"), "--samples", "4"]) == 0
    )
    with h5py.File(tmp_path / "b" / "test_vectors.h5") as f:
        inputs = f["inputs"][()]
    assert np.array_equal(inputs, np.round(inputs)) and inputs.max() <= 255 and inputs.max() > 1
    assert "8-bit integer codes" in (tmp_path / "b" / "README.md").read_text()
    assert main(["-q", "bundle", "--check", str(tmp_path / "b")]) == 0
    with pytest.raises(TargetError):
        compile_run(graded_run, "seneca", tmp_path / "x.h5")


def test_the_report_draws_graded_input_as_an_image(graded_run, tmp_path):
    from delaynir.handoff.report import write_report

    report = write_report(graded_run, tmp_path / "rep", target="int8")
    assert report["input_encoding"] == "graded"
    assert "graded input drawn as an image" in (tmp_path / "rep" / "report.html").read_text()
    assert report["verification"]["simulators"]["onnxruntime"]["prediction_agreement"] == 1.0


def test_the_hidden_layer_spikes(graded_run):
    metrics = [json.loads(line) for line in (graded_run / "metrics.jsonl").read_text().splitlines()]
    # verification compares real spikes, not silence; measured 0.17-0.29 over seeds 0-5, so the bounds hold
    # whatever order a machine's kernels sum in
    assert 0.01 < metrics[-1]["spike_rates"][0] < 0.9


def test_finetuning_feeds_the_model_the_input_codes_the_compiled_graph_receives(graded_run, tmp_path):
    from delaynir.train.loop import finetune

    finetune(graded_run, "int8", tmp_path / "ft", epochs=1)
    run = Run(tmp_path / "ft")
    report = compile_run(run, "int8", tmp_path / "ft.h5")
    graph = load_graph(tmp_path / "ft.h5")
    spec = graph.input.to_dict()
    assert run.number_format.input == pytest.approx((spec["input_scale"], *spec["code_range"]))
    assert run.payload["number_format"]["input"][1:] == spec["code_range"]  # stored in the run
    x = torch.rand(30, 4, 8) * 1.6
    with torch.no_grad():
        on_values = run.model(x)
        on_codes = run.model(decode_input(graph, encode_input(graph, x)).float())
    assert torch.equal(on_values, on_codes)  # the model quantises its input itself
    val = report.validation
    assert val["trained_accuracy"] == val["trained_accuracy_quantized_input"]
    assert val["prediction_agreement"] == 1.0
