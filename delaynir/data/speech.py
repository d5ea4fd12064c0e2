"""Spoken digits from espeak-ng speakers: audio in the Heidelberg Digits layout, spikes in the SHD layout.

``generate_speech(out_dir, SpeechConfig(...))`` (CLI: ``delaynir data speech``) writes::

    out_dir/audio/lang-english_speaker-03_trial-0_digit-7.flac    one utterance per file (HD names)
    out_dir/train_filenames.txt, out_dir/test_filenames.txt        the split, one file name per line
    out_dir/train.h5, out_dir/test.h5                              spikes (SHD layout), samples in the
                                                                   order of the *_filenames.txt lines

20 classes as SHD: English zero..nine are labels 0-9, German null..neun labels 10-19
(label = 10 · language + digit). 12 speakers, each a fixed espeak-ng voice variant (one
English voice and one German voice of the same variant, so each speaker speaks both
languages, as in HD) with a base rate (words per minute), pitch (espeak units 0-99),
amplitude (espeak units 0-200), speech-to-noise ratio (dB) and frequency warp. Speakers 4 and 5 occur only
in the test split (as SHD); of the other speakers the last ``test_trials`` trials of every
class go to the test split too.

One utterance (trial) of word w by speaker s, all random numbers drawn from a generator
seeded by (seed, speaker, language, digit, trial), so the output does not depend on the
order or parallelism in which utterances are made:

1. espeak-ng speaks w with rate r = round(r_s · (1 + u_r)), u_r ~ U(−rate_jitter, rate_jitter),
   pitch p = clip(round(p_s + u_p), 0, 99), u_p ~ U(−pitch_jitter, pitch_jitter), and the
   speaker's amplitude (``espeak-ng -v VOICE -s r -p p -a A -z --stdout WORD``, 16-bit PCM at
   espeak's 22050 Hz).
2. Leading and trailing silence (samples below −50 dB re the word's peak) is trimmed. The
   word is resampled (band-limited, by zero-padding / truncating its spectrum) from
   22050 · φ to ``sample_rate`` Hz, φ = warp_s · (1 + u_w), u_w ~ U(−warp_jitter, warp_jitter),
   which multiplies all its frequencies by φ and its duration by 1 / φ (the speaker's
   vocal tract length), and scaled by a gain of u_g dB, u_g ~ U(−gain_jitter_db, gain_jitter_db).
3. It is placed after a leading silence t_0 ~ U(onset) seconds (lowered when the word would
   not end 20 ms before ``duration``); the recording lasts max(duration, t_0 + word + 20 ms) s.
4. Background noise with a pink spectrum (power spectral density ∝ 1/f) is added over the
   whole recording at SNR = snr_s + u_n dB, u_n ~ U(−snr_jitter_db, snr_jitter_db), where
   SNR = 20 · log10(rms(word) / rms(noise)).
5. The sum is clipped to ±1 (full scale) and stored as 16-bit PCM FLAC; the spikes are made
   from exactly these samples (as ``soundfile.read`` returns them: int16 / 32768), so
   re-encoding a FLAC file gives its sample's spikes again.

The spikes are the cochlea front end's (``delaynir.data.cochlea``, 700 channels by default)
over the first ``duration`` seconds of each recording. espeak-ng runs in ``workers``
parallel subprocesses; the same seed gives byte-identical FLAC and HDF5 files.
"""

from __future__ import annotations

import json
import logging
import math
import os
import re
import shutil
import subprocess
import time
import uuid
from collections import deque
from collections.abc import Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import NamedTuple, cast

import numpy as np
import soundfile
from tqdm.auto import tqdm

from delaynir.common.outputs import check_output
from delaynir.data.cochlea import Cochlea, CochleaConfig, lif_run
from delaynir.data.synth import write_spike_file
from delaynir.errors import ConfigError, DelayNIRError

logger = logging.getLogger(__name__)

