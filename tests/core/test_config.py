"""Config overrides (``--set key.path=value``) and their validation."""

from __future__ import annotations

import pytest

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
