"""Hardware target profiles: the schema, loading, validation and the fit check.

A target profile is data, not code: one TOML file per platform, each limit with its
public source and whether that source confirms it (see docs/targets.md). Built-in
profiles ship as package data of ``delaynir.targets`` (the top-level ``targets/``
folder); a user passes the path of their own ``.toml`` wherever a target name is
accepted.

    name = "loihi2"
    description = "Intel Loihi 2 through lava / lava-dl netx"
    format_version = 1

    [limits]
    weight_bits = { value = 9, source = "lava-dl ...", confirmed = true }
    max_delay   = { value = 62, source = "lava-dl netx/hdf5.py ...", confirmed = true }

``check_fit`` compares a compiled :class:`~delaynir.graph.DelayGraph` with a profile
and returns every violation; ``raise_if_misfit`` turns them into one ``TargetError``.

Delay convention. A feed-forward synapse with delay d needs a programmable delay of
d steps. A recurrent synapse (from its own layer or a later one) always spans at least
one step — that step is the recurrence itself, which every target provides — so it
needs a programmable delay of d − 1. ``max_delay`` bounds the programmable part;
:func:`max_model_delay` gives the largest model delay a projection may carry.
"""

from __future__ import annotations

import logging
import math
import sys
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any, Iterable

import numpy as np

from delaynir.errors import TargetError
from delaynir.inputs import read_text
from delaynir.graph import DelayGraph, Layer, Projection
from delaynir.neuron_kinds import NEURON_TYPES, RESETS
from delaynir.number_formats import DECAY_KINDS, decay_format

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

logger = logging.getLogger(__name__)

__all__ = [
    "FORMAT_VERSION",
    "LIMIT_KEYS",
    "FitViolation",
    "Limit",
    "TargetProfile",
    "builtin_target_names",
    "check_fit",
    "format_targets_table",
    "list_targets",
    "load_target",
    "max_model_delay",
    "parse_target",
    "raise_if_misfit",
]

FORMAT_VERSION = 1
WEIGHT_SCALES = ("per-layer", "per-output-channel")

INF = math.inf


# --------------------------------------------------------------------------- schema


@dataclass(frozen=True)
class _Spec:
    """How one ``[limits]`` entry's ``value`` is checked, and its default when absent."""

    kind: str  #: "int" | "bool" | "choice" | "list"
    help: str
    required: bool = False
    minimum: int = 0
    maximum: int | None = None
    allow_inf: bool = False
    choices: tuple[str, ...] = ()
    default: Any = None


_SPECS: dict[str, _Spec] = {
    "weight_bits": _Spec("int", "signed integer weight bits (>= 2), or 0 for float weights", required=True,
                         minimum=0, maximum=64),
    "weight_step": _Spec("int", "only multiples of this integer are representable", minimum=1, default=1),
    "weight_symmetric": _Spec("bool", "range is symmetric, [-(2^(b-1)-1), 2^(b-1)-1] (sign-magnitude)",
                              default=False),
    "weight_scale": _Spec("choice", "granularity of the float scale of the integer weights",
                          choices=WEIGHT_SCALES, default="per-output-channel"),
    "max_delay": _Spec("int", "largest programmable synaptic delay in steps (0 = none), or inf", required=True,
                       minimum=0, allow_inf=True),
    "per_synapse_delays": _Spec("bool", "every synapse has its own delay (else one per presynaptic neuron)"),
    "max_fan_in": _Spec("int", "synapses into one neuron", minimum=1, allow_inf=True, default=INF),
    "max_neurons": _Spec("int", "neurons in total", minimum=1, allow_inf=True, default=INF),
    "max_neurons_per_layer": _Spec("int", "neurons in one layer", minimum=1, allow_inf=True, default=INF),
    "max_inputs": _Spec("int", "input channels", minimum=1, allow_inf=True, default=INF),
    "max_outputs": _Spec("int", "output neurons", minimum=1, allow_inf=True, default=INF),
    "decay": _Spec("choice", "how a decay factor β is represented", choices=DECAY_KINDS, default="float"),
    "max_decay_shift": _Spec("int", "largest k of a bitshift decay β = 1 − 2^−k", minimum=0, allow_inf=True,
                             default=INF),
    "state_bits": _Spec("int", "bits of the neuron state", minimum=1, allow_inf=True, default=INF),
    "threshold_bits": _Spec("int", "bits of the threshold", minimum=1, allow_inf=True, default=INF),
    "graded_input": _Spec("bool", "the network input may be real-valued (graded values of input_bits bits) "
                          "instead of spikes", default=False),
    "input_bits": _Spec("int", "bits of one graded input value (unsigned codes for non-negative input), or inf",
                        minimum=1, allow_inf=True, default=INF),
    "neuron_types": _Spec("list", "neuron types the target runs", choices=NEURON_TYPES, default=NEURON_TYPES),
    "resets": _Spec("list", "reset modes the target runs", choices=RESETS, default=RESETS),
}
LIMIT_KEYS: tuple[str, ...] = tuple(_SPECS)
_TOP_KEYS = ("name", "description", "format_version", "limits")
_ENTRY_KEYS = ("value", "source", "confirmed", "note")


