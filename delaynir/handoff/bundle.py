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

``write_bundle`` (a run, compiled for a target) and ``write_graph_bundle`` (a DelayGraph and
input frames) build it in a hidden sibling directory and rename it into place at the end, so an
interrupted write never leaves a directory that looks complete. Before the rename every
simulator replays the test vectors from the bundle's files, as ``check_bundle`` will; one that
does not reproduce them exactly stops the write (VerificationError, nothing left behind) unless
it is allowed (``allow_mismatch``), in which case the manifest marks it as not reproducing and
``check_bundle`` reports it as a note. ``check_bundle`` re-verifies a bundle from its files alone.
"""

from __future__ import annotations

import hashlib
import inspect
import json
import logging
import platform
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np
import torch

from delaynir import __version__
from delaynir.common.h5 import reading_hdf5, writing_hdf5
from delaynir.common.outputs import atomic_dir
from delaynir.common.text import read_text
from delaynir.errors import ConfigError, DelayNIRError, ExportError, VerificationError
from delaynir.export.executors import (
    DELAYGRAPH,
    EXECUTORS,
    FLOAT_GRAPH,
    REFERENCE,
    TARGET_ARITHMETIC,
    ExecutorUnavailable,
    external,
    formats,
    names,
)
from delaynir.export.tool_checks import refusal, summary, tool_checks
from delaynir.handoff.verify import Expected, Tally  # the same bookkeeping as `delaynir verify`
from delaynir.ir.graph import InputSpec
from delaynir.reference.simulate import SimulationResult, simulate

log = logging.getLogger(__name__)

BUNDLE_FORMAT_VERSION = 1
UNAVAILABLE = "unavailable"  #: a simulator's status when its library or environment is not installed here
NOT_EXPORTED = "not exported"  #: a simulator's status when its file's writer refused the graph (FileFormat.partial)
GRAPH, VECTORS, MANIFEST, README = DELAYGRAPH.file, "test_vectors.h5", "manifest.json", "README.md"
NOT_RUN = {
    UNAVAILABLE: "not run: not installed where the bundle was written",  #: statuses of a simulator not run
    NOT_EXPORTED: f"not run: its file cannot carry this graph ({MANIFEST} says why)",
}
NO_FAILURE = frozenset(("exact", *NOT_RUN))  #: statuses that are no failure
LIBRARIES = ("torch", "numpy", "h5py", "nir", "nirtorch", "norse", "snntorch", "onnx", "onnxruntime")


def descriptions(graph) -> dict[str, str]:
    """Every file of ``graph``'s bundle and what it is: one per format the executors that run it read, the
    vectors, the README."""
    return {
        **{
            name: description
            for fmt in formats(graph)
            for name, description in [(fmt.file, fmt.description), *((c.file, c.description) for c in fmt.companions)]
        },
        VECTORS: "test inputs and the reference simulator's expected spikes, membranes and predictions",
        README: "this bundle explained for the receiving team",
    }


@dataclass
class BundleManifest:
    """A written bundle's manifest.json (docs/bundle.md describes each entry) and where the bundle is (``out``,
    not in the file)."""

    format: str
    format_version: int
    created: str
    versions: dict[str, str | None]
    source_run: str | None
    target: dict[str, Any]
    dt: float
    input: dict[str, Any]
    quantization: dict[str, Any]
    sizes: dict[str, Any]
    compile: dict[str, Any] | None
    accuracy: dict[str, Any] | None
    test_vectors: dict[str, Any]
    semantics: dict[str, Any]
    verification: dict[str, dict[str, Any]]
    tool_checks: dict[str, dict[str, Any]]
    files: dict[str, dict[str, Any]]
    out: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def __str__(self) -> str:
        """What `delaynir bundle` prints: sizes, accuracies, each simulator's replay and every file."""
        s, acc = self.sizes, self.accuracy
        lines = [
            f"bundle for {self.target['name']} written to {self.out}: {s['neurons']} neurons, "
            f"{s['synapses']} synapses, max delay {s['max_delay']} steps"
            + (
                f"; validation accuracy trained {acc['trained_accuracy']:.4f}, compiled {acc['compiled_accuracy']:.4f}"
                if acc
                else ""
            )
        ]
        for name, r in self.verification.items():
            if r["status"] in NOT_RUN:
                lines.append(f"  {name:<12} not run: {r['error']}")
                continue
            spikes = ", ".join(f"{k} {v:.2%}" for k, v in r["spike_agreement"].items())
            status = (
                "reproduces the test vectors exactly"
                if r["status"] == "exact"
                else "does NOT reproduce the test vectors (allowed: --allow-mismatch)"
            )
            lines.append(
                f"  {name:<12} {status}: same prediction {r['prediction_agreement']:.2%}, identical spikes {spikes}"
            )
        lines += [
            f"  {name:<20} {entry['bytes']:>9} bytes  sha256 {entry['sha256'][:16]}…"
            for name, entry in self.files.items()
        ]
        lines += [f"  {summary(name, result)}" for name, result in self.tool_checks.items()]
        return "\n".join(lines)


