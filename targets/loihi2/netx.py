"""Loihi 2 netx files: a DelayGraph computed in the ``loihi2-fixed`` arithmetic as lava-dl's netx HDF5.

``export_netx(graph, path)`` writes what ``lava.lib.dl.netx.hdf5.Network`` loads (docs/netx-format.md
lists every key; LAVA_NOTES.md has the evidence): ``layer/0`` an ``input`` layer (shape only, no
neuron group), then one ``dense`` layer per DelayGraph layer with

    weight (out, in)   the stored integer weights w (the layer's current is Σ w · s in units of its scale s)
    delay  (out, in)   hardware delays d_hw (below), per synapse
    bias   (out,)      bias_mant = b / s; Lava adds bias_mant · 2^6 to v every step
    neuron/            CUBA: iDecay = 4096 (1 − α) (lif, li: 4096, u = the input alone),
                       vDecay = 4096 (1 − β), vThMant = θ / s (li readout: 2^17 − 1, never reached
                       while |v| < (2^17 − 1) weight units)

and a ``delaynir`` group netx does not read: per layer its name, kind, lag and scale s, so that a
runner maps Lava's state back (v_real = v_lava / 2^6 · s), and the layer's other projections.

Other projections. A netx file is a chain: netx layer k's ``weight`` comes from layer k − 1 (the
input for k = 1). A layer's other projections (recurrent, from itself or a later layer, and skip
connections from the input or an earlier layer) go in ``delaynir/layers/k/extra/m`` (source, weight,
delay, as above). netx does not read them: its ``dense_rec`` gives the feed-forward ``delay`` to the
recurrent synapses too and drops their weight exponent (LAVA_NOTES (f)). The runner
(``lava_run.py``) adds each as a ``DelayDense`` from the source's spikes into the layer's input,
with netx's own weight optimisation, which is what a Lava user does with these arrays.

Latency. Every Lava projection adds one step: a spike sent at step t arrives at t + d_hw + 1
(LAVA_NOTES (a)). The DelayGraph's delays are zero-latency (delaynir.ir.graph). ``delaynir.ir.graph.layer_lags`` gives
each layer a lag, and the synapse (i → j, d) of a projection from S into L gets

    d_hw = d + lag(L) − lag(S) − 1,

so Lava layer L's spikes at step t + lag(L) are the DelayGraph's at step t. A runner feeds the T
frames followed by max lag zero frames and reads steps lag(L) … lag(L) + T − 1 of layer L.

Refused (ExportError naming the layer and the fix), because netx or Lava would not compute the graph
exactly: another arithmetic than loihi2-fixed; a layer without a projection from the previous layer
(the input for the first); d_hw outside 0 … 62 on any projection (a recurrent one from S into L
needs d ≥ 1 + lag(S) − lag(L)); two synapses on one (pre, post) pair with different delays;
per-neuron differences in β, α or θ, or scales differing between neurons or projections; non-integer
weights, biases or thresholds (in units of the scale); kinds other than lif / cubalif (hard reset)
and an li readout last; and weight matrices that netx's mantissa/exponent rescaling and Lava's 8-bit
clip and truncation do not pass exactly (``lava_weights``).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np

from delaynir.common.h5 import writing_hdf5
from delaynir.common.outputs import check_output
from delaynir.errors import ExportError
from delaynir.ir.graph import INPUT, DelayGraph, Layer, in_units, layer_lags
from delaynir.targets.loihi2 import ARITHMETIC  # the graph arithmetic a netx file reproduces
from delaynir.targets.loihi2.arithmetic import DECAY_ONE

log = logging.getLogger(__name__)

FORMAT_VERSION = 2  #: of the ``delaynir`` group (2: other projections in ``extra``)
MAX_DELAY = 62  #: netx clamps per-synapse delays to 0 … 62 (LAVA_NOTES (e))
READOUT_VTH = 2**17 - 1  #: the li readout's vThMant: the largest 17-bit threshold mantissa
DOC = "docs/netx-format.md"


def hardware_delay(delay: np.ndarray, lag_source: int, lag_target: int) -> np.ndarray:
    """d_hw = d + lag(L) − lag(S) − 1: the delay that makes Lava's one-step projection latency vanish."""
    return np.asarray(delay, dtype=np.int64) + lag_target - lag_source - 1


