"""Toy sequences with known structure, and statistics that tell real samples from noise.

Each sequence is a sum of one to three damped sinusoids whose frequencies lie in a band, with random
phases and amplitudes. A good generative model reproduces the distribution of dominant frequencies
and the average power spectrum; Gaussian noise reproduces neither.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch.utils.data import Dataset


@dataclass
class ToyDataConfig:
    """How the toy corpus is drawn."""

    length: int = 256
    min_freq: float = 0.02
    max_freq: float = 0.12
    max_components: int = 3
    n_train: int = 4000
    n_test: int = 500
    seed: int = 0


def make_sequences(n: int, cfg: ToyDataConfig, seed: int) -> np.ndarray:
    """Draw ``n`` sequences, shape (n, 1, length), float32, roughly unit variance."""
    rng = np.random.default_rng(seed)
    t = np.arange(cfg.length)[None, :]
    out = np.zeros((n, cfg.length))
    n_components = rng.integers(1, cfg.max_components + 1, size=n)
    for k in range(cfg.max_components):
        active = (n_components > k)[:, None]
        freq = rng.uniform(cfg.min_freq, cfg.max_freq, size=(n, 1))
        phase = rng.uniform(0, 2 * np.pi, size=(n, 1))
        amp = rng.uniform(0.5, 1.0, size=(n, 1)) / (k + 1)
        decay = np.exp(-t * rng.uniform(0.0, 4.0, size=(n, 1)) / cfg.length)
        out += active * amp * decay * np.sin(2 * np.pi * freq * t + phase)
    return (out / out.std()).astype(np.float32)[:, None, :]


class SequenceDataset(Dataset):
    """In-memory (N, C, T) array served as float tensors."""

    def __init__(self, array: np.ndarray):
        if array.ndim != 3:
            raise ValueError(f"expected an (N, C, T) array, got shape {array.shape}")
        self.data = torch.from_numpy(np.ascontiguousarray(array, dtype=np.float32))

    def __len__(self) -> int:
        return len(self.data)

    def __getitem__(self, index: int) -> torch.Tensor:
        return self.data[index]


def power_spectra(x: np.ndarray) -> np.ndarray:
    """Per-sequence power spectra of (N, 1, T) arrays, normalised to sum to one."""
    spec = np.abs(np.fft.rfft(x[:, 0, :] * np.hanning(x.shape[-1]), axis=-1)) ** 2
    return spec / np.maximum(spec.sum(axis=-1, keepdims=True), 1e-12)


def dominant_frequency(x: np.ndarray) -> np.ndarray:
    """Frequency (cycles per sample) of each sequence's spectral peak."""
    spec = power_spectra(x)
    return np.argmax(spec, axis=-1) / x.shape[-1]


def band_energy(x: np.ndarray, cfg: ToyDataConfig) -> np.ndarray:
    """Fraction of each sequence's power inside the data's frequency band (data: close to 1)."""
    spec = power_spectra(x)
    freqs = np.fft.rfftfreq(x.shape[-1])
    band = (freqs >= cfg.min_freq * 0.8) & (freqs <= cfg.max_freq * 1.2)
    return spec[:, band].sum(axis=-1)


def wasserstein_1d(a: np.ndarray, b: np.ndarray) -> float:
    """Earth mover's distance between two 1-D empirical distributions."""
    quantiles = np.linspace(0, 1, 201)
    return float(np.mean(np.abs(np.quantile(a, quantiles) - np.quantile(b, quantiles))))


def spectrum_distance(a: np.ndarray, b: np.ndarray) -> float:
    """Total-variation distance between the mean normalised power spectra of two sets."""
    return float(0.5 * np.abs(power_spectra(a).mean(0) - power_spectra(b).mean(0)).sum())
