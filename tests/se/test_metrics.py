"""SI-SDR, PESQ, ESTOI, DNSMOS and delay alignment."""

from __future__ import annotations

import shutil
import subprocess
import sys

import numpy as np
import pytest

from latentdiff.se.audio import load_audio, resample
from latentdiff.se.metrics import align_delay, dnsmos, estoi, pesq_wb, score_pair, shift, si_sdr
from latentdiff.se.mixing import mix_at_snr

SR = 16000
SENTENCE = "The birch canoe slid on the smooth planks. Glue the sheet to the dark blue background."


@pytest.fixture(scope="module")
def speech(tmp_path_factory: pytest.TempPathFactory) -> np.ndarray:
    """A synthesised English sentence at 16 kHz."""
    if shutil.which("espeak-ng") is None:
        pytest.skip("espeak-ng is not on PATH (apt-get install espeak-ng)")
    path = tmp_path_factory.mktemp("speech") / "sentence.wav"
    subprocess.run(["espeak-ng", "-w", str(path), SENTENCE], check=True, capture_output=True)
    return load_audio(path, SR) * 0.5


def _noisy(clean: np.ndarray, snr_db: float, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    noisy, _ = mix_at_snr(clean, rng.standard_normal(clean.size), snr_db, rng)
    return noisy


def test_si_sdr_scaled_copy_and_additive_noise() -> None:
    rng = np.random.default_rng(0)
    ref = rng.standard_normal(32000).astype(np.float32)
    assert si_sdr(0.3 * ref + 0.2, ref) > 60.0
    for snr in (-5.0, 0.0, 10.0, 25.0):
        noisy = _noisy(ref, snr, seed=1)
        assert si_sdr(noisy, ref) == pytest.approx(snr, abs=0.1)
        assert si_sdr(4.0 * noisy, ref) == pytest.approx(si_sdr(noisy, ref), abs=1e-4)
    with pytest.raises(ValueError, match="lengths differ"):
        si_sdr(ref[:-1], ref)
    with pytest.raises(ValueError, match="ref is silent"):
        si_sdr(ref, np.zeros_like(ref))


def test_pesq_identical_speech_is_near_maximum(speech: np.ndarray) -> None:
    assert 4.5 < pesq_wb(speech, speech) <= 4.65
    speech_48k = resample(speech, SR, 48000)
    assert 4.5 < pesq_wb(speech_48k, speech_48k, sr=48000) <= 4.65


def test_pesq_degrades_with_noise(speech: np.ndarray) -> None:
    scores = [pesq_wb(_noisy(speech, snr), speech) for snr in (30.0, 10.0, 0.0)]
    assert 4.6 > scores[0] > scores[1] > scores[2] >= 1.0, scores


def test_pesq_silent_input_is_nan_with_warning() -> None:
    with pytest.warns(UserWarning, match="silent input"):
        assert np.isnan(pesq_wb(np.zeros(SR, np.float32), np.zeros(SR, np.float32)))
    infrasound = np.sin(2 * np.pi * 20.0 * np.arange(SR) / SR).astype(np.float32)
    with pytest.warns(UserWarning, match="no utterances detected"):
        assert np.isnan(pesq_wb(infrasound, infrasound))


def test_estoi_orders_noise_levels(speech: np.ndarray) -> None:
    assert estoi(speech, speech, SR) == pytest.approx(1.0, abs=1e-6)
    scores = [estoi(_noisy(speech, snr), speech, SR) for snr in (20.0, 5.0, -5.0)]
    assert 1.0 > scores[0] > scores[1] > scores[2], scores


@pytest.mark.parametrize("lag", [0, 37, -25, 400])
def test_align_delay_recovers_shift(lag: int) -> None:
    rng = np.random.default_rng(1)
    ref = rng.standard_normal(8000).astype(np.float32)
    est = shift(ref, lag) + 0.3 * rng.standard_normal(8000).astype(np.float32)
    assert align_delay(est, ref, max_lag=500) == lag
    aligned = shift(est, -lag)
    assert si_sdr(aligned[500:-500], ref[500:-500]) > 9.0
    assert align_delay(est[:6000], ref, max_lag=500) == lag


def test_align_delay_respects_max_lag() -> None:
    rng = np.random.default_rng(2)
    ref = rng.standard_normal(4000).astype(np.float32)
    assert abs(align_delay(shift(ref, 300), ref, max_lag=100)) <= 100


def test_shift() -> None:
    x = np.arange(1.0, 6.0)
    np.testing.assert_array_equal(shift(x, 2), [0, 0, 1, 2, 3])
    np.testing.assert_array_equal(shift(x, -2), [3, 4, 5, 0, 0])
    np.testing.assert_array_equal(shift(x, 0), x)
    np.testing.assert_array_equal(shift(x, 9), np.zeros(5))


Scored = tuple[np.ndarray, np.ndarray, dict[str, float], dict[str, float]]


@pytest.fixture(scope="module")
def scored(speech: np.ndarray) -> Scored:
    """(clip, noisy, DNSMOS of clip, score_pair of noisy) for a ~9.2 s clip (one DNSMOS window)."""
    pytest.importorskip("speechmos", reason="speechmos is not installed (pip install speechmos)")
    clip = np.resize(speech, int(9.2 * SR))
    noisy = _noisy(clip, 0.0)
    return clip, noisy, dnsmos(clip, SR), score_pair(noisy, clip, SR)


def test_dnsmos_scores_in_range_and_noise_lowers_background(scored: Scored) -> None:
    _, _, clean, pair = scored
    noisy = {key: pair[f"dnsmos_{key}"] for key in ("sig", "bak", "ovrl")}
    assert set(clean) == {"sig", "bak", "ovrl"}
    for scores in (clean, noisy):
        assert all(isinstance(v, float) and 1.0 <= v <= 5.0 for v in scores.values()), scores
    assert noisy["bak"] < clean["bak"] - 1.0
    assert noisy["ovrl"] < clean["ovrl"]


def test_score_pair_matches_individual_metrics(scored: Scored) -> None:
    clip, noisy, _, scores = scored
    assert set(scores) == {"pesq", "estoi", "si_sdr", "dnsmos_sig", "dnsmos_bak", "dnsmos_ovrl"}
    assert scores["pesq"] == pytest.approx(pesq_wb(noisy, clip), abs=1e-9)
    assert scores["estoi"] == pytest.approx(estoi(noisy, clip, SR), abs=1e-9)
    assert scores["si_sdr"] == pytest.approx(si_sdr(noisy, clip), abs=1e-9)
    assert scores["si_sdr"] == pytest.approx(0.0, abs=0.2)


def test_score_pair_subset_and_unknown_metric() -> None:
    rng = np.random.default_rng(0)
    ref = rng.standard_normal(SR).astype(np.float32)
    assert list(score_pair(ref, ref, SR, metrics=("si_sdr",))) == ["si_sdr"]
    with pytest.raises(ValueError, match=r"unknown metrics \['mosnet'\]"):
        score_pair(ref, ref, SR, metrics=("si_sdr", "mosnet"))


def test_dnsmos_reports_missing_package(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "speechmos", None)
    with pytest.raises(ImportError, match="pip install speechmos onnxruntime"):
        dnsmos(np.zeros(SR, np.float32), SR)
