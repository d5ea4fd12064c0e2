"""Reader and validator for spike files in the SHD HDF5 layout (see docs/data-format.md).

Layout: ``spikes/times`` (one variable-length float array per sample, seconds),
``spikes/units`` (one variable-length integer array per sample, channel 0..n_channels-1),
``labels`` (integer per sample), optional ``extra/speaker`` (integer per sample) and
``extra/keys`` (label names). Everything else (``extra/meta_info``, ...) is ignored.
The channel count is the root attribute ``n_channels`` if present, else 700 (SHD); the
optional root attribute ``duration`` gives the sample length in seconds.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Sequence
from pathlib import Path

import h5py
import numpy as np
import torch
from torch.utils.data import Dataset
from tqdm.auto import tqdm

from delaynir.common.h5 import HDF5_DAMAGE, damaged, open_hdf5, reading_hdf5
from delaynir.common.memory import check_memory
from delaynir.data.binning import bin_events, check_grid, n_pooled
from delaynir.errors import ConfigError, DataFormatError

logger = logging.getLogger(__name__)

TIMES = "spikes/times"
UNITS = "spikes/units"
LABELS = "labels"
SPEAKER = "extra/speaker"
KEYS = "extra/keys"
N_CHANNELS_ATTR = "n_channels"
DURATION_ATTR = "duration"
#: Channel count of a file without the root attribute ``n_channels`` (SHD's 700 cochlea channels).
DEFAULT_N_CHANNELS = 700
#: What each dataset of the layout must hold, quoted in error messages.
EXPECTED = {
    TIMES: "one variable-length float array of spike times in seconds per sample",
    UNITS: "one variable-length integer array of channel indices per sample",
    LABELS: "one integer class label >= 0 per sample",
    SPEAKER: "optional, one integer speaker id per sample",
    KEYS: "optional, one label name (bytes string) per class",
}
MAX_LISTED = 20  # problems listed in one DataFormatError before "... and N more"
CHUNK = 1024  # samples read per step when scanning a file
PROGRESS_MIN = 4096  # no progress bar for files with fewer samples
CACHE_LIMIT_BYTES = 1 << 30  # cache="auto" caches when the uint8 binned set is below this


# ----------------------------------------------------------------------------- opening files


EXPECTED_FILE = "an HDF5 spike file in the SHD layout, see docs/data-format.md"


def open_h5(path: str | os.PathLike) -> h5py.File:
    """Open ``path`` read-only; DataFormatError if it does not exist or is not HDF5."""
    return open_hdf5(path, DataFormatError, EXPECTED_FILE)


def spike_file(path: str | os.PathLike) -> contextlib.AbstractContextManager[h5py.File]:
    """:func:`open_h5` for a ``with`` block; a damaged file's read errors become DataFormatError."""
    return reading_hdf5(path, DataFormatError, EXPECTED_FILE)


def _root_attr(f: h5py.File, name: str, *, integer: bool) -> tuple[int | float | None, str | None]:
    """(value, None) for a positive root attribute ``name``; (None, None) if absent; (None, why) if bad."""
    if name not in f.attrs:
        return None, None
    value = np.asarray(f.attrs[name])
    if value.shape != () or value.dtype.kind not in ("iu" if integer else "iuf") or not 0 < value < np.inf:
        shown = repr(value.tolist())
        shown = shown if len(shown) <= 60 else shown[:57] + "..."
        return None, f"root attribute {name}={shown} is not a positive {'integer' if integer else 'number'}"
    return (int(value) if integer else float(value)), None


def resolve_n_channels(f: h5py.File, override: int | None = None) -> int:
    """Input channel count: ``override`` if given, else root attr ``n_channels``, else 700."""
    if override is not None:
        if isinstance(override, bool) or not isinstance(override, (int, np.integer)) or override < 1:
            raise ConfigError(f"n_channels must be a positive integer, got {override!r}")
        return int(override)
    value, problem = _root_attr(f, N_CHANNELS_ATTR, integer=True)
    if problem:
        raise DataFormatError(f"{f.filename}: {problem}; fix the file or pass n_channels= explicitly")
    return DEFAULT_N_CHANNELS if value is None else int(value)


