"""``latentdiff bench stream``: block timing and its report."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from latentdiff.se.bench_stream import StreamTiming, results_table, time_blocks


def test_time_blocks_times_every_block_after_warmup() -> None:
    seen = []
    times = time_blocks(seen.append, np.arange(1000, dtype=np.float32), block=100, warmup=3)
    assert len(seen) == 10 and times.size == 7 and (times >= 0).all()
    assert all(chunk.size == 100 for chunk in seen)


def test_rtf_is_time_per_audio_duration() -> None:
    timing = StreamTiming("x", block_ms=10.0, times_ms=np.array([1.0, 3.0]))
    assert timing.rtf == pytest.approx(0.2)
    table = results_table([timing, StreamTiming("ref (y)", 10.0, np.array([4.0, 4.0]))], "ref (y)")
    assert "| x | 10 | 2.000 |" in table and "| 0.200 | - | - | 0.50 |" in table


def test_bench_stream_cli_writes_a_report(tmp_path) -> None:
    report = tmp_path / "STREAM.md"
    cmd = [sys.executable, "-m", "latentdiff.cli", "bench", "stream", "--seconds", "2"]
    cmd += ["--steps", "1", "--backend", "eager", "--peers", "rnnoise", "--results", str(report)]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    text = report.read_text()
    assert "ours, 1 step (1 NFE, default), eager" in text and "RNNoise" in text
    assert "latentdiff bench stream --seconds 2.0 --steps 1" in text
