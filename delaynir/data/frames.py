"""The HDF5 frames layout: real-valued (graded) input frames per sample, beside the SHD spike layout.

    frames          float32 (N, n_frames, n_bands): sample i's input at step t and channel c
    labels          integer (N,) class >= 0
    extra/speaker   integer (N,), optional
    extra/keys      label names, optional (as in SHD)
    extra/files     the source file of each sample (UTF-8 bytes), optional
    root attributes layout = "frames", dt (s per frame), features (JSON of the settings that made them)

See docs/data-format.md. ``FramesDataset`` reads such a file with the interface of ``SpikeDataset``,
so training, evaluation and every command after them take either kind of file.
"""

from __future__ import annotations

import json
import logging
import math
import os
from collections.abc import Sequence
from pathlib import Path

import h5py
import numpy as np
import torch
from torch.utils.data import Dataset

from delaynir.data.shd import KEYS, LABELS, SPEAKER, ProblemReport, decode_keys, label_problems, spike_file
from delaynir.data.synth import atomic_h5
from delaynir.errors import ConfigError, DataFormatError

logger = logging.getLogger(__name__)

FRAMES = "frames"
FILES = "extra/files"
LAYOUT_ATTR, LAYOUT = "layout", "frames"
DT_ATTR, FEATURES_ATTR = "dt", "features"


def is_frames_file(path: str | os.PathLike) -> bool:
    """Whether ``path`` (an HDF5 file) is in the frames layout rather than the SHD spike layout."""
    with spike_file(path) as f:
        return f.attrs.get(LAYOUT_ATTR) == LAYOUT or FRAMES in f


def write_frames_file(
    path: str | os.PathLike,
    frames: np.ndarray,
    labels: Sequence[int],
    *,
    dt: float,
    speakers: Sequence[int] | None = None,
    keys: Sequence[str] | None = None,
    files: Sequence[str] | None = None,
    features: dict | None = None,
    overwrite: bool = False,
) -> Path:
    """Write samples in the frames layout, atomically (module docstring); returns the path."""
    frames = np.asarray(frames, dtype=np.float32)
    label_array = np.asarray(labels, dtype=np.int64)
    if frames.ndim != 3 or len(frames) != len(label_array) or not len(label_array):
        raise ConfigError(
            f"frames must be (samples, steps, channels) with one label per sample, got frames "
            f"{frames.shape} and {len(label_array)} labels"
        )
    if not np.isfinite(frames).all():
        raise ConfigError("frames must be finite (no NaN or Inf)")
    with atomic_h5(path, overwrite=overwrite) as f:
        f.attrs[LAYOUT_ATTR] = LAYOUT
        f.attrs[DT_ATTR] = float(dt)
        f.attrs[FEATURES_ATTR] = json.dumps(features or {}, sort_keys=True)
        f.create_dataset(FRAMES, data=frames, chunks=(1, *frames.shape[1:]))
        f.create_dataset(LABELS, data=label_array.astype(np.uint8 if label_array.max() < 256 else np.int64))
        if speakers is not None:
            f.create_dataset(SPEAKER, data=np.asarray(speakers, dtype=np.int64))
        if keys is not None:
            f.create_dataset(KEYS, data=np.array([k.encode() for k in keys]))
        if files is not None:
            f.create_dataset(FILES, data=np.array([name.encode() for name in files]))
    return Path(path)