@dataclass
class BundleCheck:
    """``check_bundle``'s result: each file's status (ok, missing, changed), each simulator's replay, the problems
    (any one fails the check) and notes (no failure)."""

    bundle: str
    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    files: dict[str, str] = field(default_factory=dict)
    simulators: dict[str, dict[str, Any]] = field(default_factory=dict)
    tool_checks: dict[str, dict[str, Any]] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.problems

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "ok": self.ok}

    def __str__(self) -> str:
        """What `delaynir bundle --check` prints: passed with the exact simulators, or FAILED with every problem."""
        if self.ok:
            exact = [k for k, r in self.simulators.items() if r.get("status") == "exact"]
            allowed = [k for k, r in self.simulators.items() if r.get("allowed_mismatch")]
            lines = [
                f"bundle {self.bundle} passed: {len(self.files)} files match manifest.json; "
                f"{', '.join(exact)} reproduce the test vectors exactly"
                + (f"; {', '.join(allowed)} do not, as manifest.json records (--allow-mismatch)" if allowed else "")
            ]
        else:
            lines = [
                f"delaynir: bundle check FAILED for {self.bundle} ({len(self.problems)} problems):\n  - "
                + "\n  - ".join(self.problems)
            ]
        return "\n".join(lines + [f"  note: {note}" for note in self.notes])


# ----------------------------------------------------------------------------- shared helpers


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


def write_test_vectors(
    path: Path, x: torch.Tensor, y: torch.Tensor, result: SimulationResult, source: str, spiking: list[str]
) -> None:
    """inputs (T, B, n_inputs), labels (B,), expected/predictions (B,), expected/membranes/<layer> (T, B, n),
    and expected/spikes/<layer> for the ``spiking`` layers (not the li readout)."""
    with writing_hdf5(path, overwrite=False, error=ExportError, track_order=True) as f:
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
    """(inputs, labels, expected SimulationResult) from a test-vector file; ExportError if it is malformed."""
    try:
        with reading_hdf5(path, ExportError, "a test-vector file written by `delaynir bundle`") as f:
            x = torch.from_numpy(np.asarray(f["inputs"][()], dtype=np.float64))
            y = torch.from_numpy(f["labels"][()])
            e = f["expected"]
            spikes = {k: torch.from_numpy(v[()].astype(np.float64)) for k, v in e["spikes"].items()}
            membranes = {k: torch.from_numpy(np.asarray(v[()], dtype=np.float64)) for k, v in e["membranes"].items()}
            preds = torch.from_numpy(e["predictions"][()])
    except (ValueError, TypeError, AttributeError) as exc:  # members of another kind or shape than written
        raise ExportError(f"{path}: not a test-vector file written by `delaynir bundle` ({exc})") from None
    if x.dim() != 3 or not membranes or any(v.dim() != 3 for v in (*spikes.values(), *membranes.values())):
        raise ExportError(
            f"{path}: expected inputs and every layer's spikes and membranes as (step, sample, neuron) "
            "arrays; the file is malformed"
        )
    last = list(membranes)[-1]
    return x, y, SimulationResult(output=membranes[last], predictions=preds, spikes=spikes, membranes=membranes)


# ----------------------------------------------------------------------------- writing


