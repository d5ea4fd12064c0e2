"""The causal delayed sum of ``delay_conv`` computed in the frequency domain (training).

    y[t] = Σ_{k=0}^{D−1} x[t − k] @ K[k],    t = 0 … T − 1,  x: (T, B, C_in),  K: (D, C_in, C_out)

is a linear convolution over time. With a real DFT of length N = T + D − 1 (the shortest for
which the circular convolution equals the linear one on t < T), X_f = Σ_t x[t] e^{−2πi f t/N}
for f = 0 … F − 1, F = ⌊N/2⌋ + 1, the convolution becomes one complex matrix product per
frequency, Y_f = X_f @ K_f, and y[t] = (1/N) Σ_f w_f Re(Y_f e^{2πi f t/N}) with w_f = 2 except
w_0 = 1 (and w_{N/2} = 1 for even N). The backward pass uses the adjoints of the same maps:

    input gradient:  gX_f = gY_f @ K_fᴴ        table gradient:  gK_f = X_fᴴ @ gY_f

with gY the adjoint inverse transform of gy. Spectra are stored as [Re; Im] blocks, (2, F, rows,
columns), and each complex product is four real batched products written in place (Re Y = Re X Re K
− Im X Im K as one product and one accumulating product, likewise Im Y), so no pass makes a
temporary of the kernel's size: on CPU these passes are bound by memory traffic as much as by
arithmetic. (Karatsuba's three-product form was measured and is slower here: the sums Re K + Im K
and their gradients are kernel-sized passes over memory that cost more than the product they save.)
A pass costs about 4 F B C_in C_out multiply-adds instead of the direct T D B C_in C_out, whatever
the kernel's width σ, and runs as dense BLAS. The DFTs are matrix products with cached cosine/sine
bases (T and D are at most a few hundred steps, where this beats strided FFTs).
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class _Bases:
    """Real DFT bases of length N: the F cosine rows, then the F sine rows."""

    x: torch.Tensor  # (2F, T): row f gives Re X_f = Σ_t cos(2π f t/N) x[t], row F + f Im X_f = −Σ_t sin(…) x[t]
    k: torch.Tensor  # (2F, D): the same for the table's D taps
    inv: torch.Tensor  # (T, 2F): y[t] = inv @ [Re Y_0 … Re Y_{F−1}; Im Y_0 … Im Y_{F−1}]


@functools.lru_cache(maxsize=16)
def _bases(T: int, D: int, dtype: torch.dtype, device: torch.device) -> _Bases:
    n = T + D - 1
    freqs = torch.arange(n // 2 + 1, dtype=torch.float64)

    def forward_basis(length: int) -> torch.Tensor:
        angles = 2 * math.pi * freqs[:, None] * torch.arange(length, dtype=torch.float64)[None, :] / n
        return torch.cat((torch.cos(angles), -torch.sin(angles)))

    weight = torch.full_like(freqs, 2.0)
    weight[0] = 1.0
    if n % 2 == 0:
        weight[-1] = 1.0
    x_basis = forward_basis(T)
    inv = (x_basis * weight.repeat(2)[:, None] / n).t()  # Re(Y e^{iθ}) = Re Y cos θ − Im Y sin θ
    return _Bases(
        x=x_basis.to(dtype=dtype, device=device),
        k=forward_basis(D).to(dtype=dtype, device=device),
        inv=inv.contiguous().to(dtype=dtype, device=device),
    )


def n_frequencies(T: int, D: int) -> int:
    """F = ⌊(T + D − 1)/2⌋ + 1: complex matrix products per pass."""
    return (T + D - 1) // 2 + 1


def _complex_bmm(
    a: torch.Tensor, b: torch.Tensor, out: torch.Tensor, *, conj_a: bool = False, conj_b: bool = False
) -> torch.Tensor:
    """out = A B per frequency, A = a[0] + i a[1] (its conjugate if ``conj_a``), B likewise; all (2, F, ·, ·).

    Re = a0 b0 − s_a s_b a1 b1 and Im = s_a a1 b0 + s_b a0 b1 (s = −1 for a conjugate), each one
    product and one accumulating product into ``out``.
    """
    sa, sb = (-1 if conj_a else 1), (-1 if conj_b else 1)
    torch.bmm(a[0], b[0], out=out[0]).baddbmm_(a[1], b[1], alpha=-sa * sb)
    torch.bmm(a[1], b[0], out=out[1]).baddbmm_(a[0], b[1], beta=sa, alpha=sb)
    return out


class _SpectralDelayedSum(torch.autograd.Function):
    """Runs in float32 or float64 even under CUDA autocast: a DFT summed in bfloat16 loses ~1 % of the signal."""

    @staticmethod
    @torch.amp.custom_fwd(device_type="cuda", cast_inputs=torch.float32)
    def forward(ctx, x, table):
        T, B, C_in = x.shape
        D = min(table.shape[0], T)  # taps ≥ T never reach an output
        C_out = table.shape[2]
        bases = _bases(T, D, x.dtype, x.device)
        xs = (bases.x @ x.reshape(T, B * C_in)).view(2, -1, B, C_in)  # [Re X; Im X]
        ks = (bases.k @ table[:D].reshape(D, C_in * C_out)).view(2, -1, C_in, C_out)  # [Re K; Im K]
        ys = _complex_bmm(xs, ks, x.new_empty(2, xs.shape[1], B, C_out))
        y = bases.inv @ ys.view(-1, B * C_out)
        need_x, need_table = ctx.needs_input_grad[:2]
        ctx.save_for_backward(xs if need_table else None, ks if need_x else None)
        ctx.dims = (T, B, C_in, C_out, table.shape[0])
        return y.view(T, B, C_out)

    @staticmethod
    @torch.amp.custom_bwd(device_type="cuda")
    def backward(ctx, gy):
        xs, ks = ctx.saved_tensors
        T, B, C_in, C_out, D_full = ctx.dims
        D = min(D_full, T)
        bases = _bases(T, D, gy.dtype, gy.device)
        gys = (bases.inv.t() @ gy.reshape(T, B * C_out)).view(2, -1, B, C_out)  # [Re gY; Im gY]
        n_freq = gys.shape[1]
        g_x = g_table = None
        if ctx.needs_input_grad[0]:  # gX = gY Kᴴ
            gxs = _complex_bmm(gys, ks.mT, gy.new_empty(2, n_freq, B, C_in), conj_b=True)
            g_x = (bases.x.t() @ gxs.view(-1, B * C_in)).view(T, B, C_in)
        if ctx.needs_input_grad[1]:  # gK = Xᴴ gY
            gks = _complex_bmm(xs.mT, gys, gy.new_empty(2, n_freq, C_in, C_out), conj_a=True)
            g_table = (bases.k.t() @ gks.view(-1, C_in * C_out)).view(D, C_in, C_out)
            if D_full > D:
                g_table = torch.cat((g_table, g_table.new_zeros(D_full - D, C_in, C_out)))
        return g_x, g_table


def spectral_delayed_sum(x: torch.Tensor, table: torch.Tensor) -> torch.Tensor:
    """y[t, b, :] = Σ_{k, i} x[t − k, b, i] · table[k, i, :] through the frequency domain (module docstring)."""
    return _SpectralDelayedSum.apply(x, table)
