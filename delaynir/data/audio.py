"""Audio data sets into the frames layout: the Heidelberg Digits audio layout, or WAV/FLAC files with a CSV of labels.

``convert_audio(in_dir, out_dir, FeatureConfig())`` (CLI: ``delaynir data audio --in DIR --out OUT``)
reads every recording, computes its filterbank frames (``delaynir.data.features``), shifts both
splits by the *training* split's minimum and writes ``OUT/train.h5`` and ``OUT/test.h5`` in the frames
layout (``delaynir.data.frames``). Two input layouts:

- Heidelberg Digits: ``audio/*.flac`` named ``lang-english_speaker-03_trial-0_digit-7.flac``
  (label = digit, + 10 for German; speaker from the name), split by ``train_filenames.txt`` and
  ``test_filenames.txt``.
- Any directory of WAV/FLAC files with a CSV (``labels.csv`` in it, or ``labels=``) whose header
  names the columns ``file`` (path relative to the directory) and ``label`` (integer >= 0), and
  optionally ``speaker`` (integer) and ``split`` (``train`` or ``test``; without it every file is
  training data and only ``train.h5`` is written).

Audio is decoded with soundfile (libsndfile: WAV, FLAC, OGG and more, no external process) and
resampled to the feature sample rate when it differs. A file that cannot be read, or holds no
samples or non-finite ones, stops the conversion with one error naming it; nothing is written
until every file has been read, and files appear atomically.
"""

from __future__ import annotations

import csv
import logging
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile
from tqdm.auto import tqdm

from delaynir.common.outputs import check_output
from delaynir.common.text import read_text
from delaynir.data.features import FeatureConfig, log_mel, normalise
from delaynir.data.frames import write_frames_file
from delaynir.data.speech import KEYS as HD_KEYS
from delaynir.data.speech import parse_hd_filename
from delaynir.errors import ConfigError, DataFormatError

logger = logging.getLogger(__name__)

HD_SPLITS = ("train_filenames.txt", "test_filenames.txt")
LABELS_CSV = "labels.csv"
SPLITS = ("train", "test")


class AudioFormatError(DataFormatError):
    """An audio file cannot be decoded, or an audio data set does not follow a supported layout."""


@dataclass(frozen=True)
class Recording:
    """One labelled audio file of a data set."""

    path: Path
    label: int
    speaker: int | None
    split: str


def hd_recordings(root: Path) -> list[Recording]:
    """The recordings of a Heidelberg Digits audio directory, in the order of its split files."""
    out = []
    for split, listing in zip(SPLITS, HD_SPLITS):
        text = read_text(root / listing, AudioFormatError, "the Heidelberg Digits split file")
        lines = [line.strip() for line in text.splitlines() if line.strip()]
        for number, line in enumerate(lines, 1):
            try:
                name = parse_hd_filename(line)
            except ConfigError as exc:
                raise AudioFormatError(f"{root / listing}, line {number}: {exc}") from None
            out.append(Recording(root / "audio" / line, name.label, name.speaker, split))
    return out


def csv_recordings(root: Path, labels: Path) -> list[Recording]:
    """The recordings listed in a labels CSV (module docstring), paths relative to ``root``."""
    text = read_text(labels, AudioFormatError, "the labels CSV")
    try:
        rows = list(csv.DictReader(text.splitlines()))
    except csv.Error as exc:
        raise AudioFormatError(f"{labels}: cannot be read as a CSV file ({exc})") from None
    columns = set(rows[0]) if rows else set()
    if not {"file", "label"} <= columns:
        raise AudioFormatError(
            f"{labels}: the header must name the columns file and label (optional: speaker, "
            f"split); found {sorted(columns) or 'no rows'}"
        )
    out = []
    for number, row in enumerate(rows, 2):
        try:
            label = int(row["label"])
            speaker = int(row["speaker"]) if row.get("speaker") not in (None, "") else None
        except ValueError:
            raise AudioFormatError(
                f"{labels}, line {number}: label and speaker must be integers, found "
                f"{row['label']!r}, {row.get('speaker')!r}"
            ) from None
        split = (row.get("split") or "train").strip()
        if label < 0 or split not in SPLITS:
            raise AudioFormatError(
                f"{labels}, line {number}: need a label >= 0 and split train or test, found {label}, {split!r}"
            )
        out.append(Recording(root / row["file"], label, speaker, split))
    return out


