"""Run a delaynir PyNN network file (``model.pynn.h5``) with PyNN: sPyNNaker on a SpiNNaker board, or another
PyNN backend. Standalone: it needs numpy, h5py and PyNN with a backend, and imports no delaynir.

    python run_pynn.py MODEL.pynn.h5 --inputs INPUTS.h5 --out RESULT.h5 [--simulator spiNNaker] [--samples N]

INPUTS.h5 holds ``inputs`` (steps, samples, channels) of 0/1 spikes (a bundle's ``test_vectors.h5``).
RESULT.h5 gets, time-first like the inputs, ``spikes/<population>`` (steps, samples, neurons) uint8 for every
spiking population and ``membranes/<population>`` float64 for the readout, in the DelayGraph's units and steps.

The network file (docs/pynn-format.md). Attributes ``format`` = "delaynir-pynn", ``format_version``,
``timestep_ms`` (h, one DelayGraph step), ``n_inputs``. Group ``populations/<k>`` (k = 0, 1, … in order), with
attributes ``name``, ``kind`` ("lif": IF_curr_delta with hard reset; "li": the leaky readout, IF_curr_delta that
never fires) and ``lag`` (steps), and per neuron ``tau_m`` (ms), ``threshold`` (fires on v > threshold),
``bias`` and ``unit``. Group ``projections/<k>`` with attributes ``source`` ("input" or a population's name) and
``target``, and per synapse ``pre``, ``post``, ``weight`` (a jump of the target's v) and ``delay`` (timesteps ≥ 1).

Semantics. A population's v and its threshold, bias and weights are in units of its ``unit``: the DelayGraph's
membrane is unit · v. Population P's step t is PyNN time (t + 1 + lag(P)) · h, an input spike at step t is sent
at (t + 1) · h, and the file's delays already include the lags, so every delay is at least one step as PyNN
requires. The bias b_j of neuron j arrives as a spike of weight b_j from one spike source per population that
fires at (t + lag) · h for every step t of the sample. Thresholds: PyNN fires on v ≥ v_thresh, the DelayGraph on
v > threshold, so v_thresh is the next float64 above the threshold (on SpiNNaker, the next value of its s16.15
fixed point). Negative weights go to the ``inhibitory`` receptor with their magnitude.

On SpiNNaker (``--simulator spiNNaker``, sPyNNaker 7; docs/research/SPYNNAKER_NOTES.md): the membrane is s16.15
fixed point, so every population runs scaled by 2^(4 − 15) (v, threshold, bias and weights: the same spikes) and
the ring-buffer left shift is forced to 4 (``max_expected_summed_weight``): a weight of k units is then stored as
the 16-bit integer k exactly, and a step's summed input to one neuron per receptor may reach 16 times the largest
weight (65535 units) before the ring buffer saturates. c_m = τ_m (1 − e^(−h/τ_m)) makes sPyNNaker's delta synapse
add its weight as NEST's does. Each population gets the most neurons per core (2 … 256) whose native delay range
holds its longest incoming delay, so no delay-extension core is used (sPyNNaker 7.4.1 misplaces delay-extended
synapses between populations of different neurons per core). SpiNNaker computes its decay in fixed point on the
chip: its membranes differ from NEST's in the last bits.
"""

from __future__ import annotations

import argparse
import logging
import math
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

log = logging.getLogger("run_pynn")

FORMAT = "delaynir-pynn"
FORMAT_VERSION = 1
INPUT = "input"
SPIKING, READOUT = "lif", "li"  #: the file's population kinds
KINDS = (SPIKING, READOUT)
READOUT_THRESHOLD = 1e300  #: v_thresh of the readout on a float64 backend (NEST): never reached
SPINNAKER_RESOLUTION = 2.0**-15  #: one step of sPyNNaker's s16.15 membrane
SPINNAKER_READOUT_THRESHOLD = 32767.0  #: near the top of s16.15: the readout's v_thresh on SpiNNaker
HEADROOM_BITS = 4  #: the ring-buffer left shift forced on SpiNNaker: a step's summed input may reach 2^4 weights
SPINNAKER_FACTOR = 2.0 ** (HEADROOM_BITS - 15)  #: v on SpiNNaker = v_file · this: k weight units are stored as k
MAX_NATIVE_DELAY = 4096  #: sPyNNaker 7's native delay range at 1–2 neurons per core (steps)
SPINNAKER = "spiNNaker"  #: the pyNN backend module of sPyNNaker