def parse_allow_mismatch(value: str | list[str] | tuple[str, ...] | None) -> list[str]:
    """``--allow-mismatch SIM[,SIM]`` as a list of simulator names (norse, snntorch, onnxruntime)."""
    if not value:
        return []
    sims = [v.strip() for v in (value.split(",") if isinstance(value, str) else value) if v.strip()]
    unknown = [n for n in sims if n not in external()]
    if unknown:
        raise ConfigError(
            f"--allow-mismatch: unknown simulator(s) {', '.join(unknown)}; choose from "
            f"{', '.join(external())} (the reference simulator defines the vectors)"
        )
    return list(dict.fromkeys(sims))


def semantics(graph) -> dict[str, Any]:
    """The manifest's ``semantics``: what "target arithmetic" and "float graph" mean for this bundle.

    In float64 (every target without an arithmetic of its own) both give the same spikes ("identical");
    for a graph in a chip's fixed-point arithmetic the test vectors hold that arithmetic, and the
    executors of the float graph are checked against the float64 simulation of the same file.
    """
    float64 = graph.arithmetic == "float64"
    how = (
        "float64, spiking layers in units of their weight scale (integer weights, currents and thresholds for "
        "quantised targets), update order of delaynir/reference/simulate.py"
        if float64
        else f"the {graph.arithmetic!r} arithmetic (delaynir.numerics.number_formats; the target's fixed-point "
        "neuron), update order of delaynir/reference/simulate.py"
    )
    return {
        TARGET_ARITHMETIC: f"the DelayGraph's equations as delaynir's reference simulator computes them for target "
        f"{graph.target!r}: {how}" + ("; for this target that is the float graph" if float64 else ""),
        FLOAT_GRAPH: "the same equations (delaynir.ir.neuron_kinds) in float64, each library's neuron formulas",
        "test_vectors": TARGET_ARITHMETIC,
        "identical": float64,
    }


def write_bundle(
    run_dir: str | Path,
    target: str,
    out: str | Path,
    *,
    data: str | Path | None = None,
    n_samples: int = 16,
    overwrite: bool = False,
    progress: bool = False,
    fit: str = "error",
    allow_mismatch: str | list[str] | None = None,
) -> BundleManifest:
    """Compile ``run_dir`` for ``target`` and write the hand-off bundle to ``out``; return its manifest.

    Every simulator replays the test vectors before the bundle is renamed into place (the same replay
    as ``check_bundle``); one that does not reproduce them exactly raises VerificationError and
    nothing is left at ``out``, unless it is named in ``allow_mismatch``: then the bundle is written
    with that simulator marked as not reproducing, and ``check_bundle`` reports it without failing.
    """
    from delaynir.compile.compiler import compile_run
    from delaynir.handoff.graph_data import graph_loader
    from delaynir.hardware.profile import load_target
    from delaynir.ir.graph_io import load_graph
    from delaynir.train.run_dir import Run

    if n_samples < 1:
        raise ConfigError(f"the number of test-vector samples must be at least 1 (got {n_samples})")
    allowed = parse_allow_mismatch(allow_mismatch)
    out = Path(out)
    run = Run(run_dir)
    test_file = run.test_file(data)
    with atomic_dir(out, overwrite=overwrite) as tmp:
        report = compile_run(run, target, tmp / GRAPH, fit=fit)
        graph = load_graph(tmp / GRAPH)
        loader, _ = graph_loader(graph, test_file, batch_size=n_samples)
        x, y = next(iter(loader))
        manifest = _write_contents(
            tmp,
            out,
            graph,
            x,
            y,
            source=str(test_file),
            allowed=allowed,
            progress=progress,
            extra={
                "source_run": run.provenance["source_run"],
                "target": load_target(target).to_dict(),
                "compile": {"fit": report.fit, "layers": report.layers, "relay_neurons": report.relay_neurons},
                "accuracy": report.validation,
            },
        )
    log.info(
        "wrote bundle %s: %d neurons, %d synapses, %d test vectors", out, graph.n_neurons, graph.n_synapses, len(y)
    )
    return manifest