LANGUAGES = ("english", "german")
#: What espeak-ng is asked to say, per language, digit 0..9.
WORDS = {
    "english": ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"),
    "german": ("null", "eins", "zwei", "drei", "vier", "fünf", "sechs", "sieben", "acht", "neun"),
}
#: Label names (``extra/keys``): label = 10 · language index + digit.
KEYS = WORDS["english"] + WORDS["german"]
N_CLASSES = len(KEYS)
OUTPUTS = ("audio", "train_filenames.txt", "test_filenames.txt", "train.h5", "test.h5")
INSTALL_HINT = "install it: apt-get install espeak-ng (Debian/Ubuntu), brew install espeak-ng (macOS)"
SILENCE_DB = -50.0  # trimming threshold, dB re the word's peak
TAIL = 0.02  # s of recording kept after the word
BATCH = 16  # utterances encoded together by the spiking stage
ESPEAK_TIMEOUT = 60.0  # s per espeak-ng call


class SpeechToolError(DelayNIRError):
    """espeak-ng is missing, or it failed to speak a word."""


@dataclass(frozen=True)
class Speaker:
    """One synthetic speaker: its espeak-ng voices (``-v``) and base prosody.

    english_voice / german_voice: espeak-ng voice names, language + variant (``en-us+m1``);
    rate: words per minute (``-s``); pitch: 0-99 (``-p``); amplitude: 0-200 (``-a``);
    snr_db: speech-to-noise ratio of its recordings (dB); warp: factor scaling every
    frequency of its voice (and its durations by 1 / warp), as a shorter (> 1) or longer
    (< 1) vocal tract would.
    """

    id: int
    english_voice: str
    german_voice: str
    rate: int
    pitch: int
    amplitude: int
    snr_db: float
    warp: float

    def voice(self, language: str) -> str:
        return self.english_voice if language == "english" else self.german_voice


#: The 12 speakers (6 male, 6 female voice variants); 4 and 5 are the test-only ones by default.
SPEAKERS: tuple[Speaker, ...] = (
    Speaker(0, "en-us+m1", "de+m1", 160, 40, 100, 30.0, 0.97),
    Speaker(1, "en+f1", "de+f1", 150, 62, 110, 28.0, 1.04),
    Speaker(2, "en-us+m3", "de+m3", 175, 35, 90, 32.0, 0.95),
    Speaker(3, "en+f3", "de+f3", 165, 70, 100, 25.0, 1.06),
    Speaker(4, "en-gb-scotland+m4", "de+m4", 145, 48, 120, 27.0, 0.99),
    Speaker(5, "en-us+f4", "de+f4", 185, 66, 95, 30.0, 1.03),
    Speaker(6, "en+m2", "de+m2", 140, 45, 105, 22.0, 1.0),
    Speaker(7, "en-us+f2", "de+f2", 170, 58, 100, 35.0, 1.02),
    Speaker(8, "en-gb-x-rp+m6", "de+m6", 155, 30, 115, 26.0, 0.96),
    Speaker(9, "en+f5", "de+f5", 160, 75, 90, 24.0, 1.07),
    Speaker(10, "en-us+m7", "de+m7", 180, 52, 100, 29.0, 0.98),
    Speaker(11, "en-029+m5", "de+m5", 135, 42, 110, 31.0, 0.94),
)
TEST_SPEAKERS = (4, 5)


# ----------------------------------------------------------------------------- HD file names


class HDName(NamedTuple):
    """The fields of a Heidelberg Digits file name; ``label`` = 10 · language index + digit."""

    language: str
    speaker: int
    trial: int
    digit: int

    @property
    def label(self) -> int:
        return 10 * LANGUAGES.index(self.language) + self.digit

    @property
    def filename(self) -> str:
        return hd_filename(self.language, self.speaker, self.trial, self.digit)


_HD_NAME = re.compile(r"lang-(english|german)_speaker-(\d{2,})_trial-(\d+)_digit-(\d)\.flac")


