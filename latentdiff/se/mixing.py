"""Noisy mixtures at an exact SNR, and synthetic noises (coloured, non-stationary, babble).

All signals are 1-D float arrays; results are float32. Randomness comes only from the
``numpy.random.Generator`` passed in, so a seed reproduces a mixture exactly.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

_SILENT_POWER = 1e-20


def _power(x: np.ndarray) -> float:
    return float(np.mean(np.square(x, dtype=np.float64)))


def _as_signal(x: np.ndarray, name: str) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    if x.ndim != 1 or x.size == 0:
        raise ValueError(f"{name}: expected a non-empty 1-D signal, got shape {x.shape}")
    if not np.isfinite(x).all():
        raise ValueError(f"{name}: contains NaN/Inf")
    return x


def crop_or_loop(noise: np.ndarray, n: int, rng: np.random.Generator) -> tuple[np.ndarray, int]:
    """``n`` samples of ``noise`` from a random offset, looping it when it is shorter than ``n``.

    Returns the segment and the offset, so that segment[i] == noise[(offset + i) % len(noise)]
    (for a long enough noise, offset <= len(noise) - n and no wrap happens).
    """
    noise = _as_signal(noise, "noise")
    if n <= 0:
        raise ValueError(f"length must be positive, got {n}")
    if noise.size >= n:
        offset = int(rng.integers(0, noise.size - n + 1))
        return noise[offset : offset + n].copy(), offset
    offset = int(rng.integers(0, noise.size))
    return noise[(offset + np.arange(n)) % noise.size], offset


def mix_at_snr(
    clean: np.ndarray, noise: np.ndarray, snr_db: float, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Return (noisy, scaled_noise) with noisy = clean + scaled_noise at exactly ``snr_db``.

    The noise is cropped (or looped) to the clean length at a random offset. The SNR is
    10*log10(P_clean / P_noise) with both powers taken as the mean square over the whole
    utterance, pauses included (no voice-activity detection), so the SNR over active speech is
    somewhat higher. Zero-power clean speech or noise segments raise ValueError.
    """
    clean = _as_signal(clean, "clean")
    if not np.isfinite(snr_db):
        raise ValueError(f"snr_db must be finite, got {snr_db}")
    p_clean = _power(clean)
    if p_clean <= _SILENT_POWER:
        raise ValueError("clean signal has zero power; the SNR is undefined")
    segment, offset = crop_or_loop(noise, clean.size, rng)
    p_noise = _power(segment)
    if p_noise <= _SILENT_POWER:
        raise ValueError(
            f"noise segment at offset {offset} (length {clean.size}) has zero power; "
            "the SNR is undefined"
        )
    gain = np.sqrt(p_clean / (p_noise * 10.0 ** (snr_db / 10.0)))
    scaled = segment * gain
    return (clean + scaled).astype(np.float32), scaled.astype(np.float32)


def peak_normalize(
    signals: Sequence[np.ndarray], peak: float = 0.9
) -> tuple[list[np.ndarray], float]:
    """Scale all ``signals`` by one gain so the largest |sample| among them equals ``peak``.

    Pass (noisy, clean, ...) together so the clean target keeps its alignment with the noisy input;
    returns the scaled signals (float32) and the gain applied.
    """
    if not signals:
        raise ValueError("no signals to normalise")
    if not 0.0 < peak <= 1.0:
        raise ValueError(f"peak must be in (0, 1], got {peak}")
    arrays = [_as_signal(s, f"signal {i}") for i, s in enumerate(signals)]
    largest = max(float(np.max(np.abs(a))) for a in arrays)
    if largest == 0.0:
        raise ValueError("all signals are silent; cannot peak-normalise")
    gain = peak / largest
    return [(a * gain).astype(np.float32) for a in arrays], gain


def colored_noise(n: int, beta: float, rng: np.random.Generator) -> np.ndarray:
    """Zero-mean, unit-RMS noise with power spectrum ~ 1/f^beta (white 0, pink 1, brown 2).

    White Gaussian noise is shaped in the FFT domain by f^(-beta/2); the DC bin is zeroed. The
    PSD then falls by 10*beta dB per decade.
    """
    if n < 2:
        raise ValueError(f"need at least 2 samples, got {n}")
    spectrum = np.fft.rfft(rng.standard_normal(n))
    freqs = np.fft.rfftfreq(n)
    shaping = np.zeros_like(freqs)
    shaping[1:] = freqs[1:] ** (-beta / 2.0)
    x = np.fft.irfft(spectrum * shaping, n=n)
    x -= x.mean()
    return (x / np.sqrt(_power(x))).astype(np.float32)