def write_graph_bundle(
    graph,
    out: str | Path,
    inputs,
    labels=None,
    *,
    overwrite: bool = False,
    progress: bool = False,
    allow_mismatch: str | list[str] | None = None,
    source: str = "given inputs",
) -> BundleManifest:
    """The bundle of a DelayGraph you already have, with ``inputs`` (T, B, n_inputs) as the test vectors.

    As ``write_bundle`` (the same files, replay and rules), without a run: no compile report and no
    trained accuracy; the target profile is included when ``graph.target`` names a built-in one.
    """
    from delaynir.hardware.profile import builtin_target_names, load_target

    allowed = parse_allow_mismatch(allow_mismatch)
    x = torch.as_tensor(np.asarray(inputs) if not torch.is_tensor(inputs) else inputs).to(torch.float64)
    y = torch.full((x.shape[1],), -1, dtype=torch.int64) if labels is None else torch.as_tensor(labels).long()
    out = Path(out)
    profile = load_target(graph.target).to_dict() if graph.target in builtin_target_names() else None
    with atomic_dir(out, overwrite=overwrite) as tmp:
        manifest = _write_contents(
            tmp,
            out,
            graph,
            x,
            y,
            source=source,
            allowed=allowed,
            progress=progress,
            extra={"source_run": None, "target": profile or {"name": graph.target}, "compile": None, "accuracy": None},
        )
    return manifest


def _write_contents(
    tmp: Path,
    out: Path,
    graph,
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    source: str,
    allowed: list[str],
    progress: bool,
    extra: dict[str, Any],
) -> BundleManifest:
    """Every file of the bundle into ``tmp`` (the DelayGraph first, if not there yet); returns the manifest of the
    bundle at ``out``.

    Raises VerificationError, naming each simulator and its first divergence, when a simulator not in
    ``allowed`` does not reproduce the test vectors.
    """
    from tqdm.auto import tqdm

    left_out: dict[str, str] = {}  # file -> why its writer refused the graph (FileFormat.partial)
    for fmt in formats(graph):  # the DelayGraph first (write_bundle compiled it into tmp already)
        if not (tmp / fmt.file).exists():
            try:
                fmt.write(graph, tmp / fmt.file)
            except ExportError as exc:
                if not fmt.partial:
                    raise
                log.warning("%s left out of the bundle: %s", fmt.file, exc)
                left_out.update(dict.fromkeys([fmt.file, *(c.file for c in fmt.companions)], str(exc)))
    expected = simulate(graph, x, record=True)
    write_test_vectors(
        tmp / VECTORS, x, y, expected, source=source, spiking=[la.name for la in graph.layers if not la.kind.readout]
    )
    x, _, expected = read_test_vectors(tmp / VECTORS)  # replay exactly what --check will read
    problems: list[str] = []
    verification: dict[str, Any] = {}
    wanted = Expected(graph, x, expected)
    for sim in tqdm(external(graph), desc="verify", unit="sim", disable=not progress):
        file = EXECUTORS[sim].format.file
        if file in left_out:
            verification[sim] = {
                "status": NOT_EXPORTED,
                "error": left_out[file],
                "file": file,
                "reproduces": EXECUTORS[sim].reproduces_for(graph),
                "allowed_mismatch": False,
            }
            continue
        found: list[str] = []
        record = _replay(tmp, sim, x, wanted[sim], found)
        different = record["status"] not in NO_FAILURE
        record.update(
            file=file, reproduces=EXECUTORS[sim].reproduces_for(graph), allowed_mismatch=different and sim in allowed
        )
        if different and sim not in allowed:
            problems += found
        verification[sim] = record
    if problems:
        named = ",".join(s for s, r in verification.items() if r["status"] not in NO_FAILURE and s not in allowed)
        raise VerificationError(
            f"bundle NOT written to {out}: {len(problems)} simulator{'s' if len(problems) > 1 else ''} "
            "do not reproduce the test vectors exactly:\n  - "
            + "\n  - ".join(problems)
            + f"\nNothing was left at {out}. To write the bundle anyway, with these simulators marked as not "
            f"reproducing in {MANIFEST} (and reported by `delaynir bundle --check`), pass --allow-mismatch {named}"
        )
    labelled = bool((y >= 0).all())
    manifest = {
        "format": "delaynir-bundle",
        "format_version": BUNDLE_FORMAT_VERSION,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "versions": library_versions(),
        "source_run": extra["source_run"],
        "target": extra["target"],
        "dt": graph.dt,
        "input": graph.input.to_dict(),
        "quantization": graph.quantization,
        "sizes": {
            "layers": [
                {"name": la.name, "neuron": la.neuron, "size": la.size, "synapses": la.n_synapses, "reset": la.reset}
                for la in graph.layers
            ],
            "inputs": graph.n_inputs,
            "neurons": graph.n_neurons,
            "synapses": graph.n_synapses,
            "max_delay": graph.max_delay,
        },
        "compile": extra["compile"],
        "accuracy": extra["accuracy"],
        "test_vectors": {
            "source": source,
            "samples": int(x.shape[1]),
            "steps": int(x.shape[0]),
            "reference_accuracy": float((expected.predictions == y).double().mean()) if labelled else None,
        },
        "semantics": semantics(graph),
        "verification": verification,
        "tool_checks": _tool_checks(graph, tmp, left_out),
    }
    files = {name: text for name, text in descriptions(graph).items() if name not in left_out}
    (tmp / README).write_text(bundle_readme(manifest, files))
    manifest["files"] = {
        name: {"sha256": sha256(tmp / name), "bytes": (tmp / name).stat().st_size, "description": description}
        for name, description in files.items()
    }
    (tmp / MANIFEST).write_text(json.dumps(manifest, indent=2, default=str) + "\n")
    return BundleManifest(**manifest, out=str(out))