def hd_filename(language: str, speaker: int, trial: int, digit: int) -> str:
    """``lang-english_speaker-03_trial-0_digit-7.flac`` (speaker with at least two digits)."""
    if language not in LANGUAGES:
        raise ConfigError(f"language must be one of {LANGUAGES}, got {language!r}")
    return f"lang-{language}_speaker-{speaker:02d}_trial-{trial}_digit-{digit}.flac"


def parse_hd_filename(name: str | os.PathLike) -> HDName:
    """The fields of an HD file name (a path's last component); ConfigError if it is not one."""
    base = Path(name).name
    match = _HD_NAME.fullmatch(base)
    if not match:
        raise ConfigError(
            f"{base!r} is not a Heidelberg Digits file name "
            f"(expected e.g. lang-english_speaker-03_trial-0_digit-7.flac)"
        )
    language, speaker, trial, digit = match.groups()
    return HDName(language, int(speaker), int(trial), int(digit))


def read_split(path: str | os.PathLike) -> list[HDName]:
    """The file names listed in an HD split file (``train_filenames.txt``), parsed, in order."""
    lines = Path(path).read_text(encoding="utf-8").splitlines()
    return [parse_hd_filename(line.strip()) for line in lines if line.strip()]


# ----------------------------------------------------------------------------- configuration


def _is_int(value: object) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, bool)


def _is_number(value: object) -> bool:
    return isinstance(value, (int, float, np.number)) and not isinstance(value, bool) and math.isfinite(value)


