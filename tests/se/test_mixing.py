"""Mixing at an exact SNR and the synthetic noise generators."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.signal import welch

from latentdiff.se.mixing import (
    babble,
    colored_noise,
    crop_or_loop,
    mix_at_snr,
    nonstationary_noise,
    peak_normalize,
)

SR = 16000


def _snr_db(clean: np.ndarray, noise: np.ndarray) -> float:
    clean64, noise64 = clean.astype(np.float64), noise.astype(np.float64)
    return float(10 * np.log10(np.mean(clean64**2) / np.mean(noise64**2)))


def _speechlike(rng: np.random.Generator, n: int) -> np.ndarray:
    t = np.arange(n) / SR
    syllables = np.clip(np.sin(2 * np.pi * 4.0 * t + rng.uniform(0, 6)), 0, None)
    return (syllables * np.sin(2 * np.pi * rng.uniform(100, 300) * t)).astype(np.float32)


@pytest.mark.parametrize("snr_db", [-10.0, -2.5, 0.0, 7.3, 20.0, 40.0])
@pytest.mark.parametrize("noise_len", [3000, 16000, 50000])
def test_mix_hits_snr_within_0_01_db(snr_db: float, noise_len: int) -> None:
    rng = np.random.default_rng(0)
    clean = _speechlike(rng, 16000) * 0.3
    noise = rng.standard_normal(noise_len).astype(np.float32) * 3.0
    noisy, scaled = mix_at_snr(clean, noise, snr_db, np.random.default_rng(1))
    assert noisy.shape == scaled.shape == clean.shape
    assert noisy.dtype == scaled.dtype == np.float32
    assert abs(_snr_db(clean, scaled) - snr_db) < 0.01
    np.testing.assert_allclose(noisy, clean + scaled, atol=1e-6)


def test_noise_taken_at_seeded_random_offsets() -> None:
    noise = np.random.default_rng(0).standard_normal(20000)
    clean = np.ones(1000, dtype=np.float32)
    offsets = set()
    for seed in range(8):
        _, scaled = mix_at_snr(clean, noise, 0.0, np.random.default_rng(seed))
        segment, offset = crop_or_loop(noise, 1000, np.random.default_rng(seed))
        np.testing.assert_allclose(segment, noise[offset : offset + 1000])
        gain = np.std(scaled) / np.std(segment)
        np.testing.assert_allclose(scaled, segment * gain, atol=1e-5)
        _, again = mix_at_snr(clean, noise, 0.0, np.random.default_rng(seed))
        np.testing.assert_array_equal(scaled, again)
        offsets.add(offset)
    assert len(offsets) == 8


def test_short_noise_is_looped() -> None:
    noise = np.arange(1.0, 11.0)
    segment, offset = crop_or_loop(noise, 25, np.random.default_rng(3))
    np.testing.assert_array_equal(segment, noise[(offset + np.arange(25)) % 10])
    assert segment.size == 25


def test_zero_power_guards() -> None:
    rng = np.random.default_rng(0)
    with pytest.raises(ValueError, match="clean signal has zero power"):
        mix_at_snr(np.zeros(100), rng.standard_normal(100), 0.0, rng)
    noise = np.concatenate([np.zeros(500), np.ones(10)])
    with pytest.raises(ValueError, match=r"noise segment at offset 0 .* zero power"):
        mix_at_snr(np.ones(400), noise[:400], 0.0, rng)
    with pytest.raises(ValueError, match="1-D"):
        mix_at_snr(np.ones((2, 4)), noise, 0.0, rng)
    with pytest.raises(ValueError, match="finite"):
        mix_at_snr(np.ones(4), noise, float("nan"), rng)


def test_peak_normalize_keeps_clean_aligned() -> None:
    rng = np.random.default_rng(0)
    clean = _speechlike(rng, 8000)
    noisy, noise = mix_at_snr(clean, rng.standard_normal(8000), 0.0, rng)
    (noisy_n, clean_n, noise_n), gain = peak_normalize([noisy, clean, noise], peak=0.9)
    assert max(np.abs(noisy_n).max(), np.abs(clean_n).max()) == pytest.approx(0.9, rel=1e-6)
    np.testing.assert_allclose(clean_n, clean * gain, rtol=1e-6)
    np.testing.assert_allclose(noisy_n, clean_n + noise_n, atol=1e-6)
    assert abs(_snr_db(clean_n, noise_n) - 0.0) < 0.01
    with pytest.raises(ValueError, match="silent"):
        peak_normalize([np.zeros(4)])


@pytest.mark.parametrize("beta", [0.0, 1.0, 2.0])
def test_colored_noise_spectral_slope(beta: float) -> None:
    x = colored_noise(2**17, beta, np.random.default_rng(0))
    assert x.dtype == np.float32 and x.size == 2**17
    assert abs(np.sqrt(np.mean(x.astype(np.float64) ** 2)) - 1.0) < 1e-4
    freqs, psd = welch(x, fs=SR, nperseg=4096)
    band = (freqs >= 50) & (freqs <= 5000)
    slope = np.polyfit(np.log10(freqs[band]), 10 * np.log10(psd[band]), 1)[0]
    assert abs(slope - (-10.0 * beta)) < 0.6, f"slope {slope:.2f} dB/decade"


def test_colored_noise_is_seeded() -> None:
    a = colored_noise(1000, 1.0, np.random.default_rng(5))
    np.testing.assert_array_equal(a, colored_noise(1000, 1.0, np.random.default_rng(5)))
    assert not np.array_equal(a, colored_noise(1000, 1.0, np.random.default_rng(6)))


def _frame_level_spread_db(x: np.ndarray, frame: int = 1600) -> float:
    frames = x[: x.size // frame * frame].astype(np.float64).reshape(-1, frame)
    return float(np.std(10 * np.log10(np.mean(frames**2, axis=1))))


def test_nonstationary_noise_varies_in_level() -> None:
    stationary = _frame_level_spread_db(colored_noise(5 * SR, 0.0, np.random.default_rng(0)))
    assert stationary < 0.5
    for seed in range(5):
        x = nonstationary_noise(5 * SR, SR, np.random.default_rng(seed))
        assert x.dtype == np.float32 and x.size == 5 * SR and np.isfinite(x).all()
        assert abs(np.sqrt(np.mean(x.astype(np.float64) ** 2)) - 1.0) < 1e-4
        assert _frame_level_spread_db(x) > 2.0
    a = nonstationary_noise(SR, SR, np.random.default_rng(1))
    np.testing.assert_array_equal(a, nonstationary_noise(SR, SR, np.random.default_rng(1)))


def test_babble_sums_the_chosen_talkers() -> None:
    n = 8000
    t = np.arange(4000) / SR
    freqs = [256.0, 512.0, 1000.0, 2000.0, 3000.0]  # whole cycles in 4000 samples
    talkers = [np.sin(2 * np.pi * f * t) * (i + 1) for i, f in enumerate(freqs)]
    x = babble(talkers, n, 3, np.random.default_rng(0))
    assert x.dtype == np.float32 and x.size == n
    assert abs(np.sqrt(np.mean(x.astype(np.float64) ** 2)) - 1.0) < 1e-4
    spectrum = np.abs(np.fft.rfft(x))
    bin_of = {f: round(f * n / SR) for f in freqs}
    present = [f for f in freqs if spectrum[bin_of[f]] > 0.1 * spectrum.max()]
    assert len(present) == 3
    levels = [spectrum[bin_of[f]] for f in present]
    assert max(levels) / min(levels) < 1.05, "talkers must be mixed at equal level"
    many = babble(talkers[:2], n, 6, np.random.default_rng(0))
    assert many.size == n
    with pytest.raises(ValueError, match="silent"):
        babble([np.zeros(100)], n, 1, np.random.default_rng(0))
