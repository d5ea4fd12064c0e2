"""Verification: the same inputs through the reference simulator and every other executor.

For a DelayGraph file (or a run directory, compiled in memory for a target), the graph is
exported (NIR for norse and snnTorch, ONNX for ONNX Runtime) to a temporary directory and
each simulator runs the exported file. Against the reference simulator, per simulator:
the fraction of identical (sample, step, neuron) spikes per layer, the fraction of samples
with the same prediction, its accuracy, and the first divergence (earliest step at which
any layer's spikes differ: layer, sample, neuron, step and both membranes — the reference's
before reset, the other's as that simulator stores it). A run directory adds the trained
model (eval mode, rounded delays) to the comparison.
"""

from __future__ import annotations

import logging
import tempfile
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
from tqdm.auto import tqdm

from delaynir.errors import ConfigError, ExportError
from delaynir.export.executors import EXECUTORS, REFERENCE, ExecutorUnavailable, FileFormat, external, names
from delaynir.ir.graph import DelayGraph, decode_input
from delaynir.reference.agreement import Tally, model_result
from delaynir.reference.simulate import SimulationResult, simulate

log = logging.getLogger(__name__)


def _runners(graph: DelayGraph, sims: list[str] | None, workdir: Path) -> dict[str, Callable]:
    """Simulator name -> function(x) -> SimulationResult, each running its exported file (one file per format).

    ``sims`` None: every executor that runs ``graph`` (``external(graph)``), leaving out, with a warning, one
    whose library is not installed here or whose file cannot carry the graph (``FileFormat.partial``); a named
    one that cannot run the graph is an error."""
    runners: dict[str, Callable] = {}
    files: dict[FileFormat, Path] = {}
    for name in external(graph) if sims is None else [n for n in external() if n in sims]:
        executor = EXECUTORS[name]
        if not executor.applies(graph):
            raise ConfigError(
                f"simulator {name!r} runs only graphs in the {executor.arithmetic} arithmetic; this "
                f"graph is computed in {graph.arithmetic!r} (compiled for target {graph.target!r}); "
                f"leave {name!r} out of --sims"
            )
        try:
            if executor.format not in files:
                files[executor.format] = executor.export(graph, workdir / executor.format.file)
            runners[name] = executor.load(files[executor.format]).run
        except (ExecutorUnavailable, ExportError) as exc:
            if sims is not None or (isinstance(exc, ExportError) and not executor.format.partial):
                raise
            log.warning("not verified in %s: %s", name, exc)
    return runners


class Expected:
    """What each executor must reproduce on inputs ``x``: the reference simulation ``reference`` of ``graph``, or for
    an executor computing in another arithmetic (a float64 one on a chip's fixed-point graph) the simulation of
    the same graph in that arithmetic (executors.Executor.expected_graph), computed once per arithmetic."""

    def __init__(self, graph: DelayGraph, x: torch.Tensor, reference: SimulationResult):
        self.graph, self.x = graph, x
        self.by_arithmetic = {graph.arithmetic: reference}

    def __getitem__(self, sim: str) -> SimulationResult:
        want = EXECUTORS[sim].expected_graph(self.graph)
        if want.arithmetic not in self.by_arithmetic:
            self.by_arithmetic[want.arithmetic] = simulate(want, self.x, record=True)
        return self.by_arithmetic[want.arithmetic]


def verify(
    graph: DelayGraph, loader, *, sims: list[str] | None = None, model=None, progress: bool = False
) -> dict[str, Any]:
    """Compare every simulator in ``sims`` (None: every one that runs the graph and is installed; ``_runners``)
    and ``model`` (a DelaySNN, when given) with the reference.

    A simulator computing in another arithmetic than the graph's (a float64 one on a graph in a chip's
    fixed-point arithmetic) is compared with the reference simulation of the graph in its arithmetic
    (``compared_with``); the reference accuracy and the trained model's comparison use the graph's own.

    ``loader`` yields x as the graph's input receives it (graph_data.graph_loader: codes of quantised graded
    input); the model gets the values they stand for (graph.decode_input)."""
    unknown = [s for s in sims or [] if s not in EXECUTORS]
    if unknown:
        raise ConfigError(f"unknown simulator(s) {', '.join(unknown)}; choose from {', '.join(names())}")
    hidden = [layer.name for layer in graph.layers if not layer.kind.readout]
    with tempfile.TemporaryDirectory(prefix="delaynir-verify-") as tmp:
        runners = _runners(graph, sims, Path(tmp))
        tallies = {name: Tally(hidden) for name in runners}
        if model is not None:
            tallies["trained"] = Tally(hidden)
        reference = Tally(hidden)
        seconds = dict.fromkeys([REFERENCE, *runners], 0.0)  # each simulator's own run time, files loaded
        offset = 0
        for x, y in tqdm(loader, desc="verify", unit="batch", disable=not progress):
            start = time.perf_counter()
            ref = simulate(graph, x, record=True)
            seconds[REFERENCE] += time.perf_counter() - start
            reference.add(ref, ref, y, offset)
            expected = Expected(graph, x, ref)
            for name, run in runners.items():
                start = time.perf_counter()
                result = run(x)
                seconds[name] += time.perf_counter() - start
                tallies[name].add(expected[name], result, y, offset)
            if model is not None:  # the trained model takes the values the input codes stand for
                tallies["trained"].add(ref, model_result(model, decode_input(graph, x).float(), hidden), y, offset)
            offset += len(y)
    rate = {name: reference.n / t if t > 0 else None for name, t in seconds.items()}
    report = {
        "n": reference.n,
        "reference_accuracy": reference.summary()["accuracy"],
        "reference_samples_per_second": rate[REFERENCE],
        "simulators": {name: t.summary() for name, t in tallies.items()},
        "arithmetic": graph.arithmetic,
    }
    for name in runners:
        report["simulators"][name]["compared_with"] = EXECUTORS[name].expected_graph(graph).arithmetic
        report["simulators"][name]["samples_per_second"] = rate[name]
    return report