def lava_weights(weight: np.ndarray) -> tuple[np.ndarray | None, int, str | None]:
    """What netx 0.6 and Lava's bit-accurate Dense make of an integer weight matrix: (stored, exponent, problem).

    netx (``netx/utils.py: optimize_weight_bits``): sign mode from min/max, scale = min(127/max, 128/−min)
    (mixed), 255/max (excitatory), −256/min (inhibitory); k = ⌊log2 scale⌋ + [mixed]; the stored weights
    are w · 2^k with exponent −k and ``num_weight_bits`` = 8 − k − (n − [mixed]), n the largest power
    of two (≤ 8) dividing every weight. Lava (``lava/utils/weightutils.py``) re-derives the sign mode
    (≥ 0 excitatory, ≤ 0 inhibitory), clips to 8 bits (mixed [−256, 255], else magnitudes ≤ 255) and
    truncates 8 − num_weight_bits + [mixed] low bits of the magnitude; the synapse sums the stored
    weights and shifts the sum right by k (floor). The result is w exactly iff the stored weights are
    w · 2^k with k ≥ 0; ``problem`` says why not, else None. ``stored`` is None where netx clips the
    matrix or either shifts by a negative amount (Lava's weights are then not modelled).
    """
    w = np.asarray(weight, dtype=np.int64)
    hi, lo = int(w.max()), int(w.min())
    if hi == lo == 0:
        return None, 0, "every weight is 0 (netx divides by the largest weight)"
    if lo < 0 < hi and (hi > 254 or lo < -256):
        return None, 0, f"mixed-sign weights in [{lo}, {hi}] (netx clips them to [-256, 254])"
    mixed = int(lo < 0 <= hi)  # netx: neither all < 0 nor all ≥ 0
    scale = min(127 / hi if hi else np.inf, -128 / lo) if mixed else (-256 / lo if hi < 0 else 255 / hi)
    k = int(np.floor(np.log2(scale))) + mixed
    if k < 0:
        return (
            None,
            0,
            (
                f"excitatory weights up to {hi} (> 255: netx shifts them by {k}, Lava stores 0)"
                if lo >= 0
                else f"inhibitory weights down to {lo} (< -256: netx shifts them by {k}, Lava stores 0)"
            ),
        )
    n = next((b for b in range(8, 0, -1) if not np.any(w % (1 << b))), 0) - mixed
    bits = 8 - k - n
    stored = w << k
    lava_mixed = int(stored.min() < 0 < stored.max())  # Lava: ≥ 0 excitatory, ≤ 0 inhibitory
    sign = -1 if stored.max() <= 0 < -stored.min() else 1
    magnitude = np.clip(sign * stored, -256 * lava_mixed, 255)
    cut = 8 - bits + lava_mixed
    zero_mixup = "every weight is ≤ 0 and one is 0 (netx takes it for mixed signs, Lava for inhibitory)"
    if cut < 0:  # Lava truncates by a negative number of bits (as undefined in numpy as in C)
        return None, -k, zero_mixup
    stored_lava = sign * ((magnitude >> cut) << cut)
    if np.array_equal(stored_lava, stored):
        return stored, -k, None
    if hi == 0:
        why = zero_mixup
    elif hi < 0 and lo == -(1 << (8 - k)):
        why = f"inhibitory-only weights whose minimum {lo} is a power of two (Lava clips it to {lo + 1})"
    else:
        why = f"weights in [{lo}, {hi}] lose low bits in Lava's 8-bit mantissa"
    return stored_lava, -k, why


@dataclass
class NetxProjection:
    """A projection as netx holds one: dense (out, n_source) int64 weight and hardware delay; ``source``
    is the netx layer index of its source (0: the input)."""

    source: int
    weight: np.ndarray
    delay: np.ndarray


@dataclass
class NetxLayer:
    """One dense netx layer as written: the projection from the previous layer, per-neuron bias, the CUBA
    decays and threshold mantissa, the layer's other projections, and what a runner needs (name, kind,
    lag, scale)."""

    name: str
    kind: str
    lag: int
    scale: float
    chain: NetxProjection
    bias: np.ndarray
    i_decay: int
    v_decay: int
    v_th: int
    extra: list[NetxProjection]


def _refuse(layer: Layer, what: str, fix: str) -> ExportError:
    return ExportError(f"cannot write a netx file: layer {layer.name!r} {what}; {fix} ({DOC})")


