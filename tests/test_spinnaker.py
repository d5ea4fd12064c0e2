"""The spinnaker target's fit check and sPyNNaker's own mapping agree, on both sides of each limit.

sPyNNaker 1!7.4.1 maps the PyNN file onto a virtual SpiNN-5 board in its own environment
(targets/spinnaker/build_spynnaker_env.sh); those tests skip without it and fail under CI=true. A model beyond the
target gets delaynir's fit error before sPyNNaker is called, and a model the fit check accepts is accepted by
sPyNNaker, with the cores the fit check counted and no delay-extension core.
"""

import json

import numpy as np
import pytest

from delaynir.cli import main
from delaynir.export.tool_checks import tool_checks
from delaynir.hardware.fit import check_fit
from delaynir.hardware.profile import load_target
from delaynir.ir.graph import INPUT, DelayGraph, InputSpec, Layer, Projection
from delaynir.ir.graph_io import save_graph
from delaynir.targets.spinnaker import fit
from delaynir.targets.spinnaker.run_pynn import neurons_per_core

PROFILE = load_target("spinnaker")


def spinnaker_graph(n: int, delays: tuple[int, int], *, n_inputs: int = 20, readout: int = 0, seed: int = 0):
    """A graph as compile makes it for spinnaker: integer weights within 12 bits on per-neuron scales; one lif
    layer of ``n`` neurons (4 synapses each, delays in [lo, hi)) and an optional li readout."""
    rng = np.random.default_rng(seed)
    pre, post = rng.integers(0, n_inputs, 4 * n), np.repeat(np.arange(n), 4)
    weight = rng.integers(-4095, 4096, 4 * n).astype(float)
    hidden = Projection(INPUT, pre, post, rng.integers(*delays, 4 * n), weight, rng.uniform(1e-4, 1e-3, n))
    layers = [Layer("h", n, "lif", np.full(n, 0.9), np.full(n, 1.0), np.full(n, 0.01), [hidden])]
    if readout:
        into = Projection("h", np.arange(n), np.arange(n) % readout, np.ones(n, int), np.ones(n), np.ones(readout))
        beta, theta = np.full(readout, 0.9), np.full(readout, np.inf)
        layers.append(Layer("out", readout, "li", beta, theta, np.zeros(readout), [into]))
    return DelayGraph(0.001, n_inputs, layers, target="spinnaker")


def mapping(graph: DelayGraph) -> dict:
    (check,) = tool_checks(graph)
    return check.run(graph)


def test_neurons_per_core_keep_every_delay_in_sPyNNakers_native_range():
    """2^(13 − ⌈log2 n⌉) native steps at n neurons per core (SPYNNAKER_NOTES §2: 32 at 256, 4096 at 1–2)."""
    assert [neurons_per_core(d) for d in (1, 32, 33, 64, 65, 256, 257, 4096)] == [256, 256, 128, 128, 64, 32, 16, 2]
    for d in range(1, 4097, 37):
        n = neurons_per_core(d)
        assert 2 ** (13 - int(np.ceil(np.log2(max(n, 2))))) >= d and (n == 256 or 2 ** (13 - int(np.log2(2 * n))) < d)


@pytest.mark.usefixtures("need_spynnaker")
def test_sPyNNaker_maps_what_the_fit_check_accepts_with_the_cores_it_counted():
    graph = spinnaker_graph(300, (1, 40), readout=10)  # hidden: 128 per core (3 cores); readout: 256 per core
    assert check_fit(graph, PROFILE) == []
    result = mapping(graph)
    assert result["status"] == "accepted" and result["delay_extension_cores"] == 0
    assert result["cores"] == fit.cores(graph) == 1 + 3 + 1 + 1  # input, hidden, its bias source, readout
    assert "nothing was executed" in result["note"]


@pytest.mark.usefixtures("need_spynnaker")
def test_one_board_holds_759_cores_in_both_delaynir_and_sPyNNaker():
    """Delays 2000–3000 steps: 2 neurons per core. 1516 neurons need 759 cores, 1518 need 760."""
    fits, beyond = spinnaker_graph(1516, (2000, 3000)), spinnaker_graph(1518, (2000, 3000))
    fits.layers[0].bias[:] = beyond.layers[0].bias[:] = 0  # no bias source: only neuron cores and the input's
    assert fit.cores(fits) == fit.BOARD_CORES and fit.cores(beyond) == fit.BOARD_CORES + 1
    assert check_fit(fits, PROFILE) == [] and [v.limit for v in check_fit(beyond, PROFILE)] == ["cores"]
    assert mapping(fits)["status"] == "accepted"
    refused = mapping(beyond)
    assert refused["status"] == "refused" and "PacmanPlaceException" in refused["error"]