class NetworkFileError(ValueError):
    """A file that is not a PyNN network file written by delaynir, or one that contradicts itself."""


@dataclass
class Population:
    """One population: per neuron the membrane time constant (ms), threshold, bias and unit (module docstring)."""

    name: str
    kind: str
    lag: int
    tau_m: np.ndarray
    threshold: np.ndarray
    bias: np.ndarray
    unit: np.ndarray

    @property
    def size(self) -> int:
        return len(self.tau_m)

    @property
    def readout(self) -> bool:
        """The li readout: its membrane is the output; it never fires."""
        return self.kind == READOUT


@dataclass
class Projection:
    """Synapses pre → post of one projection: weight in the target's units, delay in timesteps (lags included)."""

    source: str
    target: str
    pre: np.ndarray
    post: np.ndarray
    weight: np.ndarray
    delay: np.ndarray


@dataclass
class Network:
    """A network file's contents."""

    timestep_ms: float
    n_inputs: int
    populations: list[Population]
    projections: list[Projection]

    @property
    def max_lag(self) -> int:
        return max((p.lag for p in self.populations), default=0)

    @property
    def max_delay(self) -> int:
        return max((int(p.delay.max()) for p in self.projections if len(p.delay)), default=1)

    def size_of(self, source: str) -> int:
        return self.n_inputs if source == INPUT else next(p.size for p in self.populations if p.name == source)


def _array(group, name: str, where: str, dtype, length: int | None = None, *, above: bool = False) -> np.ndarray:
    """Dataset ``name`` of ``group`` as int64 or float64 (finite; ``above``: +inf allowed, a threshold never
    reached); NetworkFileError naming it otherwise."""
    if name not in group or not hasattr(group[name], "shape"):
        raise NetworkFileError(f"{where}: no dataset {name!r}")
    data = group[name]
    if data.ndim != 1 or (length is not None and data.shape[0] != length):
        wanted = f"({length},)" if length is not None else "one-dimensional"
        raise NetworkFileError(f"{where}: {name!r} has shape {data.shape}, expected {wanted}")
    values = data[()]
    if dtype is np.int64:
        if values.dtype.kind not in "iu":
            raise NetworkFileError(f"{where}: {name!r} holds {values.dtype}, expected integers")
        return values.astype(np.int64)
    if values.dtype.kind not in "fiu":
        raise NetworkFileError(f"{where}: {name!r} holds {values.dtype}, expected numbers")
    values = values.astype(np.float64)
    if not np.all(np.isfinite(values) | (above & (values == np.inf))):
        raise NetworkFileError(f"{where}: {name!r} holds {int(np.count_nonzero(~np.isfinite(values)))} NaN or inf")
    return values


def _attr(obj, name: str, where: str, kind: type):
    if name not in obj.attrs:
        raise NetworkFileError(f"{where}: no attribute {name!r}")
    value = obj.attrs[name]
    value = value.decode() if isinstance(value, bytes) else value
    if kind is str and not isinstance(value, str):
        raise NetworkFileError(f"{where}: attribute {name!r} is {value!r}, expected a string")
    if kind is int and not (isinstance(value, (int, np.integer)) and not isinstance(value, bool)):
        raise NetworkFileError(f"{where}: attribute {name!r} is {value!r}, expected an integer")
    if kind is float and not (isinstance(value, (int, float, np.integer, np.floating)) and math.isfinite(value)):
        raise NetworkFileError(f"{where}: attribute {name!r} is {value!r}, expected a finite number")
    return kind(value)


def read_network(path: str | Path) -> Network:
    """The network file at ``path``; NetworkFileError saying what is wrong for anything else."""
    import h5py

    path = Path(path)
    try:
        with h5py.File(path, "r") as f:
            return network_of(f, str(path))
    except OSError as exc:
        raise NetworkFileError(f"{path}: cannot be read as HDF5 ({exc})") from None


