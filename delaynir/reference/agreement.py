"""Agreement with the reference simulation: identical spikes per layer, same predictions, accuracy and the
first divergence, counted batch by batch (``delaynir verify``, compile's trained-vs-compiled comparison)."""

from __future__ import annotations

from typing import Any

import torch

from delaynir.ir.neuron_kinds import predictions_of
from delaynir.reference.simulate import SimulationResult


class Tally:
    """Running agreement of one executor with the reference."""

    def __init__(self, layers: list[str]):
        self.same = dict.fromkeys(layers, 0)
        self.entries = dict.fromkeys(layers, 0)
        self.agree = self.correct = self.n = 0
        self.first: dict[str, Any] | None = None

    def add(self, ref: SimulationResult, other: SimulationResult, y: torch.Tensor, offset: int) -> None:
        for layer in self.same:
            if layer not in other.spikes:
                continue
            a = ref.spikes[layer]
            b = other.spikes[layer].to(a.dtype)
            self.same[layer] += int((a == b).sum())
            self.entries[layer] += a.numel()
        self.agree += int((other.predictions == ref.predictions).sum())
        self.correct += int((other.predictions == y).sum())
        self.n += len(y)
        if self.first is None:
            self.first = first_divergence(ref, other, offset)

    def summary(self) -> dict[str, Any]:
        return {
            "spike_agreement": {k: self.same[k] / self.entries[k] for k in self.same if self.entries[k]},
            "prediction_agreement": self.agree / max(self.n, 1),
            "accuracy": self.correct / max(self.n, 1),
            "first_divergence": self.first,
        }


def first_divergence(ref: SimulationResult, other: SimulationResult, offset: int) -> dict[str, Any] | None:
    best: dict[str, Any] | None = None
    for layer, a in ref.spikes.items():
        if layer not in other.spikes:
            continue
        diff = (a != other.spikes[layer].to(a.dtype)).nonzero()
        if len(diff) and (best is None or int(diff[0, 0]) < best["step"]):
            t, b, j = (int(v) for v in diff[0])
            best = {
                "layer": layer,
                "sample": offset + b,
                "neuron": j,
                "step": t,
                "reference_membrane": float(ref.membranes[layer][t, b, j]),
                "other_membrane": float(other.membranes[layer][t, b, j]) if layer in other.membranes else None,
            }
    return best


@torch.no_grad()
def model_result(model, x: torch.Tensor, hidden: list[str]) -> SimulationResult:
    """The trained ``model`` (a DelaySNN) on ``x`` as a SimulationResult: predictions, and the spikes and membranes
    of its ``hidden`` layers."""
    model.eval()
    model.record = True
    try:
        out = model(x)
    finally:
        model.record = False
    spikes = {name: s.double() for name, s in zip(hidden, model.recorded)}
    membranes = {name: lif.last_membrane.double() for name, lif in zip(hidden, model.neurons)}
    return SimulationResult(
        output=out, predictions=predictions_of(out, readout=True), spikes=spikes, membranes=membranes
    )
