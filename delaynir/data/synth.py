"""A synthetic spike task where only relative spike timing carries the class, and an SHD-layout writer.

The channels form ``n_groups`` contiguous bands (like frequency bands in SHD). Each class c
has a fixed template, drawn from the seed: a distinct order in which the bands fire, band k
firing at slot order[c, k] x gap steps of dt, with gap = spread // n_groups. Every channel
fires exactly one pattern spike in every class (rate-matched), so spike counts carry no class
information, and the bands that fire together are the same in every class, so coincidences
within a leaky neuron's time constant (about gap steps) carry none either: a network must
bring spikes that are gap or more steps apart together (synaptic delays) to tell the classes
apart. A sample places the template at a random onset, scales the offsets by its speaker's
tempo (0.95..1.05), jitters each spike (Gaussian, ``jitter`` steps) and adds background
Poisson spikes (``noise_rate`` Hz per channel).
"""

from __future__ import annotations

import json
import logging
import math
import os
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path

import h5py
import numpy as np

from delaynir.common.h5 import writing_hdf5
from delaynir.common.memory import check_memory
from delaynir.common.outputs import check_output
from delaynir.data.shd import (
    DEFAULT_N_CHANNELS,
    DURATION_ATTR,
    KEYS,
    LABELS,
    N_CHANNELS_ATTR,
    SPEAKER,
    TIMES,
    UNITS,
    ProblemReport,
    label_problems,
    sample_problems,
)
from delaynir.errors import ConfigError

logger = logging.getLogger(__name__)

TEMPO_SPREAD = 0.05  # speaker tempo factors are drawn from [1 - TEMPO_SPREAD, 1 + TEMPO_SPREAD]
SPIKE_BYTES = 64  # memory per spike while samples are drawn (times, units, sample ids and their sort order)


# ----------------------------------------------------------------------------- writer


@contextmanager
def atomic_h5(path: str | os.PathLike, *, overwrite: bool = False) -> Iterator[h5py.File]:
    """Yield a new HDF5 file that appears at ``path`` only once complete (``runs.atomic_path``).

    Raises ConfigError if ``path`` exists and ``overwrite`` is False.
    """
    with writing_hdf5(path, overwrite=overwrite) as f:
        yield f


def _vlen(arrays: Sequence[np.ndarray], dtype: type) -> np.ndarray:
    """Object array of per-sample arrays cast to ``dtype`` (h5py writes it as vlen)."""
    out = np.empty(len(arrays), dtype=object)
    for k, a in enumerate(arrays):
        out[k] = np.asarray(a, dtype=dtype)
    return out


def _small_int(values: np.ndarray) -> np.ndarray:
    """Integers as uint8 or uint16 when they fit (as SHD stores them), else int64."""
    low, top = (int(values.min()), int(values.max())) if values.size else (0, 0)
    dtype = np.int64 if low < 0 else np.uint8 if top < 2**8 else np.uint16 if top < 2**16 else np.int64
    return values.astype(dtype)


def _as_int_array(values: Sequence[int] | np.ndarray, name: str, n: int) -> np.ndarray:
    arr = np.asarray(values)
    if arr.shape != (n,) or (arr.size and arr.dtype.kind not in "iu"):
        raise ConfigError(f"{name} must be {n} integers (one per sample), got shape {arr.shape} dtype {arr.dtype}")
    return arr.astype(np.int64)


def write_spike_file(
    path: str | os.PathLike,
    times: Sequence[np.ndarray],
    units: Sequence[np.ndarray],
    labels: Sequence[int] | np.ndarray,
    *,
    speakers: Sequence[int] | np.ndarray | None = None,
    keys: Sequence[str | bytes] | None = None,
    n_channels: int | None = None,
    overwrite: bool = False,
    duration: float | None = None,
    attrs: dict | None = None,
) -> Path:
    """Write samples in the SHD layout, atomically; return the path.

    ``times[i]``: spike times of sample i in seconds (stored vlen float32); ``units[i]``: their
    channels (stored vlen uint16); ``labels``: class per sample (uint8 when < 256);
    ``speakers`` -> ``extra/speaker``; ``keys`` (label names) -> ``extra/keys`` as bytes;
    ``n_channels`` -> root attribute ``n_channels``; ``duration`` (sample length, s) -> root
    attribute ``duration``; ``attrs``: further root attributes.
    The data are checked first (as ``validate_file`` would, with n_channels or 700) and a
    ConfigError lists the problems instead of writing an invalid file.
    """
    path = Path(path)
    n = len(times)
    if len(units) != n:
        raise ConfigError(f"times has {n} samples but units has {len(units)}")
    labels = _as_int_array(labels, "labels", n)
    speakers = None if speakers is None else _as_int_array(speakers, "speakers", n)
    channels = DEFAULT_N_CHANNELS if n_channels is None else n_channels
    if isinstance(channels, bool) or not isinstance(channels, (int, np.integer)) or not 1 <= channels <= 2**16:
        raise ConfigError(f"n_channels must be an integer in 1..65536, got {n_channels!r}")
    if duration is not None and (
        isinstance(duration, bool) or not isinstance(duration, (int, float)) or not 0 < duration < math.inf
    ):
        raise ConfigError(f"duration must be a positive number of seconds, got {duration!r}")
    if any(len(u) and np.asarray(u).dtype.kind not in "iu" for u in units):
        raise ConfigError("units must be integer arrays (channel indices)")
    report = ProblemReport(path)
    report.add_samples(label_problems(labels, None if keys is None else len(keys)))
    report.add_samples(sample_problems(times, units, int(channels)))
    if n == 0:
        report.add("no samples to write")
    if report.count:
        raise ConfigError(f"refusing to write {path}: {report.count} problem(s) in the data:{report.listing()}")
    with atomic_h5(path, overwrite=overwrite) as f:
        f.create_dataset(TIMES, data=_vlen(times, np.float32), dtype=h5py.vlen_dtype(np.float32))
        f.create_dataset(UNITS, data=_vlen(units, np.uint16), dtype=h5py.vlen_dtype(np.uint16))
        f.create_dataset(LABELS, data=_small_int(labels))
        if speakers is not None:
            f.create_dataset(SPEAKER, data=_small_int(speakers))
        if keys is not None:
            f.create_dataset(KEYS, data=np.array([k if isinstance(k, bytes) else str(k).encode() for k in keys]))
        if n_channels is not None:
            f.attrs[N_CHANNELS_ATTR] = np.int64(n_channels)
        if duration is not None:
            f.attrs[DURATION_ATTR] = np.float64(duration)
        for name, value in (attrs or {}).items():
            f.attrs[name] = value
    logger.info("wrote %s: %d samples", path, n)
    return path


