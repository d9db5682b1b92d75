"""Occupancy validation and map file formats of latentdiff.path.maps."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import yaml
from PIL import Image

from latentdiff.path.maps import (
    MapMeta,
    Scenario,
    as_occupancy,
    load_image_map,
    load_map,
    load_movingai_map,
    load_ros_map,
    load_scenarios,
    save_map,
    save_movingai_map,
    save_ros_map,
    save_scenarios,
    validate_endpoints,
)


@pytest.fixture
def occ() -> np.ndarray:
    grid = np.random.default_rng(0).random((7, 11)) < 0.3
    grid[0, 0] = False
    return grid


# -- as_occupancy ---------------------------------------------------------------------------------


def test_as_occupancy_conversions() -> None:
    grid = np.zeros((3, 4), dtype=bool)
    assert as_occupancy(grid) is grid
    image = np.array([[0, 127, 128, 255], [255, 255, 255, 255]], dtype=np.uint8)
    np.testing.assert_array_equal(as_occupancy(image)[0], [True, True, False, False])
    np.testing.assert_array_equal(
        as_occupancy(image, threshold=0.9)[0], [True, False, False, False]
    )
    values = np.array([[0.0, 0.49, 0.5, 1.0], [0.2, 0.2, 0.2, 0.2]])
    np.testing.assert_array_equal(as_occupancy(values)[0], [False, False, True, True])
    np.testing.assert_array_equal(as_occupancy(values, threshold=0.1)[1], True)
    assert as_occupancy([[0, 1], [1, 0]]).tolist() == [[False, True], [True, False]]


@pytest.mark.parametrize(
    ("array", "message"),
    [
        (np.zeros(5), "2-D"),
        (np.zeros((2, 2, 2)), "2-D"),
        (np.zeros((1, 5)), "height must be in"),
        (np.zeros((4, 4097), dtype=bool), "width must be in"),
        (np.array([[0.0, np.nan], [0.0, 0.0]]), "NaN"),
        (np.array([[0.0, 2.0], [0.0, 0.0]]), r"\[0, 1\]"),
        (np.array([[0, 255], [0, 0]], dtype=np.int64), r"\[0, 1\]"),
        (np.array([["a", "b"], ["c", "d"]]), "dtype"),
    ],
)
def test_as_occupancy_rejects(array: np.ndarray, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        as_occupancy(array)


def test_as_occupancy_rejects_threshold() -> None:
    with pytest.raises(ValueError, match="threshold"):
        as_occupancy(np.zeros((2, 2)), threshold=0.0)


def test_validate_endpoints() -> None:
    grid = np.zeros((4, 6), dtype=bool)
    grid[1, 2] = True
    start, goal = validate_endpoints(grid, (0.5, 0.5), [2.5, 1.0])  # goal on a blocked edge
    assert start.dtype == np.float64 and goal.tolist() == [2.5, 1.0]
    with pytest.raises(
        ValueError, match=r"start \(6.5, 1\) is outside the map \[0, 6\] x \[0, 4\]"
    ):
        validate_endpoints(grid, (6.5, 1.0), (0.5, 0.5))
    with pytest.raises(ValueError, match=r"goal \(2.5, 1.5\) is inside an obstacle"):
        validate_endpoints(grid, (0.5, 0.5), (2.5, 1.5))
    with pytest.raises(ValueError, match="start must be an"):
        validate_endpoints(grid, (np.nan, 0.5), (0.5, 0.5))
    with pytest.raises(ValueError, match="goal must be an"):
        validate_endpoints(grid, (0.5, 0.5), (1.0, 2.0, 3.0))


# -- round trips --------------------------------------------------------------------------------


@pytest.mark.parametrize("suffix", [".npy", ".png", ".pgm", ".yaml", ".map"])
def test_round_trip(tmp_path: Path, occ: np.ndarray, suffix: str) -> None:
    path = tmp_path / f"world{suffix}"
    save_map(path, occ)
    loaded = load_map(path)
    assert loaded.dtype == np.bool_
    np.testing.assert_array_equal(loaded, occ)


def test_ros_round_trip_with_meta(tmp_path: Path, occ: np.ndarray) -> None:
    meta = MapMeta(resolution=0.05, origin=(-3.0, 1.5, 0.0), negate=True, free_thresh=0.2)
    save_ros_map(tmp_path / "office.yaml", occ, meta)
    assert (tmp_path / "office.pgm").is_file()
    loaded, loaded_meta = load_ros_map(tmp_path / "office.yaml")
    np.testing.assert_array_equal(loaded, occ)
    assert loaded_meta == meta


def test_ros_thresholds_and_unknown_cells(tmp_path: Path) -> None:
    pixels = np.array([[254, 0, 205, 220, 210], [254, 254, 254, 254, 254]], dtype=np.uint8)
    (tmp_path / "img").mkdir()
    Image.fromarray(pixels).save(tmp_path / "img" / "m.png")
    meta = {"image": "img/m.png", "resolution": 0.1, "origin": [0, 0, 0], "negate": 0}
    (tmp_path / "m.yaml").write_text(yaml.safe_dump({**meta, "free_thresh": 0.1}))
    # occupancy: 254 -> 0.004, 0 -> 1, 205 -> 0.196 (unknown), 220 -> 0.137, 210 -> 0.176
    loaded, _ = load_ros_map(tmp_path / "m.yaml")
    assert loaded[0].tolist() == [False, True, True, True, True]
    (tmp_path / "m.yaml").write_text(yaml.safe_dump({**meta, "free_thresh": 0.15}))
    assert load_ros_map(tmp_path / "m.yaml")[0][0].tolist() == [False, True, True, False, True]
    (tmp_path / "m.yaml").write_text(yaml.safe_dump({**meta, "negate": 1, "free_thresh": 0.15}))
    assert load_ros_map(tmp_path / "m.yaml")[0][0].tolist() == [True, False, True, True, True]


def test_map_meta_frames() -> None:
    meta = MapMeta(resolution=0.05, origin=(-10.0, -5.0, 0.0))
    np.testing.assert_allclose(meta.map_to_world([0.0, 100.0], height=100), [-10.0, -5.0])
    np.testing.assert_allclose(meta.map_to_world([[20.0, 0.0]], height=100), [[-9.0, 0.0]])
    points = np.array([[1.5, 2.25], [40.0, 99.0]])
    np.testing.assert_allclose(meta.world_to_map(meta.map_to_world(points, 100), 100), points)
    with pytest.raises(ValueError, match="rotated"):
        MapMeta(origin=(0.0, 0.0, 0.5)).map_to_world([0.0, 0.0], height=10)


def test_images_dark_is_blocked(tmp_path: Path) -> None:
    gray = np.array([[0, 100, 127], [128, 200, 255]], dtype=np.uint8)
    Image.fromarray(gray).save(tmp_path / "g.png")
    assert load_image_map(tmp_path / "g.png").tolist() == [[True] * 3, [False] * 3]
    assert load_image_map(tmp_path / "g.png", occupied_thresh=0.7).tolist() == [
        [True, False, False],
        [False] * 3,
    ]
    assert load_image_map(tmp_path / "g.png", negate=True).tolist() == [[False] * 3, [True] * 3]
    colour = np.zeros((2, 3, 3), dtype=np.uint8)
    colour[0] = [255, 255, 0]  # mean 170: free
    colour[1] = [255, 0, 0]  # mean 85: blocked
    Image.fromarray(colour).save(tmp_path / "c.png")
    assert load_map(tmp_path / "c.png").tolist() == [[False] * 3, [True] * 3]
    deep = np.array([[0, 30000], [40000, 65535]], dtype=np.uint16)
    Image.fromarray(deep).save(tmp_path / "d.png")
    assert load_map(tmp_path / "d.png").tolist() == [[True, True], [False, False]]


def test_movingai_terrain_and_scenarios(tmp_path: Path) -> None:
    text = "type octile\nheight 3\nwidth 4\nmap\n.GS@\nOTW.\n....\n"
    (tmp_path / "t.map").write_text(text)
    grid = load_movingai_map(tmp_path / "t.map")
    assert grid.tolist() == [[False, False, False, True], [True, True, True, False], [False] * 4]
    save_movingai_map(tmp_path / "u.map", grid)
    assert (tmp_path / "u.map").read_text().splitlines()[4:] == ["...@", "@@@.", "...."]
    scen = "version 1\n0\tt.map\t4\t3\t0\t0\t3\t2\t3.82842712\n1\tt.map\t4\t3\t3\t1\t0\t2\t3\n"
    (tmp_path / "t.map.scen").write_text(scen)
    scenarios = load_scenarios(tmp_path / "t.map.scen")
    assert scenarios[0] == Scenario(0, "t.map", 4, 3, (0.5, 0.5), (3.5, 2.5), 3.82842712)
    assert scenarios[1].start == (3.5, 1.5) and scenarios[1].optimal_length == 3.0
    save_scenarios(tmp_path / "copy.scen", scenarios)
    assert load_scenarios(tmp_path / "copy.scen") == scenarios
    with pytest.raises(ValueError, match="not a cell centre"):
        save_scenarios(tmp_path / "bad.scen", [Scenario(0, "t", 4, 3, (1.0, 0.5), (0.5, 0.5), 1)])


# -- corrupt files --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("bad.npy", b"not a numpy file", "bad.npy"),
        ("bad.png", b"\x89PNG broken", "bad.png: cannot read image"),
        ("bad.pgm", b"P5\n4 4\n255\n", "bad.pgm"),
        ("bad.yaml", b"resolution: 0.1\n", r"bad.yaml: invalid ROS map metadata"),
        ("list.yaml", b"- 1\n- 2\n", "list.yaml: expected a YAML mapping"),
        ("thr.yaml", b"image: x.png\nresolution: 1\norigin: [0, 0, 0]\nfree_thresh: 2\n", "thr"),
        ("rows.map", b"type octile\nheight 3\nwidth 2\nmap\n..\n..\n", "rows.map: header says 3"),
        ("char.map", b"type octile\nheight 2\nwidth 2\nmap\n..\n.x\n", "char.map: line 6"),
        ("wide.map", b"type octile\nheight 2\nwidth 2\nmap\n...\n..\n", "wide.map: line 5"),
        ("head.map", b"type octile\nheight two\nwidth 2\nmap\n..\n..\n", "head.map: header"),
        ("nomap.map", b"type octile\nheight 2\nwidth 2\n", "nomap.map: missing 'map'"),
        ("small.map", b"type octile\nheight 1\nwidth 2\nmap\n..\n", "small.map: map height"),
        ("world.txt", b"...", "unknown map format"),
    ],
)
def test_corrupt_files_name_the_file(
    tmp_path: Path, name: str, content: bytes, message: str
) -> None:
    (tmp_path / name).write_bytes(content)
    with pytest.raises(ValueError, match=message):
        load_map(tmp_path / name)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("0\tm\t4\t3\t0\t0\t3\t2\t1.0\n", "missing 'version'"),
        ("version 1\n0\tm\t4\t3\t0\t0\t3\n", "line 2: expected 9 fields"),
        ("version 1\n0\tm\t4\t3\t0\tx\t3\t2\t1.0\n", "line 2"),
        ("version 1\n0\tm\t4\t3\t0\t0\t4\t2\t1.0\n", r"cell \(4, 2\) outside 4x3"),
    ],
)
def test_corrupt_scenarios(tmp_path: Path, content: str, message: str) -> None:
    (tmp_path / "s.scen").write_text(content)
    with pytest.raises(ValueError, match=f"s.scen.*{message}"):
        load_scenarios(tmp_path / "s.scen")


def test_missing_ros_image_names_the_image(tmp_path: Path) -> None:
    (tmp_path / "m.yaml").write_text("image: gone.pgm\nresolution: 1\norigin: [0, 0, 0]\n")
    with pytest.raises(ValueError, match=r"gone\.pgm"):
        load_map(tmp_path / "m.yaml")
