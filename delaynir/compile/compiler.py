"""Compile a trained delay SNN into a DelayGraph for a target profile.

Per delay layer, in order: round delays (d = round(p)); fold BatchNorm (eval statistics)
into weights and biases, W' = a ⊙ W, b' = a · b + c with a = γ / √(var + ε), c = β_bn − a · μ;
quantise weights to the target's integer grid with a per-output-neuron scale (delaynir.numerics.quantize);
round thresholds, biases and decays as the target's number format says (delaynir.numerics.number_formats:
thresholds and biases on the weight grid for targets with integer thresholds and state, i.e. finite
threshold_bits and state_bits); drop synapses whose (quantised) weight is zero. Then delays longer than
the target allows are handled by the fit policy:

    error          (default) the model must fit: one error lists every violation;
    clip-delays    clip to the target's maximum delay (reported, changes the model);
    relay-neurons  chains of relay neurons (delaynir.compile.relay; exact, costs neurons).

Graded (real-valued) input, on a target whose profile allows it with finite ``input_bits``, is
quantised to integer codes q = clip(round(v / s_in), q_min, q_max) (delaynir.numerics.quantize.input_grid,
s_in from the training data's value range) and s_in is folded into the first layer's weights before
they are quantised: W' = s_in · W. The input spec of the graph records bits, s_in and the code range,
and every consumer feeds codes (delaynir.ir.graph.encode_input). A target that takes spikes only refuses
graded input (check_fit: ``graded_input``).

Finally the graph is checked against every limit of the profile.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from delaynir import __version__
from delaynir.compile.relay import expand_relays
from delaynir.errors import GraphFormatError, TargetError
from delaynir.hardware.fit import raise_if_misfit
from delaynir.hardware.profile import TargetProfile
from delaynir.ir.graph import INPUT, DelayGraph, InputSpec, Layer, Projection, decode_input, encode_input
from delaynir.nn.model import DelaySNN
from delaynir.numerics.number_formats import FLOAT64, NumberFormat, arithmetic_named
from delaynir.numerics.quantize import grid_for, input_quantization, quantize_weight
from delaynir.reference.agreement import Tally, model_result
from delaynir.reference.simulate import simulate
from delaynir.train.run_dir import Run

log = logging.getLogger(__name__)

FIT_POLICIES = ("error", "clip-delays", "relay-neurons")


@dataclass
class CompileReport:
    """What compiling did: per layer the synapses kept, zero weights removed, weights and delays clipped and the
    largest decay change; relay neurons added; the graph's size and input spec. ``compile_run`` adds the trained
    vs compiled comparison on the validation split (``compare``), the file written and the run directory."""

    target: str
    fit: str
    layers: list[dict[str, Any]]
    relay_neurons: int
    neurons: int
    synapses: int
    max_delay: int
    input: dict[str, Any]
    validation: dict[str, Any] | None = None
    out: str | None = None
    run_dir: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def __str__(self) -> str:
        """What `delaynir compile` prints: sizes, the per-layer table and the validation comparison."""
        val = self.validation
        lines = [
            f"compiled {self.run_dir} for {self.target} -> {self.out}: {self.neurons} neurons, "
            f"{self.synapses} synapses, max delay {self.max_delay} steps"
            + (f", {self.relay_neurons} relay neurons" if self.relay_neurons else ""),
            f"{'layer':<10} {'synapses':>9} {'zeros removed':>14} {'w clipped':>10} {'d clipped':>10} {'max d':>6}",
        ]
        lines += [
            f"{r['layer']:<10} {r['synapses']:>9} {r['zero_weights_removed']:>14} {r['weights_clipped']:>10} "
            f"{r['delays_clipped']:>10} {r['max_delay']:>6}"
            for r in self.layers
        ]
        if val is None:  # compile_in_memory's report: no comparison was run
            return "\n".join(lines)
        if "trained_accuracy_quantized_input" in val:
            lines.append(
                f"graded input quantised to {self.input['bits']}-bit codes (value = code x "
                f"{self.input['input_scale']:.4g}): trained model {val['trained_accuracy']:.4f} with float input, "
                f"{val['trained_accuracy_quantized_input']:.4f} with the quantised input"
            )
        agreement = ", ".join(f"{k} {v:.4%}" for k, v in val["spike_agreement"].items())
        lines.append(
            f"validation ({val['n']} samples): trained {val['trained_accuracy']:.4f}, compiled "
            f"{val['compiled_accuracy']:.4f}, same prediction {val['prediction_agreement']:.4f}; "
            f"identical spikes: {agreement}"
        )
        return "\n".join(lines)


def layer_names(n_hidden: int) -> list[str]:
    return [f"hidden{k + 1}" for k in range(n_hidden)] + ["output"]


def folded_layer(model: DelaySNN, k: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(weight (out, M), bias (out,), integer delays (out, M)) of delay layer k, BatchNorm folded, float64.

    Column m is a synapse from input m mod in_features (M = in_features for one delay per pair;
    a ``taps`` layer has M = D · in_features, one column per delay tap: ``synapse_table()``).
    """
    delay = model.delay_layer(k)
    w, d = delay.synapse_table()
    w = w.double()
    a, b = model.folding(k)
    if a is not None:
        w = a[:, None] * w
    return w, b, d


