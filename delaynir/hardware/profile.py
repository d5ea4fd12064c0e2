"""Hardware target profiles: the schema, loading and validation (the fit check is ``delaynir.hardware.fit``).

A target profile is data, not code: one TOML file per platform, each limit with its
public source and whether that source confirms it (see docs/targets.md). Built-in
profiles ship as package data of ``delaynir.targets`` (the top-level ``targets/``
folder: profiles with no code of their own) and inside each target package (``targets/<name>/``,
listed by its ``PLUGIN``, ``delaynir.plugins``); a user passes the path of their own ``.toml``
wherever a target name is accepted.

    name = "mychip"
    description = "a chip with 8-bit weights and delays up to 62 steps"
    format_version = 1

    [limits]
    weight_bits = { value = 8, source = "the chip's datasheet, section 3", confirmed = true }
    max_delay   = { value = 62, source = "the chip's SDK, delay.py", confirmed = true }

``max_delay`` bounds a target's programmable delay (``delaynir.hardware.fit``, "Delay convention").
"""

from __future__ import annotations

import logging
import math
import sys
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any, Generic, TypeVar, overload

from delaynir import plugins
from delaynir.common.text import read_text
from delaynir.errors import TargetError
from delaynir.ir.neuron_kinds import NEURON_TYPES, RESETS
from delaynir.numerics.number_formats import DECAY_KINDS

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

logger = logging.getLogger(__name__)

__all__ = [
    "FORMAT_VERSION",
    "LIMIT_KEYS",
    "Limit",
    "TargetProfile",
    "builtin_target_names",
    "json_value",
    "list_targets",
    "load_target",
    "parse_target",
]

FORMAT_VERSION = 1
WEIGHT_SCALES = ("per-layer", "per-output-channel")

INF = math.inf


# --------------------------------------------------------------------------- schema


@dataclass(frozen=True)
class _Spec:
    """How one ``[limits]`` entry's ``value`` is checked, and its default when absent."""

    kind: str  #: "int" | "bool" | "choice" | "list" | "name"
    help: str
    required: bool = False
    minimum: int = 0
    maximum: int | None = None
    allow_inf: bool = False
    choices: tuple[str, ...] = ()
    default: Any = None


