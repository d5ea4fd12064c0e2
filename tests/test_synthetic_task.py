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
    summaries = {d: train(make_config(dict(DEMO_SETTINGS, epochs=EPOCHS, delays=d)), root / "data", root / d)
                 for d in ("learned", "none")}
    return root, summaries


def test_learned_delays_beat_the_no_delay_ablation(runs):
    _, summaries = runs
    acc = {d: s["best_val_accuracy"] for d, s in summaries.items()}
    assert acc["learned"] > acc["none"] + 0.2, acc


def test_int8_compile_costs_at_most_half_a_point_on_the_test_set(runs):
    root, _ = runs
    report = compile_run(root / "learned", "int8", root / "int8.h5")
    trained = evaluate_run(root / "learned", root / "data")["accuracy"]
    compiled = evaluate_graph(root / "int8.h5", root / "data")["accuracy"]
    assert trained - compiled <= 0.005, (trained, compiled)
    assert report["validation"]["prediction_agreement"] >= 0.9  # measured 0.947 (8 epochs, seed 0)
