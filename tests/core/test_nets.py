"""Tests for the shared layers, the denoiser backbones and the cost counters."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from latentdiff.core.config import from_dict
from latentdiff.core.layers import CausalConv1d, FiLM, NoiseEmbedding
from latentdiff.core.nets import (
    BackboneConfig,
    CausalTCN,
    UNet1D,
    build_backbone,
    count_macs,
    count_parameters,
)

torch.set_num_threads(1)


def random_chunks(total: int, generator: torch.Generator, max_len: int = 7) -> list[int]:
    """Random split of ``total`` frames that always contains at least one chunk of length 1."""
    lengths = [1]
    while sum(lengths) < total:
        lengths.append(int(torch.randint(1, max_len + 1, (1,), generator=generator)))
    lengths[-1] -= sum(lengths) - total
    return [n for n in lengths if n > 0]


@pytest.mark.parametrize(
    ("kernel", "dilation", "stride", "lookahead"),
    [(3, 1, 1, 0), (3, 4, 1, 0), (5, 1, 1, 2), (4, 1, 2, 0), (4, 1, 2, 1), (6, 1, 3, 2)],
)
def test_causal_conv_stream_matches_offline(
    kernel: int, dilation: int, stride: int, lookahead: int
) -> None:
    torch.manual_seed(0)
    conv = CausalConv1d(3, 4, kernel, stride=stride, dilation=dilation, lookahead=lookahead)
    x = torch.randn(2, 3, 37)
    offline = conv(x)
    assert offline.shape == (2, 4, math.ceil(37 / stride))
    # The stream is flushed with `lookahead` zeros, matching the offline right padding.
    stream_input = torch.cat([x, x.new_zeros(2, 3, lookahead)], dim=-1)
    generator = torch.Generator().manual_seed(1)
    for _ in range(5):
        state = conv.init_state(2)
        outputs = []
        start = 0
        for length in random_chunks(stream_input.shape[-1], generator):
            y, state = conv.forward_stream(stream_input[..., start : start + length], state)
            outputs.append(y)
            start += length
        torch.testing.assert_close(torch.cat(outputs, dim=-1), offline, atol=1e-6, rtol=0)


def test_causal_conv_state_length_constant_for_aligned_chunks() -> None:
    conv = CausalConv1d(2, 2, 4, stride=2, dilation=1)
    state = conv.init_state(1)
    for _ in range(4):
        y, state = conv.forward_stream(torch.randn(1, 2, 6), state)
        assert y.shape[-1] == 3
        assert state.shape == (1, 2, 3)


@pytest.mark.parametrize(("stride", "lookahead"), [(1, 0), (1, 2), (2, 1)])
def test_causal_conv_dependence_is_exact(stride: int, lookahead: int) -> None:
    torch.manual_seed(0)
    conv = CausalConv1d(2, 3, 4, stride=stride, lookahead=lookahead)
    x = torch.randn(1, 2, 20)
    base = conv(x)
    for j in range(base.shape[-1]):
        last = j * stride + lookahead
        if last + 1 < 20:
            later = x.clone()
            later[..., last + 1 :] = torch.randn_like(later[..., last + 1 :])
            torch.testing.assert_close(conv(later)[..., j], base[..., j], atol=1e-6, rtol=0)
        if last < 20:
            at_edge = x.clone()
            at_edge[..., last] += 1.0
            assert (conv(at_edge)[..., j] - base[..., j]).abs().max() > 1e-4


def test_causal_conv_rejects_lookahead_beyond_kernel() -> None:
    with pytest.raises(ValueError, match="lookahead"):
        CausalConv1d(1, 1, 3, lookahead=3)


def test_noise_embedding_and_film() -> None:
    torch.manual_seed(0)
    embed = NoiseEmbedding(16)
    c_noise = torch.tensor([-1.0, 0.0, 2.0])
    emb = embed(c_noise)
    assert emb.shape == (3, 16)
    assert (emb[0] - emb[2]).abs().max() > 1e-3
    with pytest.raises(ValueError, match="even"):
        NoiseEmbedding(7)
    film = FiLM(16, 5)
    h = torch.randn(3, 5, 11)
    nn.init.zeros_(film.proj.weight)
    with torch.no_grad():
        film.proj.bias.copy_(torch.cat([torch.full((5,), 1.0), torch.full((5,), 0.5)]))
    torch.testing.assert_close(film(h, emb), 2.0 * h + 0.5)


def tiny_tcn(lookahead: int) -> CausalTCN:
    return CausalTCN(
        3, 2, cond_channels=2, film_dim=4, channels=16, depth=4, kernel_size=3,
        lookahead=lookahead, embed_dim=16,
    )  # fmt: skip


@pytest.mark.parametrize("lookahead", [0, 2])
def test_tcn_causality_is_tight(lookahead: int) -> None:
    torch.manual_seed(0)
    net = tiny_tcn(lookahead).eval()
    assert net.lookahead == lookahead
    length = 40
    x, cond = torch.randn(2, 3, length), torch.randn(2, 2, length)
    c_noise, film = torch.randn(2), torch.randn(2, 4)
    base = net(x, c_noise, cond, film)
    assert base.shape == (2, 2, length)
    for t in (0, 5, 17, 30):
        cut = t + lookahead + 1
        x_late, cond_late = x.clone(), cond.clone()
        x_late[..., cut:] = torch.randn_like(x_late[..., cut:])
        cond_late[..., cut:] = torch.randn_like(cond_late[..., cut:])
        changed = net(x_late, c_noise, cond_late, film)
        torch.testing.assert_close(changed[..., : t + 1], base[..., : t + 1], atol=1e-6, rtol=0)
        x_edge = x.clone()
        x_edge[..., t + lookahead] += 1.0
        assert (net(x_edge, c_noise, cond, film)[..., t] - base[..., t]).abs().max() > 1e-4
    # The past context is exactly `receptive_field - 1` frames.
    t = length - 1 - lookahead
    for frame, reaches in ((t - net.receptive_field, False), (t - net.receptive_field + 1, True)):
        x_past = x.clone()
        x_past[..., frame] += 1.0
        effect = (net(x_past, c_noise, cond, film)[..., t] - base[..., t]).abs().max()
        assert (effect > 1e-6) if reaches else (effect == 0)


@pytest.mark.parametrize("lookahead", [0, 2])
def test_tcn_stream_matches_offline(lookahead: int) -> None:
    torch.manual_seed(0)
    net = tiny_tcn(lookahead).eval()
    length = 45
    x, cond = torch.randn(2, 3, length), torch.randn(2, 2, length)
    c_noise, film = torch.randn(2), torch.randn(2, 4)
    with torch.no_grad():
        offline = net(x, c_noise, cond, film)
        x_in = torch.cat([x, x.new_zeros(2, 3, lookahead)], dim=-1)
        cond_in = torch.cat([cond, cond.new_zeros(2, 2, lookahead)], dim=-1)
        generator = torch.Generator().manual_seed(3)
        for _ in range(4):
            state = net.init_state(2)
            outputs, start = [], 0
            for n in random_chunks(x_in.shape[-1], generator):
                chunk = slice(start, start + n)
                y, state = net.forward_stream(
                    x_in[..., chunk], c_noise, state, cond_in[..., chunk], film
                )
                outputs.append(y)
                start += n
            torch.testing.assert_close(torch.cat(outputs, dim=-1), offline, atol=1e-5, rtol=0)


def test_tcn_conditioning_defaults_and_validation() -> None:
    torch.manual_seed(0)
    net = tiny_tcn(0).eval()
    x, c_noise = torch.randn(2, 3, 12), torch.tensor([0.1, 0.1])
    with torch.no_grad():
        default = net(x, c_noise)
        torch.testing.assert_close(
            default, net(x, c_noise, torch.zeros(2, 2, 12), torch.zeros(2, 4))
        )
        assert (net(x, c_noise + 1.0) - default).abs().max() > 1e-4
        assert (net(x, c_noise, film=torch.ones(2, 4)) - default).abs().max() > 1e-4
        assert (net(x, c_noise, cond=torch.ones(2, 2, 12)) - default).abs().max() > 1e-4
    plain = CausalTCN(3, 2, channels=8, depth=2, embed_dim=8)
    with pytest.raises(ValueError, match="film_dim=0"):
        plain(x, c_noise, film=torch.ones(2, 4))
    with pytest.raises(ValueError, match="cond_channels=0"):
        plain(x, c_noise, cond=torch.ones(2, 2, 12))


@pytest.mark.parametrize("length", [1, 7, 33, 64])
def test_unet_handles_any_length(length: int) -> None:
    torch.manual_seed(0)
    net = UNet1D(3, 2, cond_channels=1, film_dim=2, channels=(8, 16, 16), embed_dim=16).eval()
    assert net.lookahead is None
    x, c_noise = torch.randn(2, 3, length), torch.randn(2)
    out = net(x, c_noise, torch.randn(2, 1, length), torch.randn(2, 2))
    assert out.shape == (2, 2, length)
    assert torch.isfinite(out).all()
    assert (net(x, c_noise + 1.0) - net(x, c_noise)).abs().max() > 1e-4


def test_unet_is_trainable_end_to_end() -> None:
    torch.manual_seed(0)
    net = UNet1D(1, 1, channels=(8, 16), blocks_per_level=2, embed_dim=8)
    x = torch.randn(4, 1, 30)
    net(x, torch.zeros(4)).square().mean().backward()
    grads = [p.grad for p in net.parameters()]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)
    assert net.in_conv.conv.weight.grad is not None
    assert net.in_conv.conv.weight.grad.abs().sum() > 0


@pytest.mark.parametrize("name", ["tcn", "unet"])
def test_build_backbone_tiny_and_large(name: str) -> None:
    torch.manual_seed(0)
    tiny = BackboneConfig(name=name, channels=8, depth=2, unet_channels=(8, 16), embed_dim=8)
    large = BackboneConfig(
        name=name, channels=48, depth=6, unet_channels=(32, 64, 96), embed_dim=64
    )
    sizes = []
    for cfg in (tiny, large):
        net = build_backbone(cfg, in_channels=4, out_channels=3, cond_channels=2, film_dim=5)
        out = net(torch.randn(2, 4, 20), torch.randn(2), torch.randn(2, 2, 20), torch.randn(2, 5))
        assert out.shape == (2, 3, 20)
        assert (net.in_channels, net.out_channels, net.cond_channels, net.film_dim) == (4, 3, 2, 5)
        sizes.append(count_parameters(net))
    assert sizes[1] > 10 * sizes[0]


def test_backbone_config_from_yaml_dict_and_unknown_name() -> None:
    cfg = from_dict(BackboneConfig, {"name": "unet", "unet_channels": [8, 16], "gated": False})
    assert cfg.unet_channels == (8, 16)
    net = build_backbone(cfg, 1, 1)
    assert isinstance(net, UNet1D)
    assert net(torch.randn(1, 1, 9), torch.zeros(1)).shape == (1, 1, 9)
    with pytest.raises(ValueError, match="unknown backbone"):
        build_backbone(BackboneConfig(name="transformer"), 1, 1)


def test_count_macs_matches_analytic_counts() -> None:
    conv = nn.Conv1d(3, 5, 7, stride=2)
    t_out = (50 - 7) // 2 + 1
    assert count_macs(conv, torch.randn(2, 3, 50)) == 2 * 5 * t_out * 3 * 7
    grouped = nn.Conv1d(4, 6, 3, groups=2, padding=1)
    assert count_macs(grouped, torch.randn(1, 4, 10)) == 6 * 10 * 2 * 3
    transposed = nn.ConvTranspose1d(4, 2, 4, stride=2, padding=1)
    assert count_macs(transposed, torch.randn(1, 4, 10)) == 4 * 10 * 2 * 4
    linear = nn.Linear(6, 9)
    assert count_macs(linear, torch.randn(3, 6)) == 3 * 9 * 6
    causal = CausalConv1d(2, 3, 5, lookahead=1)
    assert count_macs(causal, torch.randn(1, 2, 16)) == 3 * 16 * 2 * 5


def test_count_macs_of_backbone_scales_with_length() -> None:
    net = tiny_tcn(0)

    def macs(length: int) -> int:
        return count_macs(net, torch.randn(1, 3, length), torch.zeros(1))

    per_frame = macs(200) - macs(100)
    assert per_frame > 0
    assert macs(300) - macs(200) == per_frame
    assert all(not m._forward_hooks for m in net.modules())


def test_count_parameters() -> None:
    layer = nn.Conv1d(3, 4, 5)
    assert count_parameters(layer) == 3 * 4 * 5 + 4
    assert count_parameters(nn.Sequential(layer, nn.Linear(2, 2))) == 64 + 6