def _tool_checks(graph, folder: Path, left_out: dict[str, str]) -> dict[str, dict[str, Any]]:
    """Every vendor tool check of ``graph``'s target on its file in ``folder`` (delaynir.export.tool_checks); a
    ToolRefused (the bundle is not written) when a tool refuses."""
    results = {
        check.name: check.run_file(folder / check.format.file)
        if check.format.file not in left_out
        else {"status": NOT_EXPORTED, "error": left_out[check.format.file]}
        for check in tool_checks(graph)
    }
    for name, result in results.items():
        log.info("%s", summary(name, result))
    refused = refusal(results)
    if refused:
        raise refused
    return results


def _equations() -> str:
    """graph.py's and simulate.py's docstrings with every neuron kind's step docstring (delaynir.ir.neuron_kinds)."""
    from delaynir.ir import graph as graph_module
    from delaynir.ir.neuron_kinds import KINDS
    from delaynir.reference import simulate as simulate_module

    kinds = "\n\n".join(
        f"    {kind.name + ':':10}"
        + "\n".join(
            (" " * 14 + line) if line else "" for line in (inspect.getdoc(kind.step) or "").splitlines()
        ).lstrip()
        for kind in KINDS.values()
    )
    return (
        (graph_module.__doc__ or "").strip()
        + "\n\nThe neuron kinds (delaynir.ir.neuron_kinds):\n\n"
        + kinds
        + "\n\n"
        + (simulate_module.__doc__ or "").strip()
    )


def _input_text(input_spec: dict[str, Any]) -> str:
    """What the test vectors' inputs hold (the manifest's input spec), for the bundle's README."""
    spec = InputSpec.from_dict(input_spec)
    if not spec.graded:
        return "spike counts per channel and step"
    if not spec.quantized:
        return "graded real values per channel and step"
    scale, lo, hi = spec.code_grid()
    return (
        f"graded input as {spec.bits}-bit integer codes q in [{lo}, {hi}] per channel and step; a code stands "
        f"for the value q · {scale!r} (input_scale), which the first layer's weights already include"
    )


def _usage(files: dict[str, str]) -> str:
    """The README section on running the bundle's files with the hardware's own tools (FileFormat.usage)."""
    shown = [fmt for fmt in formats() if fmt.usage and fmt.file in files]
    return "".join(f"\n## Running `{fmt.file}`\n\n{fmt.usage}\n" for fmt in shown)


