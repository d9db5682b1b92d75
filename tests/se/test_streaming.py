"""Streaming sessions: block-partition parity, reset, constant state, delay, overruns, errors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from latentdiff.se import Enhancer
from latentdiff.se.stream_path import FeaturePath
from latentdiff.se.streaming import PASS_THROUGH, RealtimePolicy, step_ladder

CLIPS = Path(__file__).parent / "data" / "clips"


@pytest.fixture(scope="module")
def enhancer() -> Enhancer:
    return Enhancer.from_pretrained()


@pytest.fixture(scope="module")
def noisy() -> np.ndarray:
    wave, rate = sf.read(CLIPS / "syn913_00000_noisy.wav", dtype="float32")
    assert rate == 16000
    return wave[:9000]


@pytest.fixture(scope="module")
def offline(enhancer: Enhancer, noisy: np.ndarray) -> dict[int, np.ndarray]:
    return {steps: enhancer.enhance(noisy, steps=steps) for steps in (0, 2)}


def stream_all(session, x: np.ndarray, cuts: list[int]) -> np.ndarray:
    pieces = np.split(x, sorted(cuts))
    outputs = [session.process(piece) for piece in pieces]
    outputs.append(session.flush())
    return np.concatenate(outputs)


@settings(
    max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    cuts=st.lists(st.integers(min_value=0, max_value=9000), max_size=25),
    steps=st.sampled_from([0, 2]),
)
def test_any_block_partition_equals_offline(enhancer, noisy, offline, cuts, steps) -> None:
    session = enhancer.stream(steps=steps, backend="eager")
    out = stream_all(session, noisy, cuts)
    assert out.shape == noisy.shape
    assert np.abs(out - offline[steps]).max() <= 1e-4


@pytest.mark.parametrize("backend", ["onnxruntime", "torchscript"])
def test_compiled_single_block_kernels_equal_offline(enhancer, noisy, offline, backend) -> None:
    session = enhancer.stream(steps=2, backend=backend)
    cuts = [*range(0, noisy.size, 160), 4001, 4002, 4003]
    out = stream_all(session, noisy, cuts)
    assert np.abs(out - offline[2]).max() <= 1e-4


def test_one_sample_blocks_and_int16(enhancer, noisy) -> None:
    pcm = np.round(noisy[:3000] * 32767).astype(np.int16)
    session = enhancer.stream(backend="eager")
    out = np.concatenate([session.process(pcm[i : i + 1]) for i in range(pcm.size)])
    out = np.concatenate([out, session.flush()])
    assert np.abs(out - enhancer.enhance(pcm)).max() <= 1e-4


def test_reset_starts_a_new_stream(enhancer, noisy, offline) -> None:
    session = enhancer.stream(steps=2, backend="eager")
    session.process(noisy[::-1].copy())
    session.reset()
    out = stream_all(session, noisy, [1234, 5000])
    assert np.abs(out - offline[2]).max() <= 1e-4
    with pytest.raises(RuntimeError, match="flushed"):
        session.process(noisy[:10])


def test_state_size_is_constant(enhancer, noisy) -> None:
    session = enhancer.stream()
    sizes = []
    for i in range(0, noisy.size - 159, 160):
        session.process(noisy[i : i + 160])
        sizes.append(session.state_numel)
    assert len(set(sizes[2:])) == 1


def _rss_kib() -> int:
    with open("/proc/self/status") as status:
        line = next(row for row in status if row.startswith("VmRSS:"))
    return int(line.split()[1])


def test_an_hour_of_input_keeps_memory_constant(enhancer) -> None:
    """One hour of input in 10 s pieces (steps=0 keeps it quick): bounded state and RSS."""
    rng = np.random.default_rng(0)
    piece = (0.05 * rng.standard_normal(160_000)).astype(np.float32)
    session = enhancer.stream(steps=0, backend="eager")
    rss, sizes = [], []
    for index in range(360):
        out = session.process(piece)
        assert out.size >= 159_000 and np.isfinite(out).all()
        if index % 60 == 59:
            rss.append(_rss_kib())
            sizes.append(session.state_numel)
    assert len(set(sizes)) == 1
    assert max(rss) - rss[0] < 20_000  # KiB: no growth with the stream length
    assert session.stats.audio_seconds == pytest.approx(3600, abs=0.05)


@pytest.mark.parametrize("phase", [0, 40, 80, 159])
def test_impulse_delay_matches_reported_latency(enhancer, phase) -> None:
    session = enhancer.stream(backend="eager")
    assert session.latency_ms == pytest.approx(20.0)  # DNS rule: window + hop + lookahead
    assert session.latency_ms_window_convention == pytest.approx(15.0)
    assert enhancer.latency_ms_window_convention == pytest.approx(15.0)
    n0 = 1600 + phase
    x = np.zeros(4000, dtype=np.float32)
    x[n0] = 0.5
    emitted = 0
    for received in range(1, x.size + 1):
        emitted += session.process(x[received - 1 : received]).size
        if emitted > n0:  # the output sample aligned with the impulse is out
            break
    delay = received - n0
    # Output frames come in blocks of 160 samples; the worst phase (80) waits for a whole window
    # (160 samples) plus the lookahead (80 samples): the window + lookahead latency.
    expected = 240 if 80 <= phase < 160 else 160
    assert delay == expected - (phase % 80)
    worst = round(session.latency_ms_window_convention * 16)
    assert delay <= worst and (phase != 80 or delay == worst)


class _SlowClock:
    """Reports each block as taking ``slow_ms`` when the diffusion runs, else 1 ms."""

    def __init__(self) -> None:
        self.now = 0.0
        self.slow_ms = 25.0

    def __call__(self) -> float:
        return self.now


def test_overruns_degrade_then_recover(enhancer, noisy, monkeypatch) -> None:
    clock = _SlowClock()
    original = FeaturePath.__call__

    def slow_call(self, feats, first_frame):
        blocks = feats.shape[-1] // 2
        clock.now += blocks * (clock.slow_ms if self.steps > 0 else 1.0) / 1000
        return original(self, feats, first_frame)

    monkeypatch.setattr(FeaturePath, "__call__", slow_call)
    policy = RealtimePolicy(recover_after=20, clock=clock)
    session = enhancer.stream(steps=2, realtime=policy, backend="eager")
    assert session.levels == [2, 1, 0, PASS_THROUGH]
    x = np.tile(noisy, 3)
    outs = [session.process(x[i : i + 160]) for i in range(0, 8000, 160)]
    assert session.stats.overruns >= 2
    assert session.stats.level >= 2  # the diffusion levels overran; steps=0 keeps up
    clock.slow_ms = 2.0  # the machine is fast again
    outs += [session.process(x[i : i + 160]) for i in range(8000, x.size, 160)]
    outs.append(session.flush())
    out = np.concatenate(outs)
    assert out.shape == x.shape and np.isfinite(out).all()
    assert session.stats.level == 0 and session.stats.steps == 2


def test_pass_through_when_even_the_estimate_is_too_slow(enhancer, noisy, monkeypatch) -> None:
    clock = _SlowClock()
    original = FeaturePath.__call__

    def slow_call(self, feats, first_frame):
        clock.now += 0.05
        return original(self, feats, first_frame)

    monkeypatch.setattr(FeaturePath, "__call__", slow_call)
    session = enhancer.stream(realtime=RealtimePolicy(clock=clock), backend="eager")
    out = np.concatenate([session.process(noisy[i : i + 160]) for i in range(0, 6400, 160)])
    assert session.stats.steps == PASS_THROUGH
    # Pass-through returns the input itself (delayed only by the buffering).
    assert np.abs(out[-1000:] - noisy[out.size - 1000 : out.size]).max() < 1e-5


def test_step_ladder(enhancer) -> None:
    assert step_ladder(enhancer.model, 4) == [4, 2, 1, 0, PASS_THROUGH]
    assert step_ladder(enhancer.model, 0) == [0, PASS_THROUGH]


def test_bad_blocks_raise_and_lose_nothing(enhancer, noisy, offline) -> None:
    session = enhancer.stream(steps=2, backend="eager")
    first = session.process(noisy[:4000])
    bad = noisy[:100].copy()
    bad[3] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        session.process(bad)
    with pytest.raises(ValueError, match="dtype"):
        session.process(np.zeros(10, dtype=np.int32))
    with pytest.raises(ValueError, match="shape"):
        session.process(np.zeros((2, 2, 2), dtype=np.float32))
    with pytest.raises(ValueError, match="numpy"):
        session.process([0.0, 1.0])
    out = np.concatenate([first, session.process(noisy[4000:]), session.flush()])
    assert np.abs(out - offline[2]).max() <= 1e-4


def test_stereo_blocks_are_averaged(enhancer, noisy, offline) -> None:
    session = enhancer.stream(steps=2, backend="eager")
    stereo = np.stack([noisy, noisy], axis=1)
    out = np.concatenate([session.process(stereo), session.flush()])
    assert np.abs(out - offline[2]).max() <= 1e-4


def test_other_sample_rates_are_resampled(enhancer, noisy) -> None:
    import soxr

    wide = soxr.resample(noisy, 16000, 48000).astype(np.float32)
    session = enhancer.stream(48000, backend="eager")
    out = stream_all(session, wide, list(range(0, wide.size, 480)))
    assert out.shape == wide.shape
    reference = enhancer.enhance(wide, 48000)
    corr = np.corrcoef(out[2000:-2000], reference[2000:-2000])[0, 1]
    assert corr > 0.95


def test_empty_stream_flushes_nothing(enhancer) -> None:
    session = enhancer.stream(backend="eager")
    assert session.process(np.zeros(0, dtype=np.float32)).size == 0
    assert session.flush().size == 0