@dataclass
class Limit:
    """One limit of a profile: its value, the public source, and whether the source confirms it."""

    value: Any
    source: str
    confirmed: bool
    note: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {"value": _json_value(self.value), "source": self.source, "confirmed": self.confirmed,
                "note": self.note}


@dataclass
class TargetProfile:
    """A validated target profile. Missing limits mean "no limit"; the properties apply defaults."""

    name: str
    description: str
    path: str
    limits: dict[str, Limit] = field(default_factory=dict)

    # --- generic access
    def get(self, key: str) -> Any:
        """The value of limit ``key``, or its default (unlimited numbers are ``math.inf``)."""
        if key not in _SPECS:
            raise KeyError(f"unknown target limit {key!r}; known limits: {', '.join(LIMIT_KEYS)}")
        if key in self.limits:
            return self.limits[key].value
        if key == "per_synapse_delays":
            return self.max_delay > 0
        default = _SPECS[key].default
        return tuple(default) if isinstance(default, (list, tuple)) else default

    def confirmed(self, key: str) -> bool:
        """False when the profile marks limit ``key`` unconfirmed; True when confirmed or absent."""
        limit = self.limits.get(key)
        return True if limit is None else limit.confirmed

    # --- weights
    @property
    def weight_bits(self) -> int:
        return self.get("weight_bits")

    @property
    def weight_step(self) -> int:
        return self.get("weight_step")

    @property
    def weight_symmetric(self) -> bool:
        return self.get("weight_symmetric")

    @property
    def weight_scale(self) -> str:
        return self.get("weight_scale")

    @property
    def quantises_weights(self) -> bool:
        return self.weight_bits > 0

    def weight_range(self) -> tuple[int, int] | tuple[float, float]:
        """(smallest, largest) representable integer weight, honouring weight_step.

        Loihi 2 (9 bits, step 2) gives (−256, 254). A float target gives (−inf, inf).
        """
        if not self.quantises_weights:
            return (-INF, INF)
        return _weight_range(self.weight_bits, self.weight_step, self.weight_symmetric)

    # --- delays
    @property
    def max_delay(self) -> int | float:
        return self.get("max_delay")

    @property
    def per_synapse_delays(self) -> bool:
        return self.get("per_synapse_delays")

    # --- sizes
    @property
    def max_fan_in(self) -> int | float:
        return self.get("max_fan_in")

    @property
    def max_neurons(self) -> int | float:
        return self.get("max_neurons")

    @property
    def max_neurons_per_layer(self) -> int | float:
        return self.get("max_neurons_per_layer")

    @property
    def max_inputs(self) -> int | float:
        return self.get("max_inputs")

    @property
    def max_outputs(self) -> int | float:
        return self.get("max_outputs")

    # --- input
    @property
    def graded_input(self) -> bool:
        return self.get("graded_input")

    @property
    def input_bits(self) -> int | float:
        return self.get("input_bits")

    # --- neurons
    @property
    def decay(self) -> str:
        return self.get("decay")

    @property
    def max_decay_shift(self) -> int | float:
        return self.get("max_decay_shift")

    @property
    def state_bits(self) -> int | float:
        return self.get("state_bits")

    @property
    def threshold_bits(self) -> int | float:
        return self.get("threshold_bits")

    @property
    def neuron_types(self) -> tuple[str, ...]:
        return tuple(self.get("neuron_types"))

    @property
    def resets(self) -> tuple[str, ...]:
        return tuple(self.get("resets"))

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: the limits as written (with sources) and every effective value (defaults
        applied). Unlimited numbers are ``null``."""
        effective = {key: _json_value(self.get(key)) for key in LIMIT_KEYS}
        rng = self.weight_range()
        effective["weight_range"] = [_json_value(rng[0]), _json_value(rng[1])]
        return {
            "name": self.name,
            "description": self.description,
            "path": self.path,
            "format_version": FORMAT_VERSION,
            "limits": {key: limit.to_dict() for key, limit in self.limits.items()},
            "effective": effective,
        }


def _json_value(value: Any) -> Any:
    if isinstance(value, float) and math.isinf(value):
        return None
    if isinstance(value, tuple):
        return list(value)
    return value


def _weight_range(bits: int, step: int, symmetric: bool) -> tuple[int, int]:
    hi = 2 ** (bits - 1) - 1
    lo = -hi if symmetric else -(2 ** (bits - 1))
    return (-((-lo) // step) * step, (hi // step) * step)


# --------------------------------------------------------------------------- loading


def _builtin_dir() -> Any:
    """The folder of built-in profiles: package ``delaynir.targets`` (a Traversable).

    Falls back to the ``targets/`` folder next to ``delaynir/`` in a source checkout
    that is on ``sys.path`` but not installed (then ``delaynir.targets`` does not exist).
    """
    try:
        return resources.files("delaynir.targets")
    except ModuleNotFoundError:
        fallback = Path(__file__).resolve().parent.parent / "targets"
        if fallback.is_dir():
            logger.debug("delaynir.targets is not installed; reading profiles from %s", fallback)
            return fallback
        raise TargetError(
            "the built-in target profiles (package delaynir.targets) are not installed; "
            "reinstall delaynir (pip install -e .) or pass the path of a profile .toml"
        ) from None


def _builtin_files() -> dict[str, Any]:
    folder = _builtin_dir()
    return {entry.name[: -len(".toml")]: entry for entry in folder.iterdir()
            if entry.name.endswith(".toml") and entry.is_file()}


def builtin_target_names() -> list[str]:
    """Names of the built-in profiles, sorted."""
    return sorted(_builtin_files())


def list_targets() -> list[TargetProfile]:
    """All built-in profiles, sorted by name."""
    files = _builtin_files()
    return [_load_builtin(name, files[name]) for name in sorted(files)]


def _load_builtin(name: str, entry: Any) -> TargetProfile:
    return parse_target(entry.read_text(encoding="utf-8"), source=str(entry), expected_name=name)


def _looks_like_path(text: str) -> bool:
    return text.endswith(".toml") or "/" in text or "\\" in text


def load_target(name_or_path: str | Path) -> TargetProfile:
    """A built-in profile by name (``"loihi2"``) or a user's profile from a ``.toml`` path.

    A string counts as a path when it ends in ``.toml`` or contains a path separator.
    Raises ``TargetError`` for an unknown name (listing the built-ins), a missing or
    unreadable file, or an invalid profile (one error listing every problem).
    """
    if isinstance(name_or_path, Path) or _looks_like_path(str(name_or_path)):
        path = Path(name_or_path)
        text = read_text(path, TargetError, "target profile")
        profile = parse_target(text, source=str(path))
        logger.debug("loaded target profile %s from %s", profile.name, path)
        return profile
    files = _builtin_files()
    name = str(name_or_path)
    if name not in files:
        raise TargetError(
            f"unknown target {name!r}; built-in targets: {', '.join(sorted(files))} "
            "(or pass the path of a profile .toml, see docs/targets.md)"
        )
    return _load_builtin(name, files[name])


def parse_target(text: str, *, source: str = "<string>", expected_name: str | None = None) -> TargetProfile:
    """Parse and validate the TOML text of a profile; ``source`` names it in errors.

    Every problem is collected and reported in one ``TargetError``.
    """
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise TargetError(f"target profile {source} is not valid TOML: {exc}") from None
    problems: list[str] = []
    profile = _validate(data, source, problems, expected_name)
    if problems:
        raise TargetError(
            f"invalid target profile {source} ({len(problems)} problem{'s' if len(problems) != 1 else ''}):\n  "
            + "\n  ".join(f"{source}: {p}" for p in problems)
            + "\n(see docs/targets.md for the format)"
        )
    assert profile is not None
    return profile


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _check_value(key: str, spec: _Spec, value: Any) -> str | None:
    """An error message for a bad ``value`` of limit ``key``, or None."""
    where = f"limits.{key}.value"
    if spec.kind == "int":
        if key == "weight_bits":
            if not _is_int(value) or value < 0 or value == 1 or value > 64:
                return f"{where} must be 0 (float weights) or an integer from 2 to 64 (got {value!r})"
            return None
        inf_ok = " or inf" if spec.allow_inf else ""
        if isinstance(value, float) and spec.allow_inf and value == INF:
            return None
        if not _is_int(value):
            return f"{where} must be an integer >= {spec.minimum}{inf_ok} (got {value!r})"
        if value < spec.minimum or (spec.maximum is not None and value > spec.maximum):
            upper = f" and <= {spec.maximum}" if spec.maximum is not None else ""
            return f"{where} must be >= {spec.minimum}{upper}{inf_ok} (got {value!r})"
        return None
    if spec.kind == "bool":
        if not isinstance(value, bool):
            return f"{where} must be true or false (got {value!r})"
        return None
    if spec.kind == "choice":
        if value not in spec.choices:
            return f"{where} must be one of {', '.join(repr(c) for c in spec.choices)} (got {value!r})"
        return None
    if spec.kind == "list":
        if not isinstance(value, list) or not value or not all(isinstance(v, str) for v in value):
            return f"{where} must be a non-empty list of strings out of {', '.join(spec.choices)} (got {value!r})"
        unknown = [v for v in value if v not in spec.choices]
        if unknown:
            return (f"{where} has unknown entr{'ies' if len(unknown) > 1 else 'y'} "
                    f"{', '.join(repr(v) for v in unknown)}; allowed: {', '.join(spec.choices)}")
        if len(set(value)) != len(value):
            return f"{where} lists an entry twice ({value!r})"
        return None
    raise AssertionError(spec.kind)  # pragma: no cover


def _validate(data: dict[str, Any], source: str, problems: list[str],
              expected_name: str | None) -> TargetProfile | None:
    for key in sorted(set(data) - set(_TOP_KEYS)):
        problems.append(f"unknown top-level key {key!r}; allowed: {', '.join(_TOP_KEYS)}")
    name = data.get("name")
    if not isinstance(name, str) or not name.strip():
        problems.append(f"key 'name' must be a non-empty string (got {name!r})")
    elif expected_name is not None and name != expected_name:
        problems.append(f"key 'name' is {name!r} but a built-in profile must be named after its file "
                        f"({expected_name!r})")
    description = data.get("description", None)
    if not isinstance(description, str):
        problems.append(f"key 'description' must be a string (got {description!r})")
    version = data.get("format_version")
    if version is None:
        problems.append(f"key 'format_version' is missing; write format_version = {FORMAT_VERSION}")
    elif not _is_int(version) or version != FORMAT_VERSION:
        problems.append(f"key 'format_version' must be {FORMAT_VERSION} (got {version!r}); "
                        "a newer delaynir may be needed to read this profile")

    raw_limits = data.get("limits")
    limits: dict[str, Limit] = {}
    if raw_limits is None:
        problems.append("table [limits] is missing (it must hold at least weight_bits and max_delay)")
        raw_limits = {}
    elif not isinstance(raw_limits, dict):
        problems.append(f"key 'limits' must be a table (got {raw_limits!r})")
        raw_limits = {}
    for key in raw_limits:
        if key not in _SPECS:
            problems.append(f"unknown limit 'limits.{key}'; known limits: {', '.join(LIMIT_KEYS)}")
    for key, spec in _SPECS.items():
        if key not in raw_limits:
            if spec.required:
                problems.append(f"limit 'limits.{key}' is missing (required: {spec.help})")
            continue
        entry = raw_limits[key]
        if not isinstance(entry, dict):
            problems.append(f"limits.{key} must be an inline table {{ value = ..., source = \"...\", "
                            f"confirmed = true|false }} (got {entry!r})")
            continue
        entry_ok = True
        for sub in sorted(set(entry) - set(_ENTRY_KEYS)):
            problems.append(f"unknown key 'limits.{key}.{sub}'; allowed: {', '.join(_ENTRY_KEYS)}")
        if "value" not in entry:
            problems.append(f"limits.{key}.value is missing")
            entry_ok = False
        else:
            message = _check_value(key, spec, entry["value"])
            if message:
                problems.append(message)
                entry_ok = False
        src = entry.get("source")
        if not isinstance(src, str) or not src.strip():
            problems.append(f"limits.{key}.source is missing or empty: name the public source of this number")
            entry_ok = False
        confirmed = entry.get("confirmed")
        if not isinstance(confirmed, bool):
            problems.append(f"limits.{key}.confirmed must be true or false (got {confirmed!r})")
            entry_ok = False
        note = entry.get("note", "")
        if not isinstance(note, str):
            problems.append(f"limits.{key}.note must be a string (got {note!r})")
            entry_ok = False
        if entry_ok:
            value = entry["value"]
            if spec.kind == "list":
                value = tuple(value)
            limits[key] = Limit(value=value, source=src, confirmed=confirmed, note=note)

    _cross_check(limits, raw_limits, problems)
    if problems:
        return None
    return TargetProfile(name=name, description=description, path=source, limits=limits)


def _cross_check(limits: dict[str, Limit], raw: dict[str, Any], problems: list[str]) -> None:
    """Contradictions between limits (only among entries that were valid on their own)."""
    bits = limits["weight_bits"].value if "weight_bits" in limits else None
    if bits == 0:
        for key in ("weight_step", "weight_symmetric", "weight_scale"):
            if key in raw:
                problems.append(f"limits.{key} applies only to integer weights, but weight_bits is 0 (float)")
    elif bits is not None and "weight_step" in limits:
        step = limits["weight_step"].value
        symmetric = limits["weight_symmetric"].value if "weight_symmetric" in limits else False
        lo, hi = _weight_range(bits, step, symmetric)
        if hi < step:
            problems.append(f"limits.weight_step.value {step} leaves no non-zero weight in {bits} bits "
                            f"(range {lo}..{hi})")
    decay = limits["decay"].value if "decay" in limits else "float"
    if "max_decay_shift" in raw and "decay" in limits and decay != "bitshift":
        problems.append(f"limits.max_decay_shift applies only to decay = \"bitshift\" (decay is {decay!r})")
    if "max_decay_shift" in raw and "decay" not in raw:
        problems.append("limits.max_decay_shift applies only to decay = \"bitshift\", but decay is not set")
    if (limits.get("per_synapse_delays") is not None and limits["per_synapse_delays"].value
            and "max_delay" in limits and limits["max_delay"].value == 0):
        problems.append("limits.per_synapse_delays is true but max_delay is 0 (no programmable delays)")


# --------------------------------------------------------------------------- fit check


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
        return {"layer": self.layer, "limit": self.limit, "found": _json_value(self.found),
                "allowed": _json_value(self.allowed), "message": self.message,
                "projection": self.projection, "count": self.count}


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
    varies across output neurons. state_bits and threshold_bits are not checked (they
    describe the neuron arithmetic the compiler must target).
    """
    out: list[FitViolation] = []
    name = profile.name

    if graph.n_neurons > profile.max_neurons:
        out.append(FitViolation(
            None, "max_neurons", graph.n_neurons, profile.max_neurons,
            f"the model has {graph.n_neurons} neurons in total, {graph.n_neurons - profile.max_neurons} more than "
            f"the {profile.max_neurons} that {name} holds; use smaller layers (relay neurons count too)"))
    if graph.n_inputs > profile.max_inputs:
        out.append(FitViolation(
            None, "max_inputs", graph.n_inputs, profile.max_inputs,
            f"the model has {graph.n_inputs} input channels, {graph.n_inputs - profile.max_inputs} more than "
            f"the {profile.max_inputs} that {name} accepts; pool the input channels further"))
    if graph.layers and graph.n_outputs > profile.max_outputs:
        out.append(FitViolation(
            None, "max_outputs", graph.n_outputs, profile.max_outputs,
            f"the output layer {graph.layers[-1].name!r} has {graph.n_outputs} neurons, "
            f"{graph.n_outputs - profile.max_outputs} more than the {profile.max_outputs} outputs of {name}; "
            "reduce the number of classes or outputs"))

    out.extend(_check_input(graph, profile))
    for layer in graph.layers:
        out.extend(_check_layer(graph, layer, profile))
        for projection in layer.projections:
            out.extend(_check_delays(graph, layer, projection, profile))
            if profile.quantises_weights:
                out.extend(_check_weights(layer, projection, profile))
    return out


