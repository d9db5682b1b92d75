"""Config overrides (``--set key.path=value``) and their validation."""

from __future__ import annotations

from pathlib import Path

import pytest

from latentdiff.cli import main
from latentdiff.core.config import apply_overrides, from_dict
from latentdiff.core.training import TrainerConfig


def test_overrides_set_nested_values_parsed_as_yaml_without_touching_the_input() -> None:
    data = {"trainer": {"seed": 0, "steps": 10}, "model": {"channels": [8]}}
    result = apply_overrides(
        data, ["trainer.seed=3", "model.channels=[16, 32]", "trainer.ema_decay=0", "new.key=on"]
    )
    assert result == {
        "trainer": {"seed": 3, "steps": 10, "ema_decay": 0},
        "model": {"channels": [16, 32]},
        "new": {"key": True},
    }
    assert data["trainer"]["seed"] == 0 and "ema_decay" not in data["trainer"]


@pytest.mark.parametrize("bad", ["trainer.seed", "=3", "trainer..seed=1", "trainer.seed.x=1"])
def test_malformed_overrides_are_refused(bad: str) -> None:
    with pytest.raises(ValueError, match="override"):
        apply_overrides({"trainer": {"seed": 0}}, [bad])


def test_an_override_of_an_unknown_field_fails_when_the_config_is_built() -> None:
    with pytest.raises(ValueError, match="invalid TrainerConfig"):
        from_dict(TrainerConfig, apply_overrides({}, ["sede=1"]))


def test_the_command_line_reports_bad_overrides_and_configs_in_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "distill.yaml"
    config.write_text("distill: {steps: 1}\n")
    base = ["train", "path-distill", "--config", str(config), "--teacher", "t.pt"]
    base += ["--data-dir", str(tmp_path), "--exp-dir", str(tmp_path / "exp")]
    assert main([*base, "--set", "distill"]) == 2
    assert "latentdiff: error: override must look like key.path=value" in capsys.readouterr().err
    assert main([*base, "--set", "distill.stepz=2"]) == 2
    assert 'can not match "stepz"' in capsys.readouterr().err
    missing = ["--config", str(tmp_path / "none.yaml")]
    assert main([*base[:2], *missing, *base[4:]]) == 2
    assert "config file not found" in capsys.readouterr().err
