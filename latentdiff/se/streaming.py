"""Real-time streaming enhancement: ``Enhancer.stream()`` sessions.

A :class:`StreamSession` takes audio blocks of any length and returns the enhanced samples that are
ready. It runs the model one *block* at a time (a latent frame: ``downsample`` STFT hops, 10 ms for
the bundled model) and keeps every state between calls: the STFT analysis buffer and overlap-add
tail, the left context of every causal convolution, one denoiser state per sampler evaluation and
the two decoder states. Sampling noise is drawn per latent frame (``frame_noise``), so the
concatenated output equals ``Enhancer.enhance`` on the whole signal for any cutting into blocks,
and per-block work and memory are constant. Several complete blocks in one call are processed
together (same result, less overhead); a single block goes through a compiled kernel
(``backend``: onnxruntime by default, see ``latentdiff.se.stream_path``). ``precision`` is the
kernel's (``latentdiff.se.stream_kernels``: int8, fp16, and bf16 with TorchScript); several blocks
in one call and the end of the stream run eagerly in float32.

Delay: output sample ``n`` is returned once the STFT frame after it is complete, i.e. after input
sample ``n + window - 1 + lookahead`` at the latest; this is the window + lookahead latency
(15 ms for the bundled model). The DNS-challenge latency adds one hop for processing time (20 ms).

Real time (``realtime=RealtimePolicy()``): a block whose processing takes longer than its duration
(times ``budget``) is an overrun; the session steps down a ladder of cheaper levels (fewer sampler
steps, then the predictive estimate alone, then pass-through of the input) and steps back up after
``recover_after`` blocks processed well within budget. A level change restarts the model's states
(the STFT states and the output timing are kept), so the output stays continuous in time.
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import soxr
import torch
from torch import Tensor

from latentdiff.se import STREAM_BACKENDS as BACKENDS
from latentdiff.se.audio import as_float32_samples
from latentdiff.se.model import LatentSE, PredictiveSE, SEModel, synthesis_spectrum
from latentdiff.se.stft import StreamingStft
from latentdiff.se.stream_kernels import BlockKernel, block_kernel, check_kernel_precision
from latentdiff.se.stream_path import FeaturePath

PASS_THROUGH = -1  # steps value of the pass-through level


@dataclass
class RealtimePolicy:
    """Overrun handling for live input (see the module docstring)."""

    budget: float = 1.0  # a block may take this fraction of its duration before it overruns
    recover_budget: float = 0.5  # blocks under this fraction count towards stepping back up
    recover_after: int = 200  # consecutive such blocks (2 s at 10 ms) before stepping up
    clock: Callable[[], float] = time.perf_counter

    def __post_init__(self) -> None:
        if not 0 < self.recover_budget <= self.budget:
            raise ValueError("need 0 < recover_budget <= budget")
        if self.recover_after < 1:
            raise ValueError(f"recover_after must be >= 1, got {self.recover_after}")


@dataclass
class StreamStats:
    """Counters of a streaming session."""

    blocks: int = 0  # model blocks processed
    overruns: int = 0  # blocks over the real-time budget
    level: int = 0  # 0 = full quality; higher = cheaper (see ``StreamSession.levels``)
    steps: int = 0  # sampler steps at the current level (-1: pass-through)
    compute_seconds: float = 0.0
    audio_seconds: float = 0.0
    max_block_ms: float = 0.0

    @property
    def rtf(self) -> float:
        """Real-time factor so far: processing seconds per second of audio."""
        return self.compute_seconds / self.audio_seconds if self.audio_seconds else 0.0


def step_ladder(model: SEModel, steps: int) -> list[int]:
    """Sampler steps per degradation level: ``steps``, halved down to 1, 0, then pass-through."""
    ladder = [steps]
    while ladder[-1] > 1:
        ladder.append(ladder[-1] // 2)
    if ladder[-1] == 1 and model.nfe(0) == 0 and _has_estimate(model):
        ladder.append(0)
    return [*ladder, PASS_THROUGH]


def _has_estimate(model: SEModel) -> bool:
    if isinstance(model, LatentSE):
        return model.head is not None
    return isinstance(model, PredictiveSE)


def _as_block(block: np.ndarray) -> np.ndarray:
    """A process() block as float32 mono (n,): int16 scaled, (n, C) averaged, finite."""
    block = as_float32_samples(block, "block")
    if block.ndim == 2:
        block = block.mean(axis=1, dtype=np.float32)
    elif block.ndim != 1:
        raise ValueError(f"block: expected (n,) or (n, channels) samples, got shape {block.shape}")
    if not np.isfinite(block).all():
        raise ValueError("block: contains NaN or Inf samples")
    return block


class StreamSession:
    """One enhancement stream; see the module docstring."""

    def __init__(
        self,
        model: SEModel,
        *,
        steps: int,
        seed: int = 0,
        sample_rate: int | None = None,
        realtime: RealtimePolicy | None = None,
        backend: str = "onnxruntime",
        precision: str = "fp32",
    ) -> None:
        if backend not in BACKENDS:
            raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")
        if backend == "eager" and precision != "fp32":
            raise ValueError(f"the eager backend runs fp32 only, got precision {precision!r}")
        if backend != "eager":
            check_kernel_precision(backend, precision)
        self.backend = backend
        self.precision = precision
        self.model = model
        self.seed = seed
        self.model_rate = model.sample_rate
        self.sample_rate = self.model_rate if sample_rate is None else sample_rate
        self.realtime = realtime
        self.levels = step_ladder(model, steps)
        self.block_samples = model.downsample * model.cfg.stft.hop
        self._block_seconds = self.block_samples / self.model_rate
        self.stats = StreamStats()
        self._no_kernel: set[int] = set()
        self.reset()

    # -- public interface

    @property
    def latency_ms(self) -> float:
        """Algorithmic latency, DNS rule: window + hop + lookahead (at the model rate)."""
        return self.model.latency_ms(self._steps_at(0))

    @property
    def latency_ms_window_convention(self) -> float:
        """Latency counted as window + lookahead: the largest input-to-output delay."""
        return self.latency_ms - 1000.0 * self.model.cfg.stft.hop / self.model_rate

    @property
    def state_numel(self) -> int:
        """Elements held in all states; constant over a stream."""
        pending = 0 if self._pending is None else self._pending.numel()
        path = 0 if self._path is None else sum(t.numel() for t in self._path_states())
        return path + pending + self._stft.state_numel + self._raw.size

    def reset(self) -> None:
        """Start a new stream: forget all input, states and counters."""
        self.stats = StreamStats(steps=self._steps_at(0))
        self._level = 0
        self._calm = 0
        self._path = self._new_path(0)
        self._flat: list[Tensor] | None = None  # path states while blocks run in the kernel
        self._stft = StreamingStft(self.model.cfg.stft)
        self._raw = np.zeros(0, dtype=np.float32)  # model-rate samples short of a block
        self._pending: Tensor | None = None  # complete STFT frames short of a block (at the end)
        self._frame = 0  # next latent frame index
        self._received = 0  # model-rate samples received
        self._emitted = 0  # model-rate samples returned
        self._drop = self._stft.delay_samples
        self._finished = False
        self._received_in = 0
        self._emitted_out = 0
        self._down = self._resampler(self.sample_rate, self.model_rate)
        self._up = self._resampler(self.model_rate, self.sample_rate)

    @torch.inference_mode()
    def warm_up(self) -> None:
        """Build and run the compiled single-block kernels now (every level's with a real-time
        policy), so that neither the first blocks nor a level change stall a live stream."""
        levels = self.levels if self.realtime is not None else self.levels[:1]
        for steps in levels:
            kernel = self._kernel(steps)
            if kernel is None:
                continue
            # A few throwaway calls: a runtime's first calls allocate and are slow.
            path = FeaturePath(self.model, steps, self.seed)
            pending, tail = StreamingStft(self.model.cfg.stft).state()
            states, audio = path.states(), torch.zeros(1, self.block_samples)
            for _ in range(3):
                _, pending, tail, states = kernel(audio, path.noise(0, 1), pending, tail, states)

    def process(self, block: np.ndarray) -> np.ndarray:
        """Take any number of new samples; return the enhanced samples now ready (float32)."""
        if self._finished:
            raise RuntimeError("the stream was flushed; call reset() to start a new one")
        samples = _as_block(block)
        self._received_in += samples.size
        if self._down is not None:
            samples = self._down.resample_chunk(samples)
        return self._output(self._consume(samples))

    def flush(self) -> np.ndarray:
        """End the stream: return the remaining enhanced samples."""
        if self._finished:
            raise RuntimeError("the stream was already flushed; call reset() to start a new one")
        if self._down is not None:
            tail = self._down.resample_chunk(np.zeros(0, dtype=np.float32), last=True)
            out = self._consume(tail)
        else:
            out = np.zeros(0, dtype=np.float32)
        out = np.concatenate([out, self._finish()])
        self._finished = True
        return self._output(out, last=True)

    # -- internals

    def _resampler(self, rate_in: int, rate_out: int) -> soxr.ResampleStream | None:
        if self.sample_rate == self.model_rate:
            return None
        return soxr.ResampleStream(rate_in, rate_out, 1, dtype="float32", quality="HQ")

    def _steps_at(self, level: int) -> int:
        return self.levels[level]

    def _new_path(self, level: int) -> FeaturePath | None:
        steps = self._steps_at(level)
        return None if steps == PASS_THROUGH else FeaturePath(self.model, steps, self.seed)

    def _kernel(self, steps: int) -> BlockKernel | None:
        """The compiled block kernel at ``steps``, or None (eager backend, pass-through, or a
        model that cannot run per block: then the eager path runs, with a warning)."""
        if self.backend == "eager" or steps == PASS_THROUGH or steps in self._no_kernel:
            return None
        try:
            return block_kernel(self.model, steps, self.backend, self.precision)
        except ValueError as err:
            warnings.warn(f"no {self.backend} kernel ({err}); streaming eagerly", stacklevel=3)
            self._no_kernel.add(steps)
            return None

    def _path_states(self) -> list[Tensor]:
        assert self._path is not None
        return self._flat if self._flat is not None else self._path.states()

    def _sync_path(self) -> None:
        """Hand the kernel's states back to the feature path (before an eager pass)."""
        if self._flat is not None and self._path is not None:
            self._path.load_states(self._flat)
        self._flat = None

    def _output(self, samples: np.ndarray, last: bool = False) -> np.ndarray:
        """Model-rate output -> output at the session rate, aligned to the input length."""
        if self._up is None:
            return samples
        out = self._up.resample_chunk(samples, last=last)
        if last:
            wanted = self._received_in - self._emitted_out - out.size
            out = np.pad(out, (0, max(wanted, 0)))[: out.size + wanted]
        self._emitted_out += out.size
        return out.astype(np.float32, copy=False)

    @torch.inference_mode()
    def _consume(self, samples: np.ndarray) -> np.ndarray:
        """Buffer new samples; process every complete block; return the ready samples."""
        self._received += samples.size
        raw = np.concatenate([self._raw, samples]) if self._raw.size else samples
        n_blocks = raw.size // self.block_samples
        chunk, self._raw = (
            raw[: n_blocks * self.block_samples],
            raw[n_blocks * self.block_samples :],
        )
        if n_blocks == 0:
            return np.zeros(0, dtype=np.float32)
        clock = self.realtime.clock if self.realtime else time.perf_counter
        start = clock()
        kernel = self._kernel(self._steps_at(self._level)) if n_blocks == 1 else None
        if kernel is not None:
            wave = self._kernel_block(kernel, chunk)
        else:
            wave = self._run_frames(self._stft.analyze(torch.from_numpy(chunk)[None]))
        self._account(clock() - start, n_blocks)
        return self._emit(wave)

    def _kernel_block(self, kernel: BlockKernel, chunk: np.ndarray) -> np.ndarray:
        """One block through the compiled kernel; the states move in and out of it."""
        assert self._path is not None
        pending, tail = self._stft.state()
        noise = self._path.noise(self._frame, 1)
        audio = torch.from_numpy(chunk)[None]
        out, pending, tail, self._flat = kernel(audio, noise, pending, tail, self._path_states())
        self._stft.load_state(pending, tail)
        self._frame += 1
        return out[0].numpy()

    @torch.inference_mode()
    def _finish(self) -> np.ndarray:
        """Complete the last frames like the offline model (zero padding) and emit the rest."""
        if self._received == 0:
            return np.zeros(0, dtype=np.float32)
        stft = self._stft.stft
        total_frames = stft.frames_for(self._received)
        pad = total_frames * stft.cfg.hop - self._received
        rest = np.concatenate([self._raw, np.zeros(pad, dtype=np.float32)])
        self._raw = np.zeros(0, dtype=np.float32)
        spec = self._stft.analyze(torch.from_numpy(rest)[None])
        padding = -total_frames % self.model.downsample  # zero feature frames, as offline
        spec = torch.cat([spec, spec.new_zeros(1, spec.shape[1], padding)], dim=-1)
        remaining = self._received - self._emitted
        return self._emit(self._run_frames(spec, keep=total_frames))[:remaining]

    def _run_frames(self, spec: Tensor, keep: int | None = None) -> np.ndarray:
        """Eager pass over complete STFT frames: run every complete block, synthesise.

        ``keep`` (at the end of a stream) is the number of real frames: later (padding) frames are
        computed but not synthesised.
        """
        if self._pending is not None:
            spec = torch.cat([self._pending, spec], dim=-1)
        s = self.model.downsample
        n_blocks = spec.shape[-1] // s
        self._pending = spec[..., n_blocks * s :] if spec.shape[-1] % s else None
        if n_blocks == 0:
            return np.zeros(0, dtype=np.float32)
        spec = spec[..., : n_blocks * s]
        enhanced = spec
        if self._path is not None:
            self._sync_path()
            feats = self.model.stft.to_features(spec)
            target = self._path(feats, self._frame)
            enhanced = synthesis_spectrum(self.model.stft, target, spec, self.model.cfg.target)
        if keep is not None:
            enhanced = enhanced[..., : keep - self._frame * s]
        self._frame += n_blocks
        return self._stft.synthesize(enhanced)[0].numpy()

    def _emit(self, wave: np.ndarray) -> np.ndarray:
        """Drop the synthesis delay's leading samples; count what is returned."""
        drop = min(self._drop, wave.size)
        self._drop -= drop
        wave = wave[drop:]
        self._emitted += wave.size
        return wave

    def _account(self, elapsed: float, n_blocks: int) -> None:
        stats = self.stats
        stats.blocks += n_blocks
        stats.compute_seconds += elapsed
        stats.audio_seconds += n_blocks * self._block_seconds
        per_block = elapsed / n_blocks
        stats.max_block_ms = max(stats.max_block_ms, 1000 * per_block)
        policy = self.realtime
        if policy is None:
            return
        if per_block > policy.budget * self._block_seconds:
            stats.overruns += n_blocks
            self._calm = 0
            self._set_level(min(self._level + 1, len(self.levels) - 1))
        elif per_block <= policy.recover_budget * self._block_seconds:
            self._calm += n_blocks
            if self._calm >= policy.recover_after and self._level > 0:
                self._calm = 0
                self._set_level(self._level - 1)
        else:
            self._calm = 0

    def _set_level(self, level: int) -> None:
        if level != self._level:
            self._level = level
            self._path = self._new_path(level)
            self._flat = None
            self.stats.level = level
            self.stats.steps = self._steps_at(level)
