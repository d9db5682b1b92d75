"""Audio loading, saving and waveform validation."""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from latentdiff.se.audio import (
    AudioError,
    atomic_output,
    load_audio,
    resample,
    save_audio,
    validate_waveform,
)


def _tone(freq: float, sr: int, seconds: float, amplitude: float = 0.5) -> np.ndarray:
    t = np.arange(int(sr * seconds)) / sr
    return (amplitude * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def _peak_freq(x: np.ndarray, sr: int) -> float:
    spectrum = np.abs(np.fft.rfft(x * np.hanning(x.size)))
    return float(np.fft.rfftfreq(x.size, 1 / sr)[np.argmax(spectrum)])


def test_int16_wav_is_scaled_to_float(tmp_path: Path) -> None:
    samples = np.array([0, 16384, -32768, 32767], dtype=np.int16)
    sf.write(tmp_path / "a.wav", samples, 16000, subtype="PCM_16")
    x = load_audio(tmp_path / "a.wav")
    assert x.dtype == np.float32 and x.shape == (4,)
    np.testing.assert_allclose(x, samples / 32768.0, atol=1e-7)


@pytest.mark.parametrize(("mono", "expected"), [("mean", 0.25), ("first", 0.5)])
def test_multichannel_policies(tmp_path: Path, mono: str, expected: float) -> None:
    stereo = np.stack([np.full(100, 0.5), np.zeros(100)], axis=1)
    sf.write(tmp_path / "s.flac", stereo, 16000, subtype="PCM_24")
    x = load_audio(tmp_path / "s.flac", mono=mono)  # type: ignore[arg-type]
    np.testing.assert_allclose(x, expected, atol=1e-6)


def test_multichannel_error_policy_names_file(tmp_path: Path) -> None:
    sf.write(tmp_path / "s.wav", np.zeros((100, 2)), 16000)
    with pytest.raises(AudioError, match=r"s\.wav.*2 channels"):
        load_audio(tmp_path / "s.wav", mono="error")


def test_resampled_on_load(tmp_path: Path) -> None:
    sf.write(tmp_path / "t.wav", _tone(440.0, 8000, 1.0), 8000, subtype="FLOAT")
    x = load_audio(tmp_path / "t.wav", 16000)
    assert abs(x.size - 16000) <= 1
    assert abs(_peak_freq(x, 16000) - 440.0) < 2.0
    assert abs(np.sqrt(np.mean(x[1000:-1000] ** 2)) - 0.5 / np.sqrt(2)) < 0.01


def test_resample_identity_and_length() -> None:
    x = _tone(1000.0, 48000, 0.5)
    np.testing.assert_array_equal(resample(x, 48000, 48000), x)
    y = resample(x, 48000, 16000)
    assert y.dtype == np.float32 and abs(y.size - 8000) <= 1
    assert abs(_peak_freq(y, 16000) - 1000.0) < 3.0
    with pytest.raises(ValueError, match="positive"):
        resample(x, 0, 16000)


def test_load_errors_name_the_file(tmp_path: Path) -> None:
    with pytest.raises(AudioError, match=r"missing\.wav: audio file not found"):
        load_audio(tmp_path / "missing.wav")
    sf.write(tmp_path / "empty.wav", np.zeros(0), 16000)
    with pytest.raises(AudioError, match=r"empty\.wav: audio file is empty"):
        load_audio(tmp_path / "empty.wav")
    (tmp_path / "corrupt.wav").write_bytes(b"RIFF\x00\x01garbage" * 10)
    with pytest.raises(AudioError, match=r"corrupt\.wav: cannot decode"):
        load_audio(tmp_path / "corrupt.wav")
    sf.write(tmp_path / "nan.wav", np.array([0.1, np.nan, np.inf]), 16000, subtype="FLOAT")
    with pytest.raises(AudioError, match=r"nan\.wav: 2 NaN/Inf samples"):
        load_audio(tmp_path / "nan.wav")


@pytest.mark.parametrize(
    ("suffix", "subtype", "tol"),
    [
        (".wav", None, 1 / 32768),
        (".wav", "FLOAT", 0.0),
        (".flac", None, 1 / 32768),
    ],
)
def test_save_load_round_trip(tmp_path: Path, suffix: str, subtype: str | None, tol: float) -> None:
    x = np.random.default_rng(0).uniform(-0.9, 0.9, 4000).astype(np.float32)
    path = tmp_path / "sub" / f"x{suffix}"
    save_audio(path, x, 16000, subtype=subtype)
    np.testing.assert_allclose(load_audio(path), x, atol=tol)
    assert sorted(p.name for p in path.parent.iterdir()) == [path.name]
    assert os.stat(path).st_mode & 0o777 == 0o666 & ~_umask()


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def test_save_ogg_round_trip(tmp_path: Path) -> None:
    x = _tone(440.0, 16000, 1.0)
    save_audio(tmp_path / "x.ogg", x, 16000)
    y = load_audio(tmp_path / "x.ogg")
    assert y.size == x.size
    assert abs(_peak_freq(y, 16000) - 440.0) < 2.0
    assert np.sqrt(np.mean((y - x) ** 2)) < 0.05


def test_save_clips_with_count_and_keeps_float_values(tmp_path: Path) -> None:
    x = np.array([0.0, 1.5, -2.0, 0.5], dtype=np.float32)
    with pytest.warns(UserWarning, match="clipped 2 samples"):
        save_audio(tmp_path / "c.wav", x, 16000)
    np.testing.assert_allclose(load_audio(tmp_path / "c.wav"), [0, 32767 / 32768, -1, 0.5])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        save_audio(tmp_path / "f.wav", x, 16000, subtype="float")
    np.testing.assert_array_equal(load_audio(tmp_path / "f.wav"), x)


def test_failed_save_leaves_no_file(tmp_path: Path) -> None:
    with pytest.raises(AudioError, match="unsupported suffix"):
        save_audio(tmp_path / "x.mp4", np.zeros(10, np.float32), 16000)
    with pytest.raises(AudioError, match="NaN"):
        save_audio(tmp_path / "x.wav", np.array([np.nan], np.float32), 16000)
    with pytest.raises(AudioError, match="sample rate must be positive"):
        save_audio(tmp_path / "y.wav", np.zeros(10, np.float32), 0)
    with pytest.raises(AudioError, match="subtype VORBIS is not valid for WAV"):
        save_audio(tmp_path / "z.wav", np.zeros(10, np.float32), 16000, subtype="vorbis")
    assert list(tmp_path.iterdir()) == []


def test_save_replaces_existing_file(tmp_path: Path) -> None:
    path = tmp_path / "x.wav"
    save_audio(path, np.zeros(10, np.float32), 16000)
    save_audio(path, np.full(20, 0.25, np.float32), 16000)
    np.testing.assert_allclose(load_audio(path), 0.25)


def test_validate_waveform_int16_and_layouts() -> None:
    pcm = np.array([16384, -32768], dtype=np.int16)
    np.testing.assert_allclose(validate_waveform(pcm), [0.5, -1.0])
    time_major = np.stack([np.full(50, 1.0), np.zeros(50)], axis=1)  # (T, C)
    np.testing.assert_allclose(validate_waveform(time_major), 0.5)
    np.testing.assert_allclose(validate_waveform(time_major.T), 0.5)  # (C, T)
    np.testing.assert_allclose(validate_waveform(time_major.T, mono="first"), 1.0)
    with pytest.raises(ValueError, match="unknown mono policy 'left'"):
        validate_waveform(np.zeros(4), mono="left")  # type: ignore[arg-type]
    x = np.ones(5, np.float32)
    y = validate_waveform(x)
    y[0] = 0.0
    assert x[0] == 1.0, "must not alias the caller's array"


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (np.array([0.0, np.nan]), "clip: 1 NaN/Inf samples"),
        (np.zeros(0), "clip: empty waveform"),
        (np.zeros((2, 3, 4)), "expected a 1-D or 2-D waveform"),
        (np.zeros(10, dtype=np.int32), "float or int16 samples, got dtype int32"),
        (np.zeros((20, 30)), "cannot tell channels from time"),
        ([0.0, 1.0], "expected a numpy array, got list"),
        (np.zeros((2, 100)), "expected mono audio, got 2 channels"),
    ],
)
def test_validate_waveform_rejects(value: object, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        validate_waveform(value, name="clip", mono="error")  # type: ignore[arg-type]


def test_atomic_output_keeps_old_file_on_failure(tmp_path: Path) -> None:
    path = tmp_path / "data.txt"
    path.write_text("old")
    with pytest.raises(RuntimeError, match="boom"), atomic_output(path) as tmp:
        tmp.write_text("partial")
        raise RuntimeError("boom")
    assert path.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["data.txt"]