def bundle_readme(manifest: dict[str, Any], files: dict[str, str]) -> str:
    """The bundle's README.md for the receiving team, listing ``files`` (``descriptions``); the equations are
    graph.py's and simulate.py's docstrings."""
    s, tv, acc = manifest["sizes"], manifest["test_vectors"], manifest["accuracy"]
    layers = "\n".join(
        f"| {la['name']} | {la['neuron']} | {la['size']} | {la['synapses']} | {la['reset']} |" for la in s["layers"]
    )
    file_list = (
        "\n".join(f"- `{name}`: {text}" for name, text in files.items())
        + f"\n- `{MANIFEST}`: SHA-256 of every other file, library versions, target profile, sizes, accuracies, "
        "verification results"
    )
    verification = "\n".join(
        f"| {name} | `{r.get('file', '')}` | {r.get('reproduces', '')} | "
        + (
            ("exact" if r.get("status") == "exact" else "**does not reproduce** (written with --allow-mismatch)")
            + f" | {r['prediction_agreement']:.2%} | "
            + ", ".join(f"{k} {v:.2%}" for k, v in r["spike_agreement"].items())
            + " |"
            if r.get("status") not in NOT_RUN
            else f"{NOT_RUN[r['status']]} | | |"
        )
        for name, r in manifest["verification"].items()
    )
    accuracy = (
        (
            f" Validation accuracy: trained {acc['trained_accuracy']:.4f}, compiled\n"
            f"{acc['compiled_accuracy']:.4f} ({acc['n']} samples)."
        )
        if acc
        else ""
    )
    return f"""# delaynir hand-off bundle

Model compiled for target **{manifest["target"]["name"]}** by delaynir {manifest["versions"]["delaynir"]}:
{s["inputs"]} inputs, {s["neurons"]} neurons, {s["synapses"]} synapses, delays up to {s["max_delay"]} steps,
time step dt = {manifest["dt"]} s.{accuracy}

| layer | neuron | size | synapses in | reset |
|---|---|---|---|---|
{layers}

## Files

{file_list}

Check that nothing changed in transit, and that the files still reproduce the test vectors
in the reference simulator, norse, snnTorch and ONNX Runtime:

```bash
pip install delaynir=={manifest["versions"]["delaynir"]}
delaynir bundle --check THIS_DIRECTORY
```
{_usage(files)}
## Test vectors (`{VECTORS}`)

{tv["samples"]} samples of {tv["steps"]} steps from `{Path(tv["source"]).name}`, all arrays time-first
(step, sample, neuron):

- `inputs` (T, B, {s["inputs"]}) float64: input frames ({_input_text(manifest["input"])}), fed as s_input[t];
- `labels` (B,): the true classes;
- `expected/spikes/<layer>` (T, B, size) uint8: z[t] of every spiking layer (not the `li` readout);
- `expected/membranes/<layer>` (T, B, size) float64: v[t] after step t's update, before the reset of step t + 1;
- `expected/predictions` (B,): argmax over classes of Σ_t softmax(v_readout[t]).

Bring-up, step by step: reset all state to zero, feed `inputs[t]` for t = 0 … T − 1, and compare
layer by layer, step by step: first `hidden1` spikes, then the next layer, finally the readout and
the predictions. The first differing (layer, step, neuron) is where to look. In Python:

```python
import h5py
from delaynir.ir.graph_io import load_graph
from delaynir.reference.simulate import simulate

graph = load_graph("{GRAPH}")
with h5py.File("{VECTORS}") as f:
    result = simulate(graph, f["inputs"][()], record=True)
    for layer, z in f["expected/spikes"].items():
        assert (result.spikes[layer].numpy() == z[()]).all(), layer
```

Verification on these vectors when the bundle was written (identical spikes and predictions vs the
reference simulator). "target arithmetic" is what the reference simulator computes for this target,
operation for operation; "float graph" the same equations in a library's own float64 neuron formulas
(`semantics` in `{MANIFEST}`; today the two are the same model). For targets with integer weights,
thresholds and state every number that decides a spike (weights, currents, thresholds in units of
each neuron's scale) is an exact integer in every file, so a membrane that lands exactly on its
threshold is decided alike everywhere.

| simulator | file | reproduces | status | same prediction | identical spikes |
|---|---|---|---|---|---|
{verification}

## What the model computes

These are the exact equations and update order (from delaynir's `graph.py` and `simulate.py`).
Weights are the stored integers (for quantised targets) times the per-neuron `scale`; spiking
layers are computed in units of that scale (see "Units"); the quantisation is
{json.dumps(manifest["quantization"])}.

```
{_equations()}
```
"""


