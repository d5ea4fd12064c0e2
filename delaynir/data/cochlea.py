"""A cochlea-like front end: audio (a pressure waveform) to spike times on ``n_channels`` channels.

numpy only. Four stages; the spiking stage runs on frames ``n = 0 .. n_steps - 1`` that are
``dt`` seconds apart (default 1 ms; frame n is the instant t = n·dt), the spectral analysis
every ``hop`` seconds (default 2 ms, a whole multiple k of dt), its levels interpolated
linearly to the dt frames (the envelope is smoothed by the window, tens of ms, so a 2 ms
analysis step loses nothing).

1. **Filterbank** (cochlear frequency analysis). A short-time Fourier transform with a Hann
   window w of ``window`` seconds (zero-padded to ``n_fft`` points), frame m centred on
   t = m·hop, gives X[m, k] at bin frequencies f_k = k·fs / n_fft (Hz, fs = sample rate).
   Channel c has its centre f_c equally spaced on the ERB-number scale (Glasberg & Moore
   1990) between ``f_min`` and ``f_max`` Hz::

       ERB(f) = 24.7 · (4.37 f / 1000 + 1)            Hz, the equivalent rectangular bandwidth
       ERBnum(f) = 21.4 · log10(4.37 f / 1000 + 1)     (channel index ∝ ERBnum(f_c))

   and the power response of an ``order``-th order gammatone filter (peak gain 1)::

       W[k, c] = (1 + ((f_k − f_c) / (1.019 · ERB(f_c)))²)^(−order)

2. **Envelope** (half-wave rectification and low-pass filtering of each band, which the
   squared STFT magnitude of a band is, up to the window's smoothing)::

       E[m, c] = g · Σ_k W[k, c] · |X[m, k]|²,   g = 2 / (Σ w)²

   so a sine of amplitude A (full scale 1) at f_c gives E ≈ A²/2 (its mean power).

3. **Compression** (logarithmic, with automatic gain control standing in for the cochlea's
   adaptation to the overall level)::

       L[m, c] = 10 · log10(max(E[m, c], 10^(−12)))                    dB re full scale
       ℓ[m, c] = L[m, c] − max(max_{m,c} L, ``min_reference_db``)      dB re the sample's peak
       ℓ[n, c] at t = n·dt: linear interpolation between the analysis frames around it
       I[n, c] = max(0, 1 + (ℓ[n, c] − ``threshold_db``) / ``db_per_unit``)   drive, threshold units

   The drive is 1 (the rheobase of the neuron below) at ``threshold_db`` dB below the
   sample's loudest channel and frame, and grows by 1 every ``db_per_unit`` dB above it.
   ``min_reference_db`` keeps near-silent audio from being amplified into spikes.

4. **Spiking encoder** (one leaky integrate-and-fire neuron per channel, with an absolute
   refractory period and spike-frequency adaptation). The drive I[n] is held over
   [n·dt, (n+1)·dt) and v[n] is the membrane at the end of that interval; with
   α = exp(−dt / ``tau``), α_a = exp(−dt / ``tau_adapt``) (v[−1] = a[−1] = 0)::

       v[n] = α · v[n−1] + x[n],   x[n] = (1 − α) · I[n] + ``noise`` · ξ[n]
       ξ[n] ~ U(−√3, √3) per channel and frame (zero mean, unit variance)
       spike in frame n if v[n] ≥ θ[n] = 1 + a[n−1] and the neuron is not refractory;
       then v[n] = 0, held at 0 for the next round(``refractory`` / dt) frames, and
       a[n] = α_a · a[n−1] + ``adapt``   (a[n] = α_a · a[n−1] without a spike).

   The spike time is interpolated linearly inside the frame,
   t = (n + (θ[n] − v[n−1]) / (v[n] − v[n−1])) · dt seconds, in [0, n_steps·dt);
   within a sample spikes are sorted by time, then channel. For a constant drive I > 1
   without noise and adaptation the rate is about 1 / (refractory + tau · ln(I / (I − 1))) Hz.

Audio shorter than ``n_steps·dt`` seconds is zero-padded, longer audio is cropped. The
noise ξ is drawn from a generator the caller passes (one per sample), so the output is
deterministic given it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import overload

import numpy as np

from delaynir.errors import ConfigError

#: Gammatone bandwidth factor: the -3 dB bandwidth of a 4th-order gammatone is about 1.019 ERB.
GAMMATONE_B = 1.019
POWER_FLOOR = 1e-12  # power floor before the logarithm (-120 dB re full scale)


@overload
def erb(f: np.ndarray) -> np.ndarray: ...
@overload
def erb(f: float) -> float: ...
def erb(f: np.ndarray | float) -> np.ndarray | float:
    """Equivalent rectangular bandwidth (Hz) at frequency ``f`` (Hz): 24.7 · (4.37 f / 1000 + 1)."""
    return 24.7 * (4.37 * np.asarray(f) / 1000.0 + 1.0)


def erb_number(f: np.ndarray | float) -> np.ndarray | float:
    """ERB-number (Cams) of frequency ``f`` (Hz): 21.4 · log10(4.37 f / 1000 + 1)."""
    return 21.4 * np.log10(4.37 * np.asarray(f) / 1000.0 + 1.0)


def erb_space(f_min: float, f_max: float, n: int) -> np.ndarray:
    """``n`` frequencies (Hz, increasing) equally spaced in ERB-number from f_min to f_max inclusive."""
    cams = np.linspace(erb_number(f_min), erb_number(f_max), n)
    return (10.0 ** (cams / 21.4) - 1.0) * 1000.0 / 4.37


def _number(value: object) -> bool:
    return isinstance(value, (int, float, np.number)) and not isinstance(value, bool) and math.isfinite(value)


@dataclass
class CochleaConfig:
    """The front end's parameters (see the module docstring for the equations).

    n_channels: filterbank channels (700 as SHD); f_min, f_max: centre frequencies of the
    first and last channel (Hz); dt: frame step of the spiking stage (s); hop: step of the
    spectral analysis (s, a whole multiple of dt); window: Hann window length (s); n_fft:
    FFT points (>= window · sample rate); order: gammatone order of the channel responses;
    threshold_db: level (dB re the sample's peak) where the drive reaches 1 (rheobase);
    db_per_unit: dB per unit of drive above it; min_reference_db: lowest reference level
    (dB re full scale) of the gain control; tau: membrane time constant (s); refractory:
    absolute refractory period (s); adapt: threshold increase per spike (threshold units);
    tau_adapt: its decay time constant (s); noise: std of the membrane noise per frame
    (threshold units).
    """

    n_channels: int = 700
    f_min: float = 60.0
    f_max: float = 7500.0
    dt: float = 0.001
    hop: float = 0.002
    window: float = 0.025
    n_fft: int = 512
    order: int = 4
    threshold_db: float = -28.0
    db_per_unit: float = 20.0
    min_reference_db: float = -70.0
    tau: float = 0.008
    refractory: float = 0.002
    adapt: float = 0.5
    tau_adapt: float = 0.1
    noise: float = 0.1

    def __post_init__(self) -> None:
        for name in ("n_channels", "n_fft", "order"):
            value = getattr(self, name)
            if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value < 1:
                raise ConfigError(f"CochleaConfig.{name} must be a positive integer, got {value!r}")
        if self.n_channels > 2**16:
            raise ConfigError(f"CochleaConfig.n_channels must be at most 65536, got {self.n_channels}")
        for name in ("f_min", "f_max", "dt", "hop", "window", "db_per_unit", "tau", "tau_adapt"):
            value = getattr(self, name)
            if not _number(value) or value <= 0:
                raise ConfigError(f"CochleaConfig.{name} must be a finite number > 0, got {value!r}")
        for name in ("refractory", "adapt", "noise"):
            value = getattr(self, name)
            if not _number(value) or value < 0:
                raise ConfigError(f"CochleaConfig.{name} must be a finite number >= 0, got {value!r}")
        for name in ("threshold_db", "min_reference_db"):
            if not _number(getattr(self, name)):
                raise ConfigError(f"CochleaConfig.{name} must be a finite number (dB), got {getattr(self, name)!r}")
        if self.f_min >= self.f_max:
            raise ConfigError(f"CochleaConfig: f_min ({self.f_min} Hz) must be below f_max ({self.f_max} Hz)")

    def frequencies(self) -> np.ndarray:
        """Centre frequency of every channel (Hz), increasing with the channel index."""
        return erb_space(self.f_min, self.f_max, self.n_channels)


class Cochlea:
    """The front end of ``config`` for audio sampled at ``sample_rate`` Hz.

    ``levels(audio)`` gives the compressed levels ℓ (stages 1-3), ``drive(audio)`` the drive I,
    ``encode(drives, rngs)`` the spikes (stage 4) of a batch, ``spikes(audio, rng)`` all four
    stages for one sample.
    """

    def __init__(self, config: CochleaConfig, sample_rate: int):
        if not isinstance(config, CochleaConfig):
            raise ConfigError(f"config must be a CochleaConfig, got {type(config).__name__}")
        if not isinstance(sample_rate, (int, np.integer)) or isinstance(sample_rate, bool) or sample_rate < 1:
            raise ConfigError(f"sample_rate must be a positive integer (Hz), got {sample_rate!r}")
        self.config = config
        self.sample_rate = int(sample_rate)
        hop = config.hop * sample_rate
        if abs(hop - round(hop)) > 1e-6 or round(hop) < 1:
            raise ConfigError(
                f"hop = {config.hop} s is not a whole number of samples at {sample_rate} Hz; "
                f"choose it so that hop x sample rate is an integer (2 ms at 16000 Hz: 32 samples)"
            )
        self.hop = int(round(hop))  # analysis step in samples
        ratio = config.hop / config.dt
        if abs(ratio - round(ratio)) > 1e-6 or round(ratio) < 1:
            raise ConfigError(f"hop = {config.hop} s must be a whole multiple of dt = {config.dt} s")
        self.substeps = int(round(ratio))  # frames of dt per analysis step
        self.win_length = int(round(config.window * sample_rate))
        if not 2 <= self.win_length <= config.n_fft:
            raise ConfigError(
                f"the window ({config.window} s = {self.win_length} samples at {sample_rate} Hz) must span "
                f"2 .. n_fft = {config.n_fft} samples; raise n_fft or shorten the window"
            )
        if config.f_max >= sample_rate / 2:
            raise ConfigError(f"f_max = {config.f_max} Hz must be below the Nyquist frequency {sample_rate / 2} Hz")
        window = np.zeros(config.n_fft)
        start = (config.n_fft - self.win_length) // 2
        window[start : start + self.win_length] = np.hanning(self.win_length + 2)[1:-1]
        self.window = window.astype(np.float32)
        self.frequencies = config.frequencies()
        bins = np.arange(config.n_fft // 2 + 1) * sample_rate / config.n_fft
        width = GAMMATONE_B * erb(self.frequencies)
        weights = (1.0 + ((bins[:, None] - self.frequencies[None, :]) / width[None, :]) ** 2) ** (-config.order)
        self.weights = (weights * 2.0 / window.sum() ** 2).astype(np.float32)  # (n_bins, n_channels), includes g

    def n_steps(self, duration: float) -> int:
        """Frames covering ``duration`` seconds: round(duration / dt)."""
        return max(1, int(round(duration / self.config.dt)))

    def n_analysis(self, n_steps: int) -> int:
        """Analysis frames (hop apart) spanning ``n_steps`` frames of dt and one more to interpolate towards."""
        return (n_steps - 1) // self.substeps + 2

    def power(self, audio: np.ndarray, n_frames: int) -> np.ndarray:
        """Band power E (n_frames, n_channels), float32, on the analysis grid m·hop (stages 1-2).

        ``audio``: 1-D waveform, full scale ±1, sampled at ``sample_rate``; frame m is centred
        on sample m·hop (zero padding outside the waveform).
        """
        audio = np.asarray(audio, dtype=np.float32)
        if audio.ndim != 1:
            raise ConfigError(f"audio must be one-dimensional (mono samples), got shape {audio.shape}")
        n_fft = self.config.n_fft
        length = (n_frames - 1) * self.hop + n_fft
        padded = np.zeros(length, dtype=np.float32)
        body = audio[: max(0, length - n_fft // 2)]
        padded[n_fft // 2 : n_fft // 2 + len(body)] = body
        frames = np.lib.stride_tricks.sliding_window_view(padded, n_fft)[:: self.hop][:n_frames]
        spectrum = np.fft.rfft(frames * self.window, axis=1)
        magnitude = (spectrum.real**2 + spectrum.imag**2).astype(np.float32)
        return magnitude @ self.weights

    def levels(self, audio: np.ndarray, n_steps: int) -> np.ndarray:
        """Compressed level ℓ (n_steps, n_channels), float32, dB re the sample's peak, on the dt grid.

        ℓ is computed on the analysis grid and interpolated linearly in between (stage 3).
        """
        level = 10.0 * np.log10(np.maximum(self.power(audio, self.n_analysis(n_steps)), POWER_FLOOR))
        level -= max(float(level.max()), self.config.min_reference_db)
        k = self.substeps
        if k == 1:
            return level[:n_steps]
        out = np.empty((n_steps, level.shape[1]), np.float32)
        for j in range(k):
            rows = len(range(j, n_steps, k))
            out[j::k] = (1 - j / k) * level[:rows] + (j / k) * level[1 : rows + 1]
        return out

    def drive(self, audio: np.ndarray, n_steps: int) -> np.ndarray:
        """Drive I (n_steps, n_channels), float32, in threshold units (stages 1-3)."""
        cfg = self.config
        drive = self.levels(audio, n_steps)  # in place from here: these arrays are a few MB per sample
        drive -= np.float32(cfg.threshold_db)
        drive *= np.float32(1.0 / cfg.db_per_unit)
        drive += np.float32(1.0)
        return np.maximum(drive, np.float32(0.0), out=drive)

    def lif_input(self, audio: np.ndarray, n_steps: int, rng: np.random.Generator | None = None) -> np.ndarray:
        """Input x[n] = (1 − α) · I[n] + noise · ξ[n] (n_steps, n_channels) of the encoder, float32."""
        x = self.drive(audio, n_steps)
        x *= np.float32(1.0 - math.exp(-self.config.dt / self.config.tau))
        return _add_noise(x, self.config, rng)

    def encode(
        self, drives: np.ndarray, rngs: Sequence[np.random.Generator] | None = None
    ) -> list[tuple[np.ndarray, np.ndarray]]:
        """Spikes of a batch of drives (B, n_steps, n_channels): per sample (times s float32, units uint16).

        ``rngs``: one generator per sample for the membrane noise (required when noise > 0).
        """
        drives = np.asarray(drives, dtype=np.float32)
        if drives.ndim != 3:
            raise ConfigError(f"drives must have shape (batch, steps, channels), got {drives.shape}")
        if self.config.noise > 0 and (rngs is None or len(rngs) != len(drives)):
            raise ConfigError(f"membrane noise {self.config.noise} needs one random generator per sample")
        per_sample: Sequence[np.random.Generator | None] = [None] * len(drives) if rngs is None else rngs
        inputs = np.stack([lif_input(d, self.config, r) for d, r in zip(drives, per_sample)], axis=1)
        return lif_run(inputs, self.config)

    def spikes(
        self, audio: np.ndarray, duration: float, rng: np.random.Generator | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """All four stages for one waveform: (times in s, units) of ``duration`` seconds of it."""
        return lif_run(self.lif_input(audio, self.n_steps(duration), rng)[:, None], self.config)[0]


def lif_input(drive: np.ndarray, config: CochleaConfig, rng: np.random.Generator | None = None) -> np.ndarray:
    """x[n] = (1 − α) · I[n] + noise · ξ[n] for a drive I (n_steps, n_channels); float32, same shape.

    ξ is drawn from ``rng`` (uniform, zero mean, unit variance, float32); ``rng`` may be None
    only when ``config.noise`` is 0.
    """
    alpha = math.exp(-config.dt / config.tau)
    x = np.asarray(drive, dtype=np.float32) * np.float32(1.0 - alpha)
    return _add_noise(x, config, rng)


def _add_noise(x: np.ndarray, config: CochleaConfig, rng: np.random.Generator | None) -> np.ndarray:
    """x += noise · ξ in place (ξ uniform, zero mean, unit variance); returns x."""
    if config.noise > 0:
        if rng is None:
            raise ConfigError(f"membrane noise {config.noise} needs a random generator (rng=)")
        xi = rng.random(x.shape, dtype=np.float32)  # U(0, 1) -> U(-sqrt 3, sqrt 3): zero mean, unit variance
        xi -= np.float32(0.5)
        xi *= np.float32(config.noise * math.sqrt(12.0))
        x += xi
    return x


def lif_run(inputs: np.ndarray, config: CochleaConfig) -> list[tuple[np.ndarray, np.ndarray]]:
    """Stage 4 (module docstring) on inputs x (T, B, C) from :func:`lif_input`, time-first.

    Returns per sample b (spike times in s as float32, sorted; channels as uint16).
    """
    inputs = np.asarray(inputs, dtype=np.float32)
    if inputs.ndim != 3:
        raise ConfigError(f"inputs must have shape (steps, batch, channels), got {inputs.shape}")
    t_steps, b, c = inputs.shape
    alpha = np.float32(math.exp(-config.dt / config.tau))
    alpha_a = np.float32(math.exp(-config.dt / config.tau_adapt))
    adapt = np.float32(config.adapt)
    n_ref = int(round(config.refractory / config.dt))
    v = np.zeros((b, c), np.float32)
    a = np.zeros((b, c), np.float32)
    theta = np.empty((b, c), np.float32)
    last = np.full((b, c), -(n_ref + 1), np.int64)  # frame of the last spike
    events: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []  # (sample, channel, time in s) per frame
    for n in range(t_steps):
        x = inputs[n]
        v *= alpha
        v += x
        if n_ref:
            v *= last < n - n_ref  # refractory: held at 0 for n_ref frames after a spike
        np.add(a, 1.0, out=theta)
        fired = v >= theta
        a *= alpha_a
        if fired.any():
            sample, channel = np.nonzero(fired)
            hi = v[sample, channel]
            lo = (hi - x[sample, channel]) / alpha  # v[n-1]: v[n] = α v[n-1] + x[n] for a free neuron
            frac = np.clip((theta[sample, channel] - lo) / np.maximum(hi - lo, 1e-12), 0.0, 1.0)
            events.append((sample, channel, (n + frac) * config.dt))
            v[fired] = 0.0
            a[fired] += adapt
            last[fired] = n
    if events:
        sample = np.concatenate([e[0] for e in events])
        channel = np.concatenate([e[1] for e in events])
        times = np.concatenate([e[2] for e in events]).astype(np.float32)
    else:
        sample = channel = np.zeros(0, np.int64)
        times = np.zeros(0, np.float32)
    times = np.minimum(times, np.nextafter(np.float32(t_steps * config.dt), np.float32(0)))
    order = np.lexsort((channel, times, sample))
    sample, channel, times = sample[order], channel[order], times[order]
    bounds = np.searchsorted(sample, np.arange(1, b))
    return [(t_k, u_k.astype(np.uint16)) for t_k, u_k in zip(np.split(times, bounds), np.split(channel, bounds))]
