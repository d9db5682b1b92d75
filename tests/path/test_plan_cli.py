"""``latentdiff plan``: map loading, validation, exit codes, JSON and PNG outputs."""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from latentdiff.commands import CommandTable
from latentdiff.path import commands_run
from latentdiff.path.geometry import path_is_free
from latentdiff.path.maps import save_movingai_map
from latentdiff.path.metrics import path_length
from latentdiff.path.search import astar_any_angle


@dataclass
class StandInResult:
    path: np.ndarray
    success: bool
    info: dict[str, Any] = field(default_factory=dict)
    candidates: list[np.ndarray] = field(default_factory=list)


class StandInPlanner:
    """The learned planner's interface answered by A* + shortcutting."""

    def plan(self, occ: np.ndarray, start: Sequence[float], goal: Sequence[float]) -> StandInResult:
        path = astar_any_angle(occ, start, goal)
        if path is None:
            info = {"method": "stand-in", "reason": "goal unreachable", "nfe": 0}
            return StandInResult(np.empty((0, 2)), False, info)
        info = {"method": "stand-in", "nfe": np.int64(4), "total_ms": np.float32(1.5)}
        return StandInResult(path, True, info, candidates=[path + 0.1, path - 0.1])


@pytest.fixture(autouse=True)
def stand_in(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(commands_run, "load_planner", lambda *args, **kwargs: StandInPlanner())


def run_cli(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="latentdiff")
    commands_run.add_commands(CommandTable(parser.add_subparsers(dest="verb", required=True)))
    args = parser.parse_args(argv)
    return int(args.run(args))


@pytest.fixture
def map_file(tmp_path: Path) -> Path:
    """12x10 MovingAI map: a wall at column 6 open only at row 8."""
    occ = np.zeros((10, 12), dtype=bool)
    occ[:, 6] = True
    occ[8, 6] = False
    path = tmp_path / "wall.map"
    save_movingai_map(path, occ)
    return path


def test_plan_round_trip_writes_json_and_png(
    map_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out, record = tmp_path / "plots" / "plan.png", tmp_path / "plan.json"
    argv = ["plan", "--map", str(map_file), "--start", "1.5,1.5", "--goal", "10.5,1.5"]
    code = run_cli([*argv, "--out", str(out), "--json", str(record), "--candidates"])
    assert code == 0
    line = capsys.readouterr().out.strip()
    assert line.startswith("success=True length=") and "method=stand-in" in line

    data = json.loads(record.read_text())
    assert data["success"] is True and data["start"] == [1.5, 1.5] and data["goal"] == [10.5, 1.5]
    path = np.array(data["path"])
    assert path[0].tolist() == [1.5, 1.5] and path[-1].tolist() == [10.5, 1.5]
    occ = np.zeros((10, 12), dtype=bool)
    occ[:, 6] = True
    occ[8, 6] = False
    assert path_is_free(occ, path)
    assert data["length"] == pytest.approx(path_length(path), abs=1e-9)
    assert data["length"] > 16.0  # straight line: 9; the detour via row 8 needs >= 16.8
    assert data["info"] == {"method": "stand-in", "nfe": 4, "total_ms": 1.5}

    with Image.open(out) as image:
        assert image.format == "PNG" and min(image.size) > 100
    assert not list(tmp_path.rglob(".*.tmp"))  # atomic writes leave no temporaries


def test_plan_unreachable_exits_1(
    map_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    occ = np.zeros((10, 12), dtype=bool)
    occ[:, 6] = True
    closed = tmp_path / "closed.npy"
    np.save(closed, occ)
    record = tmp_path / "none.json"
    argv = ["plan", "--map", str(closed), "--start", "1.5,1.5", "--goal", "10.5,1.5"]
    code = run_cli([*argv, "--json", str(record), "--out", str(tmp_path / "none.png")])
    assert code == 1
    captured = capsys.readouterr()
    assert "success=False" in captured.out
    assert "no path: goal unreachable" in captured.err
    data = json.loads(record.read_text())
    assert data["success"] is False and data["path"] == [] and data["length"] is None
    assert (tmp_path / "none.png").is_file()


@pytest.mark.parametrize(
    ("start", "goal", "message"),
    [
        ("6.5,3.5", "10.5,1.5", "start (6.5, 3.5) is inside an obstacle"),
        ("1.5,1.5", "12.5,1.5", "goal (12.5, 1.5) is outside the map"),
        ("1.5", "10.5,1.5", "--start expects x,y"),
        ("1.5,1.5", "a,b", "--goal expects x,y"),
    ],
)
def test_plan_bad_input_exits_2(
    map_file: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    start: str,
    goal: str,
    message: str,
) -> None:
    record = tmp_path / "bad.json"
    code = run_cli(
        ["plan", "--map", str(map_file), "--start", start, "--goal", goal, "--json", str(record)]
    )
    assert code == 2
    assert message in capsys.readouterr().err
    assert not record.exists()


def test_plan_missing_map_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = run_cli(["plan", "--map", str(tmp_path / "nope.map"), "--start", "1,1", "--goal", "2,2"])
    assert code == 2
    assert "nope.map" in capsys.readouterr().err


def test_parse_point() -> None:
    assert commands_run.parse_point("3, 4.5", "start") == (3.0, 4.5)
    with pytest.raises(ValueError, match="--goal expects x,y"):
        commands_run.parse_point("1,2,3", "goal")