def _decay(layer: Layer, values: np.ndarray, name: str) -> int:
    """δ = 4096 (1 − x) for the layer's one decay x = (4096 − δ) / 4096, δ an integer in 0 … 4096."""
    values = np.asarray(values, dtype=np.float64)
    delta = DECAY_ONE * (1.0 - values)
    if values.size and (
        np.any(values != values.flat[0])
        or delta.flat[0] != np.round(delta.flat[0])
        or not 0 <= delta.flat[0] <= DECAY_ONE
    ):
        raise _refuse(
            layer,
            f"has {name} values {np.unique(values)[:4].tolist()}, not one value (4096 − δ)/4096 with "
            f"an integer δ in 0..{DECAY_ONE}",
            "compile it for target loihi2 (decay fixed12)",
        )
    return int(delta.flat[0]) if values.size else DECAY_ONE


def _integers(layer: Layer, values: np.ndarray, what: str) -> np.ndarray:
    if not np.all(np.isfinite(values) & (values == np.round(values))):
        raise _refuse(layer, f"has {what} that are not integers", "compile it for target loihi2")
    return values.astype(np.int64)


def _projection(graph: DelayGraph, layer: Layer, proj, lags: dict[str, int], unit: float) -> NetxProjection:
    """``proj`` into ``layer`` as dense netx arrays; ExportError naming what Lava would not compute exactly."""
    recurrent = " (recurrent)" if graph.is_recurrent(layer, proj) else ""
    scale = proj.scale
    if not np.all(scale == unit):
        raise _refuse(
            layer,
            f"has weight scales {np.unique(scale)[:4].tolist()} on its projection from {proj.source!r}",
            "compile it for target loihi2 (one scale per layer)",
        )
    d_hw = hardware_delay(proj.delay, lags.get(proj.source, 0), lags[layer.name])
    if len(proj) and (d_hw.min() < 0 or d_hw.max() > MAX_DELAY):
        fix = (
            f"a recurrent synapse needs d >= {1 + lags[proj.source] - lags[layer.name]} here"
            if recurrent
            else "compile with --fit relay-neurons or clip-delays"
        )
        raise _refuse(
            layer,
            f"has hardware delays d + lag(L) − lag(S) − 1 in [{d_hw.min()}, {d_hw.max()}] on its "
            f"projection from {proj.source!r}{recurrent}",
            f"netx takes 0..{MAX_DELAY}; {fix}",
        )
    shape = (layer.size, graph.source_size(proj.source))
    weight = np.zeros(shape, dtype=np.float64)
    np.add.at(weight, (proj.post, proj.pre), proj.weight)
    delay = np.zeros(shape, dtype=np.int64)
    delay[proj.post, proj.pre] = d_hw
    if np.any(delay[proj.post, proj.pre] != d_hw):
        raise _refuse(
            layer,
            f"has two synapses on one (pre, post) pair from {proj.source!r} with different delays",
            "netx holds one weight and delay per pair; split the layer with relay neurons",
        )
    weight = _integers(layer, weight, "weights")
    problem = lava_weights(weight)[2]
    if problem is not None:
        raise _refuse(
            layer,
            f"has {problem} on its projection from {proj.source!r}{recurrent}",
            "Lava would not compute these weights exactly; fine-tune on the loihi2 grid with at least one "
            "positive and one negative weight per projection",
        )
    return NetxProjection(1 + graph.position(proj.source), weight, delay)  # netx layer index: 0 is the input


