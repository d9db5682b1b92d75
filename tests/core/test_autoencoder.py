"""Tests for the 1-D autoencoder: causality, latent normalisation, VAE sampling, training."""

from __future__ import annotations

import math

import pytest
import torch

from latentdiff.core.autoencoder import Autoencoder1D, AutoencoderConfig, pad_to_multiple
from latentdiff.core.config import from_dict

torch.set_num_threads(1)


def tiny_config(**overrides: object) -> AutoencoderConfig:
    base = {"in_channels": 2, "latent_channels": 3, "channels": 12, "strides": (2, 2)}
    return AutoencoderConfig(**{**base, **overrides})  # type: ignore[arg-type]


def reconstruct(model: Autoencoder1D, x: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return model.decode(model.encode(x))


@pytest.mark.parametrize(("strides", "extra"), [((2, 2), 0), ((2, 2), 3), ((3,), 2)])
def test_causal_autoencoder_lookahead_bound_is_exact(strides: tuple[int, ...], extra: int) -> None:
    torch.manual_seed(0)
    model = Autoencoder1D(tiny_config(strides=strides, lookahead=extra)).eval()
    downsample = math.prod(strides)
    # Declared lookahead: the block latency downsample - 1 plus the configured extra context.
    assert model.lookahead == downsample - 1 + extra
    length = 12 * downsample
    x = torch.randn(2, 2, length)
    base = reconstruct(model, x)
    assert base.shape == x.shape
    for t in range(length - model.lookahead - 1):
        cut = t + model.lookahead + 1
        later = x.clone()
        later[..., cut:] = torch.randn_like(later[..., cut:])
        torch.testing.assert_close(
            reconstruct(model, later)[..., : t + 1], base[..., : t + 1], atol=1e-6, rtol=0
        )
    # Tight at block starts: the frame exactly `lookahead` ahead does reach the output.
    for t in range(0, length - model.lookahead, downsample):
        edge = x.clone()
        edge[..., t + model.lookahead] += 1.0
        assert (reconstruct(model, edge)[..., t] - base[..., t]).abs().max() > 1e-5


def test_non_causal_autoencoder_lookahead_is_an_upper_bound() -> None:
    torch.manual_seed(0)
    # Float64: the farthest-reaching path multiplies many edge taps, giving effects of ~1e-8.
    model = Autoencoder1D(tiny_config(causal=False)).double().eval()
    length = 128
    x = torch.randn(1, 2, length, dtype=torch.float64)
    base = reconstruct(model, x)
    for start in (0, 20, 60):
        block = range(start, start + model.downsample)
        for t in block:
            cut = t + model.lookahead + 1
            later = x.clone()
            later[..., cut:] = torch.randn_like(later[..., cut:])
            torch.testing.assert_close(
                reconstruct(model, later)[..., : t + 1], base[..., : t + 1], atol=1e-6, rtol=0
            )
        # The bound is reached by one output frame in every block of `downsample` frames.
        reached = []
        for t in block:
            edge = x.clone()
            edge[..., t + model.lookahead] += 1.0
            reached.append((reconstruct(model, edge)[..., t] - base[..., t]).abs().max() > 1e-12)
        assert any(reached)


def test_length_must_be_multiple_of_downsample() -> None:
    model = Autoencoder1D(tiny_config(strides=(2, 3)))
    assert model.downsample == 6
    x = torch.randn(1, 2, 20)
    with pytest.raises(ValueError, match="multiple of the downsample factor 6"):
        model.encode(x)
    padded, original = pad_to_multiple(x, model.downsample)
    assert original == 20 and padded.shape[-1] == 24
    torch.testing.assert_close(padded[..., :20], x)
    assert padded[..., 20:].abs().max() == 0
    z = model.encode(padded)
    assert z.shape == (1, 3, 4)
    assert model.decode(z).shape == (1, 2, 24)


def test_vae_kl_and_sampling() -> None:
    torch.manual_seed(0)
    model = Autoencoder1D(tiny_config(kl_weight=1e-2, l1_weight=0.5))
    x = torch.randn(3, 2, 16)
    loss, terms = model.loss(x)
    assert torch.isfinite(loss)
    assert math.isfinite(terms["kl"]) and terms["kl"] >= 0
    expected = terms["mse"] + 0.5 * terms["l1"] + 1e-2 * terms["kl"]
    assert loss.item() == pytest.approx(expected, rel=1e-5)
    mean = model.encode(x)
    sample = model.encode(x, sample=True, generator=torch.Generator().manual_seed(5))
    again = model.encode(x, sample=True, generator=torch.Generator().manual_seed(5))
    assert (sample - mean).abs().mean() > 1e-2
    torch.testing.assert_close(sample, again)


def test_plain_autoencoder_is_a_point_mass() -> None:
    torch.manual_seed(0)
    model = Autoencoder1D(tiny_config())
    x = torch.randn(2, 2, 16)
    _, logvar = model.encode_dist(x)
    assert torch.isneginf(logvar).all()
    torch.testing.assert_close(model.encode(x, sample=True), model.encode(x))
    _, terms = model.loss(x)
    assert set(terms) == {"mse"}


def test_latent_stats_normalise_latents_and_round_trip() -> None:
    torch.manual_seed(0)
    model = Autoencoder1D(tiny_config()).eval()
    generator = torch.Generator().manual_seed(1)
    batches = [2.0 * torch.randn(4, 2, 32, generator=generator) + 1.0 for _ in range(5)]
    before = reconstruct(model, batches[0])
    model.fit_latent_stats(batches)
    with torch.no_grad():
        z = torch.cat([model.encode(b) for b in batches], dim=0)
    per_channel = z.transpose(0, 1).flatten(1)
    assert per_channel.mean(1).abs().max() < 0.05
    assert (per_channel.std(1) - 1.0).abs().max() < 0.05
    # Normalisation is invertible: reconstructions do not change.
    torch.testing.assert_close(reconstruct(model, batches[0]), before, atol=1e-5, rtol=1e-5)
    state = model.state_dict()
    assert "latent_mean" in state and "latent_std" in state
    restored = Autoencoder1D(tiny_config()).eval()
    restored.load_state_dict(state)
    torch.testing.assert_close(restored.encode(batches[0]), model.encode(batches[0]))
    with pytest.raises(ValueError, match="at least one"):
        model.fit_latent_stats([])


def test_config_round_trips_through_dicts() -> None:
    cfg = from_dict(AutoencoderConfig, {"strides": [4, 2], "kl_weight": 0.1, "causal": False})
    assert cfg.strides == (4, 2)
    assert Autoencoder1D(cfg).downsample == 8


def sinusoids(batch: int, length: int, generator: torch.Generator) -> torch.Tensor:
    t = torch.arange(length, dtype=torch.float32)
    freq = 0.02 + 0.08 * torch.rand(batch, 1, 1, generator=generator)
    phase = 2 * math.pi * torch.rand(batch, 1, 1, generator=generator)
    amp = 0.5 + 0.5 * torch.rand(batch, 1, 1, generator=generator)
    return amp * torch.sin(2 * math.pi * freq * t + phase)


@pytest.mark.parametrize("causal", [True, False])
def test_training_reduces_reconstruction_loss(causal: bool) -> None:
    torch.manual_seed(0)
    cfg = AutoencoderConfig(in_channels=1, latent_channels=4, channels=16, causal=causal)
    model = Autoencoder1D(cfg)
    generator = torch.Generator().manual_seed(2)
    held_out = sinusoids(32, 64, generator)
    with torch.no_grad():
        initial = model.loss(held_out)[1]["mse"]
    optimiser = torch.optim.Adam(model.parameters(), lr=3e-3)
    for _ in range(200):
        loss, _ = model.loss(sinusoids(8, 48, generator))
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
    with torch.no_grad():
        final = model.loss(held_out)[1]["mse"]
    assert final < 0.1 * initial
