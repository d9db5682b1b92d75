"""Audio file I/O and waveform checks: float32 mono signals in, float32 mono signals out."""

from __future__ import annotations

import contextlib
import os
import tempfile
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Literal

import numpy as np
import soundfile as sf
import soxr

MonoPolicy = Literal["mean", "first", "error"]

_FORMATS = {".wav": "WAV", ".flac": "FLAC", ".ogg": "OGG"}
_DEFAULT_SUBTYPES = {"WAV": "PCM_16", "FLAC": "PCM_16", "OGG": "VORBIS"}
_FLOAT_SUBTYPES = {"FLOAT", "DOUBLE"}
_MAX_CHANNELS = 8


def _read_umask() -> int:
    umask = os.umask(0)
    os.umask(umask)
    return umask


_FILE_MODE = 0o666 & ~_read_umask()


class AudioError(ValueError):
    """An audio file or waveform that cannot be used; the message names the file or input."""


def _downmix(x: np.ndarray, mono: MonoPolicy, name: str) -> np.ndarray:
    """(T, C) -> (T,): 'mean' averages channels, 'first' keeps channel 0, 'error' raises."""
    if mono not in ("mean", "first", "error"):
        raise ValueError(f"unknown mono policy {mono!r}; expected 'mean', 'first' or 'error'")
    if x.shape[1] == 1 or mono == "first":
        return x[:, 0]
    if mono == "error":
        raise AudioError(f"{name}: expected mono audio, got {x.shape[1]} channels")
    return x.mean(axis=1, dtype=np.float64).astype(np.float32)


def _check_finite(x: np.ndarray, name: str) -> None:
    if not np.isfinite(x).all():
        bad = int(np.count_nonzero(~np.isfinite(x)))
        raise AudioError(f"{name}: {bad} NaN/Inf samples")


def resample(x: np.ndarray, sr_in: int, sr_out: int) -> np.ndarray:
    """Resample a 1-D float signal with soxr (HQ); returns float32, unchanged if the rates match."""
    if sr_in <= 0 or sr_out <= 0:
        raise ValueError(f"sample rates must be positive, got {sr_in} -> {sr_out}")
    x = np.asarray(x, dtype=np.float32)
    if sr_in == sr_out:
        return x
    return np.asarray(soxr.resample(x, sr_in, sr_out, quality="HQ"), dtype=np.float32)


def load_audio(
    path: str | Path, sample_rate: int = 16000, *, mono: MonoPolicy = "mean"
) -> np.ndarray:
    """Read a wav/flac/ogg file as float32 (T,) at ``sample_rate``.

    Integer PCM is scaled to [-1, 1). Multi-channel files are reduced per ``mono``: "mean" (default)
    averages the channels, "first" keeps channel 0, "error" raises. Files at another rate are
    resampled with soxr (HQ). Raises AudioError naming the file when it is missing, unreadable,
    empty, or holds NaN/Inf samples.
    """
    path = Path(path)
    if not path.is_file():
        raise AudioError(f"{path}: audio file not found")
    try:
        data, file_rate = sf.read(str(path), dtype="float32", always_2d=True)
    except (sf.SoundFileError, RuntimeError, TypeError) as err:
        raise AudioError(f"{path}: cannot decode audio ({err})") from err
    if data.shape[0] == 0:
        raise AudioError(f"{path}: audio file is empty (0 samples)")
    _check_finite(data, str(path))
    return resample(_downmix(data, mono, str(path)), file_rate, sample_rate)


@contextlib.contextmanager
def atomic_output(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; it replaces ``path`` only if the block succeeds."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        yield tmp
        tmp.chmod(_FILE_MODE)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def save_audio(
    path: str | Path, x: np.ndarray, sample_rate: int, *, subtype: str | None = None
) -> None:
    """Write mono audio atomically; the format follows the suffix (.wav, .flac, .ogg).

    ``subtype`` defaults to PCM_16 for wav/flac and VORBIS for ogg; pass "FLOAT" for float32 wav.
    Except for float subtypes, samples beyond [-1, 1] are clipped and a warning gives their count.
    """
    path = Path(path)
    fmt = _FORMATS.get(path.suffix.lower())
    if fmt is None:
        raise AudioError(f"{path}: unsupported suffix; expected one of {sorted(_FORMATS)}")
    if sample_rate <= 0:
        raise AudioError(f"{path}: sample rate must be positive, got {sample_rate}")
    subtype = (subtype or _DEFAULT_SUBTYPES[fmt]).upper()
    if not sf.check_format(fmt, subtype):
        raise AudioError(f"{path}: subtype {subtype} is not valid for {fmt}")
    x = validate_waveform(x, name=str(path))
    if subtype not in _FLOAT_SUBTYPES:
        clipped = int(np.count_nonzero(np.abs(x) > 1.0))
        if clipped:
            warnings.warn(f"{path}: clipped {clipped} samples beyond [-1, 1]", stacklevel=2)
            x = np.clip(x, -1.0, 1.0)
    with atomic_output(path) as tmp:
        sf.write(str(tmp), x, sample_rate, subtype=subtype, format=fmt)


def as_float32_samples(x: object, name: str) -> np.ndarray:
    """A numpy array of float or int16 samples as float32 (int16 scaled by 1/32768); AudioError
    for anything else."""
    if not isinstance(x, np.ndarray):
        raise AudioError(f"{name}: expected a numpy array, got {type(x).__name__}")
    if x.dtype == np.int16:
        return x.astype(np.float32) / 32768.0
    if np.issubdtype(x.dtype, np.floating):
        return x.astype(np.float32, copy=False)
    raise AudioError(f"{name}: expected float or int16 samples, got dtype {x.dtype}")


def validate_waveform(
    x: np.ndarray, *, name: str = "input", mono: MonoPolicy = "mean"
) -> np.ndarray:
    """Check an API input and return it as float32 (T,).

    Accepts float arrays and int16 arrays (scaled by 1/32768). A 2-D array is (T, C) or (C, T): the
    smaller dimension is taken as channels when it is at most 8, and reduced per ``mono``. Raises
    AudioError (a ValueError) for other types, NaN/Inf, empty input, or more than 2 dimensions.
    """
    x = as_float32_samples(x, name)
    if x.size == 0:
        raise AudioError(f"{name}: empty waveform (shape {x.shape})")
    if x.ndim == 1:
        x = x[:, None]
    elif x.ndim == 2:
        if min(x.shape) > _MAX_CHANNELS:
            raise AudioError(
                f"{name}: cannot tell channels from time in shape {x.shape} "
                f"(at most {_MAX_CHANNELS} channels)"
            )
        if x.shape[0] <= x.shape[1]:
            x = x.T
    else:
        raise AudioError(f"{name}: expected a 1-D or 2-D waveform, got shape {x.shape}")
    _check_finite(x, name)
    x = _downmix(x, mono, name)
    return np.array(x, dtype=np.float32, order="C")
