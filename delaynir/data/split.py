"""Validation splits and time-first data loaders.

The split only ever divides the dataset it is given (a training file); the test file is
never consulted, so no model is selected on test data.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence, Sized
from typing import Any, cast

import numpy as np
import torch
from torch.utils.data import BatchSampler, DataLoader, Dataset, RandomSampler, Sampler, SequentialSampler, Subset

from delaynir.errors import ConfigError

logger = logging.getLogger(__name__)

VAL_FRACTION = 0.2  #: held out from the training file for model selection (README: two of ten speakers)


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


def validation_split(dataset: Any, *, fraction: float = VAL_FRACTION, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Split ``dataset`` into sorted (train indices, validation indices), deterministic in ``seed``.

    If the dataset has speakers (attribute ``speakers``) with >= 2 distinct ids, whole speakers
    are held out: at least one, never all, as many as bring the held-out share closest to
    ``fraction``. Otherwise a random split, stratified by ``labels`` where possible.
    """
    _check_fraction(fraction)
    labels = np.asarray(dataset.labels)
    if len(labels) < 2:
        where = getattr(dataset, "path", "the dataset")
        raise ConfigError(
            f"{where}: {len(labels)} sample(s) cannot be split into training and validation; "
            "training needs a file with at least 2 samples"
        )
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


def shard_bounds(n: int, rank: int, world_size: int) -> tuple[int, int]:
    """[start, stop) of process ``rank``'s contiguous share of ``n`` items: sizes differ by at most one."""
    return n * rank // world_size, n * (rank + 1) // world_size


class ShardedBatchSampler(Sampler[list[int]]):
    """Process ``rank``'s share (``shard_bounds``) of every batch of ``batch_sampler``.

    All processes iterate the same global batches; one whose share is empty gets the batch's last
    sample instead (``pad``: every process then runs every step; the caller gives it weight 0) or
    skips the batch (no ``pad``).
    """

    def __init__(self, batch_sampler: BatchSampler, rank: int, world_size: int, *, pad: bool):
        self.batch_sampler, self.rank, self.world_size, self.pad = batch_sampler, rank, world_size, pad

    def __iter__(self) -> Iterator[list[int]]:
        for batch in self.batch_sampler:
            start, stop = shard_bounds(len(batch), self.rank, self.world_size)
            if stop > start:
                yield batch[start:stop]
            elif self.pad:
                yield batch[-1:]

    def __len__(self) -> int:
        if self.pad or self.world_size == 1:
            return len(self.batch_sampler)
        return sum(1 for _ in self)


def make_loader(
    dataset: Dataset,
    indices: Sequence[int] | np.ndarray,
    *,
    batch_size: int,
    shuffle: bool,
    seed: int = 0,
    num_workers: int = 0,
    drop_last: bool = False,
    rank: int = 0,
    world_size: int = 1,
    pad_shards: bool = True,
) -> DataLoader:
    """DataLoader over ``dataset[indices]`` yielding x float32 (T, B, C) and y int64 (B,).

    Shuffling is driven by a torch.Generator seeded with ``seed``: the same seed gives the
    same sequence of epochs. With workers, a cached dataset is filled first so that the
    forked workers share the cache instead of each rebuilding it.

    With ``world_size`` > 1 the loader yields process ``rank``'s share of each global batch of
    ``batch_size`` (``ShardedBatchSampler``, padded as ``pad_shards`` says): the processes together
    see exactly the batches of a single-process loader with the same seed.
    """
    if not (0 <= rank < world_size):
        raise ConfigError(f"rank must be in 0..world_size - 1, got rank {rank} of {world_size}")
    if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
        raise ConfigError(f"batch_size must be a positive integer, got {batch_size!r}")
    if isinstance(num_workers, bool) or not isinstance(num_workers, (int, np.integer)) or num_workers < 0:
        raise ConfigError(f"num_workers must be an integer >= 0, got {num_workers!r}")
    indices = np.asarray(indices, dtype=np.int64).ravel()
    # torch's Dataset leaves __len__ optional; the map-style datasets this indexes define it
    sized = cast(Sized, dataset)
    if indices.size and (indices.min() < 0 or indices.max() >= len(sized)):
        raise ConfigError(
            f"indices must lie in 0..{len(sized) - 1}, got values from {indices.min()} to {indices.max()}"
        )
    if num_workers and hasattr(dataset, "preload"):
        dataset.preload(indices)
    generator = torch.Generator()
    generator.manual_seed(int(seed))
    subset = Subset(dataset, indices.tolist())
    order = RandomSampler(subset, generator=generator) if shuffle else SequentialSampler(subset)
    batches = BatchSampler(order, int(batch_size), drop_last)  # what DataLoader(shuffle=..., batch_size=...) builds
    return DataLoader(
        subset,
        batch_sampler=ShardedBatchSampler(batches, rank, world_size, pad=pad_shards),
        generator=generator,
        num_workers=int(num_workers),
        collate_fn=collate_time_first,
    )
