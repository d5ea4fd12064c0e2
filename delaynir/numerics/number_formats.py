"""Number formats: how a deployed graph represents decays, thresholds, biases and state, and in which
arithmetic the reference simulator executes it.

Each format is one object with its quantiser (used by compile *and* by quantisation-aware
fine-tuning, so both round the same quantities), its "representable?" test (used by the fit check)
and, for the arithmetic as a whole, the step operations the simulator evaluates the neuron kinds
with (``delaynir.ir.neuron_kinds``).

Decays β (and α of cubalif):

    FloatDecay        β unchanged
    FixedDecay(n)     β = 1 − k / 2^n, integer k in 0 … 2^n        (quantiser k = round(2^n (1 − β)))
    ShiftDecay(K)     β = 1 − 2^−k, integer k in 0 … K              (quantiser k = round(−log2(1 − β)))

Thresholds and biases (per neuron j, with the weight scale s_j of the neuron's projections):

    FloatState        unchanged
    IntegerState(n)   on the weight grid: x ↦ s_j · round(x / s_j) (round half to even), so that with
                      integer inputs the state is an integer multiple of s_j (delaynir.ir.graph, "Units")

Arithmetic: a graph is executed in the arithmetic named by ``graph.quantization["arithmetic"]``
(compile writes the profile's ``arithmetic`` there when it is not float64); without that key,
float64 (``FLOAT64``): the neuron kinds' steps on float64 tensors, exact for the integer states above
up to 2^53. Another arithmetic (a chip's fixed-point update, its own steps) is an ``Arithmetic`` object that
its target package registers (``TargetPlugin.arithmetics``, ``delaynir.plugins``); the core names no target.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol, TypeVar, cast, runtime_checkable

import numpy as np

from delaynir import plugins
from delaynir.ir.graph import InputSpec
from delaynir.ir.neuron_kinds import TORCH, UNIT_KINDS

if TYPE_CHECKING:
    import torch

DECAY_TOL = 1e-9  #: a decay counts as representable within this absolute distance
Values = TypeVar("Values", np.ndarray, "torch.Tensor")  #: thresholds or biases, numpy or torch


@runtime_checkable
class DecayFormat(Protocol):
    """How a target stores decay factors β and α (FloatDecay, FixedDecay, ShiftDecay)."""

    def quantize(self, beta: np.ndarray) -> np.ndarray:
        """The nearest representable decays, float64."""
        ...

    def unrepresentable(self, values: np.ndarray) -> np.ndarray:
        """Where ``values`` are not representable (within DECAY_TOL), bool."""
        ...

    @property
    def form(self) -> str:
        """The representable values, for messages."""
        ...


@runtime_checkable
class StateFormat(Protocol):
    """How a target stores thresholds or biases (FloatState, IntegerState), given the neurons' weight scale."""

    def quantize(self, values: Values, scale: Values) -> Values: ...


@dataclass(frozen=True)
class FloatDecay:
    """Decays as real numbers."""

    def quantize(self, beta: np.ndarray) -> np.ndarray:
        return np.asarray(beta, dtype=np.float64).copy()

    def unrepresentable(self, values: np.ndarray) -> np.ndarray:
        return np.zeros(np.shape(values), dtype=bool)

    @property
    def form(self) -> str:
        return "a real number"


@dataclass(frozen=True)
class FixedDecay:
    """β = 1 − k / 2^bits with an integer k in 0 … 2^bits (a fixed-point decrement)."""

    bits: int = 12

    @property
    def one(self) -> int:
        return 2**self.bits

    def quantize(self, beta: np.ndarray) -> np.ndarray:
        return 1.0 - np.round(self.one * (1.0 - np.asarray(beta, dtype=np.float64))) / self.one

    def unrepresentable(self, values: np.ndarray) -> np.ndarray:
        k = (1.0 - np.asarray(values, dtype=np.float64)) * self.one
        ok = (np.abs(k - np.round(k)) <= DECAY_TOL * self.one) & (k >= -DECAY_TOL) & (k <= self.one + DECAY_TOL)
        return ~ok

    @property
    def form(self) -> str:
        return f"1 − dv/{self.one} with integer dv in 0..{self.one}"


@dataclass(frozen=True)
class ShiftDecay:
    """β = 1 − 2^−k with an integer k in 0 … max_shift (a decay by bit shift)."""

    max_shift: int | float = 15

    def _kmax(self) -> int:
        return 62 if math.isinf(self.max_shift) else int(self.max_shift)

    def quantize(self, beta: np.ndarray) -> np.ndarray:
        kmax = self._kmax()
        with np.errstate(divide="ignore"):
            k = np.round(-np.log2(np.clip(1.0 - np.asarray(beta, dtype=np.float64), 2.0**-kmax, 1.0)))
        return 1.0 - 2.0 ** -np.clip(k, 0, kmax)

    def unrepresentable(self, values: np.ndarray) -> np.ndarray:
        allowed = 1.0 - 2.0 ** -np.arange(0, self._kmax() + 1, dtype=np.float64)
        values = np.asarray(values, dtype=np.float64).ravel()
        close = np.isclose(values[:, None], allowed[None, :], rtol=0.0, atol=DECAY_TOL)
        return ~cast(np.ndarray, close.any(axis=1))  # numpy's stubs: any(axis=...) may be a scalar; here (n,)

    @property
    def form(self) -> str:
        kmax = "unlimited" if math.isinf(self.max_shift) else str(int(self.max_shift))
        return f"1 − 2^−k with integer k in 0..{kmax}"


@dataclass(frozen=True)
class FloatState:
    """Thresholds, biases and state as real numbers."""

    def quantize(self, values: Values, scale: Values) -> Values:
        return values


