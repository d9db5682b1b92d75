"""Causal STFT with perfect reconstruction, compressed complex features, and a streaming twin.

Framing: frame k covers samples [k*hop - (win - hop), k*hop + hop), i.e. the signal is
left-padded with win - hop zeros and never centred, so frame k can be computed as soon as sample
k*hop + hop - 1 has arrived. Each frame is multiplied by a periodic sqrt-Hann window and
zero-padded at its end to n_fft before the FFT. Synthesis applies the same window and
overlap-adds; with win a multiple of hop the summed squared window is periodic in hop (constant
for sqrt-Hann) and is divided out, so the inverse of an unmodified spectrum returns the input.
"""

from __future__ import annotations

import dataclasses

import torch
import torch.nn.functional as F
from torch import Tensor, nn

_WINDOWS = ("sqrt_hann",)
_MAGNITUDE_FLOOR = 1e-6


@dataclasses.dataclass
class StftConfig:
    """STFT geometry (samples) and feature compression (|X|^compress; 1.0 = none)."""

    sample_rate: int = 16000
    n_fft: int = 160
    hop: int = 80
    win: int = 160
    window: str = "sqrt_hann"
    compress: float = 0.3

    def __post_init__(self) -> None:
        if self.window not in _WINDOWS:
            raise ValueError(f"unknown window {self.window!r}; supported: {_WINDOWS}")
        if self.sample_rate <= 0 or self.hop <= 0:
            raise ValueError("sample_rate and hop must be positive")
        if self.win % self.hop or self.win // self.hop < 2:
            raise ValueError(f"win ({self.win}) must be a multiple (>= 2) of hop ({self.hop})")
        if self.n_fft < self.win:
            raise ValueError(f"n_fft ({self.n_fft}) must be >= win ({self.win})")
        if self.compress <= 0:
            raise ValueError(f"compress must be positive, got {self.compress}")


