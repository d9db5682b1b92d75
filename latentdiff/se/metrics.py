"""Speech-enhancement metrics: SI-SDR, wide-band PESQ, ESTOI, DNSMOS P.835, delay alignment.

Inputs are 1-D waveforms (checked with ``validate_waveform``); intrusive metrics need ``est`` and
``ref`` of equal length and sample rate.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence

import numpy as np
import pesq
from pystoi import stoi

from latentdiff.se.audio import resample, validate_waveform

PESQ_RATE = 16000
METRICS = ("pesq", "estoi", "si_sdr", "dnsmos")


def _pair(est: np.ndarray, ref: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    est = validate_waveform(est, name="est")
    ref = validate_waveform(ref, name="ref")
    if est.shape != ref.shape:
        raise ValueError(f"est and ref lengths differ: {est.size} vs {ref.size}")
    return est, ref


def si_sdr(est: np.ndarray, ref: np.ndarray) -> float:
    """Scale-invariant SDR in dB of zero-mean ``est`` against zero-mean ``ref``.

    Returns inf when ``est`` is an exact scaled copy of ``ref``; a silent ``ref`` raises ValueError.
    """
    est, ref = (a.astype(np.float64) for a in _pair(est, ref))
    est = est - est.mean()
    ref = ref - ref.mean()
    ref_energy = float(np.dot(ref, ref))
    if ref_energy == 0.0:
        raise ValueError("ref is silent; SI-SDR is undefined")
    target = (np.dot(est, ref) / ref_energy) * ref
    error_energy = float(np.sum(np.square(est - target)))
    if error_energy == 0.0:
        return float("inf")
    return float(10.0 * np.log10(np.sum(np.square(target)) / error_energy))


def pesq_wb(est: np.ndarray, ref: np.ndarray, sr: int = PESQ_RATE) -> float:
    """Wide-band PESQ (P.862.2) via the ``pesq`` package, resampling to 16 kHz if needed.

    Silent input, or input in which PESQ finds no utterance, gives NaN with a warning.
    """
    est, ref = _pair(est, ref)
    est, ref = resample(est, sr, PESQ_RATE), resample(ref, sr, PESQ_RATE)
    if not (np.any(est) and np.any(ref)):
        warnings.warn("pesq_wb: silent input, returning NaN", stacklevel=2)
        return float("nan")
    try:
        return float(pesq.pesq(PESQ_RATE, ref, est, "wb"))
    except pesq.NoUtterancesError:
        warnings.warn("pesq_wb: no utterances detected, returning NaN", stacklevel=2)
        return float("nan")


def estoi(est: np.ndarray, ref: np.ndarray, sr: int) -> float:
    """Extended STOI (pystoi, extended=True), in [0, 1] for typical input."""
    est, ref = _pair(est, ref)
    return float(stoi(ref, est, sr, extended=True))


def dnsmos(est: np.ndarray, sr: int) -> dict[str, float]:
    """Non-intrusive DNSMOS P.835 (speechmos, non-personalized): {"sig", "bak", "ovrl"} in [1, 5].

    Input is resampled to 16 kHz; samples beyond [-1, 1] are clipped with a warning, as they would
    be in a 16-bit file. Requires the optional ``speechmos`` and ``onnxruntime`` packages.
    """
    try:
        from speechmos import dnsmos as speechmos_dnsmos
    except ImportError as err:
        raise ImportError(
            "dnsmos needs the optional packages 'speechmos' and 'onnxruntime' "
            "(pip install speechmos onnxruntime)"
        ) from err
    x = resample(validate_waveform(est, name="est"), sr, PESQ_RATE)
    clipped = int(np.count_nonzero(np.abs(x) > 1.0))
    if clipped:
        warnings.warn(f"dnsmos: clipped {clipped} samples beyond [-1, 1]", stacklevel=2)
        x = np.clip(x, -1.0, 1.0)
    scores = speechmos_dnsmos.run(x, PESQ_RATE, model_type="dnsmos")
    return {key: float(scores[f"{key}_mos"]) for key in ("sig", "bak", "ovrl")}


def score_pair(
    est: np.ndarray, ref: np.ndarray, sr: int, metrics: Sequence[str] = METRICS
) -> dict[str, float]:
    """The requested metrics of ``est`` against ``ref``.

    Keys: "pesq", "estoi", "si_sdr", and for "dnsmos" the keys "dnsmos_sig", "dnsmos_bak",
    "dnsmos_ovrl" (DNSMOS scores ``est`` only).
    """
    unknown = sorted(set(metrics) - set(METRICS))
    if unknown:
        raise ValueError(f"unknown metrics {unknown}; choose from {METRICS}")
    est, ref = _pair(est, ref)
    intrusive: dict[str, Callable[[], float]] = {
        "pesq": lambda: pesq_wb(est, ref, sr),
        "estoi": lambda: estoi(est, ref, sr),
        "si_sdr": lambda: si_sdr(est, ref),
    }
    scores: dict[str, float] = {}
    for name in metrics:
        if name == "dnsmos":
            scores.update({f"dnsmos_{k}": v for k, v in dnsmos(est, sr).items()})
        else:
            scores[name] = intrusive[name]()
    return scores


def align_delay(est: np.ndarray, ref: np.ndarray, max_lag: int) -> int:
    """Lag L in [-max_lag, max_lag] maximising sum_n est[n] * ref[n - L] (FFT cross-correlation).

    A positive L means ``est`` lags ``ref``; ``shift(est, -L)`` aligns it. The signals may differ
    in length.
    """
    est = validate_waveform(est, name="est").astype(np.float64)
    ref = validate_waveform(ref, name="ref").astype(np.float64)
    if max_lag < 0:
        raise ValueError(f"max_lag must be >= 0, got {max_lag}")
    size = est.size + ref.size - 1
    n_fft = 1 << (size - 1).bit_length()
    corr = np.fft.irfft(np.fft.rfft(est, n_fft) * np.conj(np.fft.rfft(ref, n_fft)), n_fft)
    lags = np.arange(-min(max_lag, ref.size - 1), min(max_lag, est.size - 1) + 1)
    return int(lags[np.argmax(corr[lags % n_fft])])


def shift(x: np.ndarray, lag: int) -> np.ndarray:
    """Delay ``x`` by ``lag`` samples (advance if negative), zero-filling, keeping its length."""
    x = np.asarray(x)
    out = np.zeros_like(x)
    if abs(lag) >= x.size:
        return out
    if lag >= 0:
        out[lag:] = x[: x.size - lag]
    else:
        out[:lag] = x[-lag:]
    return out