def read_duration(f: h5py.File) -> float | None:
    """Sample length in seconds from root attr ``duration``, or None when the file has none (SHD)."""
    value, problem = _root_attr(f, DURATION_ATTR, integer=False)
    if problem:
        raise DataFormatError(f"{f.filename}: {problem}")
    return value


def decode_keys(raw: np.ndarray) -> list[str]:
    """Label names from ``extra/keys`` (bytes or str entries) as a list of str."""
    return [k.decode("utf-8", "replace") if isinstance(k, bytes) else str(k) for k in np.asarray(raw).ravel()]


# ----------------------------------------------------------------------------- checks


class ProblemReport:
    """Collects problems for one file; lists the first MAX_LISTED, counts the rest."""

    def __init__(self, path: Path):
        self.path = path
        self.lines: list[str] = []
        self.count = 0

    def add(self, problem: str, sample: int | None = None) -> None:
        self.count += 1
        if len(self.lines) < MAX_LISTED:
            where = "" if sample is None else f"sample {sample}: "
            self.lines.append(f"{self.path}: {where}{problem}")

    def add_samples(self, items: list[tuple[int, str]]) -> None:
        for sample, problem in sorted(items, key=lambda item: item[0]):
            self.add(problem, sample)

    def listing(self) -> str:
        """The listed problems, one per indented line, then "... and N more" if capped."""
        more = self.count - len(self.lines)
        return "\n  " + "\n  ".join(self.lines + ([f"... and {more} more"] if more else []))

    def raise_if_any(self) -> None:
        if self.count:
            raise DataFormatError(
                f"{self.path}: {self.count} problem(s) found; the file does not follow the SHD layout "
                f"(see docs/data-format.md):{self.listing()}"
            )


def _dataset_problem(f: h5py.File, key: str, *, vlen: bool, kinds: str) -> str | None:
    """Why ``f[key]`` is not a 1-D dataset (of vlen arrays) of the given dtype kinds, or None."""
    what = f"(the layout expects {key}: {EXPECTED[key]})"
    if key not in f:
        return f"missing dataset '{key}' {what}"
    ds = f[key]
    if not isinstance(ds, h5py.Dataset) or ds.ndim != 1:
        return f"'{key}' is not a one-dimensional dataset {what}"
    base = h5py.check_vlen_dtype(ds.dtype)
    if vlen and base is None:
        return f"'{key}' is not variable-length (dtype {ds.dtype}) {what}"
    dtype = base if vlen else ds.dtype
    if np.dtype(dtype).kind not in kinds:
        return f"'{key}' has dtype {dtype} {what}"
    return None


def _is_vlen_vector(f: h5py.File, key: str) -> bool:
    """Whether ``f[key]`` exists and is a 1-D dataset of variable-length arrays."""
    ds = f.get(key)
    return isinstance(ds, h5py.Dataset) and ds.ndim == 1 and h5py.check_vlen_dtype(ds.dtype) is not None


def structure_problems(f: h5py.File) -> list[str]:
    """File-level problems: missing or malformed datasets, sample counts that differ."""
    specs = {TIMES: (True, "fiu"), UNITS: (True, "iu"), LABELS: (False, "iu"), SPEAKER: (False, "iu")}
    problems = []
    for key, (vlen, kinds) in specs.items():
        if key == SPEAKER and key not in f:
            continue
        problem = _dataset_problem(f, key, vlen=vlen, kinds=kinds)
        if problem:
            problems.append(problem)
    if KEYS in f and (not isinstance(f[KEYS], h5py.Dataset) or f[KEYS].ndim != 1):
        problems.append(f"'{KEYS}' is not a one-dimensional dataset (the layout expects {KEYS}: {EXPECTED[KEYS]})")
    lengths = {k: len(f[k]) for k in (TIMES, UNITS, LABELS, SPEAKER) if isinstance(f.get(k), h5py.Dataset)}
    if len(set(lengths.values())) > 1:
        listing = ", ".join(f"{k} has {n}" for k, n in lengths.items())
        problems.append(f"number of samples differs between datasets: {listing}")
    elif lengths and not next(iter(lengths.values())):
        problems.append("the file holds no samples")
    return problems


