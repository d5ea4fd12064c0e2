"""The claims on the built-in task, from short CPU runs with the demo's settings (seed 0)."""

import pytest

from delaynir.compile import compile_run
from delaynir.config import make_config
from delaynir.data import SynthConfig, generate_synthetic
from delaynir.demo import DEMO_SETTINGS
from delaynir.evaluate import evaluate_graph, evaluate_run
from delaynir.train import train

EPOCHS = 8


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("task")
    generate_synthetic(root / "data", SynthConfig(seed=0))
    summaries = {
        d: train(make_config(dict(DEMO_SETTINGS, epochs=EPOCHS, delays=d)), root / "data", root / d)
        for d in ("learned", "none")
    }
    return root, summaries


def test_learned_delays_beat_the_no_delay_ablation(runs):
    _, summaries = runs
    acc = {d: s["best_val_accuracy"] for d, s in summaries.items()}
    assert acc["learned"] > acc["none"] + 0.2, acc


def test_int8_compile_keeps_the_models_decisions(runs):
    """int8 changes a small network's decisions only near its boundaries: measured on this task (seed 0),
    trained → compiled test accuracy 0.653 → 0.643 after 8 epochs, 0.740 → 0.750 after 12, 0.803 → 0.797
    after 16, with 94–98 % of validation predictions kept; so the bound here is 2 points (6 of 300
    samples), which a broken compile exceeds by far. The ≤ 0.5 pp claim is for the trained spoken-digit
    model (README, Results: 0.15 pp)."""
    root, _ = runs
    report = compile_run(root / "learned", "int8", root / "int8.h5")
    trained = evaluate_run(root / "learned", root / "data")["accuracy"]
    compiled = evaluate_graph(root / "int8.h5", root / "data")["accuracy"]
    assert trained - compiled <= 0.02, (trained, compiled)
    assert report.validation["prediction_agreement"] >= 0.9  # measured 0.939 and 0.947 (8 epochs, seed 0)