def _check_input(graph: DelayGraph, profile: TargetProfile) -> list[FitViolation]:
    """Graded input on a target that takes spikes only, or with more bits than it takes."""
    if graph.encoding != "graded":
        return []
    if not profile.graded_input:
        return [FitViolation(
            None, "graded_input", True, False,
            f"the model's input is graded (real values) but {profile.name} takes spikes only; train on spike input "
            "(an encoder in front of the network, e.g. `delaynir data speech` makes cochlea spikes from audio) or run "
            "the first layer on the host and deploy the layers after it")]
    bits = graph.input.get("bits")
    if profile.input_bits < INF and (bits is None or bits > profile.input_bits):
        return [FitViolation(
            None, "input_bits", bits if bits is not None else INF, profile.input_bits,
            f"the model's graded input has {'unquantised float' if bits is None else f'{bits}-bit'} values but "
            f"{profile.name} takes {profile.input_bits}-bit graded input; compile quantises the input to the "
            "profile's input_bits (recompile from the run directory)")]
    return []


def _check_layer(graph: DelayGraph, layer: Layer, profile: TargetProfile) -> list[FitViolation]:
    out: list[FitViolation] = []
    name = profile.name
    if layer.neuron not in profile.neuron_types:
        out.append(FitViolation(
            layer.name, "neuron_types", layer.neuron, profile.neuron_types,
            f"{_where(layer)} uses {layer.neuron!r} neurons, which {name} does not run "
            f"(it runs: {_fmt(profile.neuron_types)}); train with a supported neuron type"))
    if layer.neuron in ("lif", "cubalif") and layer.reset not in profile.resets:
        out.append(FitViolation(
            layer.name, "resets", layer.reset, profile.resets,
            f"{_where(layer)} uses the {layer.reset!r} reset, which {name} does not support "
            f"(it supports: {_fmt(profile.resets)}); train with a supported reset"))
    if layer.size > profile.max_neurons_per_layer:
        out.append(FitViolation(
            layer.name, "max_neurons_per_layer", layer.size, profile.max_neurons_per_layer,
            f"{_where(layer)} has {layer.size} neurons, {layer.size - profile.max_neurons_per_layer} more than "
            f"the {profile.max_neurons_per_layer} per layer of {name}; use a smaller layer or split it"))

    if profile.max_fan_in < INF and layer.projections:
        fan_in = np.zeros(layer.size, dtype=np.int64)
        for projection in layer.projections:
            counts = np.bincount(projection.post[(projection.post >= 0) & (projection.post < layer.size)],
                                 minlength=layer.size)
            fan_in += counts[: layer.size]
        over = int(np.count_nonzero(fan_in > profile.max_fan_in))
        if over:
            largest = int(fan_in.max())
            out.append(FitViolation(
                layer.name, "max_fan_in", largest, profile.max_fan_in,
                f"{_where(layer)}: {over} of {layer.size} neurons receive more than {profile.max_fan_in} synapses "
                f"(largest fan-in {largest}, {largest - profile.max_fan_in} too many); train sparser "
                "(a lower connection budget) or with fewer inputs per neuron", count=over))

    if layer.neuron in ("lif", "cubalif", "li") and profile.decay != "float":
        decay = decay_format(profile.decay, profile.max_decay_shift)
        factors = [("beta", "membrane decay β", layer.beta)]
        if layer.neuron == "cubalif" and layer.alpha is not None:
            factors.append(("alpha", "synaptic decay α", layer.alpha))
        for _, label, values in factors:
            values = np.asarray(values, dtype=np.float64).ravel()
            bad = decay.unrepresentable(values)
            if bad.any():
                example, form = float(values[bad][0]), decay.form
                out.append(FitViolation(
                    layer.name, "decay", example, form,
                    f"{_where(layer)}: {int(bad.sum())} of {values.size} neurons have a {label} that {name} cannot "
                    f"represent as {form} (e.g. {example:.6g}); compile for {name} so decays are rounded to its "
                    "format", count=int(bad.sum())))
    return out


