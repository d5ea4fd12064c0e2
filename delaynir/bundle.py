"""Hand-off bundle for hardware teams: one directory with everything needed to bring a model up.

Files (docs/bundle.md describes each and how to use it):

    model.delaygraph.h5   the compiled DelayGraph (docs/delaygraph-format.md)
    model.nir             the same graph as NIR (docs/nir-export.md)
    model.onnx            the same graph as a per-step ONNX model (docs/onnx-format.md)
    test_vectors.h5       input frames of test samples and the reference simulator's expected
                          spikes and membranes of every layer, and the expected predictions
    manifest.json         SHA-256 of every file, library versions, target profile, dt, quantisation,
                          sizes, trained-vs-compiled accuracy, verification per simulator
    README.md             for the receiving team: the files, how to replay, the exact equations

``write_bundle`` builds it in a hidden sibling directory and renames it into place at the end,
so an interrupted write never leaves a directory that looks complete. ``check_bundle``
re-verifies a bundle from its files alone.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import platform
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import torch

from delaynir import __version__
from delaynir.errors import ConfigError, DelayNIRError
from delaynir.runs import atomic_dir
from delaynir.simulate import SimulationResult, simulate

log = logging.getLogger(__name__)

BUNDLE_FORMAT_VERSION = 1
GRAPH, NIR, ONNX, VECTORS, MANIFEST, README = (
    "model.delaygraph.h5", "model.nir", "model.onnx", "test_vectors.h5", "manifest.json", "README.md")
#: Simulators that replay the exported files, and the file each one runs.
CHECK_SIMULATORS = {"norse": NIR, "snntorch": NIR, "onnxruntime": ONNX}
LIBRARIES = ("torch", "numpy", "h5py", "nir", "nirtorch", "norse", "snntorch", "onnx", "onnxruntime")
DESCRIPTIONS = {
    GRAPH: "compiled DelayGraph (HDF5; layout in delaynir's docs/delaygraph-format.md)",
    NIR: "the same graph as NIR (nir.Delay for per-synapse delays; docs/nir-export.md)",
    ONNX: "the same graph as a per-step ONNX model with explicit state (docs/onnx-format.md)",
    VECTORS: "test inputs and the reference simulator's expected spikes, membranes and predictions",
    README: "this bundle explained for the receiving team",
}


# ----------------------------------------------------------------------------- shared helpers


def run_test_data(run_dir: str | Path, data: str | Path | None = None) -> Path:
    """The test file for a run: ``data`` (a file, or a directory's test.h5), else test.h5 beside its train file."""
    from delaynir.evaluate import load_trained
    from delaynir.train import data_file

    if data is None:
        _, payload = load_trained(run_dir)
        data = Path(payload["data"]["train_file"]).parent
    return data_file(data, "test.h5")


def sha256(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def library_versions() -> dict[str, str | None]:
    """Installed versions of delaynir, Python and every library the bundle's files were made or checked with."""
    out: dict[str, str | None] = {"delaynir": __version__, "python": platform.python_version()}
    for name in LIBRARIES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = None
    return out


# ----------------------------------------------------------------------------- test vectors


def write_test_vectors(path: Path, x: torch.Tensor, y: torch.Tensor, result: SimulationResult,
                       source: str, spiking: list[str]) -> None:
    """inputs (T, B, n_inputs), labels (B,), expected/predictions (B,), expected/membranes/<layer> (T, B, n),
    and expected/spikes/<layer> for the ``spiking`` layers (not the li readout)."""
    with h5py.File(path, "w", track_order=True) as f:
        f.attrs["format"] = "delaynir-test-vectors"
        f.attrs["format_version"] = BUNDLE_FORMAT_VERSION
        f.attrs["source"] = source
        f.attrs["layout"] = "time-first (step, sample, neuron); spikes 0/1 uint8, membranes float64"
        f.create_dataset("inputs", data=x.numpy().astype(np.float64), compression="gzip")
        f.create_dataset("labels", data=y.numpy().astype(np.int64))
        expected = f.create_group("expected", track_order=True)
        expected.create_dataset("predictions", data=result.predictions.numpy().astype(np.int64))
        for name in spiking:
            spikes = result.spikes[name]
            expected.create_dataset(f"spikes/{name}", data=spikes.numpy().astype(np.uint8), compression="gzip")
        for name, v in result.membranes.items():
            expected.create_dataset(f"membranes/{name}", data=v.numpy(), compression="gzip")


def read_test_vectors(path: str | Path) -> tuple[torch.Tensor, torch.Tensor, SimulationResult]:
    """(inputs, labels, expected SimulationResult) from a test-vector file."""
    with h5py.File(path, "r") as f:
        x = torch.from_numpy(f["inputs"][()])
        y = torch.from_numpy(f["labels"][()])
        e = f["expected"]
        spikes = {k: torch.from_numpy(v[()].astype(np.float64)) for k, v in e["spikes"].items()}
        membranes = {k: torch.from_numpy(v[()]) for k, v in e["membranes"].items()}
        preds = torch.from_numpy(e["predictions"][()])
    last = list(membranes)[-1]
    return x, y, SimulationResult(output=membranes[last], predictions=preds, spikes=spikes, membranes=membranes)


# ----------------------------------------------------------------------------- writing


def write_bundle(run_dir: str | Path, target: str, out: str | Path, *, data: str | Path | None = None,
                 n_samples: int = 16, overwrite: bool = False, progress: bool = False) -> dict[str, Any]:
    """Compile ``run_dir`` for ``target`` and write the hand-off bundle to ``out``; return its manifest."""
    from delaynir.compile import compile_run
    from delaynir.converters.onnx import export_onnx
    from delaynir.evaluate import graph_loader
    from delaynir.graph_io import load_graph
    from delaynir.nir_io import export_nir
    from delaynir.target import load_target
    from delaynir.verify import verify

    if n_samples < 1:
        raise ConfigError(f"the number of test-vector samples must be at least 1 (got {n_samples})")
    out = Path(out)
    test_file = run_test_data(run_dir, data)
    with atomic_dir(out, overwrite=overwrite) as tmp:
        report = compile_run(run_dir, target, tmp / GRAPH)
        graph = load_graph(tmp / GRAPH)
        export_nir(graph, tmp / NIR)
        export_onnx(graph, tmp / ONNX)
        loader, _ = graph_loader(graph, test_file, batch_size=n_samples)
        x, y = next(iter(loader))
        expected = simulate(graph, x, record=True)
        write_test_vectors(tmp / VECTORS, x, y, expected, source=str(test_file),
                           spiking=[la.name for la in graph.layers if la.neuron != "li"])
        verification = verify(graph, [(x, y)], sims=list(CHECK_SIMULATORS), progress=progress)
        manifest = {
            "format": "delaynir-bundle", "format_version": BUNDLE_FORMAT_VERSION,
            "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "versions": library_versions(),
            "source_run": str(Path(run_dir).resolve()),
            "target": load_target(target).to_dict(),
            "dt": graph.dt, "input": graph.input, "quantization": graph.quantization,
            "sizes": {"layers": [{"name": la.name, "neuron": la.neuron, "size": la.size, "synapses": la.n_synapses,
                                  "reset": la.reset} for la in graph.layers],
                      "inputs": graph.n_inputs, "neurons": graph.n_neurons, "synapses": graph.n_synapses,
                      "max_delay": graph.max_delay},
            "compile": {k: report[k] for k in ("fit", "layers", "relay_neurons")},
            "accuracy": report["validation"],
            "test_vectors": {"source": str(test_file), "samples": int(len(y)), "steps": int(x.shape[0]),
                             "reference_accuracy": verification["reference_accuracy"]},
            "verification": verification["simulators"],
        }
        (tmp / README).write_text(bundle_readme(manifest))
        manifest["files"] = {name: {"sha256": sha256(tmp / name), "bytes": (tmp / name).stat().st_size,
                                    "description": DESCRIPTIONS.get(name, "")}
                             for name in (GRAPH, NIR, ONNX, VECTORS, README)}
        (tmp / MANIFEST).write_text(json.dumps(manifest, indent=2, default=str) + "\n")
    log.info("wrote bundle %s: %d neurons, %d synapses, %d test vectors", out, graph.n_neurons, graph.n_synapses,
             len(y))
    manifest["out"] = str(out)
    return manifest


def _equations() -> str:
    from delaynir import graph as graph_module, simulate as simulate_module

    return (graph_module.__doc__ or "").strip() + "\n\n" + (simulate_module.__doc__ or "").strip()


def bundle_readme(manifest: dict[str, Any]) -> str:
    """The bundle's README.md for the receiving team; the equations are graph.py's and simulate.py's docstrings."""
    s, tv, acc = manifest["sizes"], manifest["test_vectors"], manifest["accuracy"]
    layers = "\n".join(f"| {la['name']} | {la['neuron']} | {la['size']} | {la['synapses']} | {la['reset']} |"
                       for la in s["layers"])
    files = "\n".join(f"- `{name}`: {text}" for name, text in DESCRIPTIONS.items()) + \
        f"\n- `{MANIFEST}`: SHA-256 of every other file, library versions, target profile, sizes, accuracies, " \
        "verification results"
    verification = "\n".join(
        f"| {name} | {r['prediction_agreement']:.2%} | "
        + ", ".join(f"{k} {v:.2%}" for k, v in r["spike_agreement"].items()) + " |"
        for name, r in manifest["verification"].items())
    return f"""# delaynir hand-off bundle

Model compiled for target **{manifest['target']['name']}** by delaynir {manifest['versions']['delaynir']}:
{s['inputs']} inputs, {s['neurons']} neurons, {s['synapses']} synapses, delays up to {s['max_delay']} steps,
time step dt = {manifest['dt']} s. Validation accuracy: trained {acc['trained_accuracy']:.4f}, compiled
{acc['compiled_accuracy']:.4f} ({acc['n']} samples).

| layer | neuron | size | synapses in | reset |
|---|---|---|---|---|
{layers}

## Files

{files}

Check that nothing changed in transit, and that the files still reproduce the test vectors
in the reference simulator, norse, snnTorch and ONNX Runtime:

```bash
pip install delaynir=={manifest['versions']['delaynir']}
delaynir bundle --check THIS_DIRECTORY
```

## Test vectors (`{VECTORS}`)

{tv['samples']} samples of {tv['steps']} steps from `{Path(tv['source']).name}`, all arrays time-first
(step, sample, neuron):

- `inputs` (T, B, {s['inputs']}) float64: input frames (spike counts per channel and step), fed as s_input[t];
- `labels` (B,): the true classes;
- `expected/spikes/<layer>` (T, B, size) uint8: z[t] of every spiking layer (not the `li` readout);
- `expected/membranes/<layer>` (T, B, size) float64: v[t] after step t's update, before the reset of step t + 1;
- `expected/predictions` (B,): argmax over classes of Σ_t softmax(v_readout[t]).

Bring-up, step by step: reset all state to zero, feed `inputs[t]` for t = 0 … T − 1, and compare
layer by layer, step by step: first `hidden1` spikes, then the next layer, finally the readout and
the predictions. The first differing (layer, step, neuron) is where to look. In Python:

```python
import h5py
from delaynir.graph_io import load_graph
from delaynir.simulate import simulate

graph = load_graph("{GRAPH}")
with h5py.File("{VECTORS}") as f:
    result = simulate(graph, f["inputs"][()], record=True)
    for layer, z in f["expected/spikes"].items():
        assert (result.spikes[layer].numpy() == z[()]).all(), layer
```

Verification on these vectors when the bundle was written (identical spikes and predictions vs the
reference simulator):

| simulator | same prediction | identical spikes |
|---|---|---|
{verification}

## What the model computes

These are the exact equations and update order (from delaynir's `graph.py` and `simulate.py`).
Weights are the stored integers (for quantised targets) times the per-neuron `scale`; the
quantisation is {json.dumps(manifest['quantization'])}.

```
{_equations()}
```
"""


# ----------------------------------------------------------------------------- checking


def check_bundle(path: str | Path, *, progress: bool = False) -> dict[str, Any]:
    """Re-verify a bundle from its files alone; returns {"bundle", "ok", "problems", "files", "simulators"}.

    Checked: every file of the manifest exists with its SHA-256, and the DelayGraph in the
    reference simulator, the NIR file in norse and snnTorch, and the ONNX file in ONNX Runtime
    reproduce the test vectors exactly (every spike of every layer, every prediction).
    """
    from tqdm.auto import tqdm

    path = Path(path)
    problems: list[str] = []
    report: dict[str, Any] = {"bundle": str(path), "problems": problems, "files": {}, "simulators": {}}
    manifest_path = path / MANIFEST
    try:
        manifest = json.loads(manifest_path.read_text())
        files = manifest["files"]
    except FileNotFoundError:
        problems.append(f"{manifest_path}: missing; is {path} a bundle written by `delaynir bundle`?")
        report["ok"] = False
        return report
    except (ValueError, KeyError, TypeError) as exc:
        problems.append(f"{manifest_path}: not a valid bundle manifest ({type(exc).__name__}: {exc})")
        report["ok"] = False
        return report
    for name, entry in files.items():
        file = path / name
        if not file.is_file():
            status = "missing"
            problems.append(f"{name}: missing (listed in {MANIFEST})")
        elif sha256(file) != entry.get("sha256"):
            status = "changed"
            problems.append(f"{name}: SHA-256 differs from {MANIFEST}; the file was changed after the bundle was "
                            "written")
        else:
            status = "ok"
        report["files"][name] = status
    if (path / VECTORS).is_file():
        try:
            x, _, expected = read_test_vectors(path / VECTORS)
        except (OSError, KeyError, ValueError) as exc:
            problems.append(f"{VECTORS}: unreadable ({type(exc).__name__}: {exc})")
        else:
            for sim in tqdm(("reference", *CHECK_SIMULATORS), desc="check", unit="sim", disable=not progress):
                report["simulators"][sim] = _replay(path, sim, x, expected, problems)
    report["ok"] = not problems
    return report


def _run(path: Path, sim: str, x: torch.Tensor) -> SimulationResult:
    if sim == "reference":
        from delaynir.graph_io import load_graph

        return simulate(load_graph(path / GRAPH), x, record=True)
    converter = {"onnxruntime": "onnx"}.get(sim, sim)
    module = __import__(f"delaynir.converters.{converter}", fromlist=["load"])
    return module.load(path / CHECK_SIMULATORS[sim]).run(x)


def _replay(path: Path, sim: str, x: torch.Tensor, expected: SimulationResult, problems: list[str]) -> dict[str, Any]:
    """Run one simulator on the vectors; exact agreement with the expected spikes and predictions, or a problem."""
    from delaynir.verify import Tally  # the same agreement bookkeeping as `delaynir verify`

    file = GRAPH if sim == "reference" else CHECK_SIMULATORS[sim]
    if not (path / file).is_file():
        problems.append(f"{sim}: not run, {file} is missing")
        return {"status": "not run"}
    try:
        result = _run(path, sim, x)
    except DelayNIRError as exc:
        problems.append(f"{sim}: {file} cannot be run ({exc})")
        return {"status": "error", "error": str(exc)}
    tally = Tally(list(expected.spikes))
    tally.add(expected, result, expected.predictions, 0)
    summary = tally.summary()
    exact = summary["prediction_agreement"] == 1.0 and all(v == 1.0 for v in summary["spike_agreement"].values())
    if not exact:
        d = summary["first_divergence"]
        where = (f"; first divergence: layer {d['layer']}, sample {d['sample']}, neuron {d['neuron']}, "
                 f"step {d['step']}") if d else ""
        spikes = ", ".join(f"{k} {v:.4%}" for k, v in summary["spike_agreement"].items())
        problems.append(f"{sim} ({file}): does not reproduce the test vectors: same prediction "
                        f"{summary['prediction_agreement']:.2%}, identical spikes {spikes}{where}")
    return {"status": "exact" if exact else "differs", **summary}