# ----------------------------------------------------------------------------- checking


def check_bundle(path: str | Path, *, progress: bool = False) -> BundleCheck:
    """Re-verify a bundle from its files alone.

    Checked: every file of the manifest exists with its SHA-256, and the DelayGraph in the
    reference simulator, the NIR file in norse and snnTorch, the ONNX file in ONNX Runtime and, for a
    graph in a chip's arithmetic, the chip's file in its simulator (the executors that run the graph) reproduce the
    test vectors exactly (every spike of every layer, every prediction), each in the semantics the manifest
    says it reproduces. A simulator the manifest marks as not reproducing (written with
    ``--allow-mismatch``) is still run; that it differs is a note, not a problem; so is one whose library
    or environment is not installed here (a chip simulator's). A directory that is not a bundle raises ExportError
    (``read_manifest``).
    """
    from tqdm.auto import tqdm

    path = Path(path)
    manifest = read_manifest(path)
    files = manifest["files"]
    report = BundleCheck(str(path))
    problems, notes = report.problems, report.notes
    for name, entry in files.items():
        file = path / name
        if not file.is_file():
            status = "missing"
            problems.append(f"{name}: missing (listed in {MANIFEST})")
        elif sha256(file) != entry.get("sha256"):
            status = "changed"
            problems.append(
                f"{name}: SHA-256 differs from {MANIFEST}; the file was changed after the bundle was written"
            )
        else:
            status = "ok"
        report.files[name] = status
    if (path / VECTORS).is_file():
        try:
            x, _, expected = read_test_vectors(path / VECTORS)
        except ExportError as exc:
            problems.append(f"{VECTORS}: unreadable ({exc})")
        else:
            recorded = manifest["verification"]
            graph = _readable_graph(path / GRAPH)
            applying = names() if graph is None else (REFERENCE, *external(graph))
            wanted = None if graph is None else Expected(graph, x, expected)
            for sim in tqdm(applying, desc="check", unit="sim", disable=not progress):
                entry = recorded.get(sim) if isinstance(recorded.get(sim), dict) else {}
                reproduces = entry.get("reproduces", EXECUTORS[sim].reproduces)
                if entry.get("status") == NOT_EXPORTED and EXECUTORS[sim].format.file not in files:
                    notes.append(f"{sim}: not run, its file was left out of the bundle ({entry.get('error')})")
                    report.simulators[sim] = {"status": NOT_EXPORTED, "reproduces": reproduces}
                    continue
                found: list[str] = []
                result = _replay(path, sim, x, expected if wanted is None else wanted[sim], found)
                result["reproduces"] = reproduces
                if entry.get("allowed_mismatch") and result["status"] == "differs":
                    result["allowed_mismatch"] = True
                    notes += [f"{p} (recorded in {MANIFEST}: written with --allow-mismatch {sim})" for p in found]
                else:
                    if entry.get("allowed_mismatch") and result["status"] == "exact":
                        notes.append(
                            f"{sim}: reproduces the test vectors exactly, although {MANIFEST} marks it as "
                            "not reproducing"
                        )
                    problems += found
                if result["status"] == UNAVAILABLE:
                    notes.append(f"{sim}: not run, not installed here ({result['error']})")
                report.simulators[sim] = result
    _recheck_tools(path, manifest, report)
    return report


def _recheck_tools(path: Path, manifest: dict[str, Any], report: BundleCheck) -> None:
    """The vendor tool checks the manifest records, run again on the bundle's files (a refusal is a problem; a
    tool not installed here a note)."""
    known = {check.name: check for check in tool_checks()}
    recorded = manifest.get("tool_checks")
    for name in recorded if isinstance(recorded, dict) else {}:
        check = known.get(name)
        if check is None:
            report.notes.append(f"tool check {name}: not run, no installed target provides it")
            continue
        if not (path / check.format.file).is_file():
            continue  # missing or left out: the file check above says so
        result = check.run_file(path / check.format.file)
        report.tool_checks[name] = result
        if result["status"] == "refused":
            report.problems.append(f"{name}: {result['error']}")
        elif result["status"] == UNAVAILABLE:
            report.notes.append(f"tool check {name}: not run, not installed here ({result['error']})")
        else:
            report.notes.append(summary(name, result))