@dataclass
class SpeechConfig:
    """What ``generate_speech`` makes. Times in seconds, levels in dB.

    trials: utterances per speaker and class; test_trials: of those, how many of each
    training speaker go to the test split (the last ones; None: 1 when trials >= 2, else 0);
    speakers: ids (0-11) of the speakers used; test_speakers: those only in the test split;
    duration: seconds of each sample's spikes (recordings are cropped / padded to it);
    sample_rate: Hz of the audio; seed: seeds every random draw; workers: espeak-ng
    subprocesses and analysis threads run in parallel (0: one per CPU); rate_jitter:
    relative, pitch_jitter: espeak pitch units, warp_jitter: relative, gain_jitter_db,
    snr_jitter_db: half-widths
    of the uniform per-trial jitters; onset: range of the leading silence (s); cochlea: the
    front end; espeak: the espeak-ng executable (name on PATH or path).
    """

    trials: int = 12
    test_trials: int | None = None
    speakers: tuple[int, ...] = tuple(range(len(SPEAKERS)))
    test_speakers: tuple[int, ...] = TEST_SPEAKERS
    duration: float = 1.0
    sample_rate: int = 16000
    seed: int = 0
    workers: int = 2
    rate_jitter: float = 0.12
    pitch_jitter: float = 10.0
    warp_jitter: float = 0.03
    gain_jitter_db: float = 2.0
    snr_jitter_db: float = 3.0
    onset: tuple[float, float] = (0.02, 0.25)
    cochlea: CochleaConfig = field(default_factory=CochleaConfig)
    espeak: str = "espeak-ng"

    def __post_init__(self) -> None:
        if isinstance(self.cochlea, dict):
            self.cochlea = CochleaConfig(**self.cochlea)
        self.speakers = tuple(self.speakers)
        self.test_speakers = tuple(self.test_speakers)
        self.onset = cast("tuple[float, float]", tuple(self.onset))  # its length is checked below
        for name, low in (("trials", 1), ("sample_rate", 1000), ("seed", 0), ("workers", 0)):
            value = getattr(self, name)
            if not _is_int(value) or value < low:
                raise ConfigError(f"SpeechConfig.{name} must be an integer >= {low}, got {value!r}")
        if self.test_trials is not None and (not _is_int(self.test_trials) or not 0 <= self.test_trials < self.trials):
            raise ConfigError(
                f"SpeechConfig.test_trials must be an integer in 0..trials-1 = {self.trials - 1} (some trials of "
                f"every training speaker must stay in the training split), got {self.test_trials!r}"
            )
        known = range(len(SPEAKERS))
        for name in ("speakers", "test_speakers"):
            ids = getattr(self, name)
            bad = [s for s in ids if not _is_int(s) or s not in known]
            if bad or len(set(ids)) != len(ids):
                raise ConfigError(
                    f"SpeechConfig.{name} must be distinct speaker ids in 0..{len(SPEAKERS) - 1}, got {list(ids)}"
                )
        if not self.speakers:
            raise ConfigError("SpeechConfig.speakers is empty; name at least one speaker")
        missing = sorted(set(self.test_speakers) - set(self.speakers))
        if missing:
            raise ConfigError(f"SpeechConfig.test_speakers {missing} are not among speakers {list(self.speakers)}")
        if not self.train_speakers:
            raise ConfigError("SpeechConfig: every speaker is a test speaker, so the training split would be empty")
        for name in ("duration", "rate_jitter", "pitch_jitter", "warp_jitter", "gain_jitter_db", "snr_jitter_db"):
            value = getattr(self, name)
            if not _is_number(value) or value < 0 or (name == "duration" and value == 0):
                raise ConfigError(f"SpeechConfig.{name} must be a finite number >= 0 (duration > 0), got {value!r}")
        for name in ("rate_jitter", "warp_jitter"):
            if getattr(self, name) >= 0.5:
                raise ConfigError(f"SpeechConfig.{name} must be below 0.5 (relative), got {getattr(self, name)}")
        lo_hi = self.onset
        if len(lo_hi) != 2 or not all(_is_number(v) for v in lo_hi) or not 0 <= lo_hi[0] <= lo_hi[1] < self.duration:
            raise ConfigError(
                f"SpeechConfig.onset must be (low, high) seconds with 0 <= low <= high < duration, got {self.onset!r}"
            )
        if not isinstance(self.cochlea, CochleaConfig):
            raise ConfigError(f"SpeechConfig.cochlea must be a CochleaConfig, got {type(self.cochlea).__name__}")
        Cochlea(self.cochlea, self.sample_rate)  # checks dt, window and f_max against the sample rate

    @property
    def train_speakers(self) -> tuple[int, ...]:
        return tuple(s for s in self.speakers if s not in self.test_speakers)

    @property
    def held_out_trials(self) -> int:
        """Trials per training speaker and class that go to the test split."""
        if self.test_trials is not None:
            return self.test_trials
        return 1 if self.trials >= 2 else 0

    def utterances(self) -> tuple[list[HDName], list[HDName]]:
        """(train, test) utterances, each ordered by language, speaker, trial, digit."""
        train: list[HDName] = []
        test: list[HDName] = []
        first_test_trial = self.trials - self.held_out_trials
        for language in LANGUAGES:
            for speaker in sorted(self.speakers):
                for trial in range(self.trials):
                    for digit in range(10):
                        name = HDName(language, speaker, trial, digit)
                        in_test = speaker in self.test_speakers or trial >= first_test_trial
                        (test if in_test else train).append(name)
        return train, test


# ----------------------------------------------------------------------------- espeak-ng


def find_espeak(executable: str = "espeak-ng") -> str:
    """Full path of the espeak-ng executable; SpeechToolError saying how to install it if absent."""
    found = shutil.which(executable)
    if found is None:
        raise SpeechToolError(f"{executable!r} was not found on PATH; spoken digits need espeak-ng: {INSTALL_HINT}")
    return found


