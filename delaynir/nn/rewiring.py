"""Dynamic pruning at a fixed connection budget: DEEP R removal with RigL (or random) regrowth.

For every sign-constrained ``SparseDelayLinear`` (w_s = σ_c θ_s, σ_c fixed), around each optimiser step:

    L1:        ∂L/∂θ_s += α for alive slots                      (the term α Σ_s θ_s of the loss)
    step:      the optimiser updates θ (task gradient + L1)
    noise:     θ_s += √(2 η T) · ν_s, ν_s ~ N(0, 1), alive slots  (DEEP R's Langevin term; η = learning rate,
                                                                   T = temperature, 0 = off)
    removal:   alive slots with θ_s ≤ 0 become dormant with θ_s = 0 exactly
    regrowth:  every ``interval`` steps, m = budget − active dormant candidates become active at
               θ = ``magnitude`` with zeroed optimiser moments, chosen by
                 rigl:    the m largest −σ_c · ∂L/∂w_c, the gradient of this step's batch at w_c = 0:
                          where growing c with its fixed sign lowers the loss fastest (Evci et al. 2020),
                          among all dormant candidates, or with ``pool`` = P > 0 among P · m of them
                          drawn uniformly (cost ∝ P · m instead of a dense weight gradient);
                 random:  uniformly among the dormant candidates (Bellec et al. 2018).

After every regrowth step each layer has exactly ``budget`` active connections. With a ``seed``, the
noise and random choices of step s are drawn from a stream seeded by (seed, s), apart from the model's
own randomness (dropout), so data-parallel processes make identical decisions; ``average`` (an in-place
mean over processes) is applied to the candidate gradients before RigL ranks them. With ``taps``
candidates, which (pre, post, delay) triples survive is the learned delay structure.
"""

from __future__ import annotations

import contextlib
import logging
import math
from collections.abc import Callable, Iterable, Iterator

import torch

from delaynir.errors import ConfigError
from delaynir.nn.sparse_delay import SparseDelayLinear

log = logging.getLogger(__name__)

#: ``prune`` setting → regrowth rule.
METHODS = {"deepr-rigl": "rigl", "deepr-random": "random"}


def _lr_of(optimizer: torch.optim.Optimizer, param: torch.Tensor) -> float:
    for group in optimizer.param_groups:
        if any(p is param for p in group["params"]):
            return float(group["lr"])
    raise ConfigError("a pruned layer's magnitudes are not in the optimiser")


def _reset_moments(optimizer: torch.optim.Optimizer, param: torch.Tensor, slots: torch.Tensor) -> None:
    """Zero every per-element optimiser state of ``param`` (Adam: exp_avg, exp_avg_sq) at ``slots``."""
    for value in optimizer.state.get(param, {}).values():
        if torch.is_tensor(value) and value.shape == param.shape:
            value[slots] = 0


def active_connections(layers: Iterable[SparseDelayLinear]) -> dict[str, list[int]]:
    """Per sparse layer: active connections and the budget."""
    layers = list(layers)
    return {
        "active_connections": [layer.active_count() for layer in layers],
        "connection_budget": [layer.budget for layer in layers],
    }