def _neuron_params(model: DelaySNN, k: int, n: int) -> tuple[str, np.ndarray, np.ndarray, str]:
    if k < len(model.neurons):
        lif = model.lif_layer(k)
        return "lif", lif.beta.double().numpy(), lif.threshold.double().numpy(), lif.reset
    return "li", model.readout.beta.double().numpy(), np.full(n, np.inf), "hard"


def _quantized_input(spec: InputSpec, profile: TargetProfile) -> InputSpec:
    """``spec`` with bits, input_scale and code_range when graded input is quantised for ``profile``."""
    quantized = input_quantization(spec, profile)
    if quantized is None:
        return spec
    bits, scale, q_min, q_max = quantized
    return replace(spec, bits=bits, input_scale=scale, code_range=(q_min, q_max))


def compile_model(
    model: DelaySNN,
    profile: TargetProfile,
    *,
    fit: str = "error",
    input_info: InputSpec | None = None,
    dt: float = 0.01,
    provenance: dict[str, Any] | None = None,
) -> tuple[DelayGraph, CompileReport]:
    """Compile ``model`` (its eval-mode, rounded-delay form) for ``profile``; returns (graph, report)."""
    if fit not in FIT_POLICIES:
        raise TargetError(f"unknown fit policy {fit!r}; choose one of {', '.join(FIT_POLICIES)}")
    grid, number_format = grid_for(profile), NumberFormat.of(profile)
    try:
        arithmetic_named(profile.arithmetic)
    except GraphFormatError as exc:
        raise TargetError(f"target {profile.name}: {exc}") from None
    spec = _quantized_input(input_info or InputSpec(), profile)
    names = layer_names(len(model.neurons))
    layers, report_layers = [], []
    source = INPUT
    for k, name in enumerate(names):
        w, b, d = folded_layer(model, k)
        if k == 0 and spec.input_scale is not None:
            w = w * spec.input_scale  # the layer receives codes q = v / s_in
        n_out = w.shape[0]
        kind, beta, threshold, reset = _neuron_params(model, k, n_out)
        clipped_w = 0
        scale = np.ones(n_out)
        b_np = b.numpy()
        if grid is not None:
            w, scale_t, clipped_w = quantize_weight(w, grid)
            scale = scale_t.numpy()
        threshold = number_format.threshold.quantize(threshold, scale)
        b_np = number_format.bias.quantize(b_np, scale)
        w_np, d_np = w.numpy(), d.numpy()
        post, col = np.nonzero(w_np)
        pre, delays = col % model.delay_layer(k).in_features, d_np[post, col]
        clipped_d = 0
        if fit == "clip-delays" and np.isfinite(profile.max_delay):
            clipped_d = int((delays > profile.max_delay).sum())
            delays = np.minimum(delays, int(profile.max_delay))
        new_beta = number_format.decay.quantize(beta)
        proj = Projection(source, pre, post, delays, w_np[post, col], scale)
        layers.append(
            Layer(
                name=name,
                size=n_out,
                neuron=kind,
                beta=new_beta,
                threshold=threshold,
                bias=b_np,
                projections=[proj],
                reset=reset,
            )
        )
        report_layers.append(
            {
                "layer": name,
                "neurons": n_out,
                "synapses": len(proj),
                "zero_weights_removed": int(w_np.size - len(proj)),
                "weights_clipped": clipped_w,
                "delays_clipped": clipped_d,
                "max_delay": proj.max_delay,
                "max_decay_change": float(np.max(np.abs(new_beta - beta))),
            }
        )
        source = name
    graph = DelayGraph(
        dt=dt,
        n_inputs=model.config.n_inputs,
        layers=layers,
        target=profile.name,
        input=spec,
        quantization={
            "weight_bits": profile.weight_bits,
            "weight_step": profile.weight_step,
            "scale": profile.weight_scale if grid else "none",
            "decay": profile.decay,
            **({"arithmetic": profile.arithmetic} if profile.arithmetic != FLOAT64.name else {}),
        },
        provenance={"delaynir_version": __version__, **(provenance or {})},
    )
    relays = 0
    if fit == "relay-neurons" and graph.max_delay > profile.max_delay:
        graph, relays = expand_relays(graph, int(profile.max_delay), weight_step=profile.weight_step)
        log.info("relay neurons: %d added for delays above %d steps", relays, int(profile.max_delay))
    raise_if_misfit(graph, profile)
    report = CompileReport(
        target=profile.name,
        fit=fit,
        layers=report_layers,
        relay_neurons=relays,
        neurons=graph.n_neurons,
        synapses=graph.n_synapses,
        max_delay=graph.max_delay,
        input={
            key: value
            for key in ("encoding", "bits", "input_scale", "code_range", "value_range")
            if (value := spec.to_dict().get(key)) is not None
        },
    )
    return graph, report