def _first_hits(sample_ids: np.ndarray, mask: np.ndarray) -> list[tuple[int, int]]:
    """(sample, position of its first True in ``mask``) for each sample with a True in ``mask``."""
    hits = np.flatnonzero(mask)
    samples, first = np.unique(sample_ids[hits], return_index=True)
    return list(zip(samples.tolist(), hits[first].tolist()))


def _concat(arrays: Sequence[np.ndarray], dtype: type) -> tuple[np.ndarray, np.ndarray]:
    """Concatenate per-sample arrays; also return the sample index of every element."""
    lengths = np.array([len(a) for a in arrays], dtype=np.int64)
    flat = np.concatenate([np.asarray(a, dtype=dtype) for a in arrays]) if lengths.sum() else np.zeros(0, dtype)
    return flat, np.repeat(np.arange(len(arrays)), lengths)


def sample_problems(
    times: Sequence[np.ndarray], units: Sequence[np.ndarray], n_channels: int | None, offset: int = 0
) -> list[tuple[int, str]]:
    """Per-sample problems as (sample index, text); sample k of the input is index offset + k.

    Checks: equal length of times and units, no empty sample, finite times >= 0 s sorted
    non-decreasingly, units in 0..n_channels-1 (only >= 0 when n_channels is None).
    """
    out: list[tuple[int, str]] = []
    n_t = np.array([len(t) for t in times], dtype=np.int64)
    n_u = np.array([len(u) for u in units], dtype=np.int64)
    for bad in np.flatnonzero(n_t != n_u):
        out.append((offset + bad, f"spikes/times has {n_t[bad]} events but spikes/units has {n_u[bad]}"))
    for bad in np.flatnonzero((n_t == 0) & (n_u == 0)):
        out.append((offset + bad, "empty sample (no spikes)"))
    if all(np.asarray(t).dtype.kind in "fiu" or not len(t) for t in times):
        t, sid = _concat(times, np.float64)
        for k, j in _first_hits(sid, ~np.isfinite(t)):
            out.append((offset + k, f"spike time {t[j]:.6g} is not finite (NaN or Inf)"))
        for k, j in _first_hits(sid, t < 0):
            out.append((offset + k, f"negative spike time {t[j]:.6g} s (times must be >= 0)"))
        down = np.zeros(t.shape, dtype=bool)
        down[1:] = (t[1:] < t[:-1]) & (sid[1:] == sid[:-1])
        for k, j in _first_hits(sid, down):
            problem = f"spike times not sorted: {t[j]:.6g} s follows {t[j - 1]:.6g} s (must be non-decreasing)"
            out.append((offset + k, problem))
    if all(np.asarray(u).dtype.kind in "iu" or not len(u) for u in units):
        u, sid = _concat(units, np.int64)
        high = np.inf if n_channels is None else n_channels
        allowed = "0.." + ("(n_channels-1)" if n_channels is None else f"{n_channels - 1} (n_channels={n_channels})")
        for k, j in _first_hits(sid, (u < 0) | (u >= high)):
            out.append((offset + k, f"spike unit {u[j]} out of the allowed range {allowed}"))
    return out


def label_problems(labels: np.ndarray, n_keys: int | None) -> list[tuple[int, str]]:
    """Per-sample label problems: negative, or not below the number of label names."""
    out = [(int(k), f"label {labels[k]} is negative") for k in np.flatnonzero(labels < 0)]
    if n_keys is not None:
        out += [
            (int(k), f"label {labels[k]} has no name: extra/keys holds {n_keys} names")
            for k in np.flatnonzero(labels >= n_keys)
        ]
    return out