class Stft(nn.Module):
    """Offline causal STFT: (B, T) waveforms <-> (B, F, frames) spectra, F = n_fft // 2 + 1."""

    window: Tensor
    envelope: Tensor

    def __init__(self, cfg: StftConfig | None = None) -> None:
        super().__init__()
        self.cfg = cfg or StftConfig()
        window = torch.hann_window(self.cfg.win, periodic=True, dtype=torch.float64).sqrt()
        envelope = window.square().reshape(-1, self.cfg.hop).sum(dim=0)
        self.register_buffer("window", window.float(), persistent=False)
        self.register_buffer("envelope", envelope.float(), persistent=False)

    @property
    def n_freqs(self) -> int:
        """Number of frequency bins F."""
        return self.cfg.n_fft // 2 + 1

    @property
    def latency_ms(self) -> float:
        """Algorithmic latency by the DNS challenge rule: (win + hop) / sample_rate, in ms."""
        return 1000.0 * (self.cfg.win + self.cfg.hop) / self.cfg.sample_rate

    @property
    def latency_ms_window_convention(self) -> float:
        """Latency counted as one window: win / sample_rate, in ms."""
        return 1000.0 * self.cfg.win / self.cfg.sample_rate

    def frames_for(self, length: int) -> int:
        """Frames produced for ``length`` samples: every sample gets all win/hop frames over it."""
        if length <= 0:
            raise ValueError(f"length must be positive, got {length}")
        return (length - 1 + self.cfg.win) // self.cfg.hop

    def frame_spectra(self, frames: Tensor) -> Tensor:
        """(B, k, win) raw time frames -> (B, F, k) complex spectra (k may be 0)."""
        if frames.shape[1] == 0:
            shape = (frames.shape[0], self.n_freqs, 0)
            return frames.new_zeros(shape, dtype=frames.dtype.to_complex())
        return torch.fft.rfft(frames * self.window, n=self.cfg.n_fft).transpose(1, 2)

    def frame_signals(self, spec: Tensor) -> Tensor:
        """(B, F, k) complex spectra -> (B, k, win) synthesis-windowed time frames (k may be 0)."""
        if spec.dim() != 3 or spec.shape[1] != self.n_freqs:
            raise ValueError(f"expected spectra (B, {self.n_freqs}, frames), got {spec.shape}")
        if spec.shape[2] == 0:
            return spec.real.new_zeros(spec.shape[0], 0, self.cfg.win)
        frames = torch.fft.irfft(spec.transpose(1, 2), n=self.cfg.n_fft)
        return frames[..., : self.cfg.win] * self.window

    def forward(self, x: Tensor) -> Tensor:
        """(B, T) waveform -> (B, F, frames_for(T)) complex spectrum."""
        if x.dim() != 2 or x.shape[1] == 0:
            raise ValueError(f"expected a (B, T) waveform with T > 0, got {tuple(x.shape)}")
        win, hop = self.cfg.win, self.cfg.hop
        n_frames = self.frames_for(x.shape[1])
        padded = F.pad(x, (win - hop, n_frames * hop - x.shape[1]))
        return self.frame_spectra(padded.unfold(-1, win, hop))

    def inverse(self, spec: Tensor, length: int) -> Tensor:
        """(B, F, frames) complex spectrum -> (B, length) waveform, with zero delay."""
        win, hop = self.cfg.win, self.cfg.hop
        frames = self.frame_signals(spec)
        n_frames = frames.shape[1]
        longest = (n_frames + 1) * hop - win
        if not 0 < length <= longest:
            raise ValueError(f"{n_frames} frames reconstruct 1..{longest} samples, not {length}")
        total = (n_frames - 1) * hop + win
        summed = F.fold(
            frames.transpose(1, 2), output_size=(1, total), kernel_size=(1, win), stride=(1, hop)
        ).reshape(frames.shape[0], total)
        start = win - hop
        envelope = self.envelope.repeat(-(-length // hop))[:length]
        return summed[:, start : start + length] / envelope

    def to_features(self, spec: Tensor) -> Tensor:
        """(B, F, frames) complex -> (B, 2F, frames) real: [Re; Im] of |X|^c * exp(j angle X).

        Below a magnitude of 1e-6 the map is linear (X * 1e-6^(c-1)) so gradients stay finite.
        """
        gain = spec.abs().clamp_min(_MAGNITUDE_FLOOR).pow(self.cfg.compress - 1.0)
        compressed = spec * gain
        return torch.cat([compressed.real, compressed.imag], dim=1)

    def from_features(self, features: Tensor) -> Tensor:
        """Exact inverse of ``to_features``: (B, 2F, frames) real -> (B, F, frames) complex."""
        if features.dim() != 3 or features.shape[1] != 2 * self.n_freqs:
            raise ValueError(
                f"expected features (B, {2 * self.n_freqs}, frames), got {tuple(features.shape)}"
            )
        real, imag = features.chunk(2, dim=1)
        compressed = torch.complex(real, imag)
        c = self.cfg.compress
        gain = compressed.abs().clamp_min(_MAGNITUDE_FLOOR**c).pow(1.0 / c - 1.0)
        return compressed * gain


class StreamingStft:
    """Block-wise analysis and synthesis that reproduce ``Stft`` exactly for any block sizes.

    ``analyze`` takes any number of new samples and returns the frames that became complete;
    ``synthesize`` takes frames and returns hop samples per frame. The synthesised stream lags
    the offline inverse by ``delay_samples`` = win - hop samples: stream[n] == offline[n - delay]
    (the first ``delay_samples`` outputs belong to the left padding). Counted from the arrival of
    an input sample, its output is ready after between win - hop and win - 1 further samples,
    since a frame needs its last hop samples.
    """

    def __init__(self, cfg: StftConfig | None = None) -> None:
        self.stft = Stft(cfg)
        self._pending: Tensor | None = None
        self._tail: Tensor | None = None

    @property
    def delay_samples(self) -> int:
        """Constant lag of the synthesised stream behind the input, in samples."""
        return self.stft.cfg.win - self.stft.cfg.hop

    @property
    def state_numel(self) -> int:
        """Elements buffered between calls (at most win - hop input and output samples)."""
        return sum(t.numel() for t in (self._pending, self._tail) if t is not None)

    def state(self) -> tuple[Tensor, Tensor]:
        """(analysis buffer, overlap-add tail), each (1, win - hop), when fed whole hops."""
        zeros = torch.zeros(1, self.stft.cfg.win - self.stft.cfg.hop)
        pending = zeros if self._pending is None else self._pending
        return pending, zeros if self._tail is None else self._tail

    def load_state(self, pending: Tensor, tail: Tensor) -> None:
        """Set the analysis buffer and overlap-add tail (see :meth:`state`)."""
        self._pending, self._tail = pending, tail

    def reset(self) -> None:
        """Forget buffered input and overlap-add state (start a new stream)."""
        self._pending = None
        self._tail = None

    def analyze(self, block: Tensor) -> Tensor:
        """(B, n) new samples -> (B, F, k) complex spectra of the k frames now complete."""
        if block.dim() != 2:
            raise ValueError(f"expected a (B, n) block, got {tuple(block.shape)}")
        win, hop = self.stft.cfg.win, self.stft.cfg.hop
        if self._pending is None:
            self._pending = block.new_zeros(block.shape[0], win - hop)
        buffer = torch.cat([self._pending, block], dim=1)
        if buffer.shape[1] < win:
            self._pending = buffer
            return self.stft.frame_spectra(buffer.new_zeros(buffer.shape[0], 0, win))
        n_ready = (buffer.shape[1] - win) // hop + 1
        frames = buffer[:, : (n_ready - 1) * hop + win].unfold(-1, win, hop)
        self._pending = buffer[:, n_ready * hop :]
        return self.stft.frame_spectra(frames)

    def synthesize(self, spec: Tensor) -> Tensor:
        """(B, F, k) complex spectra -> (B, k * hop) output samples, by overlap-add."""
        win, hop = self.stft.cfg.win, self.stft.cfg.hop
        frames = self.stft.frame_signals(spec)
        batch, n_frames = frames.shape[0], frames.shape[1]
        if self._tail is None:
            self._tail = frames.new_zeros(batch, win - hop)
        if n_frames == 0:
            return frames.new_zeros(batch, 0)
        total = (n_frames - 1) * hop + win
        summed = F.fold(
            frames.transpose(1, 2), output_size=(1, total), kernel_size=(1, win), stride=(1, hop)
        ).reshape(batch, total)
        summed[:, : win - hop] += self._tail
        self._tail = summed[:, n_frames * hop :]
        return summed[:, : n_frames * hop] / self.stft.envelope.repeat(n_frames)
