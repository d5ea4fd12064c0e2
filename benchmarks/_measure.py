"""Timing and peak memory of one repeated call, shared by the layer benchmarks.

Peak memory is the growth over the state before warm-up: on CPU the peak resident set
(VmHWM, reset through /proc/self/clear_refs), on CUDA ``torch.cuda.max_memory_allocated``.
Times are the median of ``repeats`` calls after 3 warm-up calls.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable


def rss_kib(field: str) -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field):
                return int(line.split()[1])
    return 0


def time_and_peak(step: Callable[[], None], before_each: Callable[[], None], device: str, repeats: int) -> dict:
    """{"median_s", "peak_mb"} of ``step`` (``before_each`` runs untimed before every timed call)."""
    import torch

    def sync():
        if device == "cuda":
            torch.cuda.synchronize()

    sync()
    if device == "cuda":
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated()
    else:
        base = rss_kib("VmRSS:") * 1024
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
    for _ in range(3):
        step()
    times = []
    for _ in range(repeats):
        before_each()
        sync()
        t0 = time.perf_counter()
        step()
        sync()
        times.append(time.perf_counter() - t0)
    peak = torch.cuda.max_memory_allocated() if device == "cuda" else rss_kib("VmHWM:") * 1024
    return {"median_s": statistics.median(times), "peak_mb": max(peak - base, 0) / 2**20}
