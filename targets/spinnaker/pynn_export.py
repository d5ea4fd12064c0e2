"""Write a DelayGraph as a PyNN network file (``model.pynn.h5``, read by ``run_pynn.py`` and ``nest_run.py``).

The file's layout and semantics are in ``run_pynn.py``'s docstring and docs/pynn-format.md. From the DelayGraph:

* each layer is a population with lag(L) = ``delaynir.ir.graph.layer_lags`` (PyNN's synapses take at least one
  step), and each synapse (i → j, d) from S into L gets the delay d + lag(L) − lag(S) timesteps (≥ 1);
* a layer whose projections share one weight scale s (``delaynir.ir.graph.membrane_unit``: every compiled
  layer) is written in units of s, as the reference simulator computes a lif layer: its stored weights, θ / s and
  b / s (``in_units``: integers for a compiled graph), unit = s; any other layer in real units (weights
  w · scale, unit = 1);
* τ_m = −h / ln β in ms (h = dt in ms), for which NEST's propagator exp(−h / τ_m) is β exactly; the writer checks
  that for every neuron.

Refused (ExportError saying why, FileFormat.partial): what PyNN's IF_curr_delta cannot carry exactly —
graded input, a subtractive reset (no PyNN or NEST model resets by subtraction: docs/research/NEST_NOTES.md Q3),
current-based (cubalif) and relay neurons, a decay β no τ_m reproduces in float64 (β ≲ 0.6 only), a dt that is not
a whole number of microseconds (NEST's time grid), and a recurrent synapse whose delay is shorter than the lag
it must span.
"""

from __future__ import annotations

import logging
import math
from pathlib import Path

import numpy as np

from delaynir.common.h5 import writing_hdf5
from delaynir.common.outputs import check_output
from delaynir.errors import ExportError
from delaynir.ir.graph import DelayGraph, Layer, Projection, in_units, layer_lags, membrane_unit
from delaynir.targets.spinnaker.run_pynn import FORMAT, FORMAT_VERSION, READOUT, SPIKING

log = logging.getLogger(__name__)

DOC = "docs/pynn-format.md"
#: the neuron kinds IF_curr_delta carries exactly: DelayGraph kind → the file's population kind
KINDS = {SPIKING: SPIKING, READOUT: READOUT}


def timestep_ms(dt: float) -> float | None:
    """dt (s) in ms on NEST's default time grid of 1 µs; None for a dt off that grid."""
    micro = round(dt * 1e6)
    if micro < 1 or abs(micro - dt * 1e6) > 1e-6 * max(1.0, dt * 1e6):
        return None
    return micro / 1000.0


def tau_m(beta: np.ndarray, h: float) -> np.ndarray:
    """τ_m (ms) with exp(−h / τ_m) == β: −h / ln β; β = 0 and β = 1 by limits exp(−1000) = 0 and exp(−1e−300) = 1."""
    beta = np.asarray(beta, dtype=np.float64)
    with np.errstate(divide="ignore"):
        tau = -h / np.log(np.where((beta > 0) & (beta < 1), beta, 0.5))
    return np.where(beta <= 0, h / 1000.0, np.where(beta >= 1, 1e300, tau))


def inexact_decays(beta: np.ndarray, tau: np.ndarray, h: float) -> np.ndarray:
    """Where NEST's propagator exp(−h / τ_m) (Python's math.exp gives the same float64) is not β."""
    return np.array([math.exp(-h / t) != b for b, t in zip(beta.tolist(), tau.tolist())], dtype=bool)


def pynn_delay(proj: Projection, lags: dict[str, int], target: str) -> np.ndarray:
    """The delays (timesteps) PyNN carries for a projection into layer ``target``: d + lag(target) − lag(source),
    lags from ``layer_lags`` (the input's is 0)."""
    return proj.delay + lags[target] - lags.get(proj.source, 0)


