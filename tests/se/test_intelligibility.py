"""The differentiable ESTOI used as a training loss tracks the ESTOI metric and has gradients."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from pystoi import stoi

from latentdiff.se.audio import load_audio
from latentdiff.se.intelligibility import soft_estoi

RATE = 16000
CLIPS = Path(__file__).parent / "data" / "clips"


def speech_like(seconds: float, seed: int) -> np.ndarray:
    """Harmonic tone bursts with a syllable-rate envelope (ESTOI needs envelope modulation)."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * RATE)) / RATE
    pitch = 120 + 30 * np.sin(2 * np.pi * 0.7 * t)
    phase = 2 * np.pi * np.cumsum(pitch) / RATE
    voiced = sum(np.sin(k * phase) / k for k in range(1, 12))
    envelope = np.clip(np.sin(2 * np.pi * 4.0 * t + rng.uniform(0, 6)), 0, None) ** 2
    return (0.3 * voiced * envelope).astype(np.float64)


def test_identical_signals_score_one() -> None:
    clean = torch.from_numpy(speech_like(1.0, 0))[None]
    assert float(soft_estoi(clean, clean, RATE)) == pytest.approx(1.0, abs=1e-6)


def test_tracks_the_metric_on_stored_speech_clips() -> None:
    ours, metric = [], []
    for index in range(3):
        clean = load_audio(CLIPS / f"syn913_{index:05d}_clean.wav", RATE).astype(np.float64)
        noisy = load_audio(CLIPS / f"syn913_{index:05d}_noisy.wav", RATE).astype(np.float64)
        for estimate in (noisy, 0.5 * (noisy + clean)):
            score = soft_estoi(
                torch.from_numpy(estimate)[None], torch.from_numpy(clean)[None], RATE
            )
            ours.append(float(score))
            metric.append(stoi(clean, estimate, RATE, extended=True))
    assert np.corrcoef(ours, metric)[0, 1] > 0.95
    assert np.allclose(ours, metric, atol=0.1)


def test_gradients_reach_the_estimate() -> None:
    clean = torch.from_numpy(speech_like(1.0, 2))[None]
    estimate = (clean + 0.05 * torch.randn_like(clean)).requires_grad_(True)
    (1 - soft_estoi(estimate, clean, RATE)).sum().backward()
    assert estimate.grad is not None and torch.isfinite(estimate.grad).all()
    assert float(estimate.grad.abs().sum()) > 0


def test_too_short_signals_are_refused() -> None:
    short = torch.zeros(1, 2000)
    with pytest.raises(ValueError, match="too short"):
        soft_estoi(short, short, RATE)
