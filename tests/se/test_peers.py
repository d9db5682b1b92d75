"""Peer enhancers and the ``bench se`` report on tiny inputs."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from latentdiff.reporting import plot_path
from latentdiff.se.audio import load_audio, save_audio
from latentdiff.se.bench import PLOT_NAME, SPECTROGRAM_NAME, run_bench, write_results
from latentdiff.se.datadir import DataDir, write_datadir
from latentdiff.se.metrics import si_sdr
from latentdiff.se.mixing import colored_noise, mix_at_snr
from latentdiff.se.peers import (
    PEER_PACKAGES,
    IdentityPeer,
    Peer,
    estimate_delay,
    make_peer,
    missing_package,
)

RATE = 16000


def _speech(tmp_path: Path, text: str, seconds: float = 1.0) -> np.ndarray:
    """``seconds`` of espeak-ng speech at 16 kHz (skips the test without espeak-ng)."""
    if shutil.which("espeak-ng") is None:
        pytest.skip("needs espeak-ng")
    wav = tmp_path / f"espeak-{len(list(tmp_path.glob('espeak-*.wav')))}.wav"
    subprocess.run(["espeak-ng", "-w", str(wav), text], check=True, capture_output=True)
    speech = load_audio(wav, RATE)
    return np.pad(speech, (0, max(0, int(seconds * RATE) - speech.size)))[: int(seconds * RATE)]


def _noisy(speech: np.ndarray, snr_db: float, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    noise = colored_noise(speech.size, 1.0, rng)
    return mix_at_snr(speech, noise, snr_db, rng)[0]


@pytest.mark.parametrize("name", sorted(PEER_PACKAGES))
def test_peer_returns_same_length_finite_output(tmp_path: Path, name: str) -> None:
    reason = missing_package(name)
    if reason is not None:
        pytest.skip(reason)
    noisy = _noisy(_speech(tmp_path, "The quick brown fox jumps over the lazy dog."), 5.0, 0)
    out = make_peer(name).enhance(noisy)
    assert out.dtype == np.float32
    assert out.shape == noisy.shape
    assert np.all(np.isfinite(out))
    assert np.max(np.abs(out)) > 1e-3, "output is silent"


@pytest.mark.parametrize("name", ["deepfilternet3", "rnnoise"])
def test_learned_peers_improve_white_noise_after_delay_compensation(
    tmp_path: Path, name: str
) -> None:
    """A wrapping or alignment bug shows up as a lower SI-SDR than the noisy input."""
    reason = missing_package(name)
    if reason is not None:
        pytest.skip(reason)
    speech = _speech(tmp_path, "The birch canoe slid on the smooth planks.", seconds=2.0)
    rng = np.random.default_rng(0)
    noisy = mix_at_snr(speech, colored_noise(speech.size, 0.0, rng), 0.0, rng)[0]
    peer = make_peer(name)
    peer.delay = estimate_delay(peer, [noisy], [speech])
    gain = si_sdr(peer.enhance(noisy), speech) - si_sdr(noisy, speech)
    print(f"{name}: delay {peer.delay} samples, SI-SDR gain {gain:.1f} dB")
    assert gain > 5.0


class _DelayedCopy(Peer):
    """The input delayed by a fixed number of samples, as a peer with a known delay."""

    name = "delayed"

    def process(self, x: np.ndarray) -> np.ndarray:
        return np.concatenate([np.zeros(37, dtype=np.float32), x])


def test_bench_writes_tables_and_compensates_delay(tmp_path: Path) -> None:
    root = tmp_path / "data"
    data = DataDir()
    texts = {"u1": "Open the window please.", "u2": "It is raining in the city today."}
    for index, (utt, text) in enumerate(texts.items()):
        clean = 0.5 * _speech(tmp_path, text, seconds=1.5)
        snr = 0.0 if utt == "u1" else 10.0
        for kind, wave in (("clean", clean), ("noisy", _noisy(clean, snr, index))):
            save_audio(root / kind / f"{utt}.wav", wave, RATE)
        data.wav[utt] = str(root / "noisy" / f"{utt}.wav")
        data.spk1_scp[utt] = str(root / "clean" / f"{utt}.wav")
        data.utt2spk[utt] = utt
        data.utt2snr[utt] = snr
        data.utt2noise_type[utt] = "colored"
    write_datadir(data, root)
    assert sf.info(data.wav["u1"]).samplerate == RATE

    result = run_bench([_DelayedCopy()], root)
    assert result.delays == {"noisy": 0, "delayed": 37}
    # the delayed copy, once compensated, scores like the noisy input (up to the lost tail)
    for metric in ("pesq", "si_sdr"):
        assert result.mean("delayed", metric) == pytest.approx(
            result.mean(IdentityPeer.name, metric), abs=0.05
        )
    assert result.mean("noisy", "si_sdr", ["u2"]) == pytest.approx(10.0, abs=0.1)
    # spectrogram examples: noisy input, the first system (delay-compensated) and clean speech
    assert list(result.examples) == ["u1", "u2"]
    example = result.examples["u2"]
    assert list(example) == ["noisy", "delayed", "clean"]
    np.testing.assert_allclose(example["delayed"][:-37], example["noisy"][:-37], atol=1e-6)

    report = write_results(result, tmp_path / "RESULTS.md", "latentdiff bench se", {"x": "why"})
    text = report.read_text()
    for heading in ("## Overall", "per input SNR", "per noise type", "## Skipped systems"):
        assert heading in text
    assert "| system | pesq | estoi | si_sdr | delay (samples) | RTF |" in text
    assert "| system | 0 | 10 |" in text
    assert "| system | colored |" in text
    assert "Command: `latentdiff bench se`" in text
    assert plot_path(report, PLOT_NAME) == tmp_path / "plots" / f"results_{PLOT_NAME}"
    assert plot_path(report, PLOT_NAME).stat().st_size > 1000
    assert plot_path(report, SPECTROGRAM_NAME).stat().st_size > 1000
    assert f"![spectrograms](plots/results_{SPECTROGRAM_NAME})" in text
