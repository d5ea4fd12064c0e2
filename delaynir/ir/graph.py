"""DelayGraph: the one contract between training and everything after it.

A DelayGraph is a list of neuron layers, each fed by sparse projections with integer
delays. Time is in integer steps of ``dt`` seconds. For layer L with neurons j, per step t:

    I_j[t] = b_j + Σ_{projections P into L} Σ_{synapse (i → j, d, w) in P} w · scale_P[j] · s_i^{src(P)}[t − d]

then the layer's neuron kind (lif, cubalif, li or relay) turns I[t] into the state at t and the
layer's output; each kind's equations and its one step function live in ``delaynir.ir.neuron_kinds``.

``s^{src}`` is the network input (source ``"input"``) or the output z of another layer. The input
spec (``DelayGraph.input``, an ``InputSpec``: its ``encoding``) says what the input holds: ``spikes`` (spike counts
per step and channel) or ``graded`` (real values, e.g. filterbank features). Graded input with
``bits`` is sent as integer codes q = clip(round(v / input_scale), q_min, q_max) of the value v
(``encode_input``; compile folds input_scale into the first layer's weights), so a graph with
integer weights computes on integers; graded input without ``bits`` is the real value itself. A
projection from the layer itself or from a layer later in the list is recurrent
(``DelayGraph.is_recurrent``) and must have d ≥ 1. Layers run in list order at every step; the
last layer is the output. Stored weights are ``weight`` (integers for quantised
targets, stored as float64) times a per-output-neuron ``scale``.

Units (exactness at threshold ties). Scaling a lif or cubalif neuron's input, bias, state
and threshold by the same factor changes none of its spikes, so such a layer whose
projections all share one scale vector s (every compiled layer: ``membrane_unit``) is
computed in units of s: u = v / s, with the stored integer weights unscaled,

    I'_j[t] = b_j / s_j + Σ_{synapse (i → j, d, w)} w · s_i[t − d],    spike when u_j[t] > θ_j / s_j,

and v = s · u only where a membrane is reported. A bias or threshold stored as the float64
nearest to k · s_j for an integer k (compile puts them on the weight grid for targets with
integer thresholds and state) counts as exactly k (``in_units``). With integer weights,
inputs, biases and thresholds every current is an exact integer, and a membrane that lands
on its threshold equals it exactly, in every simulator. li and relay layers, and layers
whose projections have different scales, are computed in real units (the sum above).
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields, replace
from typing import TYPE_CHECKING, Any

import numpy as np

from delaynir.errors import GraphFormatError
from delaynir.ir.neuron_kinds import KINDS, UNIT_KINDS, NeuronKind

if TYPE_CHECKING:
    import torch

INPUT = "input"
#: 2: the input spec may say "encoding": "graded" (with value_range, bits, input_scale, code_range);
#: a version-1 file's input is spikes. Both are read.
FORMAT_VERSION = 2


@dataclass(frozen=True)
class InputSpec:
    """How the network input is made (n_channels, pool, n_steps, dt) and what it holds (docs/delaygraph-format.md,
    "Input spec"): ``encoding`` spikes or graded; graded adds ``value_range`` and, when quantised, ``bits``,
    ``input_scale`` and ``code_range`` (module docstring).

    Stored as a JSON object (``to_dict``): the fields that are not None, in this order, then ``extra``, the entries
    this version does not define (a hand-written file's), so a spec is written back as it was read. A None field is
    an absent entry; pairs ([lo, hi], [q_min, q_max]) are tuples here and lists in the object.
    """

    n_channels: int | None = None  #: channels of the data file, before pooling
    pool: int | None = None  #: channels summed into one input
    n_steps: int | None = None  #: steps per sample
    dt: float | None = None  #: seconds per step the data was binned at
    encoding: str | None = None  #: "spikes" or "graded"; absent or another value (version 1: "counts") is spikes
    value_range: tuple[float, float] | None = None  #: graded: [lo, hi] of the training data's values
    bits: int | None = None  #: quantised graded input: bits of one code
    input_scale: float | None = None  #: with bits: s_in, the value one code step stands for
    code_range: tuple[int, int] | None = None  #: with bits: [q_min, q_max]
    extra: tuple[tuple[str, Any], ...] = ()

    @classmethod
    def from_dict(cls, spec: dict[str, Any]) -> InputSpec:
        """The spec a JSON object (``to_dict``'s form) describes."""
        names = {f.name for f in fields(cls)} - {"extra"}
        known: dict[str, Any] = {
            key: tuple(value) if isinstance(value, list) else value for key, value in spec.items() if key in names
        }
        return cls(**known, extra=tuple((key, value) for key, value in spec.items() if key not in names))

    def to_dict(self) -> dict[str, Any]:
        """The spec as the JSON object a DelayGraph file, NIR metadata and a bundle's manifest hold."""
        entries = ((f.name, getattr(self, f.name)) for f in fields(self) if f.name != "extra")
        known = {key: list(value) if isinstance(value, tuple) else value for key, value in entries if value is not None}
        return {**known, **dict(self.extra)}

    @property
    def graded(self) -> bool:
        """Whether the input holds real values (else spike counts)."""
        return self.encoding == "graded"

    @property
    def quantized(self) -> bool:
        """Whether graded input is sent as integer codes (it has ``bits``)."""
        return self.graded and self.bits is not None

    def code_grid(self) -> tuple[float, int, int]:
        """(input_scale, q_min, q_max) of quantised graded input; GraphFormatError when the spec lacks them."""
        if self.input_scale is None or self.code_range is None:
            raise GraphFormatError("input: quantised graded input (bits) needs input_scale and code_range")
        q_min, q_max = self.code_range
        return self.input_scale, q_min, q_max


@dataclass
class Projection:
    """Sparse synapses from ``source`` into a layer; all arrays have one entry per synapse.

    pre: int64 index in the source; post: int64 index in the target layer; delay: int64
    steps; weight: float64 stored value; scale: float64 (n_post,) multiplier per target
    neuron (the effective weight of a synapse is weight · scale[post]).
    """

    source: str
    pre: np.ndarray
    post: np.ndarray
    delay: np.ndarray
    weight: np.ndarray
    scale: np.ndarray

    def __post_init__(self) -> None:
        self.pre = np.asarray(self.pre, dtype=np.int64)
        self.post = np.asarray(self.post, dtype=np.int64)
        self.delay = np.asarray(self.delay, dtype=np.int64)
        self.weight = np.asarray(self.weight, dtype=np.float64)
        self.scale = np.asarray(self.scale, dtype=np.float64)

    def __len__(self) -> int:
        return len(self.pre)

    def effective_weight(self) -> np.ndarray:
        """weight · scale[post], float64 (S,)."""
        return self.weight * self.scale[self.post]

    @property
    def max_delay(self) -> int:
        return int(self.delay.max()) if len(self) else 0


@dataclass
class Layer:
    """A population of neurons of one type with per-neuron parameters (float64 (size,))."""

    name: str
    size: int
    neuron: str
    beta: np.ndarray
    threshold: np.ndarray
    bias: np.ndarray
    projections: list[Projection]
    reset: str = "hard"
    alpha: np.ndarray | None = None  #: synaptic current decay, cubalif only

    def __post_init__(self) -> None:
        self.beta = np.asarray(self.beta, dtype=np.float64)
        self.threshold = np.asarray(self.threshold, dtype=np.float64)
        self.bias = np.asarray(self.bias, dtype=np.float64)
        if self.alpha is not None:
            self.alpha = np.asarray(self.alpha, dtype=np.float64)

    @property
    def kind(self) -> NeuronKind:
        """The layer's neuron kind (delaynir.ir.neuron_kinds); GraphFormatError for a name that is none."""
        if self.neuron not in KINDS:
            raise GraphFormatError(f"layer {self.name!r}: {self.neuron!r} is not a neuron kind ({', '.join(KINDS)})")
        return KINDS[self.neuron]

    @property
    def n_synapses(self) -> int:
        return sum(len(p) for p in self.projections)

    def scale_groups(self, kinds: tuple[str, ...] = UNIT_KINDS) -> list[tuple[np.ndarray | None, list[int]]]:
        """How the input current sums its projections: (scale, projection indices) per group.

        One group (None, all) for a layer computed in units of its scale (``membrane_unit(layer, kinds)``), else
        one group per distinct scale vector, in order of first appearance:
        I = b + Σ_groups scale_g ⊙ Σ_{P in g} Σ_synapses w · s[t − d].
        """
        if membrane_unit(self, kinds) is not None:
            return [(None, list(range(len(self.projections))))]
        groups: list[tuple[np.ndarray | None, list[int]]] = []  # no None scale here: that is the case above
        for k, proj in enumerate(self.projections):
            match = next(
                (members for scale, members in groups if scale is not None and np.array_equal(scale, proj.scale)), None
            )
            if match is None:
                groups.append((proj.scale, [k]))
            else:
                match.append(k)
        return groups


@dataclass
class DelayGraph:
    """Layers in execution order (the last one is the output), dt in seconds, and metadata.

    input: how frames are made and what they hold (InputSpec; a dict given here is read with InputSpec.from_dict).
    quantization: what compile did (weight bits, scheme, scales are in the projections).
    provenance: delaynir version, source run, config digest, creation time.
    """

    dt: float
    n_inputs: int
    layers: list[Layer]
    target: str = "float"
    input: InputSpec = field(default_factory=InputSpec)
    quantization: dict[str, Any] = field(default_factory=dict)
    provenance: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if isinstance(self.input, dict):
            self.input = InputSpec.from_dict(self.input)

    def layer(self, name: str) -> Layer:
        for layer in self.layers:
            if layer.name == name:
                return layer
        raise KeyError(name)

    def source_size(self, source: str) -> int:
        return self.n_inputs if source == INPUT else self.layer(source).size

    def position(self, source: str) -> int:
        """A source's place in the execution order: −1 for the input, k for the k-th layer."""
        if source == INPUT:
            return -1
        for k, layer in enumerate(self.layers):
            if layer.name == source:
                return k
        raise KeyError(source)

    def is_recurrent(self, layer: Layer, projection: Projection) -> bool:
        """Whether ``projection`` into ``layer`` is recurrent: its source is the layer itself or a later layer
        (it reads the source's previous steps only, so its delays are ≥ 1)."""
        return self.position(projection.source) >= self.position(layer.name)

    @property
    def has_recurrence(self) -> bool:
        """Whether any projection is recurrent (the simulator then runs every layer step by step)."""
        return any(self.is_recurrent(layer, p) for layer in self.layers for p in layer.projections)

    @property
    def arithmetic(self) -> str:
        """The arithmetic the graph is computed in (``quantization["arithmetic"]``; float64 when absent)."""
        return self.quantization.get("arithmetic", "float64")

    def in_arithmetic(self, name: str) -> DelayGraph:
        """The same graph computed in arithmetic ``name`` (sharing its layers): for float64, the float graph."""
        quantization = {k: v for k, v in self.quantization.items() if k != "arithmetic"}
        if name != "float64":
            quantization["arithmetic"] = name
        return replace(self, quantization=quantization)

    @property
    def encoding(self) -> str:
        """``graded`` when the input spec says so, else ``spikes`` (also for a version-1 file's free-form
        encoding such as "counts")."""
        return "graded" if self.input.graded else "spikes"

    @property
    def n_outputs(self) -> int:
        return self.layers[-1].size

    @property
    def n_neurons(self) -> int:
        return sum(layer.size for layer in self.layers)

    @property
    def n_synapses(self) -> int:
        return sum(layer.n_synapses for layer in self.layers)

    @property
    def max_delay(self) -> int:
        return max((p.max_delay for layer in self.layers for p in layer.projections), default=0)

    def simulation_bytes(self, n_steps: int, batch: int) -> int:
        """Memory the reference simulator allocates for ``batch`` samples of ``n_steps`` steps (float64):
        every population's output with its delay history, and every layer's membranes."""
        pad = {INPUT: 0, **{layer.name: 0 for layer in self.layers}}
        for layer in self.layers:
            for proj in layer.projections:
                pad[proj.source] = max(pad.get(proj.source, 0), int(proj.max_delay))
        outputs = sum(self.source_size(name) * (n_steps + depth) for name, depth in pad.items())
        return 8 * batch * (outputs + n_steps * self.n_neurons + n_steps)


def layer_lags(graph: DelayGraph) -> dict[str, int]:
    """Each layer's lag in steps of hardware whose synapses take at least one step: lag(input) = 0,
    lag(L) = 1 + max over L's feed-forward sources S of lag(S); recurrent sources (``DelayGraph.is_recurrent``)
    do not count.

    On such hardware layer L's step t + lag(L) is the DelayGraph's step t when a synapse (i → j, d) from S into L
    is given the hardware delay d + lag(L) − lag(S) (minus the one step its hardware adds by itself, if any).
    """
    lags = {INPUT: 0}
    for layer in graph.layers:
        sources = [p.source for p in layer.projections if not graph.is_recurrent(layer, p)]
        lags[layer.name] = 1 + max((lags[s] for s in sources), default=0)
    del lags[INPUT]
    return lags


def membrane_unit(layer: Layer, kinds: tuple[str, ...] = UNIT_KINDS) -> np.ndarray | None:
    """The scale (size,) in whose units a layer of ``kinds`` (those ``NeuronKind.in_units``: lif, cubalif) is
    computed (module docstring).

    That is the scale vector shared by every projection into the layer; None (real units) for other
    kinds (li, relay; an integer arithmetic may name more ``kinds``), a layer without projections, and one
    whose projections differ in scale.
    """
    if layer.neuron not in kinds or not layer.projections:
        return None
    unit = layer.projections[0].scale
    if any(not np.array_equal(p.scale, unit) for p in layer.projections[1:]) or not np.all(unit > 0):
        return None
    return unit


def in_units(values: np.ndarray, unit: np.ndarray | None) -> np.ndarray:
    """values / unit, float64; a value stored as the float64 nearest to k · unit (k an integer) is exactly k.

    Infinite values stay infinite; ``unit`` None (a layer in real units, ``membrane_unit``) leaves the values as
    they are. compile's thresholds and biases on the weight grid are
    ``unit · round(value / unit)`` (delaynir.numerics.number_formats.IntegerState), so they come back as integers.
    """
    values = np.asarray(values, dtype=np.float64)
    if unit is None:
        return values
    unit = np.broadcast_to(np.asarray(unit, dtype=np.float64), values.shape)
    with np.errstate(invalid="ignore", over="ignore"):
        quotient = values / unit
        k = np.rint(quotient)
        exact = np.isfinite(k) & (np.abs(k) < 2.0**53) & (k * unit == values)
    return np.where(exact, k, quotient)


def quantize_input(x: torch.Tensor, scale: float, q_min: int, q_max: int) -> torch.Tensor:
    """Graded input codes clip(round(x / scale), q_min, q_max), float64 (the grid: delaynir.numerics.quantize)."""
    import torch

    return torch.clamp(torch.round(torch.as_tensor(x, dtype=torch.float64) / scale), q_min, q_max)


def encode_input(graph: DelayGraph, x: torch.Tensor) -> torch.Tensor:
    """What the graph's input receives for frames ``x`` (T, B, n_inputs): the integer codes of quantised
    graded input (``quantize_input``), otherwise ``x`` itself."""
    spec = graph.input
    if not spec.quantized:
        return x
    scale, q_min, q_max = spec.code_grid()
    return quantize_input(x, scale, q_min, q_max)


def decode_input(graph: DelayGraph, codes: torch.Tensor) -> torch.Tensor:
    """The values the graph's input codes stand for (q · input_scale); the input itself when not quantised."""
    return codes * graph.input.code_grid()[0] if graph.input.quantized else codes