class Rewiring:
    """DEEP R + RigL / random regrowth for ``layers`` (module docstring); call in this order per batch:
    ``prepare(step)`` before the forward pass, ``add_l1_grad()`` after backward, ``after_step(optimizer, step)``
    after the optimiser step. Counts since the last ``epoch_metrics()`` are reported there."""

    def __init__(
        self,
        layers: Iterable[SparseDelayLinear],
        *,
        method: str = "deepr-rigl",
        l1: float = 0.0,
        temperature: float = 0.0,
        magnitude: float = 1e-3,
        interval: int = 1,
        pool: int = 0,
        seed: int | None = None,
        average: Callable[[torch.Tensor], torch.Tensor] | None = None,
    ):
        if method not in METHODS:
            raise ConfigError(f"prune method must be one of {', '.join(METHODS)}, got {method!r}")
        self.layers = list(layers)
        if not all(layer.constrained for layer in self.layers):
            raise ConfigError("pruning needs sign-constrained sparse layers (signs 'random' or 'dale')")
        self.regrowth, self.l1, self.temperature = METHODS[method], l1, temperature
        if pool < 0:
            raise ConfigError(f"regrow_pool must be >= 0 (0: score every dormant candidate), got {pool}")
        self.magnitude, self.interval, self.pool = magnitude, interval, pool
        self.seed, self.average = seed, average
        self.removed = [0] * len(self.layers)
        self.regrown = [0] * len(self.layers)

    def is_rewiring_step(self, step: int) -> bool:
        """Regrowth after global batch ``step`` (0-based): every ``interval``-th batch."""
        return (step + 1) % self.interval == 0

    def prepare(self, step: int) -> None:
        """RigL: let this step's backward pass keep the candidate gradients when it is a rewiring step."""
        capture = self.regrowth == "rigl" and self.is_rewiring_step(step)
        for layer in self.layers:
            layer.capture_grad = capture

    @torch.no_grad()
    def add_l1_grad(self) -> None:
        """∂L/∂θ += α on alive slots."""
        if self.l1:
            for layer in self.layers:
                if layer.theta.grad is not None:
                    layer.theta.grad.add_(layer.alive.to(layer.theta.dtype), alpha=self.l1)

    @torch.no_grad()
    def after_step(self, optimizer: torch.optim.Optimizer, step: int) -> None:
        """Noise and removal after every step; regrowth to the budget on rewiring steps."""
        rewire = self.is_rewiring_step(step)
        with self._step_rng(step, random=self.temperature > 0 or rewire):
            self._after_step(optimizer, rewire)

    @contextlib.contextmanager
    def _step_rng(self, step: int, *, random: bool) -> Iterator[None]:
        """The global RNGs seeded by (seed, step) inside, restored after (a no-op without a seed)."""
        if self.seed is None or not random or not self.layers:
            yield
            return
        device = self.layers[0].theta.device
        with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
            torch.manual_seed((self.seed * 1_000_003 + step) % 2**63)
            yield

    def _after_step(self, optimizer: torch.optim.Optimizer, rewire: bool) -> None:
        for k, layer in enumerate(self.layers):
            if self.temperature > 0:
                layer.perturb_(math.sqrt(2.0 * _lr_of(optimizer, layer.theta) * self.temperature))
            self.removed[k] += layer.remove_()
            if rewire:
                m = layer.budget - layer.active_count()  # the same on every process (θ and noise are)
                if m:
                    slots = layer.regrow_(self._choose(layer, m), self.magnitude)
                    _reset_moments(optimizer, layer.theta, slots)
                    self.regrown[k] += m
                layer.capture_grad, layer._sink = False, None

    def _choose(self, layer: SparseDelayLinear, m: int) -> torch.Tensor:
        if self.regrowth == "rigl":
            dormant = layer.n_candidates - layer.active_count()
            pool = layer.sample_dormant(self.pool * m) if 0 < self.pool * m < dormant else None
            grad = layer.candidate_gradient(pool)
            if grad is not None:
                if self.average is not None:
                    self.average(grad)  # same on every process, so the same RigL choice
                best = layer.regrowth_scores(grad, pool).topk(m).indices
                return best if pool is None else pool[best]
            log.warning("no candidate gradients captured for (%s); regrowing at random this step", layer.extra_repr())
        return layer.sample_dormant(m)

    def epoch_metrics(self) -> dict[str, list[int]]:
        """Active connections and budgets now, removals and regrowths since the last call (then reset)."""
        row = dict(active_connections(self.layers), removed=self.removed, regrown=self.regrown)
        self.removed, self.regrown = [0] * len(self.layers), [0] * len(self.layers)
        return row