def _check_delays(graph: DelayGraph, layer: Layer, projection: Projection,
                  profile: TargetProfile) -> list[FitViolation]:
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
        what = (f"delays above the {kind}maximum of {_fmt(allowed)} steps"
                if profile.max_delay > 0 else
                f"delays, but {name} has no programmable delays"
                + (" (a recurrent synapse may only carry the 1 step of the recurrence)" if recurrent
                   else " (all feed-forward delays must be 0)"))
        fix = ("Compile with `--fit clip-delays` (clips them, changes the model) or `--fit relay-neurons` "
               "(realises them with chains of relay neurons, costs neurons)" if profile.max_delay >= 1 else
               "Relay neurons need at least one step of programmable delay per hop, which this target lacks: "
               "train without delays (`--delays none`) or choose a target with delays")
        out.append(FitViolation(
            layer.name, "max_delay", largest, allowed,
            f"{_where(layer, projection)}: {n_over} of {len(projection)} synapses have {what}; largest delay "
            f"{largest} steps, {largest - allowed} too many. {fix}",
            projection=projection.source, count=n_over))
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
            out.append(FitViolation(
                layer.name, "per_synapse_delays", mixed, 0,
                f"{_where(layer, projection)}: {mixed} source neurons send synapses with different delays (spread "
                f"up to {spread} steps), but {name} has no per-synapse delays (one delay per source neuron); "
                "compile with `--fit relay-neurons` or train with one delay per source neuron",
                projection=projection.source, count=mixed))
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
        out.append(FitViolation(
            layer.name, "weight_bits", example, f"integers in [{lo}, {hi}]",
            f"{where}: {n_frac} of {len(projection)} weights are not integers (e.g. {example:.6g}), but {name} "
            f"stores {bits}-bit integer weights; compile for {name} to quantise them",
            projection=projection.source, count=n_frac))
    if step > 1:
        off = integral & (np.mod(weight, step) != 0)
        n_off = int(np.count_nonzero(off))
        if n_off:
            example = float(weight[off][0])
            out.append(FitViolation(
                layer.name, "weight_step", example, step,
                f"{where}: {n_off} of {len(projection)} integer weights are not multiples of {step} "
                f"(e.g. {example:g}), the only values {name} represents; compile for {name} to quantise them",
                projection=projection.source, count=n_off))
    out_of_range = finite & ((weight < lo) | (weight > hi))
    n_out = int(np.count_nonzero(out_of_range))
    if n_out:
        worst = float(weight[out_of_range][np.argmax(np.abs(weight[out_of_range]))])
        excess = worst - hi if worst > hi else lo - worst
        out.append(FitViolation(
            layer.name, "weight_bits", worst, (lo, hi),
            f"{where}: {n_out} of {len(projection)} weights lie outside {name}'s range [{lo}, {hi}] "
            f"(worst {worst:g}, {excess:g} beyond); compile for {name} so the scale maps them into range",
            projection=projection.source, count=n_out))
    if profile.weight_scale == "per-layer" and projection.scale.size > 1:
        scale = projection.scale
        distinct = int(np.unique(scale).size)
        if distinct > 1:
            out.append(FitViolation(
                layer.name, "weight_scale", distinct, 1,
                f"{where}: the weight scale takes {distinct} different values across output neurons, but {name} "
                "has one scale per layer; compile for this target (per-layer quantisation)",
                projection=projection.source, count=distinct))
    return out


