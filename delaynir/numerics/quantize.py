"""Weight and input quantisation: the one definition shared by compile and fine-tuning.

Weights, symmetric with one float scale per output neuron (or per layer):

    scale_j = max_i |W_ji| / q_max,    W_int = clip(step · round(W / (scale_j · step)), q_min, q_max)

with the target's integer grid q_min … q_max in multiples of ``step`` (q_max the largest
representable positive multiple). Deployed weight = W_int · scale_j. Thresholds, biases and
decays are rounded by the target's number format (delaynir.numerics.number_formats).

Graded input (``input_grid``; the codes: ``delaynir.ir.graph.quantize_input``): a real value v is sent as the
integer code q = clip(round(v / s_in), q_min, q_max) of the target's input bits, and compile multiplies
the first layer's weights by s_in before quantising them, so that the graph computes on codes what the
model computes on q · s_in.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch

if TYPE_CHECKING:
    from delaynir.ir.graph import InputSpec


@dataclass(frozen=True)
class WeightGrid:
    """Representable integer weights: multiples of ``step`` in [q_min, q_max] (a target's weight_range())."""

    q_min: int
    q_max: int
    step: int = 1
    per_output_channel: bool = True


def grid_for(profile) -> WeightGrid | None:
    """The weight grid of a target profile (delaynir.hardware.profile.TargetProfile); None for float weights."""
    if not profile.quantises_weights:
        return None
    q_min, q_max = profile.weight_range()
    return WeightGrid(int(q_min), int(q_max), profile.weight_step, profile.weight_scale == "per-output-channel")


def weight_scale(weight: torch.Tensor, grid: WeightGrid) -> torch.Tensor:
    """Per-output-neuron scale (out,) for a (out, in) weight; all-zero rows get scale 1."""
    if grid.per_output_channel:
        peak = weight.detach().abs().amax(dim=1)
    else:
        peak = weight.detach().abs().max().expand(weight.shape[0])
    scale = peak / grid.q_max
    return torch.where(scale > 0, scale, torch.ones_like(scale))


def quantize_weight(weight: torch.Tensor, grid: WeightGrid) -> tuple[torch.Tensor, torch.Tensor, int]:
    """(W_int as float tensor (out, in), scale (out,), number of clipped weights)."""
    scale = weight_scale(weight, grid)
    q = torch.round(weight / (scale[:, None] * grid.step)) * grid.step
    clipped = int(((q < grid.q_min) | (q > grid.q_max)).sum())
    return q.clamp(grid.q_min, grid.q_max), scale, clipped


class _FakeQuantize(torch.autograd.Function):
    @staticmethod
    def forward(ctx, weight, grid):
        q, scale, _ = quantize_weight(weight, grid)
        return q * scale[:, None]

    @staticmethod
    def backward(ctx, grad):
        return grad, None  # straight-through estimator


def fake_quantize(weight: torch.Tensor, grid: WeightGrid) -> torch.Tensor:
    """W_int · scale in the forward pass, identity gradient (for quantisation-aware training)."""
    return _FakeQuantize.apply(weight, grid)


def input_grid(value_range: tuple[float, float], bits: int) -> tuple[float, int, int]:
    """(scale s, q_min, q_max) of ``bits``-bit graded input codes covering ``value_range`` = (lo, hi).

    Non-negative values (lo >= 0) use unsigned codes 0 … 2^bits − 1 with s = hi / (2^bits − 1);
    otherwise signed codes ±(2^(bits−1) − 1) with s = max(|lo|, |hi|) / (2^(bits−1) − 1).
    A value v is sent as the code q = clip(round(v / s), q_min, q_max) and stands for q · s.
    """
    lo, hi = float(value_range[0]), float(value_range[1])
    q_max = 2**bits - 1 if lo >= 0 else 2 ** (bits - 1) - 1
    q_min = 0 if lo >= 0 else -q_max
    peak = max(abs(lo), abs(hi))
    return (peak / q_max if peak > 0 else 1.0), q_min, q_max


def input_quantization(spec: InputSpec, profile) -> tuple[int, float, int, int] | None:
    """(bits, scale s, q_min, q_max) of the graded input described by input spec ``spec`` (encoding, value_range)
    on ``profile``, when the profile takes graded input of finite ``input_bits``; None for spike input or
    unquantised graded input. TargetError when graded input has no value range to quantise."""
    if not spec.graded or not profile.graded_input or not math.isfinite(profile.input_bits):
        return None
    if spec.value_range is None:
        from delaynir.errors import TargetError

        raise TargetError(
            "graded input without a value range cannot be quantised; retrain with this delaynir "
            "version (the run records the training data's value range)"
        )
    bits = int(profile.input_bits)
    return (bits, *input_grid(spec.value_range, bits))
