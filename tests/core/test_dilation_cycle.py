"""``BackboneConfig.dilation_cycle``: multi-scale (dilations 1, 2, 4, ...) against a flat TCN."""

from __future__ import annotations

import pytest
import torch

from latentdiff.core.config import from_dict, to_dict
from latentdiff.core.nets import BackboneConfig, CausalTCN, build_backbone, count_macs
from latentdiff.core.streaming import TcnStream

torch.set_num_threads(1)


def _tcn(dilation_cycle: int) -> CausalTCN:
    torch.manual_seed(0)
    cfg = BackboneConfig(channels=8, depth=4, embed_dim=8, dilation_cycle=dilation_cycle)
    net = build_backbone(cfg, in_channels=2, out_channels=2, cond_channels=1)
    assert isinstance(net, CausalTCN)
    return net.eval()


def test_config_round_trips_and_defaults_for_old_configs() -> None:
    flat = BackboneConfig(dilation_cycle=1)
    assert from_dict(BackboneConfig, to_dict(flat)) == flat
    old = to_dict(BackboneConfig())
    del old["dilation_cycle"]
    assert from_dict(BackboneConfig, old).dilation_cycle == 8
    with pytest.raises(ValueError, match="dilation_cycle must be >= 1"):
        BackboneConfig(dilation_cycle=0)
    with pytest.raises(ValueError, match="dilation_cycle must be >= 1"):
        CausalTCN(2, 2, dilation_cycle=0)


def test_flat_tcn_has_the_cost_but_a_linear_receptive_field() -> None:
    flat, multiscale = _tcn(1), _tcn(8)
    assert [block.conv.conv.dilation[0] for block in flat.blocks] == [1, 1, 1, 1]
    assert [block.conv.conv.dilation[0] for block in multiscale.blocks] == [1, 2, 4, 8]
    assert (flat.receptive_field, multiscale.receptive_field) == (3 + 4 * 2, 3 + 15 * 2)
    assert [block.conv.conv.dilation[0] for block in _tcn(2).blocks] == [1, 2, 1, 2]
    example = (torch.zeros(1, 2, 50), torch.zeros(1), torch.zeros(1, 1, 50))
    assert count_macs(flat, *example) == count_macs(multiscale, *example)
    assert sum(p.numel() for p in flat.parameters()) == sum(
        p.numel() for p in multiscale.parameters()
    )


def test_flat_tcn_is_causal_with_exactly_its_receptive_field() -> None:
    net = _tcn(1)
    x, cond, c_noise = torch.randn(1, 2, 30), torch.randn(1, 1, 30), torch.zeros(1)
    with torch.no_grad():
        base = net(x, c_noise, cond)
        t = 20
        future = x.clone()
        future[..., t + 1 :] = torch.randn_like(future[..., t + 1 :])
        torch.testing.assert_close(net(future, c_noise, cond)[..., : t + 1], base[..., : t + 1])
        for frame, reaches in (
            (t - net.receptive_field, False),
            (t - net.receptive_field + 1, True),
        ):
            past = x.clone()
            past[..., frame] += 1.0
            effect = (net(past, c_noise, cond)[..., t] - base[..., t]).abs().max()
            assert (effect > 1e-6) if reaches else (effect == 0)


def test_flat_tcn_streams_with_a_smaller_state() -> None:
    flat, multiscale = _tcn(1), _tcn(8)
    x, cond, c_noise = torch.randn(1, 2, 25), torch.randn(1, 1, 25), torch.zeros(1)
    stream = TcnStream(flat)
    with torch.no_grad():
        chunks = [stream(x[..., k : k + 4], c_noise, cond[..., k : k + 4]) for k in range(0, 25, 4)]
        torch.testing.assert_close(torch.cat(chunks, dim=-1), flat(x, c_noise, cond))
    # One left-context frame per kernel tap and dilation, per block (plus the input conv).
    assert stream.numel == 3 * 2 + 8 * 2 * 4
    assert TcnStream(multiscale).numel == 3 * 2 + 8 * 2 * (1 + 2 + 4 + 8)