@dataclass(frozen=True)
class IntegerState:
    """Integer values in units of the neuron's weight scale: x ↦ s · round(x / s) (half to even).

    ``bits`` is the width the chip stores them in (documented; the fit check does not test it).
    Works on numpy arrays and torch tensors alike; infinite values (a readout's θ) stay infinite.
    """

    bits: int | float = math.inf

    def quantize(self, values: Values, scale: Values) -> Values:
        if isinstance(values, np.ndarray):
            return np.where(np.isfinite(values), scale * np.round(values / scale), values)
        import torch

        return torch.where(torch.isfinite(values), scale * torch.round(values / scale), values)


def decay_format(kind: str, max_shift: int | float = 15) -> DecayFormat:
    """The decay format a profile's ``decay`` names: ``float``, ``fixed12`` or ``bitshift``."""
    if kind == "float":
        return FloatDecay()
    if kind == "fixed12":
        return FixedDecay(12)
    if kind == "bitshift":
        return ShiftDecay(max_shift)
    raise ValueError(f"unknown decay representation {kind!r}")


DECAY_KINDS = ("float", "fixed12", "bitshift")


@dataclass(frozen=True)
class NumberFormat:
    """What a target stores: its decay format, how thresholds and biases are put on the weight grid, and
    (``input``: scale s, q_min, q_max) how graded input is sent as integer codes, x ↦ s · clip(round(x / s))."""

    decay: DecayFormat
    threshold: StateFormat
    bias: StateFormat
    input: tuple[float, int, int] | None = None

    @classmethod
    def of(cls, profile) -> NumberFormat:
        """The format of a target profile (``record_of``)."""
        return cls.from_record(record_of(profile))

    @classmethod
    def from_record(cls, record: dict[str, Any]) -> NumberFormat:
        """The format a ``record_of`` dictionary describes (how a fine-tuned run stores it)."""
        shift = record.get("max_decay_shift")
        threshold, state, graded = record.get("threshold_bits"), record.get("state_bits"), record.get("input")
        return cls(
            decay_format(record["decay"], math.inf if shift is None else shift),
            FloatState() if threshold is None else IntegerState(threshold),
            FloatState() if state is None else IntegerState(state),
            None if graded is None else (float(graded[0]), int(graded[1]), int(graded[2])),
        )


def record_of(profile, input_spec: InputSpec | None = None) -> dict[str, Any]:
    """A target profile's number format as plain values: its ``decay`` (and max_decay_shift, None = unlimited),
    threshold_bits / state_bits when thresholds / biases are integers (finite bits on a target with
    quantised weights), else None; and ``input`` [s, q_min, q_max] when the graded input of ``input_spec``
    (a DelayGraph input spec) is sent as codes on this profile (delaynir.numerics.quantize.input_quantization)."""
    from delaynir.numerics.quantize import input_quantization

    integer = profile.quantises_weights

    def bits(value):
        return int(value) if integer and np.isfinite(value) else None

    shift = profile.max_decay_shift
    graded = input_quantization(input_spec or InputSpec(), profile)
    return {
        "decay": profile.decay,
        "max_decay_shift": None if math.isinf(shift) else int(shift),
        "threshold_bits": bits(profile.threshold_bits),
        "state_bits": bits(profile.state_bits),
        "input": None if graded is None else list(graded[1:]),
    }


@dataclass(frozen=True)
class Arithmetic:
    """How the reference simulator computes a neuron step.

    ``steps`` maps a neuron kind's name to the step that replaces the kind's own (same signature,
    ``delaynir.ir.neuron_kinds``), evaluated with ``ops``. ``state_per_unit``: the steps keep their state in
    units of 1 / state_per_unit of the layer's current (the simulator divides reported membranes by it).
    ``separate_bias``: the steps receive the input current without the bias and add p["bias"] themselves
    (in the layer's units, like the threshold p["theta"]). ``unit_kinds``: the kinds computed in units
    of their layer's weight scale (delaynir.ir.graph.membrane_unit). ``check``: graph → the FitViolations of a
    graph this arithmetic cannot compute (delaynir.hardware.fit.check_fit adds them), None when it computes any.
    """

    name: str
    ops: Any = TORCH
    steps: dict[str, Callable] = field(default_factory=dict)
    state_per_unit: float = 1.0
    separate_bias: bool = False
    unit_kinds: tuple[str, ...] = UNIT_KINDS
    check: Callable[[Any], list] | None = None

    def step(self, kind):
        """The step function this arithmetic computes ``kind`` (a NeuronKind) with."""
        return self.steps.get(kind.name, kind.step)


FLOAT64 = Arithmetic("float64")


def arithmetic_named(name: str) -> Arithmetic:
    """The arithmetic ``name``: float64, or one a target package registers (``delaynir.plugins``)."""
    if name == FLOAT64.name:
        return FLOAT64
    paths = plugins.arithmetic_paths()
    if name not in paths:
        from delaynir.errors import GraphFormatError

        raise GraphFormatError(
            f"no installed target provides the arithmetic {name!r} (known: "
            f"{', '.join(sorted([FLOAT64.name, *paths]))}); install the target package that defines it"
        )
    arithmetic = plugins.load_attribute(paths[name])
    if not isinstance(arithmetic, Arithmetic) or arithmetic.name != name:
        raise plugins.PluginError(f"{paths[name]} is not the Arithmetic named {name!r} its target registers")
    return arithmetic


def arithmetic_of(graph) -> Arithmetic:
    """The arithmetic ``graph`` is executed in (its quantization record's "arithmetic", float64 by default)."""
    return arithmetic_named(graph.arithmetic)
