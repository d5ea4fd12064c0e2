"""Sparse delay layer: a fixed budget of connections chosen from a set of candidates.

Candidates c of a layer C_in → C_out with D delay taps are

    pairs:  (pre i, post j), index c = i · C_out + j; each pair has a delay position p[j, i] in
            steps, as in ``DelayLinear`` (learned with DCLS, fixed-random or none);
    taps:   (tap k, pre i, post j), index c = (k · C_in + i) · C_out + j; the delay is fixed at
            k steps, so choosing which taps exist *is* choosing the delays, and one pair may
            have several taps.

The layer holds n = budget = max(1, round((1 − sparsity) · #candidates)) slots. Slot s holds a
candidate c_s, a magnitude θ_s and an ``alive`` flag, and has the weight

    w_s = σ_{c_s} · θ_s   (signs ``random`` or ``dale``: σ_c ∈ {−1, +1} fixed at construction;
                           ``dale``: one sign per presynaptic neuron)
    w_s = θ_s             (signs ``free``: a fixed random mask with unconstrained weights)

and the layer computes, with the sparse kernel ``sparse_delayed_sum``,

    taps:   y[t, j] = b_j + Σ_{s: j_s = j} w_s · x[t − k_s, i_s]
    pairs:  y[t, j] = b_j + Σ_{s: j_s = j} w_s · Σ_k g_σ(k − p[j, i_s]) · x[t − k, i_s]   (training)
            y[t, j] = b_j + Σ_{s: j_s = j} w_s · x[t − round(p[j, i_s]), i_s]           (eval)

With constrained signs a connection is active while θ_s > 0; ``delaynir.nn.rewiring`` removes
those reaching θ ≤ 0 and regrows dormant candidates. Candidates, signs and flags are buffers,
so they are part of the state_dict.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import nn

from delaynir.errors import ConfigError, ShapeError
from delaynir.nn.delay import DELAY_MODES, KERNELS, _GaussianTable, gaussian_taps
from delaynir.nn.delay_conv import DEFAULT_SPARSE_THRESHOLD
from delaynir.nn.sparse_conv import TapList, sparse_delayed_sum

STRUCTURES = ("pairs", "taps")
SIGNS = ("free", "random", "dale")


def connection_budget(n_candidates: int, sparsity: float) -> int:
    """max(1, round((1 − sparsity) · n_candidates)): the number of connections a layer keeps."""
    return max(1, min(n_candidates, round((1.0 - sparsity) * n_candidates)))


class SparseDelayLinear(nn.Module):
    """Delay layer with ``budget`` connections out of the ``structure`` candidates (module docstring).

    Args:
        in_features, out_features, max_delay: as ``DelayLinear`` (D = max_delay taps).
        structure: ``pairs`` | ``taps``.
        sparsity: fraction of candidates without a connection, in [0, 1).
        signs: ``free`` | ``random`` | ``dale``.
        delays: delay mode of ``pairs`` (``learned`` | ``fixed-random`` | ``none``); ignored by ``taps``.
        bias, sigma, kernel, sparse_threshold, generator: as ``DelayLinear``.
    """

    candidate: torch.Tensor  #: buffer (budget,) int64: the candidate each slot holds
    alive: torch.Tensor  #: buffer (budget,) bool
    candidate_sign: torch.Tensor  #: buffer (#candidates,) int8: σ_c
    positions: torch.Tensor | None  #: pairs: p (out, in), a Parameter when learned, else a buffer; taps: None
    bias: nn.Parameter | None

    def __init__(
        self,
        in_features: int,
        out_features: int,
        max_delay: int,
        *,
        structure: str = "pairs",
        sparsity: float = 0.0,
        signs: str = "free",
        delays: str = "learned",
        bias: bool = True,
        sigma: float | None = None,
        kernel: str = "auto",
        sparse_threshold: float = DEFAULT_SPARSE_THRESHOLD,
        generator: torch.Generator | None = None,
    ):
        super().__init__()
        checks = [
            (structure in STRUCTURES, f"structure must be one of {STRUCTURES}, got {structure!r}"),
            (signs in SIGNS, f"signs must be one of {SIGNS}, got {signs!r}"),
            (delays in DELAY_MODES, f"delays must be one of {DELAY_MODES}, got {delays!r}"),
            (kernel in KERNELS, f"kernel must be one of {KERNELS}, got {kernel!r}"),
            (0.0 <= sparsity < 1.0, f"sparsity must be in [0, 1), got {sparsity}"),
            (max_delay >= 1, f"max_delay must be >= 1 tap, got {max_delay}"),
        ]
        problems = [msg for ok, msg in checks if not ok]
        if problems:
            raise ConfigError("SparseDelayLinear: " + "; ".join(problems))
        self.in_features, self.out_features, self.max_delay = in_features, out_features, max_delay
        self.structure, self.sparsity, self.signs = structure, float(sparsity), signs
        self.mode = "taps" if structure == "taps" else delays
        self.kernel, self.sparse_threshold = kernel, sparse_threshold
        self.sigma = float(sigma if sigma is not None else max(max_delay / 2.0, 0.5))
        n_candidates = in_features * out_features * (max_delay if structure == "taps" else 1)
        self.budget = connection_budget(n_candidates, sparsity)
        chosen = torch.randperm(n_candidates, generator=generator)[: self.budget].sort().values
        self.register_buffer("candidate", chosen)
        self.register_buffer("alive", torch.ones(self.budget, dtype=torch.bool))
        self.register_buffer("candidate_sign", self._draw_signs(n_candidates, generator))
        bound = 1.0 / math.sqrt(max(self.budget / out_features, 1.0))
        theta = torch.empty(self.budget).uniform_(-bound, bound, generator=generator)
        self.theta = nn.Parameter(theta.abs() if self.constrained else theta)
        self.bias = None
        if bias:
            self.bias = nn.Parameter(torch.empty(out_features).uniform_(-bound, bound, generator=generator))
        if structure == "taps":
            self.positions = None
        elif delays == "learned":
            self.positions = nn.Parameter(torch.rand(out_features, in_features, generator=generator) * (max_delay - 1))
        else:
            d = torch.randint(0, max_delay, (out_features, in_features), generator=generator).float()
            self.register_buffer("positions", d if delays == "fixed-random" else torch.zeros_like(d))
        #: optional map applied to the dense (out, M) weight table in every forward pass (fake quantisation)
        self.weight_transform: Callable[[torch.Tensor], torch.Tensor] | None = None
        #: when set (by the rewiring), the next backward pass keeps ∂L/∂table for regrowth scores
        self.capture_grad = False
        self._sink: dict | None = None
        self._taps_cache: tuple | None = None

    def _draw_signs(self, n_candidates: int, generator: torch.Generator | None) -> torch.Tensor:
        if self.signs == "free":
            return torch.ones(n_candidates, dtype=torch.int8)
        if self.signs == "dale":
            per_pre = torch.randint(0, 2, (self.in_features,), generator=generator) * 2 - 1
            return per_pre[self.decode(torch.arange(n_candidates))[1]].to(torch.int8)
        return (torch.randint(0, 2, (n_candidates,), generator=generator) * 2 - 1).to(torch.int8)

    def extra_repr(self) -> str:
        return (
            f"{self.in_features}, {self.out_features}, max_delay={self.max_delay}, structure={self.structure}, "
            f"budget={self.budget} (sparsity {self.sparsity:g}), signs={self.signs}, delays={self.mode}, "
            f"bias={self.bias is not None}"
        )

    # ------------------------------------------------------------------ structure

    @property
    def constrained(self) -> bool:
        """Fixed signs and θ ≥ 0 (DEEP R); False for a fixed mask with free weights."""
        return self.signs != "free"

    @property
    def n_candidates(self) -> int:
        return self.candidate_sign.numel()

    def decode(self, candidate: torch.Tensor) -> tuple[torch.Tensor | None, torch.Tensor, torch.Tensor]:
        """(tap or None for pairs, pre, post) of candidate indices."""
        c_out = self.out_features
        if self.structure == "taps":
            return candidate // (self.in_features * c_out), (candidate // c_out) % self.in_features, candidate % c_out
        return None, candidate // c_out, candidate % c_out

    def active_count(self) -> int:
        return int(self.alive.sum())

    def slot_weight(self) -> torch.Tensor:
        """w_s = σ_c θ_s (constrained) or θ_s, through ``weight_transform`` when one is set; (budget,)."""
        w = self.theta * self.candidate_sign.index_select(0, self.candidate).to(self.theta.dtype)
        if self.weight_transform is None:
            return w
        post, col = self._table_cells()
        table = w.new_zeros(self.out_features, self._table_columns()).index_put((post, col), w)
        return self.weight_transform(table)[post, col]

    def _table_columns(self) -> int:
        return self.in_features * (self.max_delay if self.structure == "taps" else 1)

    def _table_cells(self) -> tuple[torch.Tensor, torch.Tensor]:
        """(post, column) of every slot in the (out, M) table of ``synapse_table``: column k · C_in + i."""
        tap, pre, post = self.decode(self.candidate)
        return post, pre if tap is None else tap * self.in_features + pre

    def _pair_positions(self) -> torch.Tensor:
        """pairs: the positions p (out, in); a taps layer has none."""
        if self.positions is None:
            raise ConfigError("a taps layer has fixed delays per connection; use synapse_table()")
        return self.positions

    def integer_delays(self) -> torch.Tensor:
        """pairs: the deployed delays round(clamp(p, 0, D − 1)) as int64 (out, in)."""
        return torch.round(self._pair_positions().detach().clamp(0, self.max_delay - 1)).long()

    @torch.no_grad()
    def clamp_positions_(self) -> None:
        if isinstance(self.positions, nn.Parameter):
            self.positions.clamp_(0, self.max_delay - 1)

    def uses_gaussian(self) -> bool:
        if self.structure == "taps" or self.mode != "learned" or self.kernel == "rounded":
            return False
        return self.kernel == "gaussian" or self.training

    def synapse_table(self) -> tuple[torch.Tensor, torch.Tensor]:
        """(weight (out, M), integer delays (out, M)) of the deployed layer; column m reads input m mod C_in.

        pairs: M = C_in, the delay of column i is round(p[j, i]); taps: M = D · C_in, column
        k · C_in + i is the tap with delay k. Cells without an active connection have weight 0.
        """
        with torch.no_grad():
            post, col = self._table_cells()
            w = (self.theta * self.candidate_sign.index_select(0, self.candidate)) * self.alive
            weight = w.new_zeros(self.out_features, self._table_columns()).index_put((post, col), w)
        if self.structure == "pairs":
            return weight, self.integer_delays()
        delays = torch.arange(weight.shape[1], device=weight.device) // self.in_features
        return weight, delays.expand_as(weight).clone()

    def _tap_list(self) -> TapList:
        """The kernel's entries: taps (k_s, i_s, j_s); pairs all D taps of every slot (Gaussian) or round(p)."""
        gaussian = self.uses_gaussian()
        key: tuple[int, ...] = (gaussian, self.candidate.data_ptr(), self.candidate._version)
        if self.structure == "pairs" and not gaussian:
            positions = self._pair_positions()
            key += (positions.data_ptr(), positions._version)
        if self._taps_cache is None or self._taps_cache[0] != key:
            self._taps_cache = (key, self._entries(self.candidate, gaussian))
        return self._taps_cache[1]

    def _entries(self, candidates: torch.Tensor, gaussian: bool) -> TapList:
        """Kernel entries of ``candidates``: taps (k, i, j); pairs all D taps of each, ordered (D, n),
        when ``gaussian``, else the one at round(p)."""
        tap, pre, post = self.decode(candidates)
        if gaussian:
            n, D = candidates.numel(), self.max_delay
            tap = torch.arange(D, device=pre.device).repeat_interleave(n)
            pre, post = pre.repeat(D), post.repeat(D)
        elif tap is None:
            tap = self.integer_delays()[post, pre]
        return TapList(tap, pre, post, self.in_features, self.out_features, self.max_delay)

    # ------------------------------------------------------------------ forward

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() != 3 or x.shape[2] != self.in_features:
            raise ShapeError(
                f"SparseDelayLinear({self.in_features} → {self.out_features}) expects time-first "
                f"input (T, B, {self.in_features}); got {tuple(x.shape)}"
            )
        w = self.slot_weight()
        if self.uses_gaussian():
            _, pre, post = self.decode(self.candidate)
            p = self._pair_positions()[post, pre]
            values = _GaussianTable.apply(w, p.contiguous(), self.sigma, self.max_delay).reshape(-1)
        else:
            values = w
        self._sink = {} if self.capture_grad and torch.is_grad_enabled() else None
        y = sparse_delayed_sum(
            x.to(w.dtype), values, self._tap_list(), sparse_threshold=self.sparse_threshold, sink=self._sink
        )
        return y if self.bias is None else y + self.bias

    # ------------------------------------------------------------------ pruning primitives (delaynir.nn.rewiring)

    @torch.no_grad()
    def remove_(self) -> int:
        """DEEP R removal: alive slots with θ ≤ 0 become dormant with θ = 0 exactly; returns how many."""
        dead = self.alive & (self.theta <= 0)
        self.alive &= ~dead
        self.theta.masked_fill_(~self.alive, 0.0)
        return int(dead.sum())

    @torch.no_grad()
    def perturb_(self, std: float) -> None:
        """θ_s += std · ν_s, ν_s ~ N(0, 1), for alive slots (DEEP R's Langevin noise)."""
        self.theta.add_(torch.randn_like(self.theta) * std * self.alive)

    def alive_candidates(self) -> torch.Tensor:
        """Bool (#candidates,): True where an alive slot holds the candidate."""
        mask = torch.zeros(self.n_candidates, dtype=torch.bool, device=self.candidate.device)
        return mask.index_fill_(0, self.candidate[self.alive], True)

    @torch.no_grad()
    def candidate_gradient(self, candidates: torch.Tensor | None = None) -> torch.Tensor | None:
        """∂L/∂w_c at the last backward pass with ``capture_grad`` (None without one).

        For ``candidates`` (indices; all candidates when None). taps: the table gradient G[k, i, j];
        pairs: Σ_k g(k − p[j, i]) · G[k, i, j] with the kernel of that pass (Gaussian of width σ, or
        one-hot at round(p)), i.e. the gradient at the pair's delay. All candidates cost one full table
        gradient (as the dense layer's weight gradient); a list costs ∝ its length on the CPU.
        """
        captured = None if self._sink is None else self._sink.get("grad")
        if captured is None:
            return None
        if candidates is None:
            g = captured.table()
            if self.structure == "taps":
                return g.reshape(-1)
            if self.uses_gaussian():
                return (
                    (gaussian_taps(self._pair_positions().detach().t(), self.sigma, self.max_delay) * g)
                    .sum(0)
                    .reshape(-1)
                )
            return g.gather(0, self.integer_delays().t().unsqueeze(0)).reshape(-1)
        gaussian = self.uses_gaussian()
        g = captured.at(self._entries(candidates, gaussian))
        if not gaussian:
            return g
        _, pre, post = self.decode(candidates)
        p = self._pair_positions().detach()[post, pre]
        return (gaussian_taps(p, self.sigma, self.max_delay) * g.view(self.max_delay, -1)).sum(0)

    @torch.no_grad()
    def regrowth_scores(self, grad: torch.Tensor, candidates: torch.Tensor | None = None) -> torch.Tensor:
        """−σ_c · ∂L/∂w_c: how much growing c with its sign lowers the loss, for ``grad`` from
        ``candidate_gradient(candidates)``; over all candidates (None), −inf where c is alive."""
        sign = self.candidate_sign if candidates is None else self.candidate_sign.index_select(0, candidates)
        score = -sign.to(grad.dtype) * grad
        return score if candidates is not None else score.masked_fill_(self.alive_candidates(), -math.inf)

    @torch.no_grad()
    def sample_dormant(self, m: int) -> torch.Tensor:
        """m distinct candidates without an alive slot, uniformly at random (global torch RNG).

        Mostly-dormant layers draw candidates and reject alive ones and repeats (cost ∝ m);
        otherwise the dormant set is listed and permuted.
        """
        alive = self.alive_candidates()
        n, device = self.n_candidates, alive.device
        if m == 0 or 2 * (n - self.active_count()) < n:
            dormant = (~alive).nonzero().squeeze(1)
            return dormant[torch.randperm(dormant.numel(), device=device)[:m]]
        found = torch.empty(0, dtype=torch.long, device=device)
        while found.numel() < m:
            draw = torch.randint(0, n, (2 * m + 16,), device=device)
            found = torch.cat([found, draw[~alive[draw]]]).unique()
        return found[torch.randperm(found.numel(), device=device)[:m]]

    @torch.no_grad()
    def regrow_(self, candidates: torch.Tensor, magnitude: float) -> torch.Tensor:
        """Put ``candidates`` into dormant slots, alive with θ = magnitude; returns the slots used."""
        slots = (~self.alive).nonzero().squeeze(1)[: candidates.numel()]
        self.candidate[slots] = candidates
        self.theta[slots] = magnitude
        self.alive[slots] = True
        return slots
