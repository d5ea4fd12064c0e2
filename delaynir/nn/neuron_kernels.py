"""Compiled CPU loops of the neuron recurrences in ``delaynir.nn.neurons`` (numba, parallel over neurons).

The recurrences are sequential in time and elementwise over (B · C) neurons, so the torch loop
spends its time dispatching ~10 small operations per step; these kernels run the same
arithmetic in one pass per thread, each thread owning a contiguous block of neurons. Each step's
inner loop reads and writes 1-D row slices of the block (not elements of the whole (T, N) arrays),
which LLVM vectorises: 4-5× faster at the anchor shape than per-element 2-D indexing. The forward
loops compute what the torch loops in ``neurons`` compute, operation by operation in the same
order and precision (no fast-math), so spikes and membranes are bit-identical; the backward loop
evaluates the surrogate in float64 and agrees to float rounding (tests/test_neurons.py). Inputs
are (T, N) C-contiguous arrays, per-neuron parameters (N,).

    LIF forward:   v = β·v·(1 − z) + I[t]  (hard)   or   v = β·v − θ·z + I[t]  (subtract);  z = v > θ
    LIF backward:  gv = gz[t]·σ'(v[t] − θ) + gv_next·c[t] (+ gm[t]),  c = β(1 − z[t]) (hard) or β
    LI forward:    v = β·v + I[t];   backward: g = gout[t] + β·g
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numba
import numpy as np
import torch
from numba import njit, prange

if TYPE_CHECKING:
    from delaynir.nn.event_kernels import JitOptions

_JIT: JitOptions = {
    "parallel": True,
    "fastmath": False,
    "boundscheck": False,
    "cache": True,
    "nogil": True,
    "error_model": "numpy",
}


@njit(**_JIT)
def _lif_forward(current, beta, theta, hard, n_blocks, zs, vs):  # pragma: no cover - compiled
    T, N = current.shape
    for c in prange(n_blocks):
        lo, hi = c * N // n_blocks, (c + 1) * N // n_blocks
        b, th = beta[lo:hi].copy(), theta[lo:hi].copy()
        v = np.zeros(hi - lo, dtype=current.dtype)
        z = np.zeros(hi - lo, dtype=current.dtype)
        for t in range(T):
            cur, v_out, z_out = current[t, lo:hi], vs[t, lo:hi], zs[t, lo:hi]
            if hard:  # β·v·(1 − z) + I with z ∈ {0, 1}, without a float64 constant in float32 arithmetic
                for k in range(hi - lo):
                    vk = cur[k] if z[k] != 0 else b[k] * v[k] + cur[k]
                    z_out[k] = 1.0 if vk > th[k] else 0.0
                    v[k], z[k], v_out[k] = vk, z_out[k], vk
            else:
                for k in range(hi - lo):
                    vk = b[k] * v[k] - th[k] * z[k] + cur[k]
                    z_out[k] = 1.0 if vk > th[k] else 0.0
                    v[k], z[k], v_out[k] = vk, z_out[k], vk


@njit(**_JIT)
def _lif_backward(g_spikes, g_mem, has_mem, vs, zs, beta, theta, hard, alpha, n_blocks, g_in):  # pragma: no cover
    T, N = vs.shape
    half = alpha / 2
    slope = math.pi / 2 * alpha
    for c in prange(n_blocks):
        lo, hi = c * N // n_blocks, (c + 1) * N // n_blocks
        b, th = beta[lo:hi].copy(), theta[lo:hi].copy()
        g_next = np.zeros(hi - lo, dtype=vs.dtype)
        for t in range(T - 1, -1, -1):
            gz, v, z, out = g_spikes[t, lo:hi], vs[t, lo:hi], zs[t, lo:hi], g_in[t, lo:hi]
            gm = g_mem[t, lo:hi] if has_mem else g_mem[0, :0]
            for k in range(hi - lo):
                u = slope * (v[k] - th[k])
                carry = b[k] * (1 - z[k]) if hard else b[k]
                gv = gz[k] * (half / (1 + u * u)) + g_next[k] * carry
                out[k] = gv + gm[k] if has_mem else gv
            g_next[:] = out


@njit(**_JIT)
def _li_scan(values, beta, n_blocks, reverse, out):  # pragma: no cover - compiled
    T, N = values.shape
    for c in prange(n_blocks):
        lo, hi = c * N // n_blocks, (c + 1) * N // n_blocks
        b = beta[lo:hi].copy()
        v = np.zeros(hi - lo, dtype=values.dtype)
        for s in range(T):
            t = T - 1 - s if reverse else s
            x, o = values[t, lo:hi], out[t, lo:hi]
            for k in range(hi - lo):
                v[k] = b[k] * v[k] + x[k]
                o[k] = v[k]


def applicable(*tensors: torch.Tensor) -> bool:
    """Whether the compiled loops can run: CPU float32/float64 tensors."""
    return all(t.device.type == "cpu" and t.dtype in (torch.float32, torch.float64) for t in tensors)


def _blocks(n: int) -> int:
    return max(1, min(numba.get_num_threads(), torch.get_num_threads(), n // 256 or 1))


def flat(x: torch.Tensor) -> torch.Tensor:
    """(T, B, C) as a contiguous (T, N) tensor, N = B · C, detached (the kernels' layout)."""
    return x.detach().reshape(x.shape[0], -1).contiguous()


def per_neuron(p: torch.Tensor, shape: torch.Size, dtype: torch.dtype) -> torch.Tensor:
    """A parameter broadcastable to (B, C) as one contiguous value per neuron (B · C,)."""
    return p.detach().to(dtype).expand(shape).reshape(-1).contiguous()


def _flat(x: torch.Tensor) -> np.ndarray:
    return flat(x).numpy()


def _per_neuron(p: torch.Tensor, shape: torch.Size, dtype: torch.dtype) -> np.ndarray:
    return per_neuron(p, shape, dtype).numpy()


def lif_forward(current: torch.Tensor, beta: torch.Tensor, theta: torch.Tensor, hard: bool):
    """(spikes, membranes), both shaped like ``current`` (T, B, C)."""
    zs, vs = torch.empty_like(current), torch.empty_like(current)
    shape = current.shape[1:]
    n = shape.numel()
    _lif_forward(
        _flat(current),
        _per_neuron(beta, shape, current.dtype),
        _per_neuron(theta, shape, current.dtype),
        hard,
        _blocks(n),
        zs.view(-1, n).numpy(),
        vs.view(-1, n).numpy(),
    )
    return zs, vs


def lif_backward(g_spikes, g_mem, vs, zs, beta, theta, hard: bool, alpha: float) -> torch.Tensor:
    """∂L/∂I over (T, B, C) (module docstring); ``g_mem`` may be None."""
    shape = vs.shape[1:]
    n = shape.numel()
    g_in = torch.empty_like(vs)
    mem = _flat(g_mem) if g_mem is not None else np.zeros((1, 1), dtype=_flat(vs).dtype)
    _lif_backward(
        _flat(g_spikes),
        mem,
        g_mem is not None,
        _flat(vs),
        _flat(zs),
        _per_neuron(beta, shape, vs.dtype),
        _per_neuron(theta, shape, vs.dtype),
        hard,
        float(alpha),
        _blocks(n),
        g_in.view(-1, n).numpy(),
    )
    return g_in


def li_scan(values: torch.Tensor, beta: torch.Tensor, *, reverse: bool = False) -> torch.Tensor:
    """v[t] = β v[t∓1] + values[t] over (T, B, C), forward in time or (``reverse``) backward."""
    shape = values.shape[1:]
    n = shape.numel()
    out = torch.empty_like(values)
    _li_scan(_flat(values), _per_neuron(beta, shape, values.dtype), _blocks(n), reverse, out.view(-1, n).numpy())
    return out
