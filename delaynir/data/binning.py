"""Event-to-frame binning: spike events (seconds, channel) to a (time step, channel) count grid."""

from __future__ import annotations

import logging

import numpy as np

from delaynir.errors import ConfigError, DataFormatError

logger = logging.getLogger(__name__)

#: Relative tolerance on ``t / dt``: a time within 1e-6 (relative) below a bin edge counts as on
#: the edge, so grid times stored as float32 (relative error <= 6e-8) land in their own bin.
BIN_EDGE_RTOL = 1e-6


def n_pooled(n_channels: int, pool: int) -> int:
    """Number of channels after pooling ``n_channels`` raw channels in groups of ``pool``."""
    return -(-n_channels // pool)


def check_grid(*, dt: float, n_steps: int, n_channels: int, pool: int) -> None:
    """Raise ConfigError unless dt (s) > 0 and n_steps, n_channels, pool are positive integers."""
    if not (isinstance(dt, (int, float, np.floating, np.integer)) and np.isfinite(dt) and dt > 0):
        raise ConfigError(f"dt must be a positive number of seconds, got {dt!r}")
    for name, value in (("n_steps", n_steps), ("n_channels", n_channels), ("pool", pool)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
            raise ConfigError(f"{name} must be a positive integer, got {value!r}")


def time_bins(times: np.ndarray, dt: float) -> np.ndarray:
    """Bin index floor(t / dt) (with BIN_EDGE_RTOL) of each time ``t`` in seconds, as int64."""
    steps = np.asarray(times, dtype=np.float64) / dt
    return np.floor(steps * (1.0 + BIN_EDGE_RTOL)).astype(np.int64)


def bin_events(
    times: np.ndarray,
    units: np.ndarray,
    *,
    dt: float,
    n_steps: int,
    n_channels: int,
    pool: int = 1,
) -> np.ndarray:
    """Count spikes per time bin and (pooled) channel.

    ``times`` are in seconds (>= 0), ``units`` are channels 0..n_channels-1, ``dt`` is the bin
    width in seconds. Returns float32 counts of shape (n_steps, ceil(n_channels / pool)): event
    (t, u) adds 1 at [floor(t / dt), u // pool]. Events at or after n_steps * dt are cropped;
    shorter samples are zero-padded.
    """
    check_grid(dt=dt, n_steps=n_steps, n_channels=n_channels, pool=pool)
    times = np.asarray(times)
    units = np.asarray(units)
    if times.ndim != 1 or units.shape != times.shape:
        raise DataFormatError(
            f"times and units must be 1-D arrays of equal length, got shapes {times.shape} and {units.shape}"
        )
    n_out = n_pooled(n_channels, pool)
    if times.size == 0:
        return np.zeros((n_steps, n_out), dtype=np.float32)
    if not np.all(np.isfinite(times)) or times.min() < 0:
        raise DataFormatError("spike times must be finite and >= 0 seconds")
    units = units.astype(np.int64, copy=False)
    if units.min() < 0 or units.max() >= n_channels:
        raise DataFormatError(
            f"spike unit {int(units.min()) if units.min() < 0 else int(units.max())} "
            f"outside the allowed range 0..{n_channels - 1} (n_channels={n_channels})"
        )
    bins = time_bins(times, dt)
    keep = bins < n_steps
    flat = bins[keep] * n_out + units[keep] // pool
    counts = np.bincount(flat, minlength=n_steps * n_out)
    return counts.reshape(n_steps, n_out).astype(np.float32)