def read_manifest(path: Path) -> dict[str, Any]:
    """The manifest of bundle directory ``path``; ExportError if it is not a bundle or its manifest is malformed.

    ``files`` maps plain file names (inside the bundle) to {"sha256": ...}; ``verification`` and
    ``semantics`` are objects (empty if absent).
    """
    if not path.is_dir():
        raise ExportError(
            f"{path} is not a directory; `delaynir bundle --check` takes a bundle directory written "
            "by `delaynir bundle`"
        )
    manifest_path = path / MANIFEST
    text = read_text(manifest_path, ExportError, f"the manifest of bundle {path},")
    try:
        manifest = json.loads(text)
    except ValueError as exc:
        raise ExportError(f"{manifest_path}: not readable as JSON ({exc}); the bundle is damaged") from None
    files = manifest.get("files") if isinstance(manifest, dict) else None
    if not isinstance(files, dict):
        raise ExportError(
            f"{manifest_path}: not a valid bundle manifest: 'files' must be an object of file name -> "
            f"entry, found {type(files).__name__}"
        )
    problems = []
    for name, entry in files.items():
        if Path(name).name != name or name in ("", ".", ".."):
            problems.append(f"file name {name!r} is not a plain name inside the bundle")
        if not isinstance(entry, dict) or not isinstance(entry.get("sha256"), str):
            problems.append(f"files[{name!r}] must be an object with a 'sha256' string")
    for key in ("verification", "semantics"):
        manifest[key] = manifest.get(key) or {}
        if not isinstance(manifest[key], dict):
            problems.append(f"{key!r} must be an object, found {type(manifest[key]).__name__}")
    if problems:
        raise ExportError(f"{manifest_path}: not a valid bundle manifest: {'; '.join(problems[:5])}")
    return manifest


def _run(path: Path, sim: str, x: torch.Tensor) -> SimulationResult:
    """Simulator ``sim`` run on ``x`` from its file in bundle directory ``path``."""
    executor = EXECUTORS[sim]
    return executor.load(path / executor.format.file).run(x)


def _readable_graph(path: Path):
    """The bundle's DelayGraph, or None when it cannot be read (the reference simulator's replay reports why)."""
    from delaynir.ir.graph_io import load_graph

    try:
        return load_graph(path)
    except DelayNIRError:
        return None


def _replay(path: Path, sim: str, x: torch.Tensor, expected: SimulationResult, problems: list[str]) -> dict[str, Any]:
    """Run one simulator on the vectors; exact agreement with the expected spikes and predictions, or a problem."""

    file = EXECUTORS[sim].format.file
    if not (path / file).is_file():
        problems.append(f"{sim}: not run, {file} is missing")
        return {"status": "not run"}
    try:
        result = _run(path, sim, x)
    except ExecutorUnavailable as exc:  # its library or environment is not installed here: said, not a failure
        log.warning("%s not run: %s", sim, exc)
        return {"status": UNAVAILABLE, "error": str(exc)}
    except DelayNIRError as exc:
        problems.append(f"{sim}: {file} cannot be run ({exc})")
        return {"status": "error", "error": str(exc)}
    tally = Tally(list(expected.spikes))
    tally.add(expected, result, expected.predictions, 0)
    summary = tally.summary()
    exact = summary["prediction_agreement"] == 1.0 and all(v == 1.0 for v in summary["spike_agreement"].values())
    if not exact:
        d = summary["first_divergence"]
        where = (
            (f"; first divergence: layer {d['layer']}, sample {d['sample']}, neuron {d['neuron']}, step {d['step']}")
            if d
            else ""
        )
        spikes = ", ".join(f"{k} {v:.4%}" for k, v in summary["spike_agreement"].items())
        problems.append(
            f"{sim} ({file}): does not reproduce the test vectors: same prediction "
            f"{summary['prediction_agreement']:.2%}, identical spikes {spikes}{where}"
        )
    return {"status": "exact" if exact else "differs", **summary}