def worst_agreement(simulators: Mapping[str, dict[str, Any]]) -> float:
    """The lowest spike or prediction agreement of any simulator of a verification's ``simulators`` (1.0 when
    there is none).

    The trained model is reported but not counted: it differs from a quantised graph by design.
    """
    values = [1.0]
    for name, result in simulators.items():
        if name == "trained":
            continue
        values += list(result["spike_agreement"].values()) + [result["prediction_agreement"]]
    return min(values)


@dataclass
class VerifyReport:
    """``verify_path``'s result: ``verify``'s comparison on ``data`` of ``model`` (compiled for ``target``); with a
    ``threshold``, whether the lowest agreement of any simulator reaches it (``passed``)."""

    n: int
    reference_accuracy: float
    simulators: dict[str, dict[str, Any]]
    arithmetic: str
    model: str
    data: str
    target: str
    threshold: float | None = None
    content_digest: str | None = None  #: a DelayGraph file's: "matches" or "none" (a run directory: None)
    reference_samples_per_second: float | None = None  #: the reference simulator's own rate on this data

    @property
    def worst_agreement(self) -> float:
        return worst_agreement(self.simulators)

    @property
    def passed(self) -> bool:
        """True without a threshold."""
        return self.threshold is None or self.worst_agreement >= self.threshold

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        if self.threshold is None:
            del out["threshold"]
        else:
            out["passed"] = self.passed
        return out

    def __str__(self) -> str:
        """The accuracy, agreement and first divergence of each simulator, and the verdict with a threshold."""
        lines = [
            f"{self.model} on {self.data} ({self.n} samples): reference simulator accuracy "
            f"{self.reference_accuracy:.4f}"
            + _rate(self.reference_samples_per_second, " ({} samples/s)")
            + ("" if self.content_digest is None else f"; the file's content digest: {self.content_digest}"),
            f"{'simulator':<12} {'accuracy':>9} {'same pred.':>11} {'samples/s':>10}  identical spikes per layer",
        ]
        for name, r in self.simulators.items():
            spikes = ", ".join(f"{k} {v:.4%}" for k, v in r["spike_agreement"].items())
            rate = _rate(r.get("samples_per_second"), "{}") or "–"
            lines.append(f"{name:<12} {r['accuracy']:>9.4f} {r['prediction_agreement']:>11.2%} {rate:>10}  {spikes}")
            if r["first_divergence"]:
                d = r["first_divergence"]
                lines.append(
                    f"{'':<12} first divergence: layer {d['layer']}, sample {d['sample']}, neuron {d['neuron']}, "
                    f"step {d['step']}: membrane {d['reference_membrane']:.6g} (reference) vs {d['other_membrane']}"
                )
        if self.threshold is not None:
            lines.append(
                f"{'passed' if self.passed else 'FAILED'}: lowest agreement {self.worst_agreement:.4%} "
                f"(threshold {self.threshold:.4%})"
            )
        return "\n".join(lines)


def _rate(value: float | None, form: str) -> str:
    """A samples/s figure in ``form`` ("" when there is none)."""
    return "" if value is None else form.format(f"{value:.3g}")


def verify_path(
    model: str | Path,
    data: str | Path,
    *,
    sims: list[str] | None = None,
    target: str = "float",
    batch_size: int = 64,
    samples: int | None = None,
    progress: bool = False,
    threshold: float | None = None,
) -> VerifyReport:
    """``verify`` for a DelayGraph file or a run directory (compiled in memory for ``target``), on the data
    file's first ``samples`` samples if given (else all); ``threshold``: the lowest agreement that passes."""
    from delaynir.handoff.graph_data import graph_loader

    model_path, trained, digest = Path(model), None, None
    if model_path.is_dir():
        from delaynir.compile.compiler import compile_in_memory
        from delaynir.hardware.profile import load_target
        from delaynir.train.run_dir import Run

        run = Run(model_path)
        trained = run.model
        graph, _ = compile_in_memory(run, load_target(target))
    else:
        from delaynir.common.h5 import sealed
        from delaynir.ir.graph_io import load_graph

        graph = load_graph(model_path)  # refuses a file whose content digest no longer matches
        digest = "matches" if sealed(model_path) else "none"
    loader, path = graph_loader(graph, data, batch_size=batch_size, samples=samples)
    report = verify(graph, loader, sims=sims, model=trained, progress=progress)
    return VerifyReport(
        **report, model=str(model), data=str(path), target=graph.target, threshold=threshold, content_digest=digest
    )