def _smooth_envelope(n: int, sr: int, rng: np.random.Generator) -> np.ndarray:
    """Log-normal amplitude that wanders every 50-300 ms, with a few raised bursts."""
    step = int(sr * rng.uniform(0.05, 0.3))
    knots = np.arange(0, n + step, step)
    level_db = rng.normal(0.0, 6.0, size=knots.size)
    envelope_db = np.interp(np.arange(n), knots, level_db)
    n_bursts = rng.poisson(0.5 * n / sr)
    for _ in range(n_bursts):
        length = max(int(sr * rng.uniform(0.05, 0.5)), 2)
        start = int(rng.integers(0, max(n - length, 1)))
        stop = min(start + length, n)
        window = np.hanning(stop - start)
        envelope_db[start:stop] += rng.uniform(6.0, 20.0) * window
    return 10.0 ** (envelope_db / 20.0)


def _hum(n: int, sr: int, rng: np.random.Generator) -> np.ndarray:
    """Mains hum: 50 or 60 Hz with decaying harmonics below Nyquist."""
    t = np.arange(n) / sr
    base = float(rng.choice([50.0, 60.0]))
    hum = np.zeros(n)
    for k in range(1, 6):
        if k * base < sr / 2:
            phase = rng.uniform(0.0, 2 * np.pi)
            hum += rng.uniform(0.3, 1.0) / k * np.sin(2 * np.pi * k * base * t + phase)
    return hum


def _chirp(n: int, sr: int, rng: np.random.Generator) -> np.ndarray:
    """A Hann-windowed linear sweep between two random frequencies over part of the signal."""
    chirp = np.zeros(n)
    length = int(rng.integers(max(n // 8, 2), max(n // 2, 3)))
    start = int(rng.integers(0, n - length + 1))
    f0, f1 = rng.uniform(200.0, 0.4 * sr, size=2)
    t = np.arange(length) / sr
    phase = 2 * np.pi * (f0 * t + (f1 - f0) * t**2 / (2 * t[-1]))
    chirp[start : start + length] = np.sin(phase) * np.hanning(length)
    return chirp


def nonstationary_noise(n: int, sr: int, rng: np.random.Generator) -> np.ndarray:
    """Unit-RMS bursty noise: coloured noise (random beta in [0, 2]) under a random envelope.

    The envelope is a log-normal level wandering every 50-300 ms plus bursts of +6 to +20 dB;
    with probability 0.5 a mains hum and with probability 0.3 a frequency chirp are added, each
    at -20 to 0 dB relative to the noise.
    """
    if n < 2 or sr <= 0:
        raise ValueError(f"need n >= 2 and sr > 0, got n={n}, sr={sr}")
    x = colored_noise(n, rng.uniform(0.0, 2.0), rng) * _smooth_envelope(n, sr, rng)
    x = x / np.sqrt(_power(x))
    for probability, component in ((0.5, _hum), (0.3, _chirp)):
        if rng.random() < probability:
            tone = component(n, sr, rng)
            level = 10.0 ** (rng.uniform(-20.0, 0.0) / 20.0)
            x = x + tone * (level / np.sqrt(max(_power(tone), _SILENT_POWER)))
    return (x / np.sqrt(_power(x))).astype(np.float32)


def babble(
    speech_list: Sequence[np.ndarray], n: int, n_talkers: int, rng: np.random.Generator
) -> np.ndarray:
    """Unit-RMS babble: the sum of ``n_talkers`` utterances, each at equal level.

    Talkers are drawn without replacement when ``speech_list`` is long enough, with replacement
    otherwise; each is normalised by its whole-utterance RMS and cropped or looped to ``n`` samples
    from a random offset.
    """
    if not speech_list:
        raise ValueError("babble needs at least one speech signal")
    if n_talkers < 1:
        raise ValueError(f"n_talkers must be >= 1, got {n_talkers}")
    replace = n_talkers > len(speech_list)
    chosen = rng.choice(len(speech_list), size=n_talkers, replace=replace)
    mix = np.zeros(n)
    for index in chosen:
        speech = _as_signal(speech_list[index], f"speech {index}")
        power = _power(speech)
        if power <= _SILENT_POWER:
            raise ValueError(f"speech {index} is silent")
        segment, _ = crop_or_loop(speech, n, rng)
        mix += segment / np.sqrt(power)
    total = _power(mix)
    if total <= _SILENT_POWER:
        raise ValueError("babble segments are all silent; use longer or louder speech")
    return (mix / np.sqrt(total)).astype(np.float32)
