"""Typed configs: YAML files mapped onto dataclasses, and back."""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Sequence
from pathlib import Path
from typing import Any, TypeVar

import dacite
import yaml

T = TypeVar("T")

_DACITE = dacite.Config(strict=True, cast=[tuple])


def from_dict(cls: type[T], data: dict[str, Any] | None) -> T:
    """Build dataclass ``cls`` from a plain dict; unknown keys and wrong types raise ValueError."""
    try:
        return dacite.from_dict(cls, data or {}, config=_DACITE)
    except dacite.DaciteError as err:
        raise ValueError(f"invalid {cls.__name__} config: {err}") from err


def to_dict(config: Any) -> dict[str, Any]:
    """Plain, YAML-safe dict of a dataclass (tuples become lists)."""

    def plain(value: Any) -> Any:
        if isinstance(value, dict):
            return {k: plain(v) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return [plain(v) for v in value]
        return value

    return plain(dataclasses.asdict(config))


def load_yaml(path: str | Path) -> dict[str, Any]:
    """Read a YAML mapping; a missing file or a non-mapping top level raises a clear error."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"config file not found: {path}")
    data = yaml.safe_load(path.read_text()) or {}
    if not isinstance(data, dict):
        raise ValueError(f"{path}: top level must be a mapping, got {type(data).__name__}")
    return data


def apply_overrides(data: dict[str, Any], overrides: Sequence[str]) -> dict[str, Any]:
    """Copy of ``data`` with ``dotted.key=value`` overrides applied (values parsed as YAML).

    ``trainer.seed=3`` sets ``data["trainer"]["seed"] = 3``, creating missing mappings; the
    dataclass built from the result still rejects unknown keys.
    """
    result = copy.deepcopy(data)
    for override in overrides:
        key, sep, text = override.partition("=")
        if not sep or not key or any(not part for part in key.split(".")):
            raise ValueError(f"override must look like key.path=value, got {override!r}")
        *parents, leaf = key.split(".")
        node = result
        for part in parents:
            child = node.setdefault(part, {})
            if not isinstance(child, dict):
                raise ValueError(f"override {override!r}: {part!r} is not a mapping")
            node = child
        node[leaf] = yaml.safe_load(text)
    return result


def load_config(cls: type[T], path: str | Path, overrides: Sequence[str] = ()) -> T:
    """Read a YAML file into dataclass ``cls``, with ``key.path=value`` overrides applied."""
    return from_dict(cls, apply_overrides(load_yaml(path), overrides))


def save_config(config: Any, path: str | Path) -> None:
    """Write a dataclass config as YAML."""
    Path(path).write_text(yaml.safe_dump(to_dict(config), sort_keys=False))
