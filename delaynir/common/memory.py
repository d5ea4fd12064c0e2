"""Allocation limits: an input that sets the size of an allocation (durations, delays, neuron and channel
counts) is checked against this machine's memory before anything is allocated."""

from __future__ import annotations

import os

from delaynir.errors import ResourceError


def memory_bytes() -> int:
    """Physical memory of this machine in bytes."""
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")


def check_memory(n_bytes: int, what: str, fix: str) -> None:
    """ResourceError saying how much ``what`` would need, and ``fix``, if it exceeds the machine's memory."""
    limit = memory_bytes()
    if n_bytes > limit:
        raise ResourceError(
            f"{what} would need {_gib(n_bytes)} of memory, more than this machine has ({_gib(limit)}); {fix}"
        )


def _gib(n_bytes: int) -> str:
    return f"{n_bytes / 2**30:,.1f} GiB" if n_bytes < 2**40 else f"{n_bytes / 2**40:,.1f} TiB"