def _layer(graph: DelayGraph, k: int, lags: dict[str, int]) -> NetxLayer:
    layer = graph.layers[k]
    kind, last = layer.kind, k == len(graph.layers) - 1
    if kind.relay or kind.readout != last:
        raise _refuse(
            layer,
            f"is a {layer.neuron} layer",
            "netx files hold lif or cubalif layers (reset hard) and an li readout as the last layer",
        )
    if kind.spiking and layer.reset != "hard":
        raise _refuse(layer, f"has reset {layer.reset!r}", "Loihi 2's CUBA neuron resets v to 0 (reset hard)")
    source = graph.layers[k - 1].name if k else INPUT
    chain_index = next((i for i, p in enumerate(layer.projections) if p.source == source), None)
    if chain_index is None:
        found = ", ".join(p.source for p in layer.projections) or "none"
        raise _refuse(
            layer,
            f"is fed by {found}",
            f"a netx file is a chain: each layer needs a projection from the "
            f"previous one ({source!r}); other projections go beside it",
        )
    scale = layer.projections[chain_index].scale
    if not (np.all(scale == scale[0]) and scale[0] > 0):
        raise _refuse(layer, "has per-neuron weight scales", "compile it for target loihi2 (one scale per layer)")
    unit = float(scale[0])
    projections = [_projection(graph, layer, p, lags, unit) for p in layer.projections]
    theta = in_units(layer.threshold, unit)
    if kind.readout:
        v_th = READOUT_VTH
    else:
        theta = _integers(layer, theta, f"thresholds (in units of the scale {unit})")
        if np.any(theta != theta[0]) or not 0 <= theta[0] <= READOUT_VTH:
            raise _refuse(
                layer,
                f"has thresholds {np.unique(theta)[:4].tolist()} (in units of its scale)",
                f"Loihi 2 takes one vThMant per layer in 0..{READOUT_VTH}",
            )
        v_th = int(theta[0])
    return NetxLayer(
        layer.name,
        layer.neuron,
        lags[layer.name],
        unit,
        projections.pop(chain_index),
        _integers(layer, in_units(layer.bias, unit), f"biases (in units of the scale {unit})"),
        _decay(layer, layer.alpha, "alpha") if kind.current_based else DECAY_ONE,
        _decay(layer, layer.beta, "beta"),
        v_th,
        projections,
    )


def netx_layers(graph: DelayGraph) -> list[NetxLayer]:
    """The dense netx layers of ``graph`` (module docstring); ExportError naming the layer if one cannot be written."""
    arithmetic = graph.quantization.get("arithmetic", "float64")
    if arithmetic != ARITHMETIC:
        raise ExportError(
            f"cannot write a netx file: the graph is computed in the {arithmetic!r} arithmetic, not "
            f"{ARITHMETIC!r}; compile it for target loihi2 ({DOC})"
        )
    lags = layer_lags(graph)
    return [_layer(graph, k, lags) for k in range(len(graph.layers))]


def _string(group: h5py.Group, key: str, value: str) -> None:
    """A string the way lava-dl writes one (a 1-element S10 array; netx reads element 0)."""
    group.create_dataset(key, (1,), f"S{max(10, len(value))}", [value.encode("ascii")])


def export_netx(graph: DelayGraph, path: str | Path, *, overwrite: bool = False) -> Path:
    """Write ``graph`` as a netx HDF5 file for Lava (module docstring, docs/netx-format.md); return the path."""
    path = check_output(path, overwrite=overwrite, error=ExportError)
    layers = netx_layers(graph)
    message_bits = int(graph.input.bits) if graph.input.quantized else 0
    with writing_hdf5(path, overwrite=overwrite, error=ExportError) as f:
        _string(f, "layer/0/type", "input")
        f["layer/0/shape"] = np.array([graph.n_inputs], dtype=np.int64)
        meta = f.create_group("delaynir")
        meta.attrs.update(
            format_version=FORMAT_VERSION,
            arithmetic=ARITHMETIC,
            n_inputs=graph.n_inputs,
            input_message_bits=message_bits,
            max_lag=max(la.lag for la in layers),
        )
        for k, la in enumerate(layers, start=1):
            g = f.create_group(f"layer/{k}")
            _string(g, "type", "dense")
            g["shape"] = np.array([la.chain.weight.shape[0]], dtype=np.int64)
            g["weight"], g["delay"], g["bias"] = la.chain.weight, la.chain.delay, la.bias
            n = g.create_group("neuron")
            _string(n, "type", "CUBA")
            n["iDecay"], n["vDecay"], n["vThMant"] = la.i_decay, la.v_decay, la.v_th
            info = meta.create_group(f"layers/{k}")
            info.attrs.update(name=la.name, kind=la.kind, lag=la.lag, scale=la.scale)
            for m, extra in enumerate(la.extra):
                e = info.create_group(f"extra/{m}")
                e["source"], e["weight"], e["delay"] = extra.source, extra.weight, extra.delay
    log.info(
        "wrote %s: %d netx layers, lags %s, %d other projections",
        path,
        len(layers),
        [la.lag for la in layers],
        sum(len(la.extra) for la in layers),
    )
    return path
