"""CPU allocator setting for event-driven layers.

The event strategy of ``delayed_sum`` allocates several short-lived buffers of a few MB
per call. glibc serves each allocation above its mmap threshold (128 KiB by default)
with a fresh mmap and returns it on free, so every batch pays page faults on all of
them (measured: ~15 % of the delay layer's time at the anchor shape). Raising the mmap
and trim thresholds lets freed memory be reused instead. This is a process-wide
setting: the ``delaynir`` command applies it; library users may call
``tune_cpu_allocator()`` themselves (or set GLIBC_TUNABLES).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging

log = logging.getLogger(__name__)

_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
#: glibc caps the mmap threshold at 32 MiB on 64-bit systems.
MMAP_THRESHOLD_BYTES = 32 * 1024 * 1024
#: Free memory kept at the top of the heap before it is returned to the system.
TRIM_THRESHOLD_BYTES = 1024 * 1024 * 1024


def tune_cpu_allocator(mmap_threshold: int = MMAP_THRESHOLD_BYTES, trim_threshold: int = TRIM_THRESHOLD_BYTES) -> bool:
    """Raise glibc's mmap and trim thresholds (bytes); False where there is no glibc mallopt."""
    name = ctypes.util.find_library("c")
    try:
        mallopt = ctypes.CDLL(name).mallopt
    except (OSError, AttributeError, TypeError):
        log.debug("no glibc mallopt here; allocator left as it is")
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    ok = bool(mallopt(_M_MMAP_THRESHOLD, mmap_threshold)) and bool(mallopt(_M_TRIM_THRESHOLD, trim_threshold))
    log.debug("glibc mmap threshold %d, trim threshold %d bytes: %s", mmap_threshold, trim_threshold, ok)
    return ok
