"""Adversarial fine-tuning: each network gets only its own gradients; the stage writes a usable
enhancer whose untouched parts keep their weights."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from latentdiff.core.models import load_model, save_final
from latentdiff.se.adversarial import (
    AdversarialConfig,
    AdversarialSE,
    residual_noise_loss,
    train_se_adversarial,
)
from latentdiff.se.model import LatentSE, se_model_spec

from .test_enhancer import tiny_model
from .test_model import _clip_datadir


def segments(seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    rng = np.random.default_rng(seed)
    clean = torch.from_numpy(0.2 * np.sin(np.arange(8000) / 7.0)[None].repeat(2, 0)).float()
    noisy = clean + torch.from_numpy(0.05 * rng.standard_normal((2, 8000))).float()
    return noisy, clean


def test_each_network_only_gets_its_own_gradients() -> None:
    torch.manual_seed(0)
    model = tiny_model()
    assert isinstance(model, LatentSE)
    joint = AdversarialSE(model, AdversarialConfig(adversarial_weight=1.0))
    noisy, clean = segments()
    fake = joint.enhance_differentiably(noisy, torch.arange(2))
    assert fake.shape == clean.shape and fake.requires_grad
    loss, stats = joint(noisy, clean, torch.arange(2))
    assert stats["discriminator"] > 0 and stats["stft"] > 0
    discriminator = list(joint.discriminator.parameters())
    assert any(float(g.abs().sum()) > 0 for g in torch.autograd.grad(loss, discriminator))
    # The generator's adversarial term reaches the discriminator through detached weights only.
    frozen = {n: p.detach() for n, p in joint.discriminator.named_parameters()}
    fake_out = torch.func.functional_call(joint.discriminator, frozen, (fake,))
    g_adv = sum((f[-1] - 1).pow(2).mean() for f in fake_out)
    grads = torch.autograd.grad(g_adv, discriminator, allow_unused=True, retain_graph=True)
    assert all(g is None for g in grads)
    denoiser = list(joint.enhancer.denoiser.parameters())
    assert any(float(g.abs().sum()) > 0 for g in torch.autograd.grad(g_adv, denoiser))
    trainable = {n for n, p in joint.enhancer.named_parameters() if p.requires_grad}
    assert trainable and all(n.startswith(("denoiser.", "autoencoder.decoder.")) for n in trainable)


def test_stage_writes_an_enhancer_with_only_the_trained_parts_changed(tmp_path: Path) -> None:
    torch.set_num_threads(1)
    model = tiny_model()
    save_final(tmp_path / "base", model, se_model_spec(model))
    config = tmp_path / "adversarial.yaml"
    trainer = {"steps": 4, "batch_size": 2, "lr": 1e-3, "log_every": 2, "ckpt_every": 4}
    trainer |= {"tensorboard": False, "progress": False}
    config.write_text(yaml.safe_dump({"data": {"segment_seconds": 0.5}, "trainer": trainer}))
    stats = train_se_adversarial(
        config,
        tmp_path / "base" / "final.pt",
        _clip_datadir(tmp_path),
        tmp_path / "adv",
        ["adversarial.trainable=[denoiser]"],
    )
    assert stats["step"] == 4 and np.isfinite(stats["loss"])
    tuned = load_model(tmp_path / "adv" / "final.pt")
    assert isinstance(tuned, LatentSE)
    before, after = model.state_dict(), tuned.state_dict()
    changed = {k for k in before if not torch.equal(before[k], after[k])}
    assert changed and all(k.startswith("denoiser.") for k in changed)
    noisy, _ = segments(1)
    assert tuned.enhance(noisy, seeds=[0, 1]).shape == noisy.shape


def test_bad_trainable_parts_are_refused() -> None:
    with pytest.raises(ValueError, match="trainable"):
        AdversarialConfig(trainable=("mask",))


def test_estoi_term_trains_the_predictive_head() -> None:
    torch.manual_seed(0)
    model = tiny_model()
    joint = AdversarialSE(model, AdversarialConfig(estoi_weight=1.0, trainable=("head",)))
    trainable = {n for n, p in joint.enhancer.named_parameters() if p.requires_grad}
    assert trainable and all(n.startswith("head.") for n in trainable)
    noisy, clean = segments()
    loss, stats = joint(noisy, clean, torch.arange(2))
    assert 0.0 < stats["estoi"] < 1.0
    head = list(joint.enhancer.head.parameters())
    assert any(float(g.abs().sum()) > 0 for g in torch.autograd.grad(loss, head))


def test_residual_noise_loss_counts_only_energy_above_the_clean_speech() -> None:
    noisy, clean = segments()
    assert float(residual_noise_loss(clean, clean)) == 0.0
    # Attenuated speech is distortion, not residual noise.
    assert float(residual_noise_loss(0.5 * clean, clean)) == 0.0
    assert float(residual_noise_loss(noisy, clean)) > 0.0
    assert float(residual_noise_loss(clean + 2 * (noisy - clean), clean)) > float(
        residual_noise_loss(noisy, clean)
    )


def test_residual_noise_term_enters_the_generator_loss() -> None:
    torch.manual_seed(0)
    noisy, clean = segments()
    losses = {}
    for weight in (0.0, 100.0):
        torch.manual_seed(0)
        joint = AdversarialSE(tiny_model(), AdversarialConfig(residual_noise_weight=weight))
        loss, stats = joint(noisy, clean, torch.arange(2))
        losses[weight] = loss.item()
    assert stats["residual_noise"] > 0.0
    assert losses[100.0] == pytest.approx(losses[0.0] + 100.0 * stats["residual_noise"], rel=1e-4)
