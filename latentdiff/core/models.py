"""Rebuild models from checkpoints alone: every checkpoint carries a model spec.

A spec is a plain dict ``{"kind": ..., "config": ..., ...}`` stored under ``extra["model"]`` by
the trainer. Kinds register a builder here so a checkpoint path is all inference needs.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from torch import nn

from latentdiff.core.autoencoder import Autoencoder1D, AutoencoderConfig
from latentdiff.core.checkpoint import load_checkpoint, save_checkpoint
from latentdiff.core.config import from_dict, to_dict
from latentdiff.core.latent import LatentDiffusion, LatentDiffusionConfig

ModelBuilder = Callable[[dict[str, Any]], nn.Module]
BUILDERS: dict[str, ModelBuilder] = {}


def register_model(kind: str) -> Callable[[ModelBuilder], ModelBuilder]:
    """Decorator registering a builder ``spec -> nn.Module`` for ``kind``."""

    def decorate(builder: ModelBuilder) -> ModelBuilder:
        BUILDERS[kind] = builder
        return builder

    return decorate


def autoencoder_spec(model: Autoencoder1D) -> dict[str, Any]:
    """Spec of an autoencoder."""
    return {"kind": "autoencoder", "config": to_dict(model.cfg)}


def latent_diffusion_spec(model: LatentDiffusion) -> dict[str, Any]:
    """Spec of a latent (or data-space) diffusion model, including its autoencoder's shape."""
    ae = model.autoencoder
    return {
        "kind": "latent_diffusion",
        "config": to_dict(model.cfg),
        "autoencoder": to_dict(ae.cfg) if ae is not None else None,
    }


@register_model("autoencoder")
def _build_autoencoder(spec: dict[str, Any]) -> nn.Module:
    return Autoencoder1D(from_dict(AutoencoderConfig, spec["config"]))


@register_model("latent_diffusion")
def _build_latent_diffusion(spec: dict[str, Any]) -> nn.Module:
    ae_cfg = spec.get("autoencoder")
    ae = Autoencoder1D(from_dict(AutoencoderConfig, ae_cfg)) if ae_cfg is not None else None
    return LatentDiffusion(from_dict(LatentDiffusionConfig, spec["config"]), ae)


def build_model(spec: dict[str, Any]) -> nn.Module:
    """Instantiate an untrained model from its spec."""
    kind = spec.get("kind")
    if kind not in BUILDERS:
        raise ValueError(f"unknown model kind {kind!r}; known: {sorted(BUILDERS)}")
    return BUILDERS[kind](spec)


def resolve_checkpoint(path: str | Path) -> Path:
    """Accept a checkpoint file, a ``checkpoints/`` folder or an experiment dir."""
    path = Path(path)
    for candidate in (path, path / "last.pt", path / "checkpoints" / "last.pt"):
        if candidate.is_file():
            return candidate
    raise FileNotFoundError(f"no checkpoint at {path} (looked for last.pt inside it too)")


def load_model(path: str | Path, *, ema: bool = True) -> nn.Module:
    """Model from a checkpoint (EMA weights by default), in eval mode."""
    ckpt_path = resolve_checkpoint(path)
    state = load_checkpoint(ckpt_path)
    spec = state.get("extra", {}).get("model")
    if spec is None:
        raise ValueError(f"{ckpt_path} holds no model spec; was it written by latentdiff?")
    model = build_model(spec)
    weights = state["ema"] if ema and state.get("ema") is not None else state["model"]
    model.load_state_dict(weights)
    return model.eval()


def save_final(exp_dir: str | Path, model: nn.Module, spec: dict[str, Any]) -> Path:
    """Write ``exp_dir/final.pt``: ``model``'s (EMA) weights plus its spec, loadable alone."""
    weights = model.state_dict()
    path = Path(exp_dir) / "final.pt"
    save_checkpoint(path, {"model": weights, "ema": weights, "extra": {"model": spec}})
    return path