def compile_in_memory(run: Run, profile: TargetProfile, *, fit: str = "error") -> tuple[DelayGraph, CompileReport]:
    """``compile_model`` of a run's model for ``profile``, with the run's input spec, dt and provenance."""
    return compile_model(run.model, profile, fit=fit, input_info=run.input_spec, dt=run.dt, provenance=run.provenance)


@torch.no_grad()
def compare(model: DelaySNN, graph: DelayGraph, loader: Iterable[tuple[torch.Tensor, torch.Tensor]]) -> dict[str, Any]:
    """Trained model (eval, rounded delays) vs the compiled graph in the reference simulator, counted by
    ``delaynir.reference.agreement.Tally`` as ``delaynir verify`` counts.

    Returns both accuracies, the fraction of samples with the same prediction, and per
    hidden layer the fraction of identical (neuron, step) spike entries. The graph receives the
    codes of quantised graded input (graph.encode_input); the trained model then also runs on the
    values the codes stand for, so that ``trained_accuracy_quantized_input`` isolates what input
    quantisation costs.
    """
    names = layer_names(len(model.neurons))[:-1]
    trained, compiled, quantized_trained = Tally(names), Tally(names), Tally(names)
    quantized = graph.input.quantized
    for x, y in loader:
        codes = encode_input(graph, x)
        result = simulate(graph, codes, record=True)
        compiled.add(result, result, y, 0)
        trained.add(result, model_result(model, x, names), y, 0)
        if quantized:
            quantized_trained.add(result, model_result(model, decode_input(graph, codes).float(), names), y, 0)
    summary = trained.summary()
    out = {
        "n": trained.n,
        "trained_accuracy": summary["accuracy"],
        "compiled_accuracy": compiled.summary()["accuracy"],
        "prediction_agreement": summary["prediction_agreement"],
        "spike_agreement": summary["spike_agreement"],
    }
    if quantized:
        out["trained_accuracy_quantized_input"] = quantized_trained.summary()["accuracy"]
    return out


def compile_run(
    run: str | Path | Run,
    target: str,
    out: str | Path,
    *,
    fit: str = "error",
    overwrite: bool = False,
    batch_size: int = 256,
) -> CompileReport:
    """Compile a run's best model (a run directory, or one already opened) for ``target`` (a built-in name or a
    .toml path), save the DelayGraph to ``out``, and compare trained vs compiled on the run's validation split
    (never the test file)."""
    from delaynir.hardware.profile import load_target
    from delaynir.ir.graph_io import save_graph

    opened = Run.of(run)
    graph, report = compile_in_memory(opened, load_target(target), fit=fit)
    report.validation = compare(opened.model, graph, opened.validation_loader(batch_size))
    report.out, report.run_dir = str(save_graph(graph, out, overwrite=overwrite)), str(opened.path)
    return report