def frames_problems(f: h5py.File) -> list[str]:
    """Every way ``f`` differs from the frames layout (empty when it follows it)."""
    problems = []
    ds = f.get(FRAMES)
    if not isinstance(ds, h5py.Dataset) or ds.ndim != 3 or ds.dtype.kind != "f":
        problems.append(
            f"'{FRAMES}' must be a float dataset (samples, steps, channels), found "
            f"{getattr(ds, 'shape', 'none')} {getattr(ds, 'dtype', '')}"
        )
    elif 0 in ds.shape[1:]:
        problems.append(
            f"'{FRAMES}' has {ds.shape[1]} steps of {ds.shape[2]} channels; a sample needs at least one of each"
        )
    features = f.attrs.get(FEATURES_ATTR, "{}")
    try:
        if not isinstance(json.loads(features), dict):
            raise ValueError
    except (TypeError, ValueError):  # bytes that are not UTF-8, text that is not JSON, JSON that is not an object
        problems.append(
            f"root attribute '{FEATURES_ATTR}' must be a JSON object of the settings that made the frames, found "
            f"{str(features)[:60]!r}; remove it or remake the file with `delaynir data audio`"
        )
    dt = f.attrs.get(DT_ATTR)
    if not (isinstance(dt, (float, np.floating, int, np.integer)) and 0 < float(dt) < math.inf):
        problems.append(f"root attribute '{DT_ATTR}' must be the positive frame step in seconds, found {dt!r}")
    lab = f.get(LABELS)
    if not isinstance(lab, h5py.Dataset) or lab.ndim != 1 or lab.dtype.kind not in "iu":
        problems.append(f"'{LABELS}' must be a 1-D integer dataset (one class per sample)")
    n = {key: len(f[key]) for key in (FRAMES, LABELS, SPEAKER, FILES) if isinstance(f.get(key), h5py.Dataset)}
    if len(set(n.values())) > 1:
        problems.append(
            "number of samples differs between datasets: " + ", ".join(f"{k} has {v}" for k, v in n.items())
        )
    elif n and not next(iter(n.values())):
        problems.append("the file holds no samples")
    if not problems:
        n_keys = len(f[KEYS]) if KEYS in f else None
        problems += [f"sample {i}: {p}" for i, p in label_problems(f[LABELS][()].astype(np.int64), n_keys)]
        for start in range(0, len(ds), 1024):
            bad = ~np.isfinite(ds[start : start + 1024]).all(axis=(1, 2))
            problems += [f"sample {start + i}: frames hold NaN or Inf" for i in np.flatnonzero(bad)]
    return problems


class FramesDataset(Dataset):
    """Samples of a frames-layout file, as ``SpikeDataset`` yields spike counts: item i is
    (float32 tensor (n_steps, n_inputs), int label).

    The file's frame step must equal ``dt`` (its root attribute ``dt``); samples are cropped or
    zero-padded to ``n_steps`` (default: the file's frame count). The whole file is read into memory.
    """

    graded = True  #: real-valued input, not spike counts

    def __init__(self, path: str | os.PathLike, *, dt: float, n_steps: int | None = None, pool: int = 1):
        self.path = Path(path)
        with spike_file(self.path) as f:
            report = ProblemReport(self.path)
            for problem in frames_problems(f):
                report.add(problem)
            if report.count:
                raise DataFormatError(
                    f"{self.path}: {report.count} problem(s); the file does not follow the frames "
                    f"layout (see docs/data-format.md):{report.listing()}"
                )
            self.frame_dt = float(f.attrs[DT_ATTR])
            self.features = json.loads(f.attrs.get(FEATURES_ATTR, "{}"))
            data = f[FRAMES][()]
            self.labels = f[LABELS][()].astype(np.int64)
            self.speakers = f[SPEAKER][()].astype(np.int64) if SPEAKER in f else None
            self.keys = decode_keys(f[KEYS][()]) if KEYS in f else None
        if not math.isclose(self.frame_dt, dt, rel_tol=1e-6):
            raise ConfigError(
                f"{self.path} holds frames {self.frame_dt} s apart but the run's dt is {dt} s; "
                f"train with dt = {self.frame_dt} (--config or the preset) or remake the features "
                f"with that hop"
            )
        if pool not in (0, 1):
            raise ConfigError(f"{self.path} holds graded frames, which are not pooled; use pool = 0 or 1 (got {pool})")
        self.dt, self.pool, self.n_channels = float(dt), 1, data.shape[2]
        self.n_inputs = self.n_channels
        self.n_steps = int(n_steps or data.shape[1])
        self.duration = data.shape[1] * self.frame_dt
        self.n_classes = len(self.keys) if self.keys else int(self.labels.max()) + 1
        steps = min(self.n_steps, data.shape[1])
        self._frames = np.zeros((len(data), self.n_steps, self.n_channels), dtype=np.float32)
        self._frames[:, :steps] = data[:, :steps]
        logger.info(
            "%s: %d samples of graded frames, %d classes, %d channels, %d steps of %g s",
            self.path,
            len(self),
            self.n_classes,
            self.n_channels,
            self.n_steps,
            self.dt,
        )

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        return torch.from_numpy(self._frames[index]), int(self.labels[index])

    def value_range(self) -> tuple[float, float]:
        """(min, max) of every value in the file's frames (after cropping / padding)."""
        return float(self._frames.min()), float(self._frames.max())