def network_of(f, where: str) -> Network:
    """The network in the open HDF5 file ``f`` (``where`` names it in errors); NetworkFileError for anything else."""
    if f.attrs.get("format") not in (FORMAT, FORMAT.encode()):
        raise NetworkFileError(f"{where}: not a PyNN network file written by delaynir (no format = {FORMAT!r})")
    version = _attr(f, "format_version", where, int)
    if not 1 <= version <= FORMAT_VERSION:
        raise NetworkFileError(f"{where}: format version {version}; this reader reads 1..{FORMAT_VERSION}")
    timestep, n_inputs = _attr(f, "timestep_ms", where, float), _attr(f, "n_inputs", where, int)
    if timestep <= 0 or n_inputs < 1:
        raise NetworkFileError(f"{where}: timestep_ms {timestep} and n_inputs {n_inputs} must be positive")
    populations: list[Population] = []
    for k in range(len(f.get("populations", {}))):
        at = f"{where}: populations/{k}"
        if str(k) not in f["populations"]:
            raise NetworkFileError(f"{at}: missing (populations are numbered 0, 1, … without gaps)")
        g = f["populations"][str(k)]
        tau = _array(g, "tau_m", at, np.float64)
        pop = Population(
            _attr(g, "name", at, str),
            _attr(g, "kind", at, str),
            _attr(g, "lag", at, int),
            tau,
            _array(g, "threshold", at, np.float64, len(tau), above=True),
            *(_array(g, name, at, np.float64, len(tau)) for name in ("bias", "unit")),
        )
        if pop.kind not in KINDS or pop.lag < 1 or pop.size < 1 or pop.name in (INPUT, *(p.name for p in populations)):
            raise NetworkFileError(
                f"{at}: kind {pop.kind!r} (one of {', '.join(KINDS)}), lag {pop.lag} (≥ 1), {pop.size} neurons (≥ 1) "
                f"and a unique name other than {INPUT!r} ({pop.name!r}) are required"
            )
        if np.any(tau <= 0) or np.any(pop.unit <= 0):
            raise NetworkFileError(f"{at}: tau_m and unit must be positive")
        populations.append(pop)
    if not populations:
        raise NetworkFileError(f"{where}: no populations")
    network = Network(timestep, n_inputs, populations, [])
    sizes = {INPUT: n_inputs, **{p.name: p.size for p in populations}}
    for k in range(len(f.get("projections", {}))):
        at = f"{where}: projections/{k}"
        if str(k) not in f["projections"]:
            raise NetworkFileError(f"{at}: missing (projections are numbered 0, 1, … without gaps)")
        g = f["projections"][str(k)]
        source, target = _attr(g, "source", at, str), _attr(g, "target", at, str)
        if source not in sizes or target not in sizes or target == INPUT:
            raise NetworkFileError(f"{at}: source {source!r} and target {target!r} must name populations")
        pre = _array(g, "pre", at, np.int64)
        n = len(pre)
        post, delay = _array(g, "post", at, np.int64, n), _array(g, "delay", at, np.int64, n)
        weight = _array(g, "weight", at, np.float64, n)
        if n and (pre.min() < 0 or pre.max() >= sizes[source] or post.min() < 0 or post.max() >= sizes[target]):
            raise NetworkFileError(f"{at}: pre or post indices outside the {source!r} or {target!r} population")
        if n and delay.min() < 1:
            raise NetworkFileError(f"{at}: delays must be at least 1 timestep (found {int(delay.min())})")
        network.projections.append(Projection(source, target, pre, post, weight, delay))
    return network


# ----------------------------------------------------------------------------- PyNN


def input_spike_times(x: np.ndarray, h: float) -> list[list[float]]:
    """Per input channel the PyNN spike times of one sample's 0/1 spikes x (steps, channels): (t + 1) · h."""
    if not np.all((x == 0) | (x == 1)):
        raise NetworkFileError("PyNN takes 0/1 spikes as input; spike counts above 1 and graded input are not sent")
    return [((np.flatnonzero(x[:, i]) + 1) * h).tolist() for i in range(x.shape[1])]