def find_recordings(root: str | os.PathLike, labels: str | os.PathLike | None = None) -> tuple[list[Recording], str]:
    """(recordings, layout name) of an audio directory: the HD layout, or a labels CSV (module docstring)."""
    root = Path(root)
    if not root.is_dir():
        raise AudioFormatError(
            f"{root}: no such directory (expected audio in the Heidelberg Digits layout or "
            f"WAV/FLAC files with {LABELS_CSV})"
        )
    if labels is None and all((root / name).is_file() for name in HD_SPLITS):
        return hd_recordings(root), "heidelberg-digits"
    labels = Path(labels) if labels is not None else root / LABELS_CSV
    if not labels.is_file():
        raise AudioFormatError(
            f"{root} is neither the Heidelberg Digits audio layout (audio/*.flac with {' and '.join(HD_SPLITS)}) nor "
            f"a directory of audio files with {LABELS_CSV} (columns file,label[,speaker][,split]); pass --labels CSV"
        )
    return csv_recordings(root, labels), "csv"


def read_audio(path: Path) -> tuple[np.ndarray, int]:
    """(samples float64, full scale ±1, sample rate) of an audio file; AudioFormatError naming it otherwise."""
    try:
        samples, rate = soundfile.read(path, dtype="float64", always_2d=False)
    except (OSError, RuntimeError, soundfile.LibsndfileError) as exc:  # missing, truncated, not audio
        raise AudioFormatError(
            f"{path}: cannot be decoded as audio ({exc}); re-encode it as WAV or FLAC or remove it from the listing"
        ) from None
    if samples.size == 0:
        raise AudioFormatError(f"{path}: holds no audio samples; remove it from the listing")
    if not np.isfinite(samples).all():
        raise AudioFormatError(f"{path}: holds NaN or infinite samples; re-encode it")
    return samples, int(rate)


def convert_audio(
    in_dir: str | os.PathLike,
    out_dir: str | os.PathLike,
    config: FeatureConfig | None = None,
    *,
    labels: str | os.PathLike | None = None,
    overwrite: bool = False,
    progress: bool = False,
) -> dict:
    """Filterbank frames of every recording of ``in_dir`` into ``out_dir``/train.h5 and test.h5; a summary dict."""
    config = config or FeatureConfig()
    config.validate()
    recordings, layout = find_recordings(in_dir, labels)
    train = [r for r in recordings if r.split == "train"]
    if not train:
        raise AudioFormatError(
            f"{in_dir}: no training recordings; the shift of the features is the training split's minimum"
        )
    out_dir = check_output(out_dir, overwrite=True, directory=True)  # a directory, not a file nor under one
    paths = {split: out_dir / f"{split}.h5" for split in SPLITS if any(r.split == split for r in recordings)}
    existing = [str(p) for p in paths.values() if p.exists()]
    if existing and not overwrite:
        raise ConfigError(f"{', '.join(existing)} already exist(s); pass --overwrite to replace them")
    db = {}
    for r in tqdm(recordings, desc="filterbank features", unit="file", disable=not progress):
        db[r.path] = log_mel(*read_audio(r.path), config)
    minimum = float(min(db[r.path].min() for r in train))
    keys = list(HD_KEYS) if layout == "heidelberg-digits" else None
    features = {
        **config.as_dict(),
        "shift_db": minimum,
        "source": layout,
        "value_range": [0.0, -minimum * config.scale],
    }
    with_speakers = all(r.speaker is not None for r in recordings)
    summary = {"layout": layout, "in": str(in_dir), "features": features}
    out_dir.mkdir(parents=True, exist_ok=True)
    for split, path in paths.items():
        chosen = [r for r in recordings if r.split == split]
        speaker_ids = [r.speaker for r in chosen if r.speaker is not None] if with_speakers else None
        frames = np.stack([normalise(db[r.path], minimum, config) for r in chosen])
        write_frames_file(
            path,
            frames,
            [r.label for r in chosen],
            dt=config.hop,
            keys=keys,
            speakers=speaker_ids,
            files=[str(r.path.relative_to(Path(in_dir))) for r in chosen],
            features=features,
            overwrite=overwrite,
        )
        summary[split] = {
            "path": str(path),
            "samples": len(chosen),
            "speakers": sorted(set(speaker_ids)) if speaker_ids is not None else None,
            "clipped_below_training_minimum": int(sum((db[r.path] < minimum).sum() for r in chosen)),
        }
    logger.info(
        "wrote %s from %d recordings (%s layout): %d bands x %d frames of %g s, training minimum %.1f dB",
        ", ".join(map(str, paths.values())),
        len(recordings),
        layout,
        config.n_bands,
        config.n_frames,
        config.hop,
        minimum,
    )
    return summary
