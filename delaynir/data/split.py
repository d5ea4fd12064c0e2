"""Validation splits and time-first data loaders.

The split only ever divides the dataset it is given (a training file); the test file is
never consulted, so no model is selected on test data.
"""

from __future__ import annotations

import logging
from typing import Any, Sequence

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Subset

from delaynir.errors import ConfigError

logger = logging.getLogger(__name__)


def _check_fraction(fraction: float) -> None:
    if not (isinstance(fraction, (int, float)) and 0.0 < fraction < 1.0):
        raise ConfigError(f"validation fraction must be a number strictly between 0 and 1, got {fraction!r}")


def _speaker_split(speakers: np.ndarray, fraction: float, rng: np.random.Generator) -> np.ndarray:
    """Boolean validation mask holding out whole speakers, about ``fraction`` of the samples."""
    ids, counts = np.unique(speakers, return_counts=True)
    order = rng.permutation(len(ids))
    cumulative = np.cumsum(counts[order])[:-1]  # never all speakers
    n_held = int(np.argmin(np.abs(cumulative - fraction * len(speakers)))) + 1  # at least one
    return np.isin(speakers, ids[order[:n_held]])


def _random_split(labels: np.ndarray, fraction: float, rng: np.random.Generator) -> tuple[np.ndarray, str]:
    """Boolean validation mask: stratified by label when every class has >= 2 samples, else plain."""
    n = len(labels)
    mask = np.zeros(n, dtype=bool)
    classes, counts = np.unique(labels, return_counts=True)
    if counts.min() >= 2:
        for c in classes:
            members = rng.permutation(np.flatnonzero(labels == c))
            mask[members[: max(1, min(len(members) - 1, round(fraction * len(members))))]] = True
        return mask, "stratified random"
    mask[rng.permutation(n)[: max(1, min(n - 1, round(fraction * n)))]] = True
    return mask, "random"


def validation_split(dataset: Any, *, fraction: float = 0.1, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Split ``dataset`` into sorted (train indices, validation indices), deterministic in ``seed``.

    If the dataset has speakers (attribute ``speakers``) with >= 2 distinct ids, whole speakers
    are held out: at least one, never all, as many as bring the held-out share closest to
    ``fraction``. Otherwise a random split, stratified by ``labels`` where possible.
    """
    _check_fraction(fraction)
    labels = np.asarray(dataset.labels)
    if len(labels) < 2:
        raise ConfigError(f"cannot split a dataset of {len(labels)} sample(s) into training and validation")
    rng = np.random.default_rng(seed)
    speakers = getattr(dataset, "speakers", None)
    if speakers is not None and len(np.unique(speakers)) >= 2:
        val = _speaker_split(np.asarray(speakers), fraction, rng)
        held = np.unique(np.asarray(speakers)[val]).tolist()
        logger.info("validation split by speaker: held out speakers %s (%d of %d samples)", held, val.sum(), len(val))
    else:
        val, kind = _random_split(labels, fraction, rng)
        logger.info("validation split %s (no speaker ids): %d of %d samples", kind, val.sum(), len(val))
    return np.flatnonzero(~val), np.flatnonzero(val)


def collate_time_first(batch: Sequence[tuple[torch.Tensor, int]]) -> tuple[torch.Tensor, torch.Tensor]:
    """Stack (frames (T, C), label) items into x float32 (T, B, C) and y int64 (B,)."""
    x = torch.stack([frames for frames, _ in batch], dim=1).to(torch.float32)
    y = torch.tensor([label for _, label in batch], dtype=torch.int64)
    return x, y


def make_loader(
    dataset: Dataset,
    indices: Sequence[int] | np.ndarray,
    *,
    batch_size: int,
    shuffle: bool,
    seed: int = 0,
    num_workers: int = 0,
    drop_last: bool = False,
) -> DataLoader:
    """DataLoader over ``dataset[indices]`` yielding x float32 (T, B, C) and y int64 (B,).

    Shuffling is driven by a torch.Generator seeded with ``seed``: the same seed gives the
    same sequence of epochs. With workers, a cached dataset is filled first so that the
    forked workers share the cache instead of each rebuilding it.
    """
    if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
        raise ConfigError(f"batch_size must be a positive integer, got {batch_size!r}")
    if isinstance(num_workers, bool) or not isinstance(num_workers, (int, np.integer)) or num_workers < 0:
        raise ConfigError(f"num_workers must be an integer >= 0, got {num_workers!r}")
    indices = np.asarray(indices, dtype=np.int64).ravel()
    if indices.size and (indices.min() < 0 or indices.max() >= len(dataset)):
        raise ConfigError(
            f"indices must lie in 0..{len(dataset) - 1}, got values from {indices.min()} to {indices.max()}"
        )
    if num_workers and hasattr(dataset, "preload"):
        dataset.preload(indices)
    generator = torch.Generator()
    generator.manual_seed(int(seed))
    return DataLoader(
        Subset(dataset, indices.tolist()),
        batch_size=int(batch_size),
        shuffle=shuffle,
        generator=generator,
        num_workers=int(num_workers),
        drop_last=drop_last,
        collate_fn=collate_time_first,
    )
