"""A differentiable extended short-time objective intelligibility (ESTOI) for training.

Follows Jensen & Taal's ESTOI at the signal's own rate instead of 10 kHz: band envelopes from 15
one-third octave bands (from 150 Hz, :func:`pystoi.utils.thirdoct`) of a Hann STFT with 25.6 ms
frames at 50 % overlap; every 30-frame segment (384 ms) is normalised to zero mean and unit norm
along time (per band), then along bands (per frame); the score is the mean correlation of the
normalised clean and estimated segments. Silent frames are not removed, so it is close to, not
equal to, :func:`latentdiff.se.metrics` ESTOI; it is meant as a loss (``1 - estoi``).
"""

from __future__ import annotations

from functools import cache

import numpy as np
import torch
from pystoi.utils import thirdoct
from torch import Tensor

BANDS = 15
MIN_FREQUENCY = 150.0
FRAME_SECONDS = 0.0256
SEGMENT_FRAMES = 30
_EPS = 1e-8


@cache
def _band_matrix(sample_rate: int, n_fft: int) -> np.ndarray:
    """(BANDS, n_fft // 2 + 1) one-third octave band matrix (computed once per shape)."""
    return thirdoct(sample_rate, n_fft, BANDS, MIN_FREQUENCY)[0]


def band_envelopes(wave: Tensor, sample_rate: int) -> Tensor:
    """(B, N) -> (B, BANDS, frames) one-third octave band magnitudes."""
    frame = round(FRAME_SECONDS * sample_rate)
    n_fft = 1 << (frame - 1).bit_length()
    window = torch.hann_window(frame, device=wave.device, dtype=wave.dtype)
    spec = torch.stft(
        wave, n_fft, frame // 2, frame, window=window, center=False, return_complex=True
    )
    matrix = torch.as_tensor(_band_matrix(sample_rate, n_fft), dtype=wave.dtype, device=wave.device)
    return torch.sqrt(matrix @ spec.abs().pow(2) + _EPS)


def _normalise(x: Tensor, dim: int) -> Tensor:
    x = x - x.mean(dim=dim, keepdim=True)
    return x / torch.linalg.vector_norm(x, dim=dim, keepdim=True).clamp_min(_EPS)


def soft_estoi(estimate: Tensor, clean: Tensor, sample_rate: int) -> Tensor:
    """(B,) ESTOI-like scores of ``estimate`` against ``clean`` (both (B, N), N >= ~0.4 s)."""
    est, ref = band_envelopes(estimate, sample_rate), band_envelopes(clean, sample_rate)
    if ref.shape[-1] < SEGMENT_FRAMES:
        raise ValueError(f"signals too short for ESTOI segments of {SEGMENT_FRAMES} frames")
    # (B, BANDS, segments, SEGMENT_FRAMES)
    est = est.unfold(-1, SEGMENT_FRAMES, 1)
    ref = ref.unfold(-1, SEGMENT_FRAMES, 1)
    est = _normalise(_normalise(est, dim=-1), dim=1)
    ref = _normalise(_normalise(ref, dim=-1), dim=1)
    return (est * ref).sum(dim=1).mean(dim=(-2, -1))