def validate_file(path: str | os.PathLike, *, n_channels: int | None = None) -> None:
    """Check that ``path`` follows the SHD layout; raise one DataFormatError listing every problem.

    Reads the file in chunks of CHUNK samples (progress bar on a terminal for large files).
    ``n_channels`` overrides the file's channel count (root attr ``n_channels``, else 700).
    """
    path = Path(path)
    report = ProblemReport(path)
    with spike_file(path) as f:
        attr_problem = None if n_channels is not None else _root_attr(f, N_CHANNELS_ATTR, integer=True)[1]
        channels = None if attr_problem else resolve_n_channels(f, n_channels)
        for problem in (attr_problem, _root_attr(f, DURATION_ATTR, integer=False)[1]):
            if problem:
                report.add(problem)
        for problem in structure_problems(f):
            report.add(problem)
        keys_ok = KEYS in f and isinstance(f[KEYS], h5py.Dataset) and f[KEYS].ndim == 1
        n_keys = len(f[KEYS]) if keys_ok else None
        if isinstance(f.get(LABELS), h5py.Dataset) and f[LABELS].ndim == 1 and f[LABELS].dtype.kind in "iu":
            report.add_samples(label_problems(f[LABELS][()].astype(np.int64), n_keys))
        if not all(_is_vlen_vector(f, key) for key in (TIMES, UNITS)):
            report.raise_if_any()  # structure problems make a per-sample scan meaningless
            return
        times_ds, units_ds = f[TIMES], f[UNITS]
        n = min(len(times_ds), len(units_ds))
        bar = tqdm(total=n, unit="sample", desc=f"validating {path.name}", disable=True if n < PROGRESS_MIN else None)
        with bar:
            for start in range(0, n, CHUNK):
                stop = min(n, start + CHUNK)
                report.add_samples(sample_problems(times_ds[start:stop], units_ds[start:stop], channels, start))
                bar.update(stop - start)
    report.raise_if_any()
    logger.debug("%s: valid SHD-layout file, %d samples, %s channels", path, n, channels)


# ----------------------------------------------------------------------------- dataset


