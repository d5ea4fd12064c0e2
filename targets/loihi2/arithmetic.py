"""Loihi 2's fixed-point CUBA neuron (Lava's bit-accurate model) as the ``loihi2-fixed`` arithmetic.

The reference simulator computes a graph compiled for loihi2 (``quantization["arithmetic"]``) with
these steps instead of the float64 ones of ``delaynir.ir.neuron_kinds``. They follow
``lava/proc/lif/models.py`` (lava-nc 0.10.0, ``AbstractPyLifModelFixed.subthr_dynamics`` and
``PyLifModelBitAcc``; LAVA_NOTES.md (d)). With a[t] the layer's input current in units of its weight
scale (Σ w · s[t − d], integers), b and θ the bias and threshold in those units (integers after
compile: vThMant = θ, bias_mant = b), and the state u, v in Lava's units, 2^6 per weight unit:

    u[t] = wrap(trunc(u[t−1] · (4096 − δu) / 4096) + 64 · a[t])          δu = 4096 (1 − α); lif: δu = 4096
    v[t] = clip(trunc(v⁺[t−1] · (4096 − δv) / 4096) + u[t] + 64 · b)     δv = 4096 (1 − β)
    z[t] = 1 if v[t] > 64 · θ else 0;   v⁺[t] = 0 if z[t] else v[t]      (hard reset of v; u is not reset)

trunc rounds toward zero (Lava: sign(x) · (|x| >> 12)); wrap takes u once into (−2^23, 2^23] (u − 2^24
above 2^23, u + 2^24 at or below −2^23); clip saturates v to ±(2^23 − 1). The li readout is the same
neuron without spikes (its threshold is unreachable), its v the output. Lava's netx file gives δu as
iDecay (Lava adds its ds_offset of 1 to du = iDecay − 1) and δv as vDecay.

The simulator reports membranes v / 64, in the layer's units. Every Lava projection also adds one step
of latency; that is not part of the arithmetic: the netx writer and the Lava runner align each layer
by its lag, so that the graph's zero-latency delays keep their meaning.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from delaynir.hardware.fit import FitViolation
from delaynir.ir.graph import DelayGraph, in_units, membrane_unit
from delaynir.ir.neuron_kinds import DECAYS, TORCH
from delaynir.numerics.number_formats import Arithmetic
from delaynir.targets.loihi2 import ARITHMETIC

STATE_SHIFT = 6  #: Lava's act_shift / vth_shift: the state holds 2^6 per weight unit
DECAY_ONE = 4096  #: decays are 12-bit fractions: x · (4096 − δ) / 4096
STATE_LIMIT = 2**23  #: u wraps into (−2^23, 2^23]; v saturates at ±(2^23 − 1)
KINDS = ("lif", "cubalif", "li")  #: the kinds this arithmetic computes (a relay is not modelled)
VTH_MAX = 2**17 - 1  #: vth is an unsigned 17-bit mantissa
BIAS_RANGE = (-(2**12), 2**12 - 1)  #: bias_mant is a signed 13-bit mantissa (netx: bias_exp = 6)


def decayed(x: torch.Tensor, factor: torch.Tensor) -> torch.Tensor:
    """trunc(x · factor · 4096 / 4096) toward zero, for a decay factor β (or α) = (4096 − δ) / 4096.

    Exact in float64: |x| < 2^24 and 4096 β ≤ 4096 are integers, so the product stays below 2^36."""
    return torch.trunc(x * torch.round(factor * DECAY_ONE) / DECAY_ONE)


def wrapped(u: torch.Tensor) -> torch.Tensor:
    """u taken once into (−2^23, 2^23] (Lava's 24-bit current register)."""
    u = torch.where(u > STATE_LIMIT, u - 2 * STATE_LIMIT, u)
    return torch.where(u <= -STATE_LIMIT, u + 2 * STATE_LIMIT, u)


def saturated(v: torch.Tensor) -> torch.Tensor:
    """v clipped to ±(2^23 − 1) (Lava's 24-bit voltage register)."""
    return v.clamp(-(STATE_LIMIT - 1), STATE_LIMIT - 1)


def _voltage(p: dict[str, Any], state: dict[str, Any], u: torch.Tensor, spiking: bool):
    """v[t] and z[t] from u[t]: the leaky, saturating voltage with its hard reset (module docstring)."""
    v_prev = state["v"] * (1 - state["z"]) if spiking else state["v"]
    v = saturated(decayed(v_prev, p["beta"]) + u + (p["bias"] * 2**STATE_SHIFT))
    if not spiking:
        return v, None
    return v, (v > p["theta"] * 2**STATE_SHIFT).to(v.dtype)


def lif_step(ops, p: dict[str, Any], state: dict[str, Any], current) -> tuple[dict[str, Any], Any]:
    """Loihi CUBA with δu = 4096 (u = the input alone): u = wrap(64 a), then v and z as in the module docstring."""
    u = wrapped(current * 2**STATE_SHIFT)
    v, z = _voltage(p, state, u, spiking=True)
    return {"v": v, "z": z}, z


def cubalif_step(ops, p: dict[str, Any], state: dict[str, Any], current) -> tuple[dict[str, Any], Any]:
    """Loihi CUBA: u = wrap(trunc(u α) + 64 a), then v and z (module docstring); the state i holds u."""
    u = wrapped(decayed(state["i"], p["alpha"]) + current * 2**STATE_SHIFT)
    v, z = _voltage(p, state, u, spiking=True)
    return {"v": v, "z": z, "i": u}, z


def li_step(ops, p: dict[str, Any], state: dict[str, Any], current) -> tuple[dict[str, Any], Any]:
    """The readout: Loihi CUBA with δu = 4096 and no spikes; its output is v (in Lava's units)."""
    v, _ = _voltage(p, state, wrapped(current * 2**STATE_SHIFT), spiking=False)
    return {"v": v}, v


def _integers(values: np.ndarray) -> bool:
    return bool(np.all(np.isfinite(values)) and np.all(values == np.round(values)))


def violations(graph: DelayGraph) -> list[FitViolation]:
    """What a graph must satisfy to be computed in this arithmetic (and run as Lava processes): kinds lif,
    cubalif and li; per layer one weight scale, one β (and α) and one threshold, as Lava's du, dv and vth
    are one value per process; thresholds integers 0 … 2^17 − 1 and biases integers −4096 … 4095 in units of
    the scale (vThMant, bias_mant)."""
    out: list[FitViolation] = []
    for layer in graph.layers:
        where = f"layer {layer.name!r}"
        if layer.neuron not in KINDS:
            out.append(
                FitViolation(
                    layer.name,
                    "arithmetic",
                    layer.neuron,
                    KINDS,
                    f"{where}: {layer.neuron} neurons are not modelled in the {ARITHMETIC} arithmetic "
                    f"(it computes {', '.join(KINDS)}); compile with --fit clip-delays instead of "
                    "relay neurons, or train with shorter delays",
                )
            )
            continue
        unit = membrane_unit(layer, KINDS)
        if unit is None:
            out.append(
                FitViolation(
                    layer.name,
                    "weight_scale",
                    "per projection",
                    "one per layer",
                    f"{where}: its projections do not share one weight scale, which Lava's one "
                    "weight exponent per process needs; compile for loihi2 (per-layer scale)",
                )
            )
            continue
        if unit.size != layer.size or not np.all(unit == unit[0]):
            continue  # a scale per neuron (or a malformed one): the profile's checks and validate_graph report it
        params = [(key, DECAYS[key][1], getattr(layer, key)) for key in layer.kind.decays]
        if layer.kind.spiking:
            params.append(("threshold", "θ", layer.threshold))
        for key, symbol, values in params:
            if not np.all(values == values[0]):
                out.append(
                    FitViolation(
                        layer.name,
                        key,
                        f"{np.unique(values).size} values",
                        "one per layer",
                        f"{where}: its neurons have {np.unique(values).size} different {symbol}, but "
                        f"Lava holds one per process; train with one {symbol} per layer",
                    )
                )
        if layer.kind.spiking:
            vth = in_units(layer.threshold, unit)
            if not _integers(vth) or vth.min() < 0 or vth.max() > VTH_MAX:
                out.append(
                    FitViolation(
                        layer.name,
                        "threshold_bits",
                        float(vth.max()),
                        f"integers 0..{VTH_MAX}",
                        f"{where}: threshold {vth.max():g} weight units is not an integer in "
                        f"0..{VTH_MAX} (vThMant); compile for loihi2 so it is rounded, or lower θ",
                    )
                )
        bias = in_units(layer.bias, unit)
        if not _integers(bias) or bias.min() < BIAS_RANGE[0] or bias.max() > BIAS_RANGE[1]:
            worst = float(bias[np.argmax(np.abs(bias))])
            out.append(
                FitViolation(
                    layer.name,
                    "state_bits",
                    worst,
                    f"integers {BIAS_RANGE[0]}..{BIAS_RANGE[1]}",
                    f"{where}: a bias of {worst:g} weight units is not an integer in "
                    f"{BIAS_RANGE[0]}..{BIAS_RANGE[1]} (bias_mant); compile for loihi2 so biases "
                    "are rounded, or train with smaller biases",
                )
            )
    return out


LOIHI2_FIXED = Arithmetic(
    ARITHMETIC,
    TORCH,
    {"lif": lif_step, "cubalif": cubalif_step, "li": li_step},
    state_per_unit=2**STATE_SHIFT,
    separate_bias=True,
    unit_kinds=KINDS,
    check=violations,
)
