"""Discrete-time neurons for training, time-first (T, B, C).

The forward updates are the lif and li steps of ``delaynir.ir.neuron_kinds`` (the one definition of
each kind's equations), from zero state: the torch loops below call those steps, the numba
(``neuron_kernels``) and Triton (``neuron_kernels_triton``) loops lower them.

Training uses a surrogate gradient for the spike: dz/dv = (α/2) / (1 + (π α (v − θ)/2)²)
(ATan, α = 5 by default). The reset term is detached (no gradient flows through
z[t−1] into the reset), as in the anchor's SpikingJelly neurons. Both recurrences are
implemented as fused autograd functions: the forward loop runs without building a
graph and the backward pass is the explicit BPTT recursion

    gv[t] = gz[t] · σ'(v[t] − θ) + gv[t+1] · ∂v[t+1]/∂v[t],   gI[t] = gv[t],

with ∂v[t+1]/∂v[t] = β (1 − z[t]) for the hard reset and β otherwise.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from delaynir.errors import ConfigError
from delaynir.ir.neuron_kinds import KINDS, RESETS, TORCH
from delaynir.nn import neuron_kernels, neuron_kernels_triton


def _kernels(*tensors: torch.Tensor):
    """The compiled loops for these tensors (numba on CPU, Triton on CUDA), or None: the torch loop runs."""
    return next((k for k in (neuron_kernels, neuron_kernels_triton) if k.applicable(*tensors)), None)


def atan_surrogate(v_minus_theta: torch.Tensor, alpha: float) -> torch.Tensor:
    """σ'(u) = (α/2) / (1 + (π α u / 2)²): the ATan surrogate derivative of the step at u = 0."""
    return (alpha / 2) / (1 + (math.pi / 2 * alpha * v_minus_theta) ** 2)


class _LIFSequence(torch.autograd.Function):
    """The LIF recurrence and its BPTT backward; compiled loops on CPU (numba) and CUDA (Triton)."""

    @staticmethod
    def forward(ctx, current, beta, theta, hard_reset, alpha):
        vs, zs = _lif_forward(current, beta, theta, hard_reset)
        ctx.save_for_backward(vs, zs, beta, theta)
        ctx.hard_reset, ctx.alpha = hard_reset, alpha
        ctx.set_materialize_grads(False)  # an unused membrane output: g_mem None, no zero tensor to add
        return zs, vs

    @staticmethod
    def backward(ctx, g_spikes, g_mem):
        vs, zs, beta, theta = ctx.saved_tensors
        if g_spikes is None:
            g_spikes = torch.zeros_like(vs)
        kernels = _kernels(vs)
        if kernels is not None:
            return (
                kernels.lif_backward(g_spikes, g_mem, vs, zs, beta, theta, ctx.hard_reset, ctx.alpha),
                None,
                None,
                None,
                None,
            )
        T = vs.shape[0]
        g_in = torch.empty_like(vs)
        gv_next = torch.zeros_like(vs[0])
        for t in range(T - 1, -1, -1):
            carry = beta * (1 - zs[t]) if ctx.hard_reset else beta
            gv = g_spikes[t] * atan_surrogate(vs[t] - theta, ctx.alpha) + gv_next * carry
            if g_mem is not None:
                gv = gv + g_mem[t]
            g_in[t] = gv
            gv_next = gv
        return g_in, None, None, None, None


def _lif_forward(current, beta, theta, hard_reset):
    """(membranes, spikes) of the LIF recurrence over (T, B, C) (module docstring)."""
    kernels = _kernels(current)
    if kernels is not None:
        zs, vs = kernels.lif_forward(current, beta, theta, hard_reset)
        return vs, zs
    params = {"beta": beta, "theta": theta, "hard": hard_reset}
    lif = KINDS["lif"]
    state = lif.zero_state(current[0])
    vs = torch.empty_like(current)
    zs = torch.empty_like(current)
    for t in range(current.shape[0]):
        state, zs[t] = lif.step(TORCH, params, state, current[t])
        vs[t] = state["v"]
    return vs, zs