# ----------------------------------------------------------------------------- synthetic task


def _is_int(value: object) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, bool)


@dataclass
class SynthConfig:
    """Synthetic timing task. Times in seconds (duration, dt) or in steps of dt (spread, jitter).

    n_channels: input channels; n_classes: classes (templates); n_train / n_test: samples;
    duration: sample length (s); dt: step the templates are laid out on (s); spread: template
    offsets lie in 0..spread-1 steps, band slots are gap = spread // n_groups steps apart;
    jitter: std of per-spike Gaussian jitter (steps);
    noise_rate: background Poisson rate per channel (Hz); n_speakers: speakers, each with a
    fixed tempo factor in [0.95, 1.05]; seed: seeds templates, tempos and samples;
    n_groups: channel bands whose firing order defines the class (n_classes <= n_groups!).
    """

    n_channels: int = 40
    n_classes: int = 10
    n_train: int = 1000
    n_test: int = 300
    duration: float = 1.0
    dt: float = 0.01
    spread: int = 75
    jitter: float = 1.0
    noise_rate: float = 2.0
    n_speakers: int = 8
    seed: int = 0
    n_groups: int = 5

    def __post_init__(self) -> None:
        minimum = {
            "n_channels": 1,
            "n_classes": 2,
            "n_train": 1,
            "n_test": 1,
            "spread": 1,
            "n_speakers": 1,
            "seed": 0,
            "n_groups": 2,
        }
        for name, low in minimum.items():
            value = getattr(self, name)
            if not _is_int(value) or value < low:
                raise ConfigError(f"SynthConfig.{name} must be an integer >= {low}, got {value!r}")
        if self.n_channels > 2**16:
            raise ConfigError(f"SynthConfig.n_channels must be at most 65536, got {self.n_channels}")
        for name, positive in (("duration", True), ("dt", True), ("jitter", False), ("noise_rate", False)):
            value = getattr(self, name)
            ok = isinstance(value, (int, float, np.number)) and not isinstance(value, bool) and math.isfinite(value)
            if not ok or value < 0 or (positive and value == 0):
                relation = ">" if positive else ">="
                raise ConfigError(f"SynthConfig.{name} must be a finite number {relation} 0, got {value!r}")
        if self.n_groups > min(self.n_channels, self.spread):
            raise ConfigError(
                f"SynthConfig.n_groups={self.n_groups} must not exceed n_channels ({self.n_channels}) "
                f"or spread ({self.spread} steps)"
            )
        if math.factorial(self.n_groups) < self.n_classes:
            raise ConfigError(
                f"SynthConfig: {self.n_groups} groups have only {math.factorial(self.n_groups)} firing orders, "
                f"fewer than n_classes={self.n_classes}; raise n_groups"
            )
        if self.spread * (1 + TEMPO_SPREAD) > self.duration / self.dt:
            raise ConfigError(
                f"SynthConfig: the pattern ({self.spread} steps x {1 + TEMPO_SPREAD} max tempo) does not fit in "
                f"duration / dt = {self.duration / self.dt:g} steps; raise duration or lower spread"
            )

    @property
    def n_steps(self) -> int:
        """Number of dt steps covering one sample (round(duration / dt))."""
        return round(self.duration / self.dt)

    @property
    def gap(self) -> int:
        """Steps between consecutive band slots of a template (spread // n_groups)."""
        return self.spread // self.n_groups


