"""Waypoints that keep every bend of the paths (``keep_vertices``), from data to planner."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from latentdiff.core.models import load_model
from latentdiff.path.data import PathDataConfig, build_split, load_split, save_split
from latentdiff.path.geometry import path_is_free
from latentdiff.path.metrics import resample_path
from latentdiff.path.model import PathDiffusion, build_path_model, path_model_spec
from latentdiff.path.planner import Planner, PlannerConfig
from latentdiff.path.train import train_path_diffusion

from .test_planner import obstacle_map, tiny_model
from .test_reference import synthetic_split

KINDS = ("random", "rooms", "bug_traps", "narrow_passages")


@pytest.fixture(scope="module")
def splits() -> dict[bool, object]:
    """The same worlds and queries resampled both ways."""
    cfg = PathDataConfig(kinds=KINDS, n_train_maps=16, min_size=24, max_size=64)
    return {
        keep: build_split(dataclasses.replace(cfg, keep_vertices=keep), "train", progress=False)
        for keep in (False, True)
    }


def test_kept_vertices_make_the_targets_collision_free(splits) -> None:
    uniform, kept = splits[False], splits[True]
    np.testing.assert_array_equal(uniform.occupancy, kept.occupancy)
    valid = {
        keep: [path_is_free(s.occupancy[i], s.target[i]) for i in range(len(s))]
        for keep, s in splits.items()
    }
    # Outside mazes no window path has more bends than waypoints, so every kept target is
    # exactly its (corner-offset) optimum; equal spacing cuts some corners.
    assert all(valid[True])
    assert not all(valid[False])


def test_the_flag_survives_the_split_file(splits, tmp_path: Path) -> None:
    save_split(splits[True], tmp_path / "train.npz")
    assert load_split(tmp_path, "train").keep_vertices
    save_split(splits[False], tmp_path / "train.npz")
    assert not load_split(tmp_path, "train").keep_vertices


def test_training_takes_the_resampling_from_the_data_and_refuses_a_mismatch(tmp_path: Path) -> None:
    save_split(dataclasses.replace(synthetic_split(), keep_vertices=True), tmp_path / "train.npz")
    model = {
        "latent": False,
        "map_encoder": {"channels": [4, 8], "out_dim": 8},
        "diffusion": {"backbone": {"name": "unet", "unet_channels": [8], "embed_dim": 8}},
    }
    trainer = {"steps": 1, "batch_size": 8, "tensorboard": False, "progress": False}
    config = tmp_path / "diffusion.yaml"
    config.write_text(yaml.safe_dump({"model": model, "trainer": trainer}))
    with pytest.raises(ValueError, match="keep_vertices"):
        train_path_diffusion(config, tmp_path, tmp_path / "x", None, ["model.keep_vertices=false"])
    train_path_diffusion(config, tmp_path, tmp_path / "kept", None, ["model.keep_vertices=true"])
    # Unset, the model resamples its guides as the data it was trained on.
    train_path_diffusion(config, tmp_path, tmp_path / "unset", None)
    model = load_model(tmp_path / "unset" / "final.pt")
    assert isinstance(model, PathDiffusion) and model.cfg.keep_vertices is True
    saved = yaml.safe_load((tmp_path / "unset" / "experiment.yaml").read_text())
    assert saved["model"]["keep_vertices"] is True


def test_the_planner_resamples_guides_like_the_model_data() -> None:
    spec = path_model_spec(tiny_model())
    spec["config"]["keep_vertices"] = True
    model = build_path_model(spec)
    assert isinstance(model, PathDiffusion)
    planner = Planner(model.eval(), PlannerConfig(candidates=2, steps=1, backend="eager"))
    occ = obstacle_map()
    guide = np.array([[4.0, 16.0], [11.0, 9.0], [21.0, 9.0], [28.0, 16.0]])
    (piece,) = planner._pieces(0, occ, guide)
    local = piece.points - piece.origin
    expected = resample_path(local, model.cfg.n_waypoints, keep_vertices=True)
    window = model.cfg.window
    torch.testing.assert_close(
        torch.from_numpy(piece.guide.T), torch.from_numpy(expected / (window / 2) - 1).float()
    )