_SPECS: dict[str, _Spec] = {
    "weight_bits": _Spec(
        "int", "signed integer weight bits (>= 2), or 0 for float weights", required=True, minimum=0, maximum=64
    ),
    "weight_step": _Spec("int", "only multiples of this integer are representable", minimum=1, default=1),
    "weight_symmetric": _Spec("bool", "range is symmetric, [-(2^(b-1)-1), 2^(b-1)-1] (sign-magnitude)", default=False),
    "weight_scale": _Spec(
        "choice",
        "granularity of the float scale of the integer weights",
        choices=WEIGHT_SCALES,
        default="per-output-channel",
    ),
    "max_delay": _Spec(
        "int",
        "largest programmable synaptic delay in steps (0 = none), or inf",
        required=True,
        minimum=0,
        allow_inf=True,
    ),
    "per_synapse_delays": _Spec("bool", "every synapse has its own delay (else one per presynaptic neuron)"),
    "max_fan_in": _Spec("int", "synapses into one neuron", minimum=1, allow_inf=True, default=INF),
    "max_neurons": _Spec("int", "neurons in total", minimum=1, allow_inf=True, default=INF),
    "max_neurons_per_layer": _Spec("int", "neurons in one layer", minimum=1, allow_inf=True, default=INF),
    "max_inputs": _Spec("int", "input channels", minimum=1, allow_inf=True, default=INF),
    "max_outputs": _Spec("int", "output neurons", minimum=1, allow_inf=True, default=INF),
    "decay": _Spec("choice", "how a decay factor β is represented", choices=DECAY_KINDS, default="float"),
    "max_decay_shift": _Spec(
        "int", "largest k of a bitshift decay β = 1 − 2^−k", minimum=0, allow_inf=True, default=INF
    ),
    "state_bits": _Spec("int", "bits of the neuron state", minimum=1, allow_inf=True, default=INF),
    "threshold_bits": _Spec("int", "bits of the threshold", minimum=1, allow_inf=True, default=INF),
    "graded_input": _Spec(
        "bool",
        "the network input may be real-valued (graded values of input_bits bits) instead of spikes",
        default=False,
    ),
    "input_bits": _Spec(
        "int",
        "bits of one graded input value (unsigned codes for non-negative input), or inf",
        minimum=1,
        allow_inf=True,
        default=INF,
    ),
    "arithmetic": _Spec(
        "name",
        "the arithmetic a compiled graph is computed in: float64, or one a target package "
        "provides (delaynir.numerics.number_formats)",
        default="float64",
    ),
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
        return {"value": json_value(self.value), "source": self.source, "confirmed": self.confirmed, "note": self.note}


T = TypeVar("T")


class _Limit(Generic[T]):
    """A profile attribute that reads the limit of its own name (``TargetProfile.get``: the value, or the
    default): one line per limit instead of a property each."""

    def __set_name__(self, owner: type, name: str) -> None:
        self.name = name

    @overload
    def __get__(self, profile: None, owner: type) -> _Limit[T]: ...
    @overload
    def __get__(self, profile: TargetProfile, owner: type) -> T: ...
    def __get__(self, profile: TargetProfile | None, owner: type) -> T | _Limit[T]:
        return self if profile is None else profile.get(self.name)


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
    weight_bits = _Limit[int]()
    weight_step = _Limit[int]()
    weight_symmetric = _Limit[bool]()
    weight_scale = _Limit[str]()

    @property
    def quantises_weights(self) -> bool:
        return self.weight_bits > 0

    def weight_range(self) -> tuple[int, int] | tuple[float, float]:
        """(smallest, largest) representable integer weight, honouring weight_step.

        9 bits with step 2 give (−256, 254). A float target gives (−inf, inf).
        """
        if not self.quantises_weights:
            return (-INF, INF)
        return _weight_range(self.weight_bits, self.weight_step, self.weight_symmetric)

    # --- delays
    max_delay = _Limit[int | float]()
    per_synapse_delays = _Limit[bool]()
    # --- sizes
    max_fan_in = _Limit[int | float]()
    max_neurons = _Limit[int | float]()
    max_neurons_per_layer = _Limit[int | float]()
    max_inputs = _Limit[int | float]()
    max_outputs = _Limit[int | float]()
    # --- input
    graded_input = _Limit[bool]()
    input_bits = _Limit[int | float]()
    # --- neurons
    decay = _Limit[str]()
    arithmetic = _Limit[str]()
    max_decay_shift = _Limit[int | float]()
    state_bits = _Limit[int | float]()
    threshold_bits = _Limit[int | float]()

    @property
    def neuron_types(self) -> tuple[str, ...]:
        return tuple(self.get("neuron_types"))

    @property
    def resets(self) -> tuple[str, ...]:
        return tuple(self.get("resets"))

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: the limits as written (with sources) and every effective value (defaults
        applied). Unlimited numbers are ``null``."""
        effective = {key: json_value(self.get(key)) for key in LIMIT_KEYS}
        rng = self.weight_range()
        effective["weight_range"] = [json_value(rng[0]), json_value(rng[1])]
        return {
            "name": self.name,
            "description": self.description,
            "path": self.path,
            "format_version": FORMAT_VERSION,
            "limits": {key: limit.to_dict() for key, limit in self.limits.items()},
            "effective": effective,
        }


def json_value(value: Any) -> Any:
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
    """The folder of the profiles without code: package ``delaynir.targets`` (a Traversable)."""
    try:
        return resources.files("delaynir.targets")
    except ModuleNotFoundError:
        raise TargetError(
            "the built-in target profiles (package delaynir.targets) are not installed; "
            "reinstall delaynir (pip install -e .) or pass the path of a profile .toml"
        ) from None


def _builtin_files() -> dict[str, Any]:
    """Profile name → file: the plain profiles of ``targets/`` and every target package's (``delaynir.plugins``)."""
    plain = {
        entry.name[: -len(".toml")]: entry
        for entry in _builtin_dir().iterdir()
        if entry.name.endswith(".toml") and entry.is_file()
    }
    packaged = plugins.profile_files()
    clash = sorted(set(plain) & set(packaged))
    if clash:
        raise TargetError(
            f"target profile(s) {', '.join(clash)} defined twice: as targets/*.toml and by a target package; remove one"
        )
    return {**plain, **packaged}


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
    """A built-in profile by name (``"int8"``) or a user's profile from a ``.toml`` path.

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
    if spec.kind == "name":
        if not isinstance(value, str) or not value.strip():
            return f"{where} must be a non-empty string (got {value!r})"
        return None
    if spec.kind == "list":
        if not isinstance(value, list) or not value or not all(isinstance(v, str) for v in value):
            return f"{where} must be a non-empty list of strings out of {', '.join(spec.choices)} (got {value!r})"
        unknown = [v for v in value if v not in spec.choices]
        if unknown:
            return (
                f"{where} has unknown entr{'ies' if len(unknown) > 1 else 'y'} "
                f"{', '.join(repr(v) for v in unknown)}; allowed: {', '.join(spec.choices)}"
            )
        if len(set(value)) != len(value):
            return f"{where} lists an entry twice ({value!r})"
        return None
    raise AssertionError(spec.kind)  # pragma: no cover


def _validate(
    data: dict[str, Any], source: str, problems: list[str], expected_name: str | None
) -> TargetProfile | None:
    for key in sorted(set(data) - set(_TOP_KEYS)):
        problems.append(f"unknown top-level key {key!r}; allowed: {', '.join(_TOP_KEYS)}")
    name = data.get("name")
    if not isinstance(name, str) or not name.strip():
        problems.append(f"key 'name' must be a non-empty string (got {name!r})")
    elif expected_name is not None and name != expected_name:
        problems.append(
            f"key 'name' is {name!r} but a built-in profile must be named after its file ({expected_name!r})"
        )
    description = data.get("description")
    if not isinstance(description, str):
        problems.append(f"key 'description' must be a string (got {description!r})")
    version = data.get("format_version")
    if version is None:
        problems.append(f"key 'format_version' is missing; write format_version = {FORMAT_VERSION}")
    elif not _is_int(version) or version != FORMAT_VERSION:
        problems.append(
            f"key 'format_version' must be {FORMAT_VERSION} (got {version!r}); "
            "a newer delaynir may be needed to read this profile"
        )

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
            problems.append(
                f'limits.{key} must be an inline table {{ value = ..., source = "...", '
                f"confirmed = true|false }} (got {entry!r})"
            )
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
        if entry_ok and isinstance(src, str) and isinstance(confirmed, bool):  # entry_ok implies both
            value = entry["value"]
            if spec.kind == "list":
                value = tuple(value)
            limits[key] = Limit(value=value, source=src, confirmed=confirmed, note=note)

    _cross_check(limits, raw_limits, problems)
    if problems or not isinstance(name, str) or not isinstance(description, str):  # problems lists those too
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
            problems.append(
                f"limits.weight_step.value {step} leaves no non-zero weight in {bits} bits (range {lo}..{hi})"
            )
    decay = limits["decay"].value if "decay" in limits else "float"
    if "max_decay_shift" in raw and "decay" in limits and decay != "bitshift":
        problems.append(f'limits.max_decay_shift applies only to decay = "bitshift" (decay is {decay!r})')
    if "max_decay_shift" in raw and "decay" not in raw:
        problems.append('limits.max_decay_shift applies only to decay = "bitshift", but decay is not set')
    if (
        limits.get("per_synapse_delays") is not None
        and limits["per_synapse_delays"].value
        and "max_delay" in limits
        and limits["max_delay"].value == 0
    ):
        problems.append("limits.per_synapse_delays is true but max_delay is 0 (no programmable delays)")
