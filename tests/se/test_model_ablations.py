"""Speech-enhancer ablation switches: a multi-stage denoiser (``stages``) and a flat TCN
(``backbone.dilation_cycle=1``): configs, training, enhancement, exact streaming."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from latentdiff.core.autoencoder import Autoencoder1D, AutoencoderConfig
from latentdiff.core.config import from_dict, to_dict
from latentdiff.core.nets import BackboneConfig, CausalTCN
from latentdiff.core.streaming import TcnStream
from latentdiff.se.enhancer import Enhancer
from latentdiff.se.model import (
    CondEncoderConfig,
    LatentSE,
    SEModelConfig,
    StagedTCN,
    build_se_model,
    se_model_spec,
)

torch.set_num_threads(1)
AUDIO = (np.random.default_rng(0).standard_normal(2400) * 0.1).astype(np.float32)


def tiny_latent_se(stages: int = 1, dilation_cycle: int = 8, depth: int = 4) -> LatentSE:
    """A small untrained LatentSE (2 dpmpp_2m steps at sigmas 1.0 and 0.01)."""
    torch.manual_seed(0)
    cfg = SEModelConfig(
        cond_encoder=CondEncoderConfig(channels=16, out_channels=8, res_blocks=1),
        backbone=BackboneConfig(
            channels=16, depth=depth, embed_dim=16, dilation_cycle=dilation_cycle
        ),
        stages=stages,
    )
    ae = Autoencoder1D(
        AutoencoderConfig(in_channels=162, latent_channels=4, channels=16, strides=(2,))
    )
    model = build_se_model(cfg, ae)
    assert isinstance(model, LatentSE)
    return model.eval()


def test_configs_round_trip_and_old_specs_load_with_the_defaults() -> None:
    cfg = SEModelConfig(stages=2, backbone=BackboneConfig(dilation_cycle=1))
    assert from_dict(SEModelConfig, to_dict(cfg)) == cfg
    model = tiny_latent_se()
    spec = se_model_spec(model)
    del spec["config"]["stages"], spec["config"]["backbone"]["dilation_cycle"]
    old = from_dict(SEModelConfig, spec["config"])
    assert (old.stages, old.backbone.dilation_cycle) == (1, 8)
    rebuilt = build_se_model(old, Autoencoder1D(from_dict(AutoencoderConfig, spec["autoencoder"])))
    rebuilt.load_state_dict(model.state_dict())  # one stage keeps the old parameter names
    with pytest.raises(ValueError, match="stages must be >= 1"):
        SEModelConfig(stages=0)
    with pytest.raises(ValueError, match="1 for a predictive model"):
        SEModelConfig(kind="predictive", stages=2)


def _calls(nets: nn.ModuleList) -> list[int]:
    """Forward calls of every net, counted from now on."""
    counts = [0] * len(nets)
    for index, net in enumerate(nets):

        def count(*_: object, index: int = index) -> None:
            counts[index] += 1

        net.register_forward_hook(count)
    return counts


def test_two_stage_model_trains_a_step_and_enhances_with_both_stages() -> None:
    one, two = tiny_latent_se(), tiny_latent_se(stages=2)
    assert isinstance(two.denoiser.net, StagedTCN)
    denoiser_params = sum(p.numel() for p in one.denoiser.parameters())
    assert two.parameter_counts()["total"] == one.parameter_counts()["total"] + denoiser_params
    assert two.macs_per_second() == one.macs_per_second()
    assert (two.latency_ms(), two.history_samples()) == (one.latency_ms(), one.history_samples())
    two.train()
    optimiser = torch.optim.Adam(two.parameters(), lr=1e-3)
    wave = torch.randn(8, 2400) * 0.1
    loss, _ = two.loss(wave, wave * 0.5, torch.arange(8))
    loss.backward()
    for net in two.denoiser.net.nets:  # both noise intervals drew training samples
        assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in net.parameters())
    before = two.denoiser.net.nets[1].in_conv.conv.weight.clone()
    optimiser.step()
    assert not torch.equal(before, two.denoiser.net.nets[1].in_conv.conv.weight)
    two.eval()
    calls = _calls(two.denoiser.net.nets)
    out = two.enhance(wave[:2], seeds=[0, 1])
    assert out.shape == (2, 2400) and torch.isfinite(out).all()
    assert calls == [1, 1]  # sigma 1.0 -> the high-noise stage, 0.01 -> the low-noise stage


@pytest.mark.parametrize("backend", ["eager", "onnxruntime"])
def test_two_stage_model_streams_exactly(backend: str) -> None:
    enhancer = Enhancer(tiny_latent_se(stages=2, depth=1))  # a small graph exports fast
    offline = enhancer.enhance(AUDIO, 16000)
    session = enhancer.stream(backend=backend)
    one_stage = Enhancer(tiny_latent_se(depth=1)).stream(backend="eager")
    assert session.state_numel == one_stage.state_numel  # one stage's state per evaluation
    blocks = [session.process(AUDIO[k : k + 160]) for k in range(0, AUDIO.size, 160)]
    assert np.abs(np.concatenate([*blocks, session.flush()]) - offline).max() < 1e-5


def test_a_staged_stream_runs_one_noise_interval() -> None:
    net = tiny_latent_se(stages=2).denoiser.net
    assert isinstance(net, StagedTCN)
    stream = TcnStream(net, batch=2)
    with pytest.raises(ValueError, match="one noise-level interval"):
        stream(torch.zeros(2, 4, 3), torch.tensor([-1.0, 0.0]), torch.zeros(2, 12, 3))


def test_flat_model_has_the_cost_a_shorter_history_and_streams_exactly() -> None:
    multiscale, flat = tiny_latent_se(), tiny_latent_se(dilation_cycle=1)
    assert isinstance(flat.denoiser.net, CausalTCN)
    assert flat.macs_per_second() == multiscale.macs_per_second()
    assert flat.parameter_counts() == multiscale.parameter_counts()
    assert flat.latency_ms() == multiscale.latency_ms()
    assert flat.history_samples() < multiscale.history_samples()
    enhancer = Enhancer(flat)
    offline = enhancer.enhance(AUDIO, 16000)
    session = enhancer.stream(backend="eager")
    blocks = [session.process(AUDIO[k : k + 480]) for k in range(0, AUDIO.size, 480)]
    assert np.abs(np.concatenate([*blocks, session.flush()]) - offline).max() < 1e-5
    session.reset()
    assert session.state_numel < Enhancer(multiscale).stream(backend="eager").state_numel
