"""GPU kernels of the neuron recurrences in ``delaynir.nn.neurons`` (Triton, one program per block of neurons).

On CUDA the torch loop launches ~10 small kernels per time step, forward and backward, so a
training step is bound by launch latency rather than arithmetic; these kernels run the whole
time loop inside one launch per layer, each program owning ``BLOCK`` neurons and keeping their
state in registers. They compute the recurrences of ``delaynir.nn.neuron_kernels`` (same
equations, same operation order; the GPU may contract a·b + c into one fused multiply-add,
so results agree to float rounding), over (T, N) contiguous arrays with per-neuron
parameters (N,), N = B · C:

    LIF forward:   v = β·v·(1 − z) + I[t]  (hard)   or   v = β·v − θ·z + I[t]  (subtract);  z = v > θ
    LIF backward:  gv = gz[t]·σ'(v[t] − θ) + gv_next·c[t] (+ gm[t]),  c = β(1 − z[t]) (hard) or β
    LI scan:       v = β·v + x[t], forward or backward in time

Triton ships with torch's CUDA wheels; where it is missing, ``applicable`` is False and the
torch loop runs. Tests run these kernels on the CPU in Triton's interpreter
(``TRITON_INTERPRET=1``), against the compiled CPU loops.
"""

from __future__ import annotations

import math

import torch

from delaynir.nn.neuron_kernels import flat, per_neuron

try:
    import triton
    import triton.language as tl
except ImportError:  # pragma: no cover - CPU-only torch builds
    triton = None

BLOCK = 128  #: neurons per program

if triton is not None:

    @triton.jit
    def _lif_forward(cur, beta, theta, zs, vs, T, N, HARD: tl.constexpr, BLOCK: tl.constexpr):
        n = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
        m = n < N
        b = tl.load(beta + n, mask=m, other=0.0)
        th = tl.load(theta + n, mask=m, other=0.0)
        v = tl.zeros([BLOCK], dtype=cur.dtype.element_ty)
        z = tl.zeros([BLOCK], dtype=cur.dtype.element_ty)
        p_cur, p_z, p_v = cur + n, zs + n, vs + n
        for _ in range(T):
            i = tl.load(p_cur, mask=m, other=0.0)
            if HARD:
                v = tl.where(z != 0, i, b * v + i)
            else:
                v = b * v - th * z + i
            z = tl.where(v > th, 1.0, 0.0).to(v.dtype)
            tl.store(p_v, v, mask=m)
            tl.store(p_z, z, mask=m)
            p_cur += N
            p_z += N
            p_v += N

    @triton.jit
    def _lif_backward(
        gz,
        gm,
        vs,
        zs,
        beta,
        theta,
        surrogate,
        g_in,
        T,
        N,
        last,
        HARD: tl.constexpr,
        HAS_MEM: tl.constexpr,
        BLOCK: tl.constexpr,
    ):
        n = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
        m = n < N
        b = tl.load(beta + n, mask=m, other=0.0)
        th = tl.load(theta + n, mask=m, other=0.0)
        half = tl.load(surrogate)  # α / 2
        slope = tl.load(surrogate + 1)  # π α / 2
        g_next = tl.zeros([BLOCK], dtype=vs.dtype.element_ty)
        p_gz, p_gm, p_v, p_z, p_g = gz + last + n, gm + last + n, vs + last + n, zs + last + n, g_in + last + n
        for _ in range(T):
            v = tl.load(p_v, mask=m, other=0.0)
            u = slope * (v - th)
            if HARD:
                carry = b * (1 - tl.load(p_z, mask=m, other=0.0))
            else:
                carry = b
            gv = tl.load(p_gz, mask=m, other=0.0) * (half / (1 + u * u)) + g_next * carry
            if HAS_MEM:
                gv = gv + tl.load(p_gm, mask=m, other=0.0)
            tl.store(p_g, gv, mask=m)
            g_next = gv
            p_gz -= N
            p_gm -= N
            p_v -= N
            p_z -= N
            p_g -= N

    @triton.jit
    def _li_scan(x, beta, out, T, N, start, step, BLOCK: tl.constexpr):
        n = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
        m = n < N
        b = tl.load(beta + n, mask=m, other=0.0)
        v = tl.zeros([BLOCK], dtype=x.dtype.element_ty)
        p_x, p_o = x + start + n, out + start + n
        for _ in range(T):
            v = b * v + tl.load(p_x, mask=m, other=0.0)
            tl.store(p_o, v, mask=m)
            p_x += step
            p_o += step


def applicable(*tensors: torch.Tensor) -> bool:
    """Whether these kernels can run: Triton present, CUDA float32/float64 tensors."""
    return triton is not None and all(t.is_cuda and t.dtype in (torch.float32, torch.float64) for t in tensors)


def _grid(n: int) -> tuple[int]:
    return (triton.cdiv(n, BLOCK),)


def lif_forward(current: torch.Tensor, beta: torch.Tensor, theta: torch.Tensor, hard: bool):
    """(spikes, membranes), both shaped like ``current`` (T, B, C)."""
    T, shape = current.shape[0], current.shape[1:]
    n = shape.numel()
    zs, vs = torch.empty_like(current), torch.empty_like(current)
    if T and n:
        _lif_forward[_grid(n)](
            flat(current),
            per_neuron(beta, shape, current.dtype),
            per_neuron(theta, shape, current.dtype),
            zs,
            vs,
            T,
            n,
            HARD=hard,
            BLOCK=BLOCK,
        )
    return zs, vs


def lif_backward(g_spikes, g_mem, vs, zs, beta, theta, hard: bool, alpha: float) -> torch.Tensor:
    """∂L/∂I over (T, B, C) (module docstring); ``g_mem`` may be None."""
    T, shape = vs.shape[0], vs.shape[1:]
    n = shape.numel()
    g_in = torch.empty_like(vs)
    if T and n:
        surrogate = torch.tensor([alpha / 2, math.pi / 2 * alpha], dtype=vs.dtype, device=vs.device)
        gm = flat(g_mem) if g_mem is not None else vs  # not read without HAS_MEM
        _lif_backward[_grid(n)](
            flat(g_spikes),
            gm,
            flat(vs),
            flat(zs),
            per_neuron(beta, shape, vs.dtype),
            per_neuron(theta, shape, vs.dtype),
            surrogate,
            g_in,
            T,
            n,
            (T - 1) * n,
            HARD=hard,
            HAS_MEM=g_mem is not None,
            BLOCK=BLOCK,
        )
    return g_in


def li_scan(values: torch.Tensor, beta: torch.Tensor, *, reverse: bool = False) -> torch.Tensor:
    """v[t] = β v[t∓1] + values[t] over (T, B, C), forward in time or (``reverse``) backward."""
    T, shape = values.shape[0], values.shape[1:]
    n = shape.numel()
    out = torch.empty_like(values)
    if T and n:
        start, step = ((T - 1) * n, -n) if reverse else (0, n)
        _li_scan[_grid(n)](flat(values), per_neuron(beta, shape, values.dtype), out, T, n, start, step, BLOCK=BLOCK)
    return out
