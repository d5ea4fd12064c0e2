"""The delay SNN of the anchor (Hammouamri et al. 2024; Mészáros et al. 2024).

    x (T, B, C_in) → [DelayLinear → BatchNorm? → LIF → Dropout] × n_hidden → DelayLinear → leaky readout v (T, B, K)

Prediction and loss use the summed softmax of the readout (anchor):
logits = Σ_t softmax(v[t]),  loss = cross_entropy(logits, label),  prediction = argmax logits.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
from torch import nn

from delaynir.errors import ConfigError
from delaynir.ir.graph import quantize_input
from delaynir.ir.neuron_kinds import RESETS, summed_softmax
from delaynir.nn.delay import DELAY_MODES, DelayLinear
from delaynir.nn.neurons import LIF, LeakyReadout
from delaynir.nn.sparse_delay import SIGNS, STRUCTURES, SparseDelayLinear
from delaynir.numerics.quantize import WeightGrid, fake_quantize, weight_scale

if TYPE_CHECKING:
    from delaynir.numerics.number_formats import NumberFormat


@dataclass
class ModelConfig:
    """Architecture. Times are in steps (multiply by dt for seconds)."""

    n_inputs: int
    n_outputs: int
    hidden: list[int] = field(default_factory=lambda: [256, 256])
    max_delay: int = 25  #: number of delay taps D (delays 0 … D − 1 steps)
    delays: str = "learned"  #: learned | fixed-random | none
    tau_steps: float = 10.05  #: membrane time constant, β = 1 − 1/τ
    threshold: float = 1.0
    reset: str = "hard"  #: hard | subtract
    surrogate_alpha: float = 5.0
    batchnorm: bool = True
    dropout: float = 0.4
    bias: bool = False
    sparsity: float = 0.0  #: fraction of candidate connections without one (sparse layers: nn.sparse_delay)
    structure: str = "pairs"  #: pairs (one delay per synapse) | taps (candidates are (pre, post, delay))
    signs: str = "free"  #: free | random | dale: fixed connection signs (needed by pruning)
    sparse_readout: bool = False  #: make the readout layer sparse too

    def sparse(self) -> bool:
        """Whether the delay layers are ``SparseDelayLinear`` (otherwise dense ``DelayLinear``)."""
        return self.sparsity > 0 or self.structure == "taps" or self.signs != "free"

    def validate(self) -> None:
        problems = self.problems()
        if problems:
            raise ConfigError("invalid model configuration:\n  " + "\n  ".join(problems))

    def problems(self) -> list[str]:
        """Every invalid setting, one line each (empty: valid)."""
        problems = []
        if self.n_inputs < 1 or self.n_outputs < 1:
            problems.append(f"n_inputs and n_outputs must be >= 1 (got {self.n_inputs}, {self.n_outputs})")
        if not self.hidden or any(int(h) < 1 for h in self.hidden):
            problems.append(f"hidden must list at least one positive layer size (got {self.hidden})")
        if self.max_delay < 1:
            problems.append(f"max_delay must be >= 1 (got {self.max_delay})")
        if self.delays not in DELAY_MODES:
            problems.append(f"delays must be one of {DELAY_MODES} (got {self.delays!r})")
        if self.reset not in RESETS:
            problems.append(f"reset must be one of {RESETS} (got {self.reset!r})")
        if self.tau_steps <= 1:
            problems.append(f"tau_steps must exceed 1 (got {self.tau_steps})")
        if not 0 <= self.dropout < 1:
            problems.append(f"dropout must be in [0, 1) (got {self.dropout})")
        if not 0 <= self.sparsity < 1:
            problems.append(f"sparsity must be in [0, 1) (got {self.sparsity})")
        if self.structure not in STRUCTURES:
            problems.append(f"structure must be one of {STRUCTURES} (got {self.structure!r})")
        if self.signs not in SIGNS:
            problems.append(f"signs must be one of {SIGNS} (got {self.signs!r})")
        return problems


class TimeDropout(nn.Module):
    """Dropout with one mask per (sample, channel), shared over all time steps."""

    def __init__(self, p: float):
        super().__init__()
        self.p = p

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p == 0:
            return x
        mask = torch.empty_like(x[:1]).bernoulli_(1 - self.p) / (1 - self.p)
        return x * mask


class DelaySNN(nn.Module):
    """Feed-forward delay SNN; forward(x (T, B, C_in)) returns readout membranes (T, B, n_outputs)."""

    def __init__(self, config: ModelConfig):
        super().__init__()
        config.validate()
        self.config = config
        sizes = [config.n_inputs, *map(int, config.hidden), config.n_outputs]
        self.delays = nn.ModuleList(
            self._delay_layer(a, b, readout=k == len(sizes) - 2) for k, (a, b) in enumerate(zip(sizes, sizes[1:]))
        )
        self.norms = nn.ModuleList(nn.BatchNorm1d(h) if config.batchnorm else nn.Identity() for h in sizes[1:-1])
        self.neurons = nn.ModuleList(
            LIF(
                h,
                tau_steps=config.tau_steps,
                threshold=config.threshold,
                reset=config.reset,
                alpha=config.surrogate_alpha,
            )
            for h in sizes[1:-1]
        )
        self.dropouts = nn.ModuleList(TimeDropout(config.dropout) for _ in sizes[1:-1])
        self.readout = LeakyReadout(config.n_outputs, tau_steps=config.tau_steps)
        self.spike_rates: list[float] = []
        self.frozen_batchnorm = False
        #: thresholds and biases rounded as compile rounds them (quantize_as)
        self.number_format: NumberFormat | None = None
        self.register_load_state_dict_post_hook(self._round_decays)
        self.record = False  #: keep each hidden layer's spikes of the last forward in ``recorded``
        self.recorded: list[torch.Tensor] = []

    def _delay_layer(self, n_in: int, n_out: int, readout: bool) -> nn.Module:
        c = self.config
        if c.sparse() and (c.sparse_readout or not readout):
            return SparseDelayLinear(
                n_in,
                n_out,
                c.max_delay,
                structure=c.structure,
                sparsity=c.sparsity,
                signs=c.signs,
                delays=c.delays,
                bias=c.bias,
            )
        return DelayLinear(n_in, n_out, c.max_delay, delays=c.delays, bias=c.bias)

    def sparse_layers(self) -> list[SparseDelayLinear]:
        return [layer for layer in self.delays if isinstance(layer, SparseDelayLinear)]

    def delay_layer(self, k: int) -> DelayLinear | SparseDelayLinear:
        """Delay layer k, typed (an nn.ModuleList gives nn.Module; ``_delay_layer`` built them all)."""
        layer = self.delays[k]
        assert isinstance(layer, (DelayLinear, SparseDelayLinear))
        return layer

    def delay_layers(self) -> list[DelayLinear | SparseDelayLinear]:
        """The delay layers in order, typed (``delay_layer``)."""
        return [self.delay_layer(k) for k in range(len(self.delays))]

    def lif_layer(self, k: int) -> LIF:
        """Hidden layer k's neurons, typed."""
        lif = self.neurons[k]
        assert isinstance(lif, LIF)
        return lif

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = x
        if self.number_format is not None and self.number_format.input is not None:
            scale, q_min, q_max = self.number_format.input  # graded input as the deployed graph receives it
            h = (quantize_input(x, scale, q_min, q_max) * scale).to(x.dtype)
        rates, recorded = [], []
        for k, (delay, norm, lif, drop) in enumerate(zip(self.delays, self.norms, self.neurons, self.dropouts)):
            current = delay(h)
            T, B, C = current.shape
            current = norm(current.reshape(T * B, C)).view(T, B, C)
            threshold = None
            if self.number_format is not None:
                current, threshold = self._as_deployed(k, current, self.lif_layer(k).threshold)
            spikes = lif(current, threshold)
            rates.append(float(spikes.detach().mean()))
            if self.record:
                recorded.append(spikes.detach())
            h = drop(spikes)
        self.spike_rates, self.recorded = rates, recorded
        current = self.delays[-1](h)
        if self.number_format is not None:
            current, _ = self._as_deployed(len(self.delays) - 1, current, None)
        return self.readout(current)

    def folding(self, k: int) -> tuple[torch.Tensor | None, torch.Tensor]:
        """(a, b') of layer k, float64 (out,): its BatchNorm (eval statistics) folded into weights a ⊙ W and
        bias b' = a · b + c, a = γ / √(var + ε), c = β_bn − a · μ; a is None without BatchNorm (b' = b,
        and b = 0 without a bias)."""
        delay = self.delay_layer(k)
        b = (
            delay.bias.detach().double()
            if delay.bias is not None
            else torch.zeros(delay.out_features, dtype=torch.float64)
        )
        bn = self.norms[k] if k < len(self.norms) else None
        if not isinstance(bn, nn.BatchNorm1d):
            return None, b
        a = batchnorm_gain(bn, torch.float64)
        beta_bn, mean = _batchnorm_parameters(bn)[1:3]
        return a, a * b + (beta_bn.detach().double() - a * mean.double())

    def _as_deployed(self, k: int, current: torch.Tensor, threshold: torch.Tensor | None):
        """Layer k's current and threshold with the bias and θ rounded as compile rounds them (number_format)
        on the scale of its fake-quantised weights: I + (q(b') − b') with b' the folded bias, and q(θ)."""
        transform, number_format = self.delay_layer(k).weight_transform, self.number_format
        if not isinstance(transform, _FoldedFakeQuantize) or number_format is None:
            raise ConfigError("a deployed number format needs fake-quantised weights; set both with quantize_as")
        assert transform.scale is not None, "the layer's forward pass (weight_transform) sets the scale"
        scale = transform.scale.double()
        bias = self.folding(k)[1].to(scale.device)
        shift = (number_format.bias.quantize(bias, scale) - bias).to(current.dtype)
        if threshold is not None:
            threshold = number_format.threshold.quantize(threshold.double(), scale).to(threshold.dtype)
        return current + shift, threshold

    def set_sigma(self, sigma: float) -> None:
        """Set the Gaussian kernel width (steps) of every learned delay layer."""
        for layer in self.delay_layers():
            layer.sigma = float(sigma)

    def clamp_positions_(self) -> None:
        for layer in self.delay_layers():
            if layer.mode == "learned":
                layer.clamp_positions_()

    def set_kernel(self, kernel: str) -> None:
        """Force ``gaussian`` or ``rounded`` kernels in every delay layer (``auto``: by train/eval mode)."""
        for layer in self.delay_layers():
            layer.kernel = kernel

    def train(self, mode: bool = True) -> DelaySNN:
        super().train(mode)
        if self.frozen_batchnorm:
            self.norms.eval()  # running statistics stay as they are (quantisation-aware fine-tuning)
        return self

    def quantize_as(self, grid: WeightGrid | None, number_format=None) -> None:
        """Compute as compile will for a target (``grid`` and its ``NumberFormat``), or stop (None).

        Weights: layer k uses W ↦ fake_quantize(a ⊙ W) / a with a = γ / √(var + ε) of its BatchNorm
        (a = 1 without). Thresholds and biases are rounded on that weight scale, decays to the
        format's representation and graded input to the codes the graph receives (delaynir.numerics.number_formats),
        so the forward pass computes what the compiled graph computes. Also freezes BatchNorm statistics and
        switches to rounded delays while set.
        """
        self.frozen_batchnorm = grid is not None
        self.set_kernel("rounded" if grid is not None else "auto")
        for k, layer in enumerate(self.delay_layers()):
            norm = self.norms[k] if k < len(self.norms) else None
            layer.weight_transform = None if grid is None else _FoldedFakeQuantize(grid, norm)
        self.number_format = number_format if grid is not None else None
        self._round_decays()
        self.train(self.training)

    def _round_decays(self, *_) -> None:
        """Every β in the number format's representation (also after loading a state: a load_state_dict hook)."""
        if self.number_format is None:
            return
        with torch.no_grad():
            for cell in [*self.neurons, self.readout]:
                beta = self.number_format.decay.quantize(cell.beta.double().cpu().numpy())
                cell.beta.copy_(torch.as_tensor(beta, dtype=cell.beta.dtype))

    def parameter_groups(self) -> tuple[list[nn.Parameter], list[nn.Parameter]]:
        """(weights and everything else, delay positions): positions get their own learning rate."""
        positions = [layer.positions for layer in self.delays if isinstance(layer.positions, nn.Parameter)]
        ids = {id(p) for p in positions}
        return [p for p in self.parameters() if id(p) not in ids], positions