def raise_if_misfit(graph: DelayGraph, profile: TargetProfile) -> None:
    """Raise one ``TargetError`` listing every violation; return None when the graph fits."""
    violations = check_fit(graph, profile)
    if violations:
        raise TargetError(
            f"model does not fit target {profile.name}: {len(violations)} violation"
            f"{'s' if len(violations) != 1 else ''}\n  - " + "\n  - ".join(v.message for v in violations))


# --------------------------------------------------------------------------- table


def _cell(profile: TargetProfile, keys: Iterable[str], text: str) -> str:
    return text + ("?" if any(not profile.confirmed(k) for k in keys) else "")


def _limit_text(value: Any) -> str:
    return "-" if isinstance(value, float) and math.isinf(value) else str(value)


def _columns(p: TargetProfile) -> list[str]:
    if p.quantises_weights:
        lo, hi = p.weight_range()
        weights = f"int{p.weight_bits} [{lo}, {hi}]" + (f" step {p.weight_step}" if p.weight_step > 1 else "")
    else:
        weights = "float"
    weights = _cell(p, ("weight_bits", "weight_step", "weight_symmetric"), weights)
    if p.max_delay == 0:
        delays = "none"
    else:
        delays = "any" if math.isinf(p.max_delay) else f"0-{p.max_delay}"
        delays += " per synapse" if p.per_synapse_delays else " per source"
    delays = _cell(p, ("max_delay", "per_synapse_delays"), delays)
    fan_in = _cell(p, ("max_fan_in",), _limit_text(p.max_fan_in))
    neurons = _limit_text(p.max_neurons)
    extras = [f"{label} {_limit_text(v)}" for label, v in
              (("in", p.max_inputs), ("out", p.max_outputs), ("per layer", p.max_neurons_per_layer))
              if not math.isinf(v)]
    if extras:
        neurons += f" ({', '.join(extras)})"
    neurons = _cell(p, ("max_neurons", "max_inputs", "max_outputs", "max_neurons_per_layer"), neurons)
    decay = p.decay
    if decay == "bitshift" and not math.isinf(p.max_decay_shift):
        decay += f" k<={p.max_decay_shift}"
    decay = _cell(p, ("decay", "max_decay_shift"), decay)
    graded = "spikes" if not p.graded_input else "graded " + (
        "float" if math.isinf(p.input_bits) else f"{p.input_bits}-bit")
    graded = _cell(p, ("graded_input", "input_bits"), graded)
    return [p.name, weights, delays, fan_in, neurons, decay, graded]


def format_targets_table(profiles: Iterable[TargetProfile]) -> str:
    """The human table of ``delaynir targets``: one row per profile; '?' marks a value whose
    source does not confirm it, '-' means no limit."""
    header = ["name", "weights", "delays (steps)", "fan-in", "neurons", "decay", "input"]
    rows = [_columns(p) for p in profiles]
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]

    def line(cells: list[str]) -> str:
        return "  ".join(c.ljust(w) for c, w in zip(cells, widths)).rstrip()

    out = [line(header), line(["-" * w for w in widths])]
    out.extend(line(r) for r in rows)
    out.append("")
    out.append("? = not confirmed by a public source; - = no limit. "
               "Sources: delaynir targets --json, or docs/targets.md")
    return "\n".join(out)