@dataclass(frozen=True)
class Backend:
    """How a population's parameters become PyNN's on one backend: v_backend = v_file · ``factor``; ``spinnaker``
    adds sPyNNaker's own parameters (module docstring, "On SpiNNaker")."""

    factor: float = 1.0
    spinnaker: bool = False

    def v_thresh(self, pop: Population) -> np.ndarray:
        """PyNN's v_thresh (fires on v ≥ v_thresh) for the file's v > threshold: the next float64 above it, on
        SpiNNaker the next s16.15 value above it; for the readout one it never reaches."""
        if pop.readout:
            return np.full(pop.size, SPINNAKER_READOUT_THRESHOLD if self.spinnaker else READOUT_THRESHOLD)
        if self.spinnaker:
            return (np.floor(pop.threshold * self.factor / SPINNAKER_RESOLUTION) + 1) * SPINNAKER_RESOLUTION
        return np.nextafter(pop.threshold, np.inf)

    def cell(self, sim, pop: Population, h: float):
        """The IF_curr_delta of ``pop``. sPyNNaker adds a delta weight w as w · (τ_m / c_m)(1 − e^(−h/τ_m)), NEST as w:
        c_m = τ_m (1 − e^(−h/τ_m)) makes the two the same."""
        cm = pop.tau_m * -np.expm1(-h / pop.tau_m) if self.spinnaker else np.ones(pop.size)
        return sim.IF_curr_delta(
            tau_m=pop.tau_m, cm=cm, v_rest=0.0, v_reset=0.0, v_thresh=self.v_thresh(pop), tau_refrac=0.0, i_offset=0.0
        )

    def extra(self, network: Network, pop: Population) -> dict:
        """sPyNNaker's additional_parameters: the forced ring-buffer shift and the neurons per core."""
        if not self.spinnaker:
            return {}
        longest = max(
            (int(p.delay.max()) for p in network.projections if p.target == pop.name and len(p.delay)), default=1
        )
        return {
            "max_expected_summed_weight": [2.0 ** (HEADROOM_BITS - 1)] * 2,
            "neurons_per_core": neurons_per_core(longest),
        }


def neurons_per_core(longest_delay: int) -> int:
    """The most neurons per core (a power of two, 2 … 256) whose native delay range, 2^(13 − ⌈log2 n⌉) steps in
    sPyNNaker 7, holds ``longest_delay``: no delay-extension core is needed (NetworkFileError beyond 4096 steps)."""
    if longest_delay > MAX_NATIVE_DELAY:
        raise NetworkFileError(
            f"a delay of {longest_delay} steps is beyond the {MAX_NATIVE_DELAY} that sPyNNaker holds natively"
        )
    return int(min(256, 2 ** (13 - math.ceil(math.log2(max(longest_delay, 2))))))


def build(sim, network: Network, n_steps: int, backend: Backend | None = None, x: np.ndarray | None = None) -> dict:
    """The network in PyNN (``sim``, a PyNN backend module after ``sim.setup``) for a sample of ``n_steps`` steps, its
    input spikes x (steps, channels) or none; returns {"input": the input SpikeSourceArray, name: Population}."""
    backend = backend or Backend()
    h = network.timestep_ms
    times = [] if x is None else input_spike_times(x, h)
    made = {INPUT: sim.Population(network.n_inputs, sim.SpikeSourceArray(spike_times=times), label=INPUT)}
    for pop in network.populations:
        extra = backend.extra(network, pop)
        kwargs = {"additional_parameters": extra} if extra else {}
        made[pop.name] = p = sim.Population(
            pop.size, backend.cell(sim, pop, h), label=pop.name, initial_values={"v": 0.0}, **kwargs
        )
        p.record("v" if pop.readout else "spikes")
        if np.any(pop.bias != 0):
            every_step = [(t + pop.lag) * h for t in range(n_steps)]
            source = sim.Population(1, sim.SpikeSourceArray(spike_times=every_step), label=f"{pop.name}_bias")
            weight = pop.bias * backend.factor
            _connect(sim, source, p, np.zeros(pop.size, np.int64), np.arange(pop.size), weight, np.ones(pop.size), h)
    factor = {pop.name: backend.factor for pop in network.populations}
    for proj in network.projections:
        weight = proj.weight * factor[proj.target]
        _connect(sim, made[proj.source], made[proj.target], proj.pre, proj.post, weight, proj.delay, h)
    return made


