"""Mel-filterbank frames from audio, as the RawHD preprocessing of Mészáros, Knight & Nowotny (2024) computes them.

For one recording x (mono, full scale ±1) at ``sample_rate`` Hz (other rates are resampled first):

1. pre-emphasis:        y[n] = x[n] − 0.95 · x[n − 1]   (y[0] = x[0])
2. frames:              frame k holds y[k·H … k·H + W − 1], W = frame_length · rate (25 ms), H = hop · rate
                        (10 ms), times a Hamming window; a recording shorter than W is zero-padded to W
3. power spectrum:      P_k[f] = |rfft(frame k, n_fft)|² / n_fft        (n_fft = 512)
4. mel filterbank:      M_k[b] = Σ_f T_b(freq f) · P_k[f], T_b the triangle on the HTK mel scale
                        mel(f) = 2595 · log10(1 + f / 700) rising from edge b to b + 1 and falling to b + 2
                        of ``n_bands`` + 2 edges equally spaced in mel from f_min to f_max (0 Hz … rate / 2)
5. dB re the file:      D_k[b] = 10 · log10(max(M_k[b], 1e-10)) − max_{k, b} of the same, over every frame
                        of the recording (≤ 0 dB)
6. fixed length:        the first ``n_frames`` frames (100 = 1 s); missing frames are filled after step 7
7. shift and scale:     X = max(0, D − m) · scale, m the minimum of D over the *training* split, and
                        missing frames X = 0 (the training minimum, silence)

``scale`` = 0.00099 × 20: the public preprocessing multiplies by 0.00099 and the paper's data loader
(``datasets.RawHD``) multiplies the stored arrays by 20 again. Unlike the public script, which shifts
each split by its own minimum, the test split is shifted by the training split's minimum m (no
statistic of the test set is used); a test value below it is clipped to 0, so every feature lies in
[0, −m · scale].
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np

from delaynir.data.speech import resample
from delaynir.errors import ConfigError

DB_FLOOR_POWER = 1e-10  #: power floor before the logarithm (−100 dB)


@dataclass(frozen=True)
class FeatureConfig:
    """Filterbank settings; defaults are the paper's (module docstring). Times in seconds, frequencies in Hz."""

    n_bands: int = 40  #: mel bands: the paper's n_inputs
    n_frames: int = 100  #: frames per sample (crop or pad); 100 × 10 ms = 1 s
    sample_rate: int = 16000  #: audio is resampled to this rate first
    frame_length: float = 0.025  #: STFT window, s
    hop: float = 0.010  #: STFT hop, s: the time step dt of the frames
    n_fft: int = 512
    preemphasis: float = 0.95
    f_min: float = 0.0
    f_max: float = 0.0  #: 0 = sample_rate / 2
    scale: float = 0.00099 * 20  #: after the shift by the training minimum (module docstring)

    def validate(self) -> None:
        window = self.window_samples
        checks = [
            (self.n_bands >= 1, f"n_bands must be >= 1 (got {self.n_bands})"),
            (self.n_frames >= 1, f"n_frames must be >= 1 (got {self.n_frames})"),
            (self.sample_rate > 0, f"sample_rate must be > 0 Hz (got {self.sample_rate})"),
            (self.hop > 0 and self.frame_length > 0, "frame_length and hop must be > 0 seconds"),
            (1 <= window <= self.n_fft, f"the frame ({window} samples) must fit n_fft = {self.n_fft}: raise n_fft"),
            (self.hop_samples >= 1, f"hop {self.hop} s is shorter than one sample at {self.sample_rate} Hz"),
            (0 <= self.preemphasis < 1, f"preemphasis must be in [0, 1) (got {self.preemphasis})"),
            (
                0 <= self.f_min < self.upper_hz <= self.sample_rate / 2,
                f"need 0 <= f_min < f_max <= sample_rate / 2 (got {self.f_min}, {self.upper_hz})",
            ),
            (self.scale > 0 and math.isfinite(self.scale), f"scale must be a positive number (got {self.scale})"),
        ]
        problems = [message for ok, message in checks if not ok]
        if problems:
            raise ConfigError("invalid feature settings:\n  " + "\n  ".join(problems))

    @property
    def window_samples(self) -> int:
        return int(round(self.frame_length * self.sample_rate))

    @property
    def hop_samples(self) -> int:
        return int(round(self.hop * self.sample_rate))

    @property
    def upper_hz(self) -> float:
        return self.f_max or self.sample_rate / 2

    def as_dict(self) -> dict:
        return asdict(self)


def hz_to_mel(f: np.ndarray | float) -> np.ndarray:
    """HTK mel scale: 2595 · log10(1 + f / 700)."""
    return 2595.0 * np.log10(1.0 + np.asarray(f, dtype=np.float64) / 700.0)


def mel_to_hz(m: np.ndarray | float) -> np.ndarray:
    return 700.0 * (10.0 ** (np.asarray(m, dtype=np.float64) / 2595.0) - 1.0)


def mel_filterbank(config: FeatureConfig) -> np.ndarray:
    """(n_bands, n_fft // 2 + 1) triangular weights on the FFT bin frequencies (module docstring, step 4)."""
    edges = mel_to_hz(np.linspace(hz_to_mel(config.f_min), hz_to_mel(config.upper_hz), config.n_bands + 2))
    freqs = np.arange(config.n_fft // 2 + 1) * config.sample_rate / config.n_fft
    low, centre, high = edges[:-2, None], edges[1:-1, None], edges[2:, None]
    rising = (freqs - low) / (centre - low)
    falling = (high - freqs) / (high - centre)
    return np.maximum(0.0, np.minimum(rising, falling))


def log_mel(audio: np.ndarray, rate: float, config: FeatureConfig) -> np.ndarray:
    """Steps 1-6 of the module docstring: (n_frames or fewer, n_bands) float64 dB relative to the file's maximum."""
    x = np.asarray(audio, dtype=np.float64)
    if x.ndim == 2:  # (samples, channels) as soundfile returns several channels: their mean
        x = x.mean(axis=1)
    if rate != config.sample_rate:
        x = resample(x, rate, config.sample_rate)
    y = np.concatenate([x[:1], x[1:] - config.preemphasis * x[:-1]])
    window, hop = config.window_samples, config.hop_samples
    if len(y) < window:
        y = np.pad(y, (0, window - len(y)))
    frames = np.lib.stride_tricks.sliding_window_view(y, window)[::hop] * np.hamming(window)
    power = np.abs(np.fft.rfft(frames, config.n_fft)) ** 2 / config.n_fft
    db = 10.0 * np.log10(np.maximum(power @ mel_filterbank(config).T, DB_FLOOR_POWER))
    return (db - db.max())[: config.n_frames]


def normalise(db: np.ndarray, minimum: float, config: FeatureConfig) -> np.ndarray:
    """Step 7: (n_frames, n_bands) float32, max(0, db − minimum) · scale, zero-filled after the recording's frames."""
    out = np.zeros((config.n_frames, config.n_bands), dtype=np.float32)
    out[: len(db)] = np.maximum(0.0, db - minimum) * config.scale
    return out
