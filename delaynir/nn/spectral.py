"""The causal delayed sum of ``delay_conv`` computed in the frequency domain (training).

    y[t] = Σ_{k=0}^{D−1} x[t − k] @ K[k],    t = 0 … T − 1,  x: (T, B, C_in),  K: (D, C_in, C_out)

is a linear convolution over time. With a real DFT of length N = T + D − 1 (the shortest for
which the circular convolution equals the linear one on t < T), X_f = Σ_t x[t] e^{−2πi f t/N}
for f = 0 … F − 1, F = ⌊N/2⌋ + 1, the convolution becomes one complex matrix product per
frequency, Y_f = X_f @ K_f, and y[t] = (1/N) Σ_f w_f Re(Y_f e^{2πi f t/N}) with w_f = 2 except
w_0 = 1 (and w_{N/2} = 1 for even N). The backward pass uses the adjoints of the same maps:

    input gradient:  gX_f = gY_f @ K_fᴴ        table gradient:  gK_f = X_fᴴ @ gY_f

with gY the adjoint inverse transform of gy. Real and imaginary parts are kept interleaved,
[Re X_f; Im X_f] as one (2B, C_in) matrix per frequency, so that each complex product is two
real batched products with twice the rows (Re Y = Re X Re K − Im X Im K from the halves of
[Re X; Im X] @ Re K and [Re X; Im X] @ Im K) and no kernel-sized temporaries. A pass costs about
4 F B C_in C_out multiply-adds instead of the direct T D B C_in C_out, whatever the kernel's width
σ, and runs as dense BLAS. The DFTs are matrix products with cached cosine/sine bases (T and D
are at most a few hundred steps, where this beats strided FFTs).
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class _Bases:
    """Real DFT bases of length N with cosine and sine rows interleaved (row 2f: cos, row 2f + 1: sin)."""

    x: torch.Tensor  # (2F, T): rows 2f, 2f + 1 give Re X_f = Σ_t cos(2π f t/N) x[t], Im X_f = −Σ_t sin(…) x[t]
    k: torch.Tensor  # (2F, D): the same for the table's D taps
    inv: torch.Tensor  # (T, 2F): y[t] = inv @ [Re Y_0; Im Y_0; Re Y_1; …]


@functools.lru_cache(maxsize=16)
def _bases(T: int, D: int, dtype: torch.dtype, device: torch.device) -> _Bases:
    n = T + D - 1
    freqs = torch.arange(n // 2 + 1, dtype=torch.float64)

    def forward_basis(length: int) -> torch.Tensor:
        angles = 2 * math.pi * freqs[:, None] * torch.arange(length, dtype=torch.float64)[None, :] / n
        return torch.stack((torch.cos(angles), -torch.sin(angles)), 1).reshape(-1, length)

    weight = torch.full_like(freqs, 2.0)
    weight[0] = 1.0
    if n % 2 == 0:
        weight[-1] = 1.0
    x_basis = forward_basis(T)
    inv = (x_basis * weight.repeat_interleave(2)[:, None] / n).t()  # Re(Y e^{iθ}) = Re Y cos θ − Im Y sin θ
    as_ = dict(dtype=dtype, device=device)
    return _Bases(x=x_basis.to(**as_), k=forward_basis(D).to(**as_), inv=inv.contiguous().to(**as_))


def n_frequencies(T: int, D: int) -> int:
    """F = ⌊(T + D − 1)/2⌋ + 1: complex matrix products per pass."""
    return (T + D - 1) // 2 + 1


def _interleaved_product(a: torch.Tensor, br: torch.Tensor, bi: torch.Tensor, out: torch.Tensor) -> torch.Tensor:
    """out[:, 0], out[:, 1] = Re, Im of (ar + i ai)(br + i bi), a = [ar; ai] stacked as (F, 2M, K)."""
    m = a.shape[1] // 2
    p, q = torch.bmm(a, br), torch.bmm(a, bi)  # [ar br; ai br], [ar bi; ai bi]
    torch.sub(p[:, :m], q[:, m:], out=out[:, 0])
    torch.add(q[:, :m], p[:, m:], out=out[:, 1])
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
        xs = (bases.x @ x.reshape(T, B * C_in)).view(-1, 2 * B, C_in)  # (F, 2B, C_in): [Re X_f; Im X_f]
        ks = (bases.k @ table[:D].reshape(D, C_in * C_out)).view(-1, 2, C_in, C_out)
        ys = _interleaved_product(xs, ks[:, 0], ks[:, 1], x.new_empty(xs.shape[0], 2, B, C_out))
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
        gys = (bases.inv.t() @ gy.reshape(T, B * C_out)).view(-1, 2 * B, C_out)  # [Re gY_f; Im gY_f]
        n_freq = gys.shape[0]
        g_x = g_table = None
        if ctx.needs_input_grad[0]:
            # gX = gY Kᴴ: Re = gYr Krᵀ + gYi Kiᵀ, Im = gYi Krᵀ − gYr Kiᵀ
            p, q = torch.bmm(gys, ks[:, 0].transpose(1, 2)), torch.bmm(gys, ks[:, 1].transpose(1, 2))
            gxs = gy.new_empty(n_freq, 2, B, C_in)
            torch.add(p[:, :B], q[:, B:], out=gxs[:, 0])
            torch.sub(p[:, B:], q[:, :B], out=gxs[:, 1])
            g_x = (bases.x.t() @ gxs.view(-1, B * C_in)).view(T, B, C_in)
        if ctx.needs_input_grad[1]:
            # gK = Xᴴ gY: Re = Xrᵀ gYr + Xiᵀ gYi = [Xr; Xi]ᵀ [gYr; gYi], Im = Xrᵀ gYi − Xiᵀ gYr = [Xr; Xi]ᵀ [gYi; −gYr]
            swapped = torch.cat((gys[:, B:], gys[:, :B].neg()), 1)
            gks = torch.stack((torch.bmm(xs.transpose(1, 2), gys), torch.bmm(xs.transpose(1, 2), swapped)), 1)
            g_table = gy.new_zeros(D_full, C_in, C_out)
            g_table[:D] = (bases.k.t() @ gks.view(-1, C_in * C_out)).view(D, C_in, C_out)
        return g_x, g_table


def spectral_delayed_sum(x: torch.Tensor, table: torch.Tensor) -> torch.Tensor:
    """y[t, b, :] = Σ_{k, i} x[t − k, b, i] · table[k, i, :] through the frequency domain (module docstring)."""
    return _SpectralDelayedSum.apply(x, table)
