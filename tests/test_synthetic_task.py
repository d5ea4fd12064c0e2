"""The claims on the built-in task, from short CPU runs with the demo's settings (seed 0).

An 8-epoch model's accuracy depends on the order the CPU's kernels sum floats in (the same seed gives the
same weights on one machine, not on every machine): seed 0 reached 0.653 test accuracy on one machine and
0.667 on an AVX-512 Xeon. So the claims on these runs are bounds measured across seeds and machines with a
wide margin, and what compile guarantees for any weights is asserted exactly (test_compile.py for more).
"""

import numpy as np
import torch

from delaynir.compile.compiler import compare, compile_model, compile_run, folded_layer
from delaynir.data import make_loader
from delaynir.handoff.graph_data import evaluate_graph
from delaynir.hardware.profile import load_target
from delaynir.ir.graph_io import load_graph
from delaynir.train.evaluate import evaluate_run
from delaynir.train.run_dir import Run


def test_learned_delays_beat_the_no_delay_ablation(demo_task_runs):
    """Best validation accuracy after 8 epochs (10 classes, chance 0.1), measured learned vs none: 0.667 vs
    0.235 (seed 0), 0.660 vs 0.189 (seed 1), 0.684 vs 0.224 (seed 2); a gap of 0.43 or more, so a bound of 0.2
    holds with room to spare on any machine while an ablation that learned as much (delays doing nothing) fails."""
    _, summaries = demo_task_runs
    acc = {d: s["best_val_accuracy"] for d, s in summaries.items()}
    assert acc["learned"] > acc["none"] + 0.2, acc


def test_int8_compile_rounds_every_weight_to_the_nearest_point_of_its_grid(demo_task_runs, tmp_path):
    """What int8 compile guarantees for any weights: per output neuron j a scale s_j = max |W_j| / 127, every
    synapse's integer weight within half a step of W / s_j (zeros removed), its delay the trained one."""
    root, _ = demo_task_runs
    model = Run(root / "learned").model
    graph = load_graph(compile_run(root / "learned", "int8", tmp_path / "int8.h5").out)
    for k, layer in enumerate(graph.layers):
        w, _, d = (t.double().numpy() for t in folded_layer(model, k))
        (proj,) = layer.projections
        np.testing.assert_allclose(proj.scale, np.abs(w).max(axis=1) / 127, rtol=1e-6)
        q = np.zeros_like(w)
        q[proj.post, proj.pre] = proj.weight
        assert np.all(q == np.round(q)) and np.abs(q).max() <= 127 and np.all(proj.weight != 0)
        assert np.all(np.abs(q - w / proj.scale[:, None]) <= 0.5 + 1e-4), layer.name  # float32 weights: 1e-4
        np.testing.assert_array_equal(proj.delay, d[proj.post, proj.pre])


def test_a_model_on_the_int8_grid_compiles_to_exactly_its_decisions(demo_task_runs):
    """Where rounding changes no weight, int8 compile changes no decision: the learned model with each weight
    moved onto its int8 grid point beforehand predicts and spikes exactly as its compiled graph does."""
    root, _ = demo_task_runs
    run = Run(root / "learned")
    model = run.model.double()
    with torch.no_grad():
        for layer in model.delays:
            scale = layer.weight.abs().amax(dim=1, keepdim=True) / 127
            layer.weight.copy_(torch.round(layer.weight / scale) * scale)
    graph, _ = compile_model(model, load_target("int8"))
    test = make_loader(run.dataset(run.test_file()), list(range(100)), batch_size=100, shuffle=False)
    result = compare(model, graph, test)
    assert result["prediction_agreement"] == 1.0 and result["compiled_accuracy"] == result["trained_accuracy"]
    assert set(result["spike_agreement"].values()) == {1.0}, result["spike_agreement"]


def test_int8_compile_keeps_the_models_decisions(demo_task_runs, tmp_path):
    """int8 changes a small network's decisions only near its boundaries. Measured (8 epochs, trained →
    compiled test accuracy, validation predictions kept): seed 0 0.653 → 0.643 (96 %), seed 1 0.637 → 0.643
    (96 %), seed 2 0.657 → 0.647 (94 %) on one machine, seed 0 0.667 → 0.643 on an AVX-512 Xeon. The bounds,
    8 points and 80 %, hold with a wide margin whatever the machine; a broken compile falls to chance (0.1)
    and far below both."""
    root, _ = demo_task_runs
    report = compile_run(root / "learned", "int8", tmp_path / "int8.h5")
    trained = evaluate_run(root / "learned", root / "data")["accuracy"]
    compiled = evaluate_graph(tmp_path / "int8.h5", root / "data")["accuracy"]
    assert abs(trained - compiled) <= 0.08, (trained, compiled)
    assert report.validation["prediction_agreement"] >= 0.8, report.validation