@dataclass(frozen=True)
class _Task:
    offsets: np.ndarray  # (n_classes, n_channels) template offsets, steps in [0, spread)
    tempos: np.ndarray  # (n_speakers,) speaker tempo factors


def _distinct_orders(n_groups: int, n_classes: int, rng: np.random.Generator) -> np.ndarray:
    """(n_classes, n_groups): a distinct random permutation of 0..n_groups-1 per class."""
    orders: dict[tuple[int, ...], None] = {}
    while len(orders) < n_classes:
        orders.setdefault(tuple(rng.permutation(n_groups).tolist()))
    return np.array(list(orders), dtype=np.int64)


def _draw_task(config: SynthConfig, rng: np.random.Generator) -> _Task:
    """Templates (band of channel i fires at slot order[c, band] x gap steps) and speaker tempos."""
    band = np.arange(config.n_channels) * config.n_groups // config.n_channels
    offsets = _distinct_orders(config.n_groups, config.n_classes, rng)[:, band] * config.gap
    tempos = rng.uniform(1 - TEMPO_SPREAD, 1 + TEMPO_SPREAD, size=config.n_speakers)
    return _Task(offsets=offsets, tempos=tempos)


def _draw_samples(
    config: SynthConfig, task: _Task, n: int, rng: np.random.Generator
) -> tuple[list[np.ndarray], list[np.ndarray], np.ndarray, np.ndarray]:
    """n samples: (times per sample in s, units per sample, labels, speakers); classes balanced."""
    c = config.n_channels
    steps = config.duration / config.dt
    labels = rng.permutation(np.arange(n) % config.n_classes)
    speakers = rng.integers(0, config.n_speakers, size=n)
    tempo = task.tempos[speakers]
    extent = task.offsets.max() * (1 + TEMPO_SPREAD)
    margin = min(3 * config.jitter, (steps - extent) / 2)
    onset = rng.uniform(margin, steps - extent - margin, size=n)
    pattern = onset[:, None] + task.offsets[labels] * tempo[:, None] + config.jitter * rng.standard_normal((n, c))
    noise_counts = rng.poisson(config.noise_rate * config.duration, size=(n, c)).ravel()
    noise_times = rng.uniform(0, config.duration, size=int(noise_counts.sum()))
    grid_sample = np.repeat(np.arange(n), c)
    grid_unit = np.tile(np.arange(c), n)
    sample = np.concatenate([grid_sample, np.repeat(grid_sample, noise_counts)])
    unit = np.concatenate([grid_unit, np.repeat(grid_unit, noise_counts)])
    t = np.clip(np.concatenate([pattern.ravel() * config.dt, noise_times]), 0, config.duration).astype(np.float32)
    order = np.lexsort((unit, t, sample))
    bounds = np.cumsum(np.bincount(sample, minlength=n))[:-1]
    times = np.split(t[order], bounds)
    units = np.split(unit[order].astype(np.uint16), bounds)
    return times, units, labels, speakers


def generate_synthetic(
    out_dir: str | os.PathLike, config: SynthConfig | None = None, *, overwrite: bool = False
) -> tuple[Path, Path]:
    """Write ``train.h5`` and ``test.h5`` of the synthetic task into ``out_dir``; return their paths.

    Both files share the templates and speakers and hold independent samples. Refuses
    (ConfigError) if either file exists unless ``overwrite``; each file is written atomically.
    """
    config = SynthConfig() if config is None else config
    if not isinstance(config, SynthConfig):
        raise ConfigError(f"config must be a SynthConfig, got {type(config).__name__}")
    out_dir = check_output(out_dir, overwrite=True, directory=True)
    paths = (out_dir / "train.h5", out_dir / "test.h5")
    existing = [str(p) for p in paths if p.exists()]
    if existing and not overwrite:
        raise ConfigError(
            f"{', '.join(existing)} already exist(s); pass --overwrite (overwrite=True in Python) to replace"
        )
    n, spikes = config.n_train + config.n_test, config.n_channels * (1 + config.noise_rate * config.duration)
    check_memory(
        int(SPIKE_BYTES * n * spikes),
        f"the synthetic task ({n} samples of about {spikes:.3g} spikes)",
        "use fewer samples or channels, a shorter duration or a lower noise_rate",
    )
    task_seed, train_seed, test_seed = np.random.SeedSequence(config.seed).spawn(3)
    task = _draw_task(config, np.random.default_rng(task_seed))
    keys = [f"class-{k}" for k in range(config.n_classes)]
    attrs = {"synth_config": json.dumps(asdict(config), sort_keys=True)}
    drawn = {
        path: _draw_samples(config, task, n, np.random.default_rng(seed))
        for path, n, seed in ((paths[0], config.n_train, train_seed), (paths[1], config.n_test, test_seed))
    }
    # test.h5 first: a run interrupted between the two leaves no train.h5 that training would take for complete
    for path in (paths[1], paths[0]):
        times, units, labels, speakers = drawn[path]
        write_spike_file(
            path,
            times,
            units,
            labels,
            speakers=speakers,
            keys=keys,
            n_channels=config.n_channels,
            duration=config.duration,
            overwrite=overwrite,
            attrs=attrs,
        )
    return paths
