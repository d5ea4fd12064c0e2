"""Neuron kinds: the one definition of each kind's update, used by training, the reference
simulator and the ONNX writer.

A kind's ``step(ops, p, state, current)`` maps the state at step t − 1 (zero at t = 0) and the
input current I[t] to the state at t and the layer's output s[t]; the first lines of its
docstring are the equations (README and docs quote them verbatim; tests/test_neuron_kinds.py
fails when they drift). The step is written against ``ops`` so that one definition both runs and
is lowered:

- ``TORCH`` evaluates it on tensors: the reference simulator (``delaynir.reference.simulate``, float64) and
  the training module's torch loop (``delaynir.nn.neurons``; its numba and Triton loops are
  lowerings of the same steps, tested bit-equal in the forward pass);
- the ONNX writer passes an ops object that emits one node per operation.

Each operation is rounded before the next (products before the addition), in the order written.
An operation's ``out`` names the state variable it produces (the ONNX writer names that node's
output after it). ``p`` holds per-neuron parameters (β, θ, α, broadcastable against the state) and
``hard``, whether the reset is the hard one.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch

RESETS = ("hard", "subtract")
#: The decay factors a step may have (``NeuronKind.decays``): what each is, and its symbol.
DECAYS = {"beta": ("membrane decay", "β"), "alpha": ("synaptic decay", "α")}


class TorchOps:
    """The step's operations on torch tensors (``out`` labels are ignored)."""

    @staticmethod
    def mul(a, b, out: str | None = None):
        return a * b

    @staticmethod
    def add(a, b, out: str | None = None):
        return a + b

    @staticmethod
    def sub(a, b, out: str | None = None):
        return a - b

    @staticmethod
    def above(v, theta, out: str | None = None):
        """1.0 where v > θ (strict), else 0.0, in v's dtype."""
        return (v > theta).to(v.dtype)


TORCH = TorchOps()


def lif_step(ops, p: dict[str, Any], state: dict[str, Any], current) -> tuple[dict[str, Any], Any]:
    """v[t] = β v[t−1] (1 − z[t−1]) + I[t]  (reset "hard")   or  β v[t−1] − θ z[t−1] + I[t]  (reset "subtract")
    z[t] = 1 if v[t] > θ else 0

    State v, z; output z. The comparison is strict (as NIR, norse and snnTorch); the reset uses
    z[t − 1]; the hard reset is computed as (β · v) · (1 − z) + I, the subtract reset as
    (β · v − θ · z) + I.
    """
    decayed = ops.mul(p["beta"], state["v"])
    if p["hard"]:
        kept = ops.mul(decayed, ops.sub(1, state["z"]))
    else:
        kept = ops.sub(decayed, ops.mul(p["theta"], state["z"]))
    v = ops.add(kept, current, out="v")
    z = ops.above(v, p["theta"], out="z")
    return {"v": v, "z": z}, z


def cubalif_step(ops, p: dict[str, Any], state: dict[str, Any], current) -> tuple[dict[str, Any], Any]:
    """i[t] = α i[t−1] + I[t];  v, z as lif with i[t] in place of I[t]

    State v, z, i; output z.
    """
    i = ops.add(ops.mul(p["alpha"], state["i"]), current, out="i")
    lif_state, z = lif_step(ops, p, state, i)
    return {**lif_state, "i": i}, z


def li_step(ops, p: dict[str, Any], state: dict[str, Any], current) -> tuple[dict[str, Any], Any]:
    """v[t] = β v[t−1] + I[t]  (no spikes; the readout)

    State v; output v, which is read out but never feeds another layer.
    """
    v = ops.add(ops.mul(p["beta"], state["v"]), current, out="v")
    return {"v": v}, v


def relay_step(ops, p: dict[str, Any], state: dict[str, Any], current) -> tuple[dict[str, Any], Any]:
    """z[t] = I[t]  (emits its input unchanged in the same step)

    No state; chains of relays realise delays longer than a target allows (``delaynir.compile.relay``).
    """
    return {}, current


@dataclass(frozen=True)
class NeuronKind:
    """A neuron kind: its state variables, its step, and the facts the rest of the toolchain asks of it."""

    name: str
    state: tuple[str, ...]
    step: Callable[..., tuple[dict[str, Any], Any]]
    spiking: bool  #: emits spikes z = [v > θ] and resets (lif, cubalif)
    readout: bool  #: its output is the membrane v, read out and never a source (li)
    decays: tuple[str, ...]  #: the per-neuron decay factors of its step, as Layer attributes (beta, alpha)

    @property
    def relay(self) -> bool:
        """Emits its input unchanged: no state, no membrane (a relay)."""
        return not self.spiking and not self.readout

    @property
    def in_units(self) -> bool:
        """Computed in units of its layer's weight scale (delaynir.ir.graph, "Units"): scaling a spiking neuron's
        input, bias, state and threshold by one factor changes none of its spikes."""
        return self.spiking

    @property
    def current_based(self) -> bool:
        """Has a synaptic current with its own decay α (cubalif)."""
        return "alpha" in self.decays

    @property
    def equations(self) -> list[str]:
        """The equation lines of the step's docstring (up to its first blank line)."""
        doc = inspect.getdoc(self.step) or ""
        return [line.strip() for line in doc.split("\n\n")[0].splitlines()]

    def zero_state(self, like: torch.Tensor) -> dict[str, torch.Tensor]:
        """Every state variable at t = −1: zeros shaped and typed like ``like``."""
        return {name: torch.zeros_like(like) for name in self.state}


KINDS: dict[str, NeuronKind] = {
    "lif": NeuronKind("lif", ("v", "z"), lif_step, spiking=True, readout=False, decays=("beta",)),
    "cubalif": NeuronKind(
        "cubalif", ("v", "z", "i"), cubalif_step, spiking=True, readout=False, decays=("beta", "alpha")
    ),
    "li": NeuronKind("li", ("v",), li_step, spiking=False, readout=True, decays=("beta",)),
    "relay": NeuronKind("relay", (), relay_step, spiking=False, readout=False, decays=()),
}
NEURON_TYPES = tuple(KINDS)
UNIT_KINDS = tuple(name for name, kind in KINDS.items() if kind.in_units)  #: computed in units of their scale


def predictions_of(output: torch.Tensor, *, readout: bool) -> torch.Tensor:
    """(B,) classes from the output (T, B, n): argmax Σ_t softmax(v[t]) for a leaky readout, else the spike count."""
    return summed_softmax(output).argmax(1) if readout else output.sum(0).argmax(1)


def summed_softmax(readout: torch.Tensor) -> torch.Tensor:
    """logits[b, k] = Σ_t softmax(v[t, b, :])[k] over a readout (T, B, n) (the anchor's readout statistic)."""
    return torch.softmax(readout, dim=-1).sum(0)
