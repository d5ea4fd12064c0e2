"""The fit check: every way a compiled DelayGraph violates a target profile's limits.

``check_fit`` compares a compiled :class:`~delaynir.ir.graph.DelayGraph` with a profile
(:mod:`delaynir.hardware.profile`) and returns every violation; ``raise_if_misfit`` turns them into
one ``TargetError``.

Delay convention. A feed-forward synapse with delay d needs a programmable delay of
d steps. A recurrent synapse (``DelayGraph.is_recurrent``) always spans at least one
step — that step is the recurrence itself, which every target provides — so it needs a
programmable delay of d − 1. ``max_delay`` bounds the programmable part;
:func:`max_model_delay` gives the largest model delay a projection may carry.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from delaynir import plugins
from delaynir.errors import GraphFormatError, TargetError
from delaynir.hardware.profile import INF, TargetProfile, json_value
from delaynir.ir.graph import DelayGraph, Layer, Projection
from delaynir.ir.neuron_kinds import DECAYS
from delaynir.numerics.number_formats import arithmetic_named, decay_format


@dataclass
class FitViolation:
    """One way a graph does not fit a target.

    layer: the layer's name, or None for a graph-level limit; limit: the profile key;
    found / allowed: the offending and the allowed value (largest delay vs max_delay,
    largest fan-in vs max_fan_in, ...); message: for a person — which layer, which limit,
    by how much, what to do. projection: the source of the offending projection, if any;
    count: how many synapses / neurons / source neurons are affected.
    """

    layer: str | None
    limit: str
    found: Any
    allowed: Any
    message: str
    projection: str | None = None
    count: int | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "layer": self.layer,
            "limit": self.limit,
            "found": json_value(self.found),
            "allowed": json_value(self.allowed),
            "message": self.message,
            "projection": self.projection,
            "count": self.count,
        }


def max_model_delay(profile: TargetProfile, recurrent: bool = False) -> int | float:
    """The largest delay (steps) a projection may carry on ``profile``: max_delay for a
    feed-forward projection, max_delay + 1 for a recurrent one (the recurrence itself is
    one step)."""
    return profile.max_delay + (1 if recurrent else 0)


def _fmt(value: Any) -> str:
    if isinstance(value, float) and math.isinf(value):
        return "unlimited"
    if isinstance(value, (tuple, list)):
        return ", ".join(str(v) for v in value)
    return str(value)


def _where(layer: Layer, projection: Projection | None = None) -> str:
    if projection is None:
        return f"layer {layer.name!r}"
    return f"layer {layer.name!r}, projection from {projection.source!r}"


def check_fit(graph: DelayGraph, profile: TargetProfile) -> list[FitViolation]:
    """Every way ``graph`` violates ``profile``'s limits; an empty list when it fits.

    Checked: total neurons, inputs, outputs; per layer: neuron type, reset, size, fan-in
    (synapses into one neuron, all projections together), decay representability (β, and α
    of cubalif, for fixed12 / bitshift targets); per projection: delays above the allowed
    maximum (see :func:`max_model_delay`), differing delays from one source neuron on a
    target without per-synapse delays, and — for integer targets — weights that are not
    integers, not multiples of weight_step, out of range, or (per-layer scale) a scale that
    varies across output neurons; what the profile's arithmetic cannot compute (its ``check``:
    for a chip's fixed-point arithmetic, e.g. thresholds and biases within their bits); and the target package's
    own fit check for the profile (``TargetPlugin.fit_checks``). state_bits and
    threshold_bits are not checked otherwise (they describe the neuron arithmetic the compiler must target).
    """
    out: list[FitViolation] = []
    name = profile.name

    if graph.n_neurons > profile.max_neurons:
        out.append(
            FitViolation(
                None,
                "max_neurons",
                graph.n_neurons,
                profile.max_neurons,
                f"the model has {graph.n_neurons} neurons in total, {graph.n_neurons - profile.max_neurons} more than "
                f"the {profile.max_neurons} that {name} holds; use smaller layers (relay neurons count too)",
            )
        )
    if graph.n_inputs > profile.max_inputs:
        out.append(
            FitViolation(
                None,
                "max_inputs",
                graph.n_inputs,
                profile.max_inputs,
                f"the model has {graph.n_inputs} input channels, {graph.n_inputs - profile.max_inputs} more than "
                f"the {profile.max_inputs} that {name} accepts; pool the input channels further",
            )
        )
    if graph.layers and graph.n_outputs > profile.max_outputs:
        out.append(
            FitViolation(
                None,
                "max_outputs",
                graph.n_outputs,
                profile.max_outputs,
                f"the output layer {graph.layers[-1].name!r} has {graph.n_outputs} neurons, "
                f"{graph.n_outputs - profile.max_outputs} more than the {profile.max_outputs} outputs of {name}; "
                "reduce the number of classes or outputs",
            )
        )

    out.extend(_check_input(graph, profile))
    for layer in graph.layers:
        out.extend(_check_layer(graph, layer, profile))
        for projection in layer.projections:
            out.extend(_check_delays(graph, layer, projection, profile))
            if profile.quantises_weights:
                out.extend(_check_weights(layer, projection, profile))
    out.extend(_check_arithmetic(graph, profile))
    target_check = plugins.fit_check_paths().get(profile.name)
    if target_check:  # what only the target's package knows (e.g. cores used as a function of delays)
        out.extend(plugins.load_attribute(target_check)(graph, profile))
    return out


def _check_arithmetic(graph: DelayGraph, profile: TargetProfile) -> list[FitViolation]:
    """What the profile's arithmetic (delaynir.numerics.number_formats) cannot compute, or that no target
    provides it."""
    try:
        arithmetic = arithmetic_named(profile.arithmetic)
    except GraphFormatError as exc:
        return [FitViolation(None, "arithmetic", profile.arithmetic, "an installed arithmetic", str(exc))]
    return arithmetic.check(graph) if arithmetic.check is not None else []


def _check_input(graph: DelayGraph, profile: TargetProfile) -> list[FitViolation]:
    """Graded input on a target that takes spikes only, or with more bits than it takes."""
    if not graph.input.graded:
        return []
    if not profile.graded_input:
        return [
            FitViolation(
                None,
                "graded_input",
                True,
                False,
                f"the model's input is graded (real values) but {profile.name} takes spikes only; train on spike "
                "input (an encoder in front of the network, e.g. `delaynir data speech` makes cochlea spikes from "
                "audio) or run the first layer on the host and deploy the layers after it",
            )
        ]
    bits = graph.input.bits
    if profile.input_bits < INF and (bits is None or bits > profile.input_bits):
        return [
            FitViolation(
                None,
                "input_bits",
                bits if bits is not None else INF,
                profile.input_bits,
                f"the model's graded input has {'unquantised float' if bits is None else f'{bits}-bit'} values but "
                f"{profile.name} takes {profile.input_bits}-bit graded input; compile quantises the input to the "
                "profile's input_bits (recompile from the run directory)",
            )
        ]
    return []


def _check_layer(graph: DelayGraph, layer: Layer, profile: TargetProfile) -> list[FitViolation]:
    out: list[FitViolation] = []
    name = profile.name
    if layer.neuron not in profile.neuron_types:
        out.append(
            FitViolation(
                layer.name,
                "neuron_types",
                layer.neuron,
                profile.neuron_types,
                f"{_where(layer)} uses {layer.neuron!r} neurons, which {name} does not run "
                f"(it runs: {_fmt(profile.neuron_types)}); train with a supported neuron type",
            )
        )
    if layer.kind.spiking and layer.reset not in profile.resets:
        out.append(
            FitViolation(
                layer.name,
                "resets",
                layer.reset,
                profile.resets,
                f"{_where(layer)} uses the {layer.reset!r} reset, which {name} does not support "
                f"(it supports: {_fmt(profile.resets)}); train with a supported reset",
            )
        )
    if layer.size > profile.max_neurons_per_layer:
        out.append(
            FitViolation(
                layer.name,
                "max_neurons_per_layer",
                layer.size,
                profile.max_neurons_per_layer,
                f"{_where(layer)} has {layer.size} neurons, {layer.size - profile.max_neurons_per_layer} more than "
                f"the {profile.max_neurons_per_layer} per layer of {name}; use a smaller layer or split it",
            )
        )

    if profile.max_fan_in < INF and layer.projections:
        fan_in = np.zeros(layer.size, dtype=np.int64)
        for projection in layer.projections:
            counts = np.bincount(
                projection.post[(projection.post >= 0) & (projection.post < layer.size)], minlength=layer.size
            )
            fan_in += counts[: layer.size]
        over = int(np.count_nonzero(fan_in > profile.max_fan_in))
        if over:
            largest = int(fan_in.max())
            out.append(
                FitViolation(
                    layer.name,
                    "max_fan_in",
                    largest,
                    profile.max_fan_in,
                    f"{_where(layer)}: {over} of {layer.size} neurons receive more than {profile.max_fan_in} synapses "
                    f"(largest fan-in {largest}, {largest - profile.max_fan_in} too many); train sparser "
                    "(a lower connection budget) or with fewer inputs per neuron",
                    count=over,
                )
            )

    if layer.kind.decays and profile.decay != "float":
        decay = decay_format(profile.decay, profile.max_decay_shift)
        for key in (key for key in layer.kind.decays if getattr(layer, key) is not None):
            label, values = " ".join(DECAYS[key]), np.asarray(getattr(layer, key), dtype=np.float64).ravel()
            bad = decay.unrepresentable(values)
            if bad.any():
                example, form = float(values[bad][0]), decay.form
                out.append(
                    FitViolation(
                        layer.name,
                        "decay",
                        example,
                        form,
                        f"{_where(layer)}: {int(bad.sum())} of {values.size} neurons have a {label} that {name} cannot "
                        f"represent as {form} (e.g. {example:.6g}); compile for {name} so decays are rounded to its "
                        "format",
                        count=int(bad.sum()),
                    )
                )
    return out


def _check_delays(
    graph: DelayGraph, layer: Layer, projection: Projection, profile: TargetProfile
) -> list[FitViolation]:
    out: list[FitViolation] = []
    if not len(projection):
        return out
    name = profile.name
    recurrent = graph.is_recurrent(layer, projection)
    allowed = max_model_delay(profile, recurrent)
    delay = projection.delay
    over = delay > allowed
    n_over = int(np.count_nonzero(over))
    if n_over:
        largest = int(delay.max())
        kind = "recurrent " if recurrent else ""
        what = (
            f"delays above the {kind}maximum of {_fmt(allowed)} steps"
            if profile.max_delay > 0
            else f"delays, but {name} has no programmable delays"
            + (
                " (a recurrent synapse may only carry the 1 step of the recurrence)"
                if recurrent
                else " (all feed-forward delays must be 0)"
            )
        )
        fix = (
            "Compile with `--fit clip-delays` (clips them, changes the model) or `--fit relay-neurons` "
            "(realises them with chains of relay neurons, costs neurons)"
            if profile.max_delay >= 1
            else "Relay neurons need at least one step of programmable delay per hop, which this target lacks: "
            "train without delays (`--delays none`) or choose a target with delays"
        )
        out.append(
            FitViolation(
                layer.name,
                "max_delay",
                largest,
                allowed,
                f"{_where(layer, projection)}: {n_over} of {len(projection)} synapses have {what}; largest delay "
                f"{largest} steps, {largest - allowed} too many. {fix}",
                projection=projection.source,
                count=n_over,
            )
        )
    if not profile.per_synapse_delays and profile.max_delay > 0:
        pre = projection.pre
        n_src = int(pre.max()) + 1 if pre.size else 0
        lo = np.full(n_src, np.iinfo(np.int64).max, dtype=np.int64)
        hi = np.full(n_src, np.iinfo(np.int64).min, dtype=np.int64)
        np.minimum.at(lo, pre, delay)
        np.maximum.at(hi, pre, delay)
        mixed = int(np.count_nonzero(hi > lo))
        if mixed:
            spread = int((hi - lo)[hi > lo].max())
            out.append(
                FitViolation(
                    layer.name,
                    "per_synapse_delays",
                    mixed,
                    0,
                    f"{_where(layer, projection)}: {mixed} source neurons send synapses with different delays (spread "
                    f"up to {spread} steps), but {name} has no per-synapse delays (one delay per source neuron); "
                    "compile with `--fit relay-neurons` or train with one delay per source neuron",
                    projection=projection.source,
                    count=mixed,
                )
            )
    return out


def _check_weights(layer: Layer, projection: Projection, profile: TargetProfile) -> list[FitViolation]:
    out: list[FitViolation] = []
    if not len(projection):
        return out
    name = profile.name
    where = _where(layer, projection)
    weight = projection.weight
    finite = np.isfinite(weight)
    integral = finite & (weight == np.round(weight))
    n_frac = int(np.count_nonzero(~integral))
    bits, step = profile.weight_bits, profile.weight_step
    lo, hi = profile.weight_range()
    if n_frac:
        example = float(weight[~integral][0])
        out.append(
            FitViolation(
                layer.name,
                "weight_bits",
                example,
                f"integers in [{lo}, {hi}]",
                f"{where}: {n_frac} of {len(projection)} weights are not integers (e.g. {example:.6g}), but {name} "
                f"stores {bits}-bit integer weights; compile for {name} to quantise them",
                projection=projection.source,
                count=n_frac,
            )
        )
    if step > 1:
        off = integral & (np.mod(weight, step) != 0)
        n_off = int(np.count_nonzero(off))
        if n_off:
            example = float(weight[off][0])
            out.append(
                FitViolation(
                    layer.name,
                    "weight_step",
                    example,
                    step,
                    f"{where}: {n_off} of {len(projection)} integer weights are not multiples of {step} "
                    f"(e.g. {example:g}), the only values {name} represents; compile for {name} to quantise them",
                    projection=projection.source,
                    count=n_off,
                )
            )
    out_of_range = finite & ((weight < lo) | (weight > hi))
    n_out = int(np.count_nonzero(out_of_range))
    if n_out:
        worst = float(weight[out_of_range][np.argmax(np.abs(weight[out_of_range]))])
        excess = worst - hi if worst > hi else lo - worst
        out.append(
            FitViolation(
                layer.name,
                "weight_bits",
                worst,
                (lo, hi),
                f"{where}: {n_out} of {len(projection)} weights lie outside {name}'s range [{lo}, {hi}] "
                f"(worst {worst:g}, {excess:g} beyond); compile for {name} so the scale maps them into range",
                projection=projection.source,
                count=n_out,
            )
        )
    if profile.weight_scale == "per-layer" and projection.scale.size > 1:
        scale = projection.scale
        distinct = int(np.unique(scale).size)
        if distinct > 1:
            out.append(
                FitViolation(
                    layer.name,
                    "weight_scale",
                    distinct,
                    1,
                    f"{where}: the weight scale takes {distinct} different values across output neurons, but {name} "
                    "has one scale per layer; compile for this target (per-layer quantisation)",
                    projection=projection.source,
                    count=distinct,
                )
            )
    return out


def raise_if_misfit(graph: DelayGraph, profile: TargetProfile) -> None:
    """Raise one ``TargetError`` listing every violation; return None when the graph fits."""
    violations = check_fit(graph, profile)
    if violations:
        raise TargetError(
            f"model does not fit target {profile.name}: {len(violations)} violation"
            f"{'s' if len(violations) != 1 else ''}\n  - " + "\n  - ".join(v.message for v in violations)
        )
