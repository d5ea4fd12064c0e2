"""Expanding index ranges: the gather step shared by every event-driven computation."""

from __future__ import annotations

import torch


def expand_ranges(starts: torch.Tensor, lengths: torch.Tensor, *, total: int | None = None,
                  with_owner: bool = False) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Concatenate the ranges [starts[g], starts[g] + lengths[g]) over segments g, in order.

    Returns (indices, owner): ``indices`` of length Σ lengths (dtype of ``starts``) and, when
    ``with_owner``, the int64 segment g of each index (else None). ``total`` = Σ lengths
    if the caller knows it (saves a device sync).
    """
    if total is None:
        total = int(lengths.sum())
    offsets = torch.cumsum(lengths, 0, dtype=starts.dtype) - lengths
    idx = torch.repeat_interleave(starts - offsets, lengths, output_size=total)
    idx += torch.arange(total, dtype=idx.dtype, device=idx.device)
    owner = None
    if with_owner:
        owner = torch.repeat_interleave(torch.arange(len(lengths), device=lengths.device), lengths, output_size=total)
    return idx, owner