def _leaky_scan(values, beta, *, reverse: bool):
    """v[t] = β v[t ∓ 1] + values[t] over (T, B, C), forward (``reverse`` False) or backward in time."""
    kernels = _kernels(values)
    if kernels is not None:
        return kernels.li_scan(values, beta, reverse=reverse)
    params = {"beta": beta}
    out = torch.empty_like(values)
    li = KINDS["li"]
    state = li.zero_state(values[0])
    T = values.shape[0]
    for s in range(T):
        t = T - 1 - s if reverse else s
        state, out[t] = li.step(TORCH, params, state, values[t])
    return out


class _LISequence(torch.autograd.Function):
    """The leaky integrator v[t] = β v[t−1] + I[t]; its backward is the same scan reversed in time."""

    @staticmethod
    def forward(ctx, current, beta):
        ctx.save_for_backward(beta)
        return _leaky_scan(current, beta, reverse=False)

    @staticmethod
    def backward(ctx, g_out):
        (beta,) = ctx.saved_tensors
        return _leaky_scan(g_out.contiguous(), beta, reverse=True), None


def lif_sequence(current, beta, theta, *, reset="hard", alpha=5.0):
    """Run LIF neurons over a (T, B, C) input current; returns (spikes, membranes), both (T, B, C).

    beta, theta: tensors broadcastable to (B, C) (per neuron: shape (C,)). Membranes are
    the values v[t] compared with θ, before the reset applied at t + 1.
    """
    if reset not in RESETS:
        raise ConfigError(f"reset must be one of {RESETS}, got {reset!r}")
    beta = torch.as_tensor(beta, dtype=current.dtype, device=current.device)
    theta = torch.as_tensor(theta, dtype=current.dtype, device=current.device)
    return _LIFSequence.apply(current, beta, theta, reset == "hard", float(alpha))


def li_sequence(current, beta):
    """Leaky integrator v[t] = β v[t−1] + I[t] over (T, B, C); returns v (T, B, C)."""
    beta = torch.as_tensor(beta, dtype=current.dtype, device=current.device)
    return _LISequence.apply(current, beta)


def beta_from_tau(tau_steps: float) -> float:
    """Forward-Euler decay β = 1 − 1/τ for a membrane time constant τ in steps (τ > 1)."""
    if tau_steps <= 1:
        raise ConfigError(f"membrane time constant must exceed one step, got tau = {tau_steps} steps")
    return 1.0 - 1.0 / tau_steps


class LIF(nn.Module):
    """LIF layer with per-neuron β and θ (buffers, not trained); forward returns spikes (T, B, C)."""

    beta: torch.Tensor
    threshold: torch.Tensor

    def __init__(
        self, n: int, *, tau_steps: float = 10.05, threshold: float = 1.0, reset: str = "hard", alpha: float = 5.0
    ):
        super().__init__()
        if reset not in RESETS:
            raise ConfigError(f"reset must be one of {RESETS}, got {reset!r}")
        self.reset, self.alpha = reset, alpha
        self.register_buffer("beta", torch.full((n,), beta_from_tau(tau_steps)))
        self.register_buffer("threshold", torch.full((n,), float(threshold)))
        self.last_membrane: torch.Tensor | None = None

    def forward(self, current: torch.Tensor, threshold: torch.Tensor | None = None) -> torch.Tensor:
        """Spikes for ``current``; ``threshold`` (C,) replaces θ for this call (a deployed, rounded θ)."""
        theta = self.threshold if threshold is None else threshold
        spikes, membrane = lif_sequence(current, self.beta, theta, reset=self.reset, alpha=self.alpha)
        self.last_membrane = membrane.detach()
        return spikes


class LeakyReadout(nn.Module):
    """Non-spiking leaky integrator readout with per-neuron β; forward returns v (T, B, C)."""

    beta: torch.Tensor

    def __init__(self, n: int, *, tau_steps: float = 10.05):
        super().__init__()
        self.register_buffer("beta", torch.full((n,), beta_from_tau(tau_steps)))

    def forward(self, current: torch.Tensor) -> torch.Tensor:
        return li_sequence(current, self.beta)