class SpikeDataset(Dataset):
    """Binned spike samples from one SHD-layout file, read one sample at a time.

    ``dt`` is the bin width in seconds and ``n_steps`` the number of bins (longer samples are
    cropped, shorter ones zero-padded); ``pool`` sums groups of adjacent channels.
    ``cache``: "auto" keeps binned samples in memory (uint8, saturating at 255) when the
    binned set is below 1 GiB; True / False force it. Item ``i`` is
    (float32 tensor (n_steps, n_inputs) of spike counts, int label). ``duration`` is the
    file's sample length in seconds (root attr ``duration``), None when it has none (SHD).
    """

    def __init__(
        self,
        path: str | os.PathLike,
        *,
        dt: float = 0.01,
        n_steps: int = 100,
        pool: int = 1,
        n_channels: int | None = None,
        cache: bool | str = "auto",
        validate: bool = True,
    ):
        if not (cache == "auto" or isinstance(cache, bool)):
            raise ConfigError(f"cache must be 'auto', True or False, got {cache!r}")
        check_grid(dt=dt, n_steps=n_steps, n_channels=1, pool=pool)
        self.path = Path(path)
        if validate:
            validate_file(self.path, n_channels=n_channels)
        with spike_file(self.path) as f:
            report = ProblemReport(self.path)
            for problem in structure_problems(f):
                report.add(problem)
            report.raise_if_any()
            self.n_channels = resolve_n_channels(f, n_channels)
            self.labels = f[LABELS][()].astype(np.int64)
            self.speakers = f[SPEAKER][()].astype(np.int64) if SPEAKER in f else None
            self.keys = decode_keys(f[KEYS][()]) if KEYS in f else None
            self.duration = read_duration(f)
        self.dt = float(dt)
        self.n_steps = int(n_steps)
        self.pool = int(pool)
        self.n_inputs = n_pooled(self.n_channels, self.pool)
        self.n_classes = len(self.keys) if self.keys else int(self.labels.max()) + 1
        fix = "use fewer steps (n_steps, or fix the file's `duration` attribute), a larger dt or a larger pool"
        check_memory(
            4 * self.n_steps * self.n_inputs,
            f"{self.path}: one sample of {self.n_steps} steps of {dt} s × {self.n_inputs} inputs",
            fix,
        )
        cached_bytes = len(self) * self.n_steps * self.n_inputs
        use_cache = cached_bytes < CACHE_LIMIT_BYTES if cache == "auto" else cache
        if use_cache:
            check_memory(cached_bytes, f"{self.path}: caching {len(self)} binned samples", fix + ", or cache=False")
        self._cache = np.zeros((len(self), self.n_steps, self.n_inputs), np.uint8) if use_cache else None
        self._cached = np.zeros(len(self), dtype=bool)
        self._warned_saturation = False
        self._h5: h5py.File | None = None
        self._h5_pid: int | None = None
        logger.info(
            "%s: %d samples, %d classes, %d channels -> %d inputs, %d steps of %g s, cache %s",
            self.path,
            len(self),
            self.n_classes,
            self.n_channels,
            self.n_inputs,
            self.n_steps,
            self.dt,
            "on" if use_cache else "off",
        )

    def __len__(self) -> int:
        return len(self.labels)

    def __repr__(self) -> str:
        return (
            f"SpikeDataset({str(self.path)!r}, samples={len(self)}, n_inputs={self.n_inputs}, "
            f"n_steps={self.n_steps}, dt={self.dt})"
        )

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        i = self._index(index)
        if self._cache is None:
            frames = self._bin(i)
        else:
            if not self._cached[i]:
                self._store(i, self._bin(i))
            frames = self._cache[i].astype(np.float32)
        return torch.from_numpy(frames), int(self.labels[i])

    def __getstate__(self) -> dict:
        state = self.__dict__.copy()
        state["_h5"] = None
        state["_h5_pid"] = None
        return state

    @property
    def cached(self) -> bool:
        """Whether binned samples are kept in memory."""
        return self._cache is not None

    def preload(self, indices: Sequence[int] | np.ndarray | None = None) -> None:
        """Bin and cache the given samples (all by default) now; no-op when caching is off."""
        if self._cache is None:
            return
        todo = np.arange(len(self)) if indices is None else np.unique(np.asarray(indices, dtype=np.int64))
        todo = todo[~self._cached[todo]]
        disable = True if len(todo) < PROGRESS_MIN else None
        for i in tqdm(todo.tolist(), unit="sample", desc=f"loading {self.path.name}", disable=disable):
            self._store(i, self._bin(i))

    def close(self) -> None:
        """Close the HDF5 handle of this process (reopened on the next access)."""
        if self._h5 is not None and self._h5_pid == os.getpid():
            self._h5.close()
        self._h5 = None
        self._h5_pid = None

    def _index(self, index: int) -> int:
        i = int(index)
        if i < 0:
            i += len(self)
        if not 0 <= i < len(self):
            raise IndexError(f"sample index {index} out of range for {len(self)} samples in {self.path}")
        return i

    def _file(self) -> h5py.File:
        """The HDF5 handle, (re)opened lazily in each process (DataLoader workers fork)."""
        if self._h5 is None or self._h5_pid != os.getpid():
            self._h5 = open_h5(self.path)
            self._h5_pid = os.getpid()
        return self._h5

    def _bin(self, i: int) -> np.ndarray:
        f = self._file()
        try:
            return bin_events(
                f[TIMES][i], f[UNITS][i], dt=self.dt, n_steps=self.n_steps, n_channels=self.n_channels, pool=self.pool
            )
        except DataFormatError as exc:
            raise DataFormatError(f"{self.path}: sample {i}: {exc}") from None
        except HDF5_DAMAGE as exc:
            raise DataFormatError(damaged(f"{self.path}: sample {i}", exc)) from None

    def _store(self, i: int, frames: np.ndarray) -> None:
        assert self._cache is not None, "_store is only called with the cache on"
        if not self._warned_saturation and frames.size and frames.max() > 255:
            self._warned_saturation = True
            logger.warning(
                "%s: sample %d has %d spikes in one bin; the uint8 cache saturates counts at 255 "
                "(use a smaller dt or pool, or cache=False)",
                self.path,
                i,
                int(frames.max()),
            )
        self._cache[i] = np.minimum(frames, 255).astype(np.uint8)
        self._cached[i] = True