@pytest.mark.parametrize(
    ("graph", "limit"),
    [
        (spinnaker_graph(1518, (2000, 3000)), "cores"),
        (spinnaker_graph(4, (4096, 4097)), "max_delay"),  # 4096 + the lag of 1: beyond 4096 as PyNN carries it
        (spinnaker_graph(4, (1, 5)), "graded_input"),
    ],
    ids=["too many neurons for the delays", "delay beyond the native range", "graded input"],
)
def test_a_model_beyond_the_target_gets_delaynirs_fit_error_before_sPyNNaker_is_called(
    graph, limit, tmp_path, monkeypatch, capsys
):
    if limit == "graded_input":
        graph.input = InputSpec(encoding="graded", value_range=(0.0, 1.0))
    monkeypatch.setenv("DELAYNIR_SPYNNAKER_PYTHON", str(tmp_path / "never" / "python"))  # not needed: not called
    path = save_graph(graph, tmp_path / "g.h5")
    assert main(["map", str(path)]) == 2
    assert "model does not fit target spinnaker" in capsys.readouterr().err
    assert limit in {v.limit for v in check_fit(graph, PROFILE)}


@pytest.mark.usefixtures("need_spynnaker")
def test_map_reports_the_mapping_and_refuses_a_graph_of_another_target(tmp_path, capsys):
    path = save_graph(spinnaker_graph(40, (1, 10)), tmp_path / "g.h5")
    assert main(["map", str(path), "--json"]) == 0
    result = json.loads(capsys.readouterr().out)["checks"]["spynnaker"]
    assert result["status"] == "accepted" and result["cores"] == 3 and result["chips"] >= 1
    graph = spinnaker_graph(40, (1, 10))
    graph.target = "int8"
    other = save_graph(graph, tmp_path / "int8.h5")
    assert main(["map", str(other)]) == 2
    assert "which no installed vendor tool checks (installed: spynnaker for spinnaker)" in capsys.readouterr().err


@pytest.mark.usefixtures("need_spynnaker")
def test_a_refusal_by_sPyNNaker_is_a_fit_error_in_its_own_words(tmp_path, monkeypatch, capsys):
    """With the board limit lifted from delaynir's fit check, the 760-core model reaches sPyNNaker, which refuses
    it: exit 2, its words, the gap named."""
    monkeypatch.setattr(fit, "BOARD_CORES", 10_000)
    graph = spinnaker_graph(1518, (2000, 3000))
    graph.layers[0].bias[:] = 0
    assert main(["map", str(save_graph(graph, tmp_path / "g.h5"))]) == 2
    err = capsys.readouterr().err
    assert "the vendor's tool refused it, although delaynir's fit check accepted it" in err
    assert "spynnaker: sPyNNaker refused model.pynn.h5: pacman.exceptions.PacmanPlaceException" in err


@pytest.mark.usefixtures("need_spynnaker", "need_nest")
def test_a_spinnaker_bundle_holds_the_pynn_model_nest_replays_it_and_sPyNNaker_maps_it(small_run, tmp_path, capsys):
    out = tmp_path / "bundle"
    assert main(["-q", "bundle", str(small_run), "--target", "spinnaker", "--out", str(out), "--samples", "4"]) == 0
    assert {"model.pynn.h5", "run_pynn.py"} <= {p.name for p in out.iterdir()}
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["verification"]["nest"]["status"] == "exact"
    mapped = manifest["tool_checks"]["spynnaker"]
    assert mapped["status"] == "accepted" and mapped["delay_extension_cores"] == 0 and mapped["cores"] >= 4
    readme = (out / "README.md").read_text()
    assert "## Running `model.pynn.h5`" in readme and "python run_pynn.py model.pynn.h5" in readme
    capsys.readouterr()
    assert main(["bundle", "--check", str(out), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["simulators"]["nest"]["status"] == "exact"
    assert report["tool_checks"]["spynnaker"]["cores"] == mapped["cores"]


@pytest.mark.usefixtures("need_spynnaker")
def test_the_shipped_script_runs_the_file_with_sPyNNaker_end_to_end(tmp_path):
    """run_pynn.py as a SpiNNaker user runs it (here on a virtual board, whose recordings are empty): every sample
    set up, built, run and read back; the result file has the test vectors' layout. Refuses an existing --out."""
    import shutil
    import subprocess

    import h5py

    from delaynir.targets.spinnaker import mapping
    from delaynir.targets.spinnaker.pynn_export import export_pynn

    graph = spinnaker_graph(6, (1, 40), n_inputs=5, readout=3)
    export_pynn(graph, tmp_path / "model.pynn.h5")
    shutil.copy(mapping.RUNNER.with_name("run_pynn.py"), tmp_path)
    with h5py.File(tmp_path / "in.h5", "w") as f:
        f["inputs"] = (np.random.default_rng(1).random((12, 2, 5)) < 0.3).astype(float)
    for name in ("spynnaker.cfg", ".spynnaker.cfg"):
        (tmp_path / name).write_text(mapping.CONFIG)
    env = {"HOME": str(tmp_path), "XDG_CONFIG_HOME": str(tmp_path / ".config"), "MPLBACKEND": "Agg", "PATH": "/usr/bin"}
    command = [str(mapping.ENVIRONMENT.python()), "run_pynn.py", "model.pynn.h5", "--inputs", "in.h5", "--out", "r.h5"]
    done = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    with h5py.File(tmp_path / "r.h5") as f:
        assert f["spikes/h"].shape == (12, 2, 6) and f["spikes/h"].dtype == np.uint8
        assert f["membranes/out"].shape == (12, 2, 3)
    again = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert again.returncode == 2 and "r.h5 exists" in again.stderr
