"""The main job on built-in data: generate the synthetic task, train with learned delays, the
no-delay ablation and delays learned by pruning over delay taps, evaluate them on the held-out
test file with rounded delays, and
compile the learned-delay model for a target (int8 by default) into a DelayGraph whose
accuracy in the reference simulator is reported next to the trained model's, export it as
NIR and ONNX, and verify on the test set that norse and snnTorch (running the NIR file) and
ONNX Runtime (running the ONNX file) reproduce the reference simulator; finally write the
hand-off bundle (delaynir.handoff.bundle) and the visual report of the learned run (delaynir.handoff.report).
The learned-delay model is also compiled for the first installed chip target's profile
(``delaynir.plugins.default_chip``), whose reference simulation is the chip's fixed-point arithmetic; its
test accuracy is reported against the trained model's, and the float executors against the same graph in
float64.
Where espeak-ng is installed, it also generates a small spoken-digit set (``delaynir data
speech``: five speakers, one of them only in the test file) and trains the learned-delay model
on it, reporting test accuracy overall and on the unseen speaker; then turns the same recordings
into the paper's mel-filterbank frames (``delaynir data audio``), trains the paper's one-layer
network on that graded input (``--preset rawhd-paper``), compiles it with quantised input and
verifies it in the same simulators.

The pipeline grows as capabilities land (compile, export, verify); ``run_demo`` returns
every figure it measured as one dict (verifications as ``delaynir.handoff.verify.VerifyReport``).
"""

from __future__ import annotations

import logging
import shutil
from pathlib import Path
from typing import Any

from delaynir import plugins
from delaynir.common.outputs import check_output
from delaynir.compile.compiler import compile_run
from delaynir.data import SpeechConfig, SynthConfig, convert_audio, generate_speech, generate_synthetic
from delaynir.data.speech import SpeechToolError
from delaynir.errors import ConfigError
from delaynir.export.executors import EXECUTORS, NIR, ONNX, external
from delaynir.handoff.bundle import write_bundle
from delaynir.handoff.report import write_report
from delaynir.handoff.verify import verify_path
from delaynir.ir.graph_io import load_graph
from delaynir.train.config import make_config
from delaynir.train.evaluate import evaluate_run
from delaynir.train.loop import train
from delaynir.train.presets import preset_values

log = logging.getLogger(__name__)

MARKER = ".delaynir-demo"

#: Training settings of the demo: small enough for a few minutes on 2 CPU cores.
DEMO_SETTINGS: dict[str, Any] = {
    "hidden": [64, 64],
    "max_delay": 25,
    "epochs": 20,
    "batch_size": 50,
    "lr": 5e-3,
    "dropout": 0.1,
    "val_fraction": 0.2,
}


#: The demo's runs: learned DCLS delays, the no-delay ablation, and delays learned as structure
#: (DEEP R + RigL over (pre, post, tap) candidates keeping 2 % of them: half the synapse count of the
#: dense pairs).
DEMO_RUNS: dict[str, dict[str, Any]] = {
    "learned": {"delays": "learned"},
    "none": {"delays": "none"},
    "pruned": {"delays": "learned", "sparsity": 0.98, "prune": "deepr-rigl", "structure": "taps"},
}


#: The demo's spoken digits: speakers 0-3 for training (one held out for validation), speaker 4 only in
#: the test file, 4 trials per speaker and digit (400 utterances, seconds to generate).
DEMO_SPEECH = SpeechConfig(speakers=(0, 1, 2, 3, 4), test_speakers=(4,), trials=4)


def _prepare_out(out: Path, force: bool) -> None:
    check_output(out, overwrite=True, directory=True)  # a directory, not under a file
    if out.exists() and any(out.iterdir()):
        if not force:
            raise ConfigError(
                f"{out} already exists and is not empty; choose another --out, "
                "or pass --force to replace an earlier demo there"
            )
        if not (out / MARKER).exists():
            raise ConfigError(f"{out} was not written by `delaynir demo`; refusing to replace it even with --force")
        shutil.rmtree(out)
    out.mkdir(parents=True, exist_ok=True)
    (out / MARKER).write_text("written by delaynir demo; `delaynir demo --force` may replace this directory\n")


