"""Causal STFT: reconstruction, causality, features, and the streaming implementation."""

from __future__ import annotations

import pytest
import torch

from latentdiff.core.config import from_dict
from latentdiff.se.stft import Stft, StftConfig, StreamingStft

CONFIGS = [
    StftConfig(),
    StftConfig(n_fft=256, win=160, hop=80),
    StftConfig(n_fft=320, win=320, hop=80),
    StftConfig(sample_rate=48000, n_fft=960, win=960, hop=480, compress=1.0),
]


@pytest.fixture(autouse=True)
def _seed() -> None:
    torch.manual_seed(0)


@pytest.mark.parametrize("cfg", CONFIGS, ids=lambda c: f"{c.n_fft}-{c.win}-{c.hop}")
@pytest.mark.parametrize("length", [1, 79, 80, 81, 159, 160, 161, 1234, 16001])
def test_perfect_reconstruction(cfg: StftConfig, length: int) -> None:
    stft = Stft(cfg)
    x = torch.randn(2, length)
    spec = stft(x)
    assert spec.shape == (2, cfg.n_fft // 2 + 1, stft.frames_for(length))
    assert spec.dtype == torch.complex64
    assert (stft.inverse(spec, length) - x).abs().max() < 1e-5


def test_frame_count_and_inverse_length_bounds() -> None:
    stft = Stft()
    assert [stft.frames_for(t) for t in (1, 80, 81, 160, 161)] == [2, 2, 3, 3, 4]
    spec = stft(torch.randn(1, 160))
    assert stft.inverse(spec, 80).shape == (1, 80)
    with pytest.raises(ValueError, match=r"3 frames reconstruct 1\.\.160 samples, not 161"):
        stft.inverse(spec, 161)
    with pytest.raises(ValueError, match="T > 0"):
        stft(torch.zeros(1, 0))
    with pytest.raises(ValueError, match="expected spectra"):
        stft.inverse(spec[:, :-1], 80)


@pytest.mark.parametrize("cfg", CONFIGS[:3], ids=lambda c: f"{c.n_fft}-{c.win}-{c.hop}")
def test_framing_is_causal(cfg: StftConfig) -> None:
    stft = Stft(cfg)
    x = torch.randn(1, 2000)
    reference = stft(x)
    for t in (0, 5, cfg.hop, 777, 1999):
        changed = x.clone()
        changed[:, t:] += torch.randn(1, 2000 - t)
        spec = stft(changed)
        first_affected = t // cfg.hop
        assert torch.equal(spec[..., :first_affected], reference[..., :first_affected])
        assert not torch.allclose(spec[..., first_affected], reference[..., first_affected])


def test_frame_k_covers_its_window() -> None:
    stft = Stft()
    x = torch.zeros(1, 800)
    x[0, 300] = 1.0  # frame k covers [80k - 80, 80k + 80): frames 3 and 4
    energy = stft(x).abs().square().sum(dim=1)[0]
    assert torch.nonzero(energy > 1e-12).flatten().tolist() == [3, 4]


def test_latency() -> None:
    stft = Stft()
    assert stft.latency_ms == pytest.approx(15.0)
    assert stft.latency_ms_window_convention == pytest.approx(10.0)
    assert Stft(StftConfig(win=320, hop=160, n_fft=320)).latency_ms == pytest.approx(30.0)


@pytest.mark.parametrize("compress", [0.3, 0.5, 1.0])
def test_features_are_compressed_and_invertible(compress: float) -> None:
    stft = Stft(StftConfig(compress=compress))
    spec = stft(torch.randn(3, 4000))
    feats = stft.to_features(spec)
    assert feats.shape == (3, 2 * 81, spec.shape[-1]) and feats.dtype == torch.float32
    compressed = torch.complex(feats[:, :81], feats[:, 81:])
    big = spec.abs() > 1e-3
    torch.testing.assert_close(
        compressed.abs()[big], spec.abs()[big] ** compress, rtol=1e-4, atol=0
    )
    torch.testing.assert_close(compressed.angle()[big], spec.angle()[big], rtol=0, atol=1e-4)
    back = stft.from_features(feats)
    assert ((back - spec).abs() / spec.abs().clamp_min(1e-3)).max() < 1e-4


def test_features_have_finite_gradients_at_silence() -> None:
    stft = Stft()
    x = torch.zeros(1, 800, requires_grad=True)
    feats = stft.to_features(stft(x))
    stft.inverse(stft.from_features(feats), 800).square().sum().backward()
    assert x.grad is not None and torch.isfinite(x.grad).all()
    tiny = torch.full((1, 81, 2), 1e-9, dtype=torch.complex64)
    torch.testing.assert_close(stft.from_features(stft.to_features(tiny)), tiny)


def test_config_validation() -> None:
    with pytest.raises(ValueError, match="multiple"):
        StftConfig(win=160, hop=70)
    with pytest.raises(ValueError, match="multiple"):
        StftConfig(win=160, hop=160)
    with pytest.raises(ValueError, match="n_fft"):
        StftConfig(n_fft=128)
    with pytest.raises(ValueError, match="unknown window"):
        StftConfig(window="hamming")
    with pytest.raises(ValueError, match="compress"):
        from_dict(StftConfig, {"compress": 0.0})
    assert from_dict(StftConfig, {"hop": 40}).hop == 40


def _stream(streaming: StreamingStft, x: torch.Tensor, sizes: list[int]) -> torch.Tensor:
    frames = []
    start = 0
    for size in sizes:
        frames.append(streaming.analyze(x[:, start : start + size]))
        start += size
    assert start >= x.shape[1]
    return torch.cat(frames, dim=-1)


@pytest.mark.parametrize("cfg", CONFIGS[:3], ids=lambda c: f"{c.n_fft}-{c.win}-{c.hop}")
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_streaming_matches_offline_for_random_chunking(cfg: StftConfig, seed: int) -> None:
    generator = torch.Generator().manual_seed(seed)
    stft, streaming = Stft(cfg), StreamingStft(cfg)
    length = 3001
    x = torch.randn(2, length, generator=generator)
    offline = stft(x)
    delay = streaming.delay_samples
    padded = torch.cat([x, torch.zeros(2, delay + cfg.hop)], dim=1)
    sizes = [1, 0]
    while sum(sizes) < padded.shape[1]:
        sizes.append(int(torch.randint(0, 3 * cfg.hop, (1,), generator=generator)))
    streamed = _stream(streaming, padded, sizes)
    n = offline.shape[-1]
    assert (streamed[..., :n] - offline).abs().max() < 1e-5

    gain = torch.randn(streamed.shape, generator=generator, dtype=torch.complex64)
    modified = streamed * gain
    out = []
    position = 0
    while position < modified.shape[-1]:
        step = int(torch.randint(0, 5, (1,), generator=generator))
        out.append(streaming.synthesize(modified[..., position : position + step]))
        position += step
    output = torch.cat(out, dim=1)
    assert output.shape[1] == modified.shape[-1] * cfg.hop
    expected = stft.inverse(modified[..., :n], length)
    assert (output[:, delay : delay + length] - expected).abs().max() < 1e-5


def test_streaming_impulse_delay() -> None:
    cfg = StftConfig()
    streaming = StreamingStft(cfg)
    assert streaming.delay_samples == cfg.win - cfg.hop == 80
    x = torch.zeros(1, 1600)
    x[0, 437] = 1.0
    output = torch.cat(
        [streaming.synthesize(streaming.analyze(x[:, i : i + 37])) for i in range(0, 1600, 37)],
        dim=1,
    )
    assert int(output.abs().argmax()) == 437 + streaming.delay_samples
    assert output[0, 437 + 80] == pytest.approx(1.0, abs=1e-6)
    output[0, 437 + 80] = 0.0
    assert output.abs().max() < 1e-6


def test_streaming_reset_starts_a_new_stream() -> None:
    streaming = StreamingStft()
    x = torch.randn(1, 800)
    first = streaming.synthesize(streaming.analyze(x))
    streaming.analyze(torch.randn(1, 123))
    streaming.synthesize(streaming.analyze(torch.randn(1, 300)))
    streaming.reset()
    assert torch.equal(streaming.synthesize(streaming.analyze(x)), first)
    assert streaming.analyze(torch.randn(1, 10)).shape == (1, 81, 0)