def _connect(sim, source, target, pre, post, weight, delay, h: float) -> None:
    """One PyNN Projection per sign: positive weights excitatory, negative ones inhibitory with their magnitude."""
    for receptor, keep in (("excitatory", weight > 0), ("inhibitory", weight < 0)):
        if np.any(keep):
            rows = list(
                zip(pre[keep].tolist(), post[keep].tolist(), np.abs(weight[keep]).tolist(), (delay[keep] * h).tolist())
            )
            sim.Projection(
                source,
                target,
                sim.FromListConnector(rows, column_names=["weight", "delay"]),
                sim.StaticSynapse(),
                receptor_type=receptor,
            )


def setup(sim, network: Network, backend: Backend) -> None:
    """``sim.setup`` with the file's timestep (sPyNNaker takes no min_delay: it warns and ignores it)."""
    if backend.spinnaker:
        sim.setup(timestep=network.timestep_ms)
    else:
        sim.setup(timestep=network.timestep_ms, min_delay=network.timestep_ms)


def run(sim, network: Network, x: np.ndarray, backend: Backend | None = None) -> dict[str, np.ndarray]:
    """Every sample of x (steps, samples, channels) through PyNN, each in a simulation of its own from zero state
    (setup, build with the sample's spikes, run, end: sPyNNaker 7.4.1 cannot set a SpikeSourceArray's per-neuron
    times after a reset); {"spikes/<name>" | "membranes/<name>": (steps, samples, neurons)}."""
    T, B, _ = x.shape
    h = network.timestep_ms
    backend = backend or Backend()
    out = {
        f"{'membranes' if p.readout else 'spikes'}/{p.name}": np.zeros((T, B, p.size), np.float64)
        for p in network.populations
    }
    for b in range(B):
        setup(sim, network, backend)
        made = build(sim, network, T, backend, x[:, b])
        sim.run((T + network.max_lag + 1) * h)
        for pop in network.populations:
            block = made[pop.name].get_data().segments[-1]
            if pop.readout:
                signal = block.filter(name="v")[0]
                times = np.rint(np.asarray(signal.times.rescale("ms")) / h).astype(int)
                steps = times - 1 - pop.lag
                keep = (steps >= 0) & (steps < T)
                out[f"membranes/{pop.name}"][steps[keep], b] = np.asarray(signal)[keep] / backend.factor * pop.unit
            else:
                for j, train in enumerate(block.spiketrains):
                    steps = np.rint(np.asarray(train.rescale("ms")) / h).astype(int) - 1 - pop.lag
                    out[f"spikes/{pop.name}"][steps[(steps >= 0) & (steps < T)], b, j] = 1
        sim.end()
    return out


def on(simulator: str) -> Backend:
    """The Backend of a pyNN backend module's name."""
    return Backend(SPINNAKER_FACTOR, True) if simulator == SPINNAKER else Backend()


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("network", help="the PyNN network file (model.pynn.h5)")
    parser.add_argument("--inputs", required=True, help="HDF5 file with 'inputs' (steps, samples, channels)")
    parser.add_argument("--out", required=True, help="HDF5 file to write (refused if it exists)")
    parser.add_argument("--simulator", default="spiNNaker", help="the pyNN backend module (default spiNNaker)")
    parser.add_argument("--samples", type=int, default=None, help="run only the first N samples")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    import importlib

    import h5py

    out = Path(args.out)
    if out.exists():
        parser.error(f"{out} exists; choose another --out")
    try:
        network = read_network(args.network)
        with h5py.File(args.inputs, "r") as f:
            x = np.asarray(f["inputs"][()], dtype=np.float64)
    except (NetworkFileError, OSError, KeyError) as exc:
        parser.error(str(exc))  # exit status 2, as every bad input
    if x.ndim != 3 or x.shape[2] != network.n_inputs:
        parser.error(f"{args.inputs}: inputs {x.shape}, expected (steps, samples, {network.n_inputs})")
    x = x[:, : args.samples] if args.samples else x
    sim = importlib.import_module(f"pyNN.{args.simulator}")
    result = run(sim, network, x, on(args.simulator))
    with h5py.File(out, "w") as f:
        f.attrs["layout"] = "time-first (step, sample, neuron), the DelayGraph's steps and units"
        for name, values in result.items():
            f.create_dataset(name, data=values.astype(np.uint8) if name.startswith("spikes/") else values)
    log.info("wrote %s: %d samples of %d steps", out, x.shape[1], x.shape[0])
    return 0


if __name__ == "__main__":
    sys.exit(main())