def run_demo(
    out: str | Path,
    *,
    device: str = "auto",
    epochs: int | None = None,
    seed: int = 0,
    force: bool = False,
    progress: bool = False,
    target: str = "int8",
) -> dict[str, Any]:
    out = Path(out)
    _prepare_out(out, force)
    synth = SynthConfig(seed=seed)
    train_path, test_path = generate_synthetic(out / "data", synth)
    log.info("synthetic task written to %s", out / "data")
    results: dict[str, Any] = {"out": str(out), "data": {"train": str(train_path), "test": str(test_path)}, "runs": {}}
    for name, extra in DEMO_RUNS.items():
        settings = dict(DEMO_SETTINGS, **extra, device=device, seed=seed)
        if epochs is not None:
            settings["epochs"] = epochs
        run_dir = out / "runs" / name
        summary = train(make_config(settings), out / "data", run_dir, progress=progress)
        test = evaluate_run(run_dir, test_path, device=device)
        results["runs"][name] = {
            "run_dir": str(run_dir),
            "best_epoch": summary["best_epoch"],
            "val_accuracy": summary["best_val_accuracy"],
            "test_accuracy": test["accuracy"],
            "test_accuracy_gaussian": test.get("accuracy_gaussian"),
        }
    demo_settings = dict(DEMO_SETTINGS, device=device, seed=seed, **({"epochs": epochs} if epochs is not None else {}))
    results["speech"] = _speech_run(out, demo_settings, progress)
    results["graded"] = (
        results["speech"] if "skipped" in results["speech"] else _graded_run(out, demo_settings, target, progress)
    )
    graph_path = out / f"learned.{target}.delaygraph.h5"
    report = compile_run(out / "runs" / "learned", target, graph_path)
    graph = load_graph(graph_path)
    results["nir"] = str(NIR.write(graph, out / f"learned.{target}.nir"))
    results["onnx"] = str(ONNX.write(graph, out / f"learned.{target}.onnx"))
    results["verification"] = verify_path(graph_path, test_path, progress=progress)
    results["compiled"] = {
        "target": report.target,
        "graph": str(graph_path),
        "neurons": report.neurons,
        "synapses": report.synapses,
        "max_delay": report.max_delay,
        "validation": report.validation,
        "test_accuracy": results["verification"].reference_accuracy,
    }
    chip = plugins.default_chip()
    if chip is not None:
        results["chip"] = _chip_leg(
            out / "runs" / "learned", chip, out, test_path, results["runs"]["learned"]["test_accuracy"], progress
        )
    manifest = write_bundle(out / "runs" / "learned", target, out / "bundle", data=test_path, progress=progress)
    results["bundle"] = {
        "out": manifest.out,
        "files": sorted(manifest.files) + ["manifest.json"],
        "verification": manifest.verification,
    }
    page = write_report(out / "runs" / "learned", out / "report", data=test_path, progress=progress)
    results["report"] = {
        "html": page["html"],
        "test_accuracy": page["test_accuracy"],
        "clustering": page["clustering"],
        "hardware_fit": page["hardware_fit"],
    }
    return results


def _chip_leg(
    run_dir: Path, chip: str, out: Path, test_path: Path, trained_accuracy: float, progress: bool
) -> dict[str, Any]:
    """``run_dir`` compiled for ``chip`` into ``out``: test accuracy in the chip's arithmetic vs the trained model's
    (``trained_accuracy``), and the float executors verified against the same graph in float64."""
    graph_path = out / f"{run_dir.name}.{chip}.delaygraph.h5"
    report = compile_run(run_dir, chip, graph_path)
    float_executors = [name for name in external() if EXECUTORS[name].arithmetic == "float64"]  # not a chip simulator
    verification = verify_path(graph_path, test_path, sims=float_executors, progress=progress)
    accuracy = verification.reference_accuracy
    return {
        "target": chip,
        "graph": str(graph_path),
        "arithmetic": verification.arithmetic,
        "validation": report.validation,
        "test_accuracy": accuracy,
        "trained_test_accuracy": trained_accuracy,
        "cost_pp": 100 * (trained_accuracy - accuracy),
        "verification": verification,
    }


def _speech_run(out: Path, settings: dict[str, Any], progress: bool) -> dict[str, Any]:
    """Spoken digits (DEMO_SPEECH) and a learned-delay run on them; skipped, with the reason, without espeak-ng."""
    try:
        generate_speech(out / "speech", DEMO_SPEECH, progress=progress)
    except SpeechToolError as exc:
        log.warning("skipping the spoken-digit part of the demo: %s", exc)
        return {"skipped": str(exc)}
    run_dir = out / "runs" / "speech"
    summary = train(make_config(settings), out / "speech", run_dir, progress=progress)
    test = evaluate_run(run_dir, out / "speech" / "test.h5", device=settings["device"])
    return {
        "data": str(out / "speech"),
        "run_dir": str(run_dir),
        "val_accuracy": summary["best_val_accuracy"],
        "test_accuracy": test["accuracy"],
        "unseen_speakers": test.get("unseen_speakers"),
    }


#: The graded leg trains the paper's network (its preset) on the demo's few hundred recordings for 3× the
#: demo's epochs at batch 32 (~15 s on 2 cores; the preset's batch 256 would make one update per epoch).
GRADED_EPOCHS_FACTOR, GRADED_BATCH = 3, 32


def _graded_run(out: Path, settings: dict[str, Any], target: str, progress: bool) -> dict[str, Any]:
    """The demo's recordings as mel frames, the paper's network on them (its preset; epochs and batch as
    GRADED_*, the demo's validation share), compiled for ``target`` with quantised input and verified."""
    frames = out / "frames"
    convert_audio(out / "speech", frames, progress=progress)
    demo = {k: settings[k] for k in ("val_fraction", "device", "seed")}
    demo.update(epochs=settings["epochs"] * GRADED_EPOCHS_FACTOR, batch_size=GRADED_BATCH)
    run_dir = out / "runs" / "graded"
    summary = train(make_config(dict(preset_values("rawhd-paper"), **demo)), frames, run_dir, progress=progress)
    test = evaluate_run(run_dir, frames / "test.h5", device=settings["device"])
    graph_path = out / f"graded.{target}.delaygraph.h5"
    report = compile_run(run_dir, target, graph_path)
    verification = verify_path(graph_path, frames / "test.h5", progress=progress)
    return {
        "data": str(frames),
        "run_dir": str(run_dir),
        "val_accuracy": summary["best_val_accuracy"],
        "test_accuracy": test["accuracy"],
        "unseen_speakers": test.get("unseen_speakers"),
        "compiled": {
            "graph": str(graph_path),
            "validation": report.validation,
            "test_accuracy": verification.reference_accuracy,
        },  # the reference simulator's
        "verification": verification,
    }
