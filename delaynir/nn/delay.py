"""Delay layers: every synapse i → j has a weight w[j, i] and a delay.

``DelayLinear`` computes, for time-first input x (T, B, C_in),

    training (DCLS):  y[t, j] = b_j + Σ_i w[j, i] Σ_k g_σ(k − p[j, i]) · x[t − k, i]
    deployed:         y[t, j] = b_j + Σ_i w[j, i] · x[t − d[j, i], i],   d = round(p)

where p[j, i] ∈ [0, D − 1] is a continuous delay position in steps, k = 0 … D − 1
are the delay taps, and g_σ is a Gaussian of width σ (steps) normalised over the
taps: g_σ(u) = exp(−u² / 2σ²) / (Σ_k exp(−(k − p)² / 2σ²) + 1e-7). σ is set from
outside by a schedule (``sigma``), not learned. Delays are causal (d ≥ 0).

Modes: ``learned`` (p trained), ``fixed-random`` (integer delays drawn once,
not trained) and ``none`` (all delays 0: a plain linear layer, the ablation).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import nn

from delaynir.errors import ConfigError, ShapeError
from delaynir.nn.delay_conv import DEFAULT_SPARSE_THRESHOLD, delayed_sum

DELAY_MODES = ("learned", "fixed-random", "none")
KERNELS = ("auto", "gaussian", "rounded")
_NORM_EPS = 1e-7


def _tap_offsets(positions: torch.Tensor, n_taps: int) -> torch.Tensor:
    """(k − p) for k = 0 … n_taps − 1: shape (n_taps, *positions.shape)."""
    taps = torch.arange(n_taps, dtype=positions.dtype, device=positions.device)
    return taps.view(-1, *([1] * positions.dim())) - positions


def gaussian_taps(positions: torch.Tensor, sigma: float, n_taps: int) -> torch.Tensor:
    """Normalised Gaussian tap weights g[k, ...] = exp(−(k − p)²/2σ²) / (Σ_k exp(...) + 1e-7).

    positions: any shape (steps); k = 0 … n_taps − 1. Returns (n_taps, *positions.shape).
    The exponent is floored at −80 (a tap more than 12.6 σ away weighs ~1e-35 instead of
    underflowing), which keeps exp off its slow denormal path.
    """
    g = _tap_offsets(positions, n_taps).square_().mul_(-0.5 / sigma**2).clamp_(min=-80.0).exp_()
    return g.div_(g.sum(0, keepdim=True).add_(_NORM_EPS))


class _GaussianTable(torch.autograd.Function):
    """table[k, i, j] = wT[i, j] · g[k, i, j] with g = gaussian_taps(pT, σ), fused.

    Backward, with A_k = dL/dtable_k · g_k and u_k = (k − p)/σ² (so ∂g_k/∂p = g_k (u_k − Σ_m g_m u_m)):
        dL/dw = Σ_k A_k,    dL/dp = w · (Σ_k A_k u_k − (Σ_m g_m u_m) · Σ_k A_k).
    """

    @staticmethod
    def forward(ctx, wT, pT, sigma, n_taps):
        g = gaussian_taps(pT, sigma, n_taps)
        ctx.save_for_backward(wT, pT, g)
        ctx.sigma = sigma
        return g * wT

    @staticmethod
    def backward(ctx, grad):
        wT, pT, g = ctx.saved_tensors
        a = grad * g
        dw = a.sum(0)
        u = _tap_offsets(pT, g.shape[0]).div_(ctx.sigma**2)
        mean_u = (g * u).sum(0)
        dp = wT * ((a.mul_(u)).sum(0) - mean_u * dw)
        return dw, dp, None, None


class DelayLinear(nn.Module):
    """Fully connected layer with one weight and one delay (in steps) per synapse.

    Args:
        in_features, out_features: channel counts.
        max_delay: number of delay taps D; delays lie in 0 … D − 1 steps.
        delays: ``learned`` | ``fixed-random`` | ``none``.
        bias: learn a bias b_j (added at every step).
        sigma: initial Gaussian width in steps (the trainer's schedule overwrites it).
        kernel: ``auto`` (Gaussian while training, rounded delays in eval mode),
            ``gaussian`` or ``rounded`` to force one.
        sparse_threshold: input density up to which the event strategy is used.
    """

    positions: torch.Tensor  #: p (out, in): a Parameter when learned, else a buffer
    bias: nn.Parameter | None

    def __init__(
        self,
        in_features: int,
        out_features: int,
        max_delay: int,
        *,
        delays: str = "learned",
        bias: bool = True,
        sigma: float | None = None,
        kernel: str = "auto",
        sparse_threshold: float = DEFAULT_SPARSE_THRESHOLD,
        generator: torch.Generator | None = None,
    ):
        super().__init__()
        if delays not in DELAY_MODES:
            raise ConfigError(f"delays must be one of {DELAY_MODES}, got {delays!r}")
        if kernel not in KERNELS:
            raise ConfigError(f"kernel must be one of {KERNELS}, got {kernel!r}")
        if max_delay < 1:
            raise ConfigError(f"max_delay must be >= 1 tap, got {max_delay}")
        self.in_features, self.out_features, self.max_delay = in_features, out_features, max_delay
        self.mode, self.kernel, self.sparse_threshold = delays, kernel, sparse_threshold
        self.sigma = float(sigma if sigma is not None else max(max_delay / 2.0, 0.5))
        bound = 1.0 / math.sqrt(in_features)
        self.weight = nn.Parameter(torch.empty(out_features, in_features).uniform_(-bound, bound, generator=generator))
        self.bias = (
            nn.Parameter(torch.empty(out_features).uniform_(-bound, bound, generator=generator)) if bias else None
        )
        #: optional map applied to the weight in every forward pass (fake quantisation)
        self.weight_transform: Callable[[torch.Tensor], torch.Tensor] | None = None
        if delays == "learned":
            p = torch.rand(out_features, in_features, generator=generator) * (max_delay - 1)
            self.positions = nn.Parameter(p)
        elif delays == "fixed-random":
            d = torch.randint(0, max_delay, (out_features, in_features), generator=generator)
            self.register_buffer("positions", d.float())
        else:
            self.register_buffer("positions", torch.zeros(out_features, in_features))

    def extra_repr(self) -> str:
        return (
            f"{self.in_features}, {self.out_features}, max_delay={self.max_delay}, delays={self.mode}, "
            f"sigma={self.sigma:.3g}, bias={self.bias is not None}"
        )

    @torch.no_grad()
    def clamp_positions_(self) -> None:
        """Keep positions inside [0, D − 1]; the trainer calls this after every optimiser step."""
        self.positions.clamp_(0, self.max_delay - 1)

    def integer_delays(self) -> torch.Tensor:
        """The deployed delays d[j, i] = round(clamp(p, 0, D − 1)) as int64 (out, in)."""
        return torch.round(self.positions.detach().clamp(0, self.max_delay - 1)).long()

    def synapse_table(self) -> tuple[torch.Tensor, torch.Tensor]:
        """(weight (out, M), integer delays (out, M)) of the deployed layer: M = C_in, column m reads input m."""
        return self.weight.detach(), self.integer_delays()

    def uses_gaussian(self) -> bool:
        if self.mode != "learned" or self.kernel == "rounded":
            return False
        return self.kernel == "gaussian" or self.training

    def effective_weight(self) -> torch.Tensor:
        """The weight the forward pass uses: ``weight_transform(weight)`` when a transform is set."""
        return self.weight if self.weight_transform is None else self.weight_transform(self.weight)

    def tap_table(self) -> torch.Tensor:
        """The (D, C_in, C_out) table T[k, i, j] = w[j, i] · g[k, j, i] used by ``delayed_sum``."""
        wT = self.effective_weight().t()
        if self.uses_gaussian():
            return _GaussianTable.apply(wT.contiguous(), self.positions.t().contiguous(), self.sigma, self.max_delay)
        table = wT.new_zeros(self.max_delay, self.in_features, self.out_features)
        return table.scatter(0, self.integer_delays().t().unsqueeze(0), wT.unsqueeze(0))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() != 3 or x.shape[2] != self.in_features:
            raise ShapeError(
                f"DelayLinear({self.in_features} → {self.out_features}) expects time-first input "
                f"(T, B, {self.in_features}); got {tuple(x.shape)}"
            )
        if self.mode == "none":
            y = x @ self.effective_weight().t()
        else:
            y = delayed_sum(x.to(self.weight.dtype), self.tap_table(), sparse_threshold=self.sparse_threshold)
        return y if self.bias is None else y + self.bias