def batchnorm_gain(norm: nn.BatchNorm1d, dtype: torch.dtype | None = None) -> torch.Tensor:
    """a = γ / √(var + ε) of a BatchNorm's eval statistics, detached (out,), in ``dtype`` (default: its own)."""
    gamma, _, _, var = _batchnorm_parameters(norm)
    return gamma.detach().to(dtype) / torch.sqrt(var.to(dtype) + norm.eps)


def _batchnorm_parameters(norm: nn.BatchNorm1d) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """(γ, β, running mean, running var) of an affine BatchNorm with running statistics (the model's)."""
    gamma, beta, mean, var = norm.weight, norm.bias, norm.running_mean, norm.running_var
    if gamma is None or beta is None or mean is None or var is None:
        raise ConfigError("BatchNorm folding needs affine=True and track_running_stats=True")
    return gamma, beta, mean, var


class _FoldedFakeQuantize:
    """W ↦ fake_quantize(a ⊙ W) / a, a the per-neuron BatchNorm gain (1 without BatchNorm)."""

    def __init__(self, grid: WeightGrid, norm: nn.Module | None):
        self.grid = grid
        self.norm = norm if isinstance(norm, nn.BatchNorm1d) else None
        self.scale: torch.Tensor | None = None  #: the per-neuron weight scale of the last call (out,)

    def __call__(self, weight: torch.Tensor) -> torch.Tensor:
        if self.norm is None:
            self.scale = weight_scale(weight, self.grid)
            return fake_quantize(weight, self.grid)
        gain = batchnorm_gain(self.norm)
        safe = torch.where(gain.abs() > 1e-12, gain, torch.ones_like(gain))[:, None]
        self.scale = weight_scale(weight * safe, self.grid)
        return fake_quantize(weight * safe, self.grid) / safe


def readout_loss(readout: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Cross-entropy with the summed softmax as logits: −log softmax(Σ_t softmax(v[t]))_y (the anchor's loss)."""
    return F.cross_entropy(summed_softmax(readout), labels)