def _refusal(graph: DelayGraph, lags: dict[str, int], h: float | None) -> str | None:
    """Why the graph cannot be written exactly, or None."""
    if h is None:
        return f"dt = {graph.dt} s is not a whole number of microseconds, which NEST's time grid needs"
    if graph.input.graded:
        return "the input is graded (real values or codes), but PyNN's spike sources send 0/1 spikes"
    for layer in graph.layers:
        if layer.neuron not in KINDS:
            return (
                f"layer {layer.name!r} is {layer.neuron}; PyNN's IF_curr_delta carries lif and li layers exactly "
                "(train with --neuron lif)"
            )
        if layer.kind.spiking and layer.reset != "hard":
            return (
                f"layer {layer.name!r} resets by subtraction; no PyNN, NEST or sPyNNaker point neuron does "
                "(train or import with the hard reset)"
            )
        if layer.kind.spiking and np.any(layer.threshold < 0):
            return (
                f"layer {layer.name!r} has negative thresholds (e.g. {float(layer.threshold.min())!r}); PyNN and NEST "
                "need v_thresh above v_reset = 0"
            )
        bad = inexact_decays(layer.beta, tau_m(layer.beta, h), h)
        if bad.any():
            example = float(layer.beta[bad][0])
            return (
                f"layer {layer.name!r}: {int(bad.sum())} of {layer.size} decays (e.g. β = {example!r}) are not "
                "exp(−h/τ_m) for any float64 τ_m, so NEST and PyNN cannot reproduce them (it happens only for "
                "β below about 0.6); train with slower membranes (larger τ)"
            )
        for proj in layer.projections:
            lagged = pynn_delay(proj, lags, layer.name)
            if len(proj) and lagged.min() < 1:
                return (
                    f"layer {layer.name!r}, recurrent projection from {proj.source!r}: a delay of "
                    f"{int(proj.delay[np.argmin(lagged)])} steps is shorter than the "
                    f"{lags.get(proj.source, 0) - lags[layer.name] + 1} steps PyNN needs to bring the spike back "
                    "from that deeper layer"
                )
    return None


def _units(layer: Layer) -> np.ndarray | None:
    """The scale a layer is written in units of: its projections' shared scale (lif as the reference computes it;
    the li readout too, so that SpiNNaker stores its weights as integers), else None (real units)."""
    return membrane_unit(layer, tuple(KINDS))


def export_pynn(graph: DelayGraph, path: str | Path, *, overwrite: bool = False) -> Path:
    """Write ``graph`` as a PyNN network file (module docstring); return the path. ExportError for what the
    file cannot carry exactly, before anything is written."""
    path = check_output(path, overwrite=overwrite, error=ExportError)
    h = timestep_ms(graph.dt)
    lags = layer_lags(graph)
    why = _refusal(graph, lags, h)
    if why or h is None:
        raise ExportError(f"cannot export to PyNN ({DOC}): {why}")
    with writing_hdf5(path, overwrite=overwrite, error=ExportError) as f:
        f.attrs.update(
            format=FORMAT,
            format_version=FORMAT_VERSION,
            timestep_ms=h,
            dt=graph.dt,
            n_inputs=graph.n_inputs,
            target=graph.target,
            layout=f"see run_pynn.py beside this file and delaynir's {DOC}",
        )
        k = 0
        for index, layer in enumerate(graph.layers):
            unit = _units(layer)
            g = f.create_group(f"populations/{index}")
            g.attrs.update(name=layer.name, kind=KINDS[layer.neuron], lag=lags[layer.name])
            g["tau_m"], g["beta"] = tau_m(layer.beta, h), layer.beta
            g["threshold"], g["bias"] = in_units(layer.threshold, unit), in_units(layer.bias, unit)
            g["unit"] = np.ones(layer.size) if unit is None else unit
            for proj in layer.projections:
                p = f.create_group(f"projections/{k}")
                k += 1
                p.attrs.update(source=proj.source, target=layer.name)
                p["pre"], p["post"] = proj.pre, proj.post
                p["weight"] = proj.weight if unit is not None else proj.weight * proj.scale[proj.post]
                p["delay"] = pynn_delay(proj, lags, layer.name)
    log.info("wrote %s: %d populations, %d projections, lags %s", path, len(graph.layers), k, lags)
    return path