def parse_wav(data: bytes) -> tuple[np.ndarray, int]:
    """(int16 mono samples, sample rate in Hz) of a 16-bit PCM WAV.

    Accepts the header espeak-ng writes to stdout, whose RIFF and data sizes are
    placeholders (0x7ffff000): the data chunk runs to the end of the bytes then.
    """
    if len(data) < 12 or data[:4] != b"RIFF" or data[8:12] != b"WAVE":
        raise SpeechToolError("espeak-ng did not write a WAV file (no RIFF/WAVE header)")
    pos, rate, samples = 12, None, None
    while pos + 8 <= len(data):
        chunk, size = data[pos : pos + 4], int.from_bytes(data[pos + 4 : pos + 8], "little")
        body = data[pos + 8 : pos + 8 + size]
        if chunk == b"fmt ":
            fmt, channels, rate = (int.from_bytes(body[i:j], "little") for i, j in ((0, 2), (2, 4), (4, 8)))
            bits = int.from_bytes(body[14:16], "little")
            if fmt != 1 or channels != 1 or bits != 16:
                raise SpeechToolError(
                    f"espeak-ng wrote WAV format {fmt}, {channels} channel(s), {bits} bits; expected 16-bit PCM mono"
                )
        elif chunk == b"data":
            samples = np.frombuffer(body[: len(body) // 2 * 2], dtype="<i2").astype(np.int16)
            break
        pos += 8 + size + (size & 1)
    if rate is None or samples is None:
        raise SpeechToolError("espeak-ng's WAV output has no fmt or data chunk")
    return samples, rate


def speak(
    text: str, voice: str, *, rate: int = 175, pitch: int = 50, amplitude: int = 100, executable: str = "espeak-ng"
) -> tuple[np.ndarray, int]:
    """espeak-ng's rendering of ``text``: (int16 samples, sample rate Hz). No shell is involved."""
    command = [
        executable,
        "-v",
        voice,
        "-s",
        str(int(rate)),
        "-p",
        str(int(pitch)),
        "-a",
        str(int(amplitude)),
        "-z",
        "--stdout",
        text,
    ]
    try:
        proc = subprocess.run(command, capture_output=True, timeout=ESPEAK_TIMEOUT, check=False)
    except FileNotFoundError:
        raise SpeechToolError(
            f"{executable!r} could not be run; spoken digits need espeak-ng: {INSTALL_HINT}"
        ) from None
    except subprocess.TimeoutExpired:
        raise SpeechToolError(f"espeak-ng took over {ESPEAK_TIMEOUT:g} s to speak {text!r} ({voice})") from None
    if proc.returncode != 0 or not proc.stdout:
        stderr = proc.stderr.decode("utf-8", "replace").strip()
        raise SpeechToolError(
            f"espeak-ng failed to speak {text!r} with voice {voice!r} (exit {proc.returncode}): {stderr or 'no output'}"
        )
    samples, sr = parse_wav(proc.stdout)
    if not samples.size or not np.any(samples):
        raise SpeechToolError(f"espeak-ng produced silence for {text!r} with voice {voice!r}")
    return samples, sr


# ----------------------------------------------------------------------------- audio


def resample(x: np.ndarray, rate_in: float, rate_out: float) -> np.ndarray:
    """Band-limited resampling of a 1-D signal (float64) by zero-padding / truncating its spectrum."""
    if rate_in == rate_out:
        return np.asarray(x, dtype=np.float64)
    n = len(x)
    m = max(1, int(round(n * rate_out / rate_in)))
    spectrum = np.fft.rfft(x)
    keep = min(len(spectrum), m // 2 + 1)
    out = np.zeros(m // 2 + 1, dtype=complex)
    out[:keep] = spectrum[:keep]
    return np.fft.irfft(out, n=m) * (m / n)


def trim_silence(x: np.ndarray, threshold_db: float = SILENCE_DB) -> np.ndarray:
    """``x`` without leading and trailing samples below ``threshold_db`` dB re its peak."""
    loud = np.flatnonzero(np.abs(x) > np.abs(x).max() * 10 ** (threshold_db / 20))
    return x[loud[0] : loud[-1] + 1] if loud.size else x[:0]


def pink_noise(n: int, rng: np.random.Generator) -> np.ndarray:
    """``n`` samples of Gaussian noise with power spectral density ∝ 1/f (DC removed), unit rms."""
    spectrum = rng.standard_normal(n // 2 + 1) + 1j * rng.standard_normal(n // 2 + 1)
    scale = np.zeros(n // 2 + 1)
    scale[1:] = 1.0 / np.sqrt(np.arange(1, n // 2 + 1))
    noise = np.fft.irfft(spectrum * scale, n=n)
    rms = np.sqrt(np.mean(noise**2))
    return noise / rms if rms > 0 else noise


@dataclass(frozen=True)
class Utterance:
    """One rendered recording: its HD name, 16-bit samples and what was drawn for it."""

    name: HDName
    samples: np.ndarray  # int16, sample_rate Hz
    rate: int  # espeak words per minute
    pitch: int
    warp: float
    onset: float  # s
    snr_db: float


def _seeds(config: SpeechConfig, name: HDName) -> tuple[np.random.Generator, np.random.Generator]:
    """(audio, spike) generators of one utterance, independent of the order utterances are made in."""
    key = [config.seed, name.speaker, LANGUAGES.index(name.language), name.digit, name.trial]
    audio_seed, spike_seed = np.random.SeedSequence(key).spawn(2)
    return np.random.default_rng(audio_seed), np.random.default_rng(spike_seed)


def render(config: SpeechConfig, name: HDName, rng: np.random.Generator, executable: str) -> Utterance:
    """Steps 1-5 of the module docstring for one utterance."""
    speaker = SPEAKERS[name.speaker]
    rate = int(round(speaker.rate * (1 + rng.uniform(-config.rate_jitter, config.rate_jitter))))
    pitch = int(np.clip(round(speaker.pitch + rng.uniform(-config.pitch_jitter, config.pitch_jitter)), 0, 99))
    warp = speaker.warp * (1 + rng.uniform(-config.warp_jitter, config.warp_jitter))
    gain_db = rng.uniform(-config.gain_jitter_db, config.gain_jitter_db)
    snr_db = speaker.snr_db + rng.uniform(-config.snr_jitter_db, config.snr_jitter_db)
    onset_draw = rng.uniform(*config.onset)
    noise_rng = np.random.default_rng(rng.integers(2**63))
    raw, espeak_rate = speak(
        WORDS[name.language][name.digit],
        speaker.voice(name.language),
        rate=rate,
        pitch=pitch,
        amplitude=speaker.amplitude,
        executable=executable,
    )
    word = trim_silence(raw.astype(np.float64) / 32768.0)
    word = resample(word, espeak_rate * warp, config.sample_rate) * 10 ** (gain_db / 20)
    sr = config.sample_rate
    latest = config.duration - TAIL - len(word) / sr  # latest onset that ends the word TAIL before duration
    onset = float(min(onset_draw, max(latest, config.onset[0])))
    start = int(round(onset * sr))
    length = max(int(round(config.duration * sr)), start + len(word) + int(round(TAIL * sr)))
    signal = pink_noise(length, noise_rng) * (np.sqrt(np.mean(word**2)) / 10 ** (snr_db / 20))
    signal[start : start + len(word)] += word
    samples = np.round(np.clip(signal, -1.0, 1.0) * 32767).astype(np.int16)
    if start + len(word) > config.duration * sr:
        logger.warning("%s: the word lasts past %g s; its spikes are cropped there", name.filename, config.duration)
    return Utterance(name, samples, rate, pitch, float(warp), onset, float(snr_db))


# ----------------------------------------------------------------------------- generation


@dataclass
class SpeechSummary:
    """What ``generate_speech`` wrote: paths, counts, speakers per split, mean spikes per sample."""

    out: str
    train: str
    test: str
    audio: str
    n_train: int
    n_test: int
    train_speakers: list[int]
    test_speakers: list[int]
    mean_spikes_train: float
    mean_spikes_test: float
    mean_spikes: float
    n_channels: int
    duration: float
    sample_rate: int
    seconds: float
    config: dict

    def as_dict(self) -> dict:
        return asdict(self)


def _check_outputs(out_dir: Path, overwrite: bool) -> None:
    check_output(out_dir, overwrite=True, directory=True)  # a directory, not a file nor under one
    existing = [str(out_dir / name) for name in OUTPUTS if (out_dir / name).exists()]
    if existing and not overwrite:
        raise ConfigError(
            f"{', '.join(existing)} already exist(s); pass overwrite=True (CLI: --overwrite) to replace them"
        )


def _install(staging: Path, out_dir: Path) -> None:
    """Move the finished outputs from ``staging`` into ``out_dir`` (renames; old outputs replaced)."""
    if not out_dir.exists():
        os.replace(staging, out_dir)
        return
    for name in OUTPUTS:  # HDF5 files last: they appear once the audio and split files are in place
        target = out_dir / name
        if target.exists():
            old = out_dir / f".{name}.{uuid.uuid4().hex}.old"
            os.replace(target, old)
            os.replace(staging / name, target)
            if old.is_dir():
                shutil.rmtree(old)
            else:
                old.unlink()
        else:
            os.replace(staging / name, target)


def _batches(items: Sequence[HDName], size: int) -> Iterator[Sequence[HDName]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def spikes_from_audio(
    audio: np.ndarray, name: HDName, config: SpeechConfig, cochlea: Cochlea | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """The spikes ``generate_speech`` stores for utterance ``name``, made from its audio.

    ``audio``: the recording as ``soundfile.read(path, dtype="float32")`` returns its FLAC file
    (full scale ±1); returns (times in s, float32; channels, uint16) of the first
    ``config.duration`` seconds, with the utterance's own membrane noise.
    """
    cochlea = Cochlea(config.cochlea, config.sample_rate) if cochlea is None else cochlea
    _, spike_rng = _seeds(config, name)
    x = cochlea.lif_input(np.asarray(audio, np.float32), cochlea.n_steps(config.duration), spike_rng)
    return lif_run(x[:, None], config.cochlea)[0]


def _prepare(
    config: SpeechConfig, cochlea: Cochlea, name: HDName, audio_dir: Path, executable: str, out: np.ndarray
) -> None:
    """Render one utterance, write its FLAC file and the spiking stage's input into ``out`` (n_steps, n_channels)."""
    audio_rng, spike_rng = _seeds(config, name)
    utterance = render(config, name, audio_rng, executable)
    soundfile.write(audio_dir / name.filename, utterance.samples, config.sample_rate, format="FLAC", subtype="PCM_16")
    audio = utterance.samples.astype(np.float32) / np.float32(32768.0)
    out[...] = cochlea.lif_input(audio, len(out), spike_rng)


def _encode_all(
    config: SpeechConfig, items: Sequence[HDName], audio_dir: Path, executable: str, progress: bool
) -> list[tuple[np.ndarray, np.ndarray]]:
    """Spikes of every utterance in ``items`` (in order), writing their FLAC files on the way.

    Workers render and analyse batch k+1 and k+2 while the spiking stage runs on batch k.
    """
    cochlea = Cochlea(config.cochlea, config.sample_rate)
    workers = config.workers or os.cpu_count() or 1
    batches = _batches(items, BATCH)
    n_steps = cochlea.n_steps(config.duration)
    spikes: list[tuple[np.ndarray, np.ndarray]] = []
    pending: deque[tuple[np.ndarray, list[Future]]] = deque()
    bar = tqdm(total=len(items), unit="utterance", desc="speaking digits", disable=not progress)
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="delaynir-speech") as pool:

        def submit() -> None:
            batch = next(batches, None)
            if batch is not None:
                inputs = np.empty((n_steps, len(batch), config.cochlea.n_channels), np.float32)  # time-first
                futures = [
                    pool.submit(_prepare, config, cochlea, name, audio_dir, executable, inputs[:, j])
                    for j, name in enumerate(batch)
                ]
                pending.append((inputs, futures))

        try:
            for _ in range(2):
                submit()
            while pending:
                inputs, futures = pending.popleft()
                for f in futures:
                    f.result()
                submit()
                spikes.extend(lif_run(inputs, config.cochlea))
                bar.update(len(futures))
        except BaseException:
            for _, futures in pending:
                for f in futures:
                    f.cancel()
            raise
        finally:
            bar.close()
    return spikes


def generate_speech(
    out_dir: str | os.PathLike, config: SpeechConfig | None = None, *, overwrite: bool = False, progress: bool = False
) -> SpeechSummary:
    """Write the spoken-digit data set of ``config`` into ``out_dir`` (layout: module docstring).

    Everything is made in a hidden sibling directory and renamed into place at the end, so an
    interrupted run leaves no partial outputs. Refuses (ConfigError) when any output exists
    unless ``overwrite``; SpeechToolError when espeak-ng is missing or fails.
    """
    config = SpeechConfig() if config is None else config
    if not isinstance(config, SpeechConfig):
        raise ConfigError(f"config must be a SpeechConfig, got {type(config).__name__}")
    out_dir = Path(out_dir)
    _check_outputs(out_dir, overwrite)
    train, test = config.utterances()
    if not test:
        raise ConfigError("the test split is empty: name test speakers or set test_trials >= 1 (with trials >= 2)")
    executable = find_espeak(config.espeak)
    started = time.perf_counter()
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    staging = out_dir.parent / f".{out_dir.name}.{uuid.uuid4().hex}.tmp"
    staging.mkdir()
    try:
        audio_dir = staging / "audio"
        audio_dir.mkdir()
        spikes = _encode_all(config, train + test, audio_dir, executable, progress)
        record = asdict(config)
        for machine_specific in ("espeak", "workers"):  # the files do not depend on these
            record.pop(machine_specific)
        attrs = {
            "speech_config": json.dumps(record, sort_keys=True),
            "speakers": json.dumps([asdict(SPEAKERS[s]) for s in config.speakers], sort_keys=True),
            "sample_rate": np.int64(config.sample_rate),
        }
        counts = {}
        for split, names, part in (("train", train, spikes[: len(train)]), ("test", test, spikes[len(train) :])):
            (staging / f"{split}_filenames.txt").write_text("".join(n.filename + "\n" for n in names), "utf-8")
            write_spike_file(
                staging / f"{split}.h5",
                [p[0] for p in part],
                [p[1] for p in part],
                [n.label for n in names],
                speakers=[n.speaker for n in names],
                keys=list(KEYS),
                n_channels=config.cochlea.n_channels,
                duration=float(config.duration),
                attrs=attrs,
            )
            counts[split] = [len(p[0]) for p in part]
        _install(staging, out_dir)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    all_counts = counts["train"] + counts["test"]
    summary = SpeechSummary(
        out=str(out_dir),
        train=str(out_dir / "train.h5"),
        test=str(out_dir / "test.h5"),
        audio=str(out_dir / "audio"),
        n_train=len(train),
        n_test=len(test),
        train_speakers=sorted({n.speaker for n in train}),
        test_speakers=sorted({n.speaker for n in test}),
        mean_spikes_train=float(np.mean(counts["train"])),
        mean_spikes_test=float(np.mean(counts["test"])),
        mean_spikes=float(np.mean(all_counts)),
        n_channels=config.cochlea.n_channels,
        duration=float(config.duration),
        sample_rate=config.sample_rate,
        seconds=round(time.perf_counter() - started, 2),
        config=asdict(config),
    )
    logger.info(
        "wrote %s: %d train / %d test utterances, %.0f spikes per sample on average, %.1f s",
        out_dir,
        summary.n_train,
        summary.n_test,
        summary.mean_spikes,
        summary.seconds,
    )
    return summary
