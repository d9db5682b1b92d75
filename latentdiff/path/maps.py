"""Occupancy-grid validation and file formats.

An occupancy grid is a 2-D bool array (H, W), True = blocked; see :mod:`latentdiff.path.geometry`
for the coordinate conventions. Supported files (dispatch on suffix in :func:`load_map` and
:func:`save_map`):

* ``.npy``: a 2-D array accepted by :func:`as_occupancy`.
* ``.png`` / ``.pgm``: grayscale (or colour, channels averaged; alpha ignored) images; dark pixels
  are blocked, see :func:`load_image_map`.
* ``.yaml`` / ``.yml``: ROS map_server metadata plus its image, see :func:`load_ros_map`.
* ``.map``: MovingAI grid maps; ``.scen`` MovingAI scenario files via :func:`load_scenarios`.

Image rows are kept as they are: row 0 is the top row of the image and y grows downwards. ROS
places the map origin at the bottom-left corner; :class:`MapMeta` converts between the two frames.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import yaml
from PIL import Image, UnidentifiedImageError

from latentdiff.path.geometry import point_is_free

__all__ = [
    "MAX_MAP_SIZE",
    "MIN_MAP_SIZE",
    "MapMeta",
    "Scenario",
    "as_occupancy",
    "load_image_map",
    "load_map",
    "load_movingai_map",
    "load_ros_map",
    "load_scenarios",
    "save_image_map",
    "save_map",
    "save_movingai_map",
    "save_ros_map",
    "save_scenarios",
    "validate_endpoints",
    "validate_map_size",
]

MIN_MAP_SIZE = 2
MAX_MAP_SIZE = 4096

_IMAGE_SUFFIXES = (".png", ".pgm")
_YAML_SUFFIXES = (".yaml", ".yml")
_MOVINGAI_FREE = frozenset(".GS")
_MOVINGAI_BLOCKED = frozenset("@OTW")


def validate_map_size(height: int, width: int) -> None:
    """Raise ValueError unless both sides are integers in [MIN_MAP_SIZE, MAX_MAP_SIZE]."""
    for name, size in (("height", height), ("width", width)):
        if isinstance(size, bool) or not isinstance(size, int | np.integer):
            raise ValueError(f"map {name} must be an integer, got {size!r}")
        if not MIN_MAP_SIZE <= size <= MAX_MAP_SIZE:
            raise ValueError(
                f"map {name} must be in [{MIN_MAP_SIZE}, {MAX_MAP_SIZE}] cells, got {size}"
            )


def as_occupancy(arr: np.ndarray | Sequence[Sequence[float]], threshold: float = 0.5) -> np.ndarray:
    """Validated bool occupancy (H, W) from an array.

    * bool arrays are returned as they are (True = blocked);
    * uint8 arrays are grayscale images with dark = occupied: a pixel v has occupancy
      (255 - v) / 255 and is blocked when that is >= ``threshold`` (default: v < 128);
    * other integer or float arrays hold occupancy in [0, 1]; values >= ``threshold`` are blocked.

    Raises ValueError for non-2-D input, sides outside [2, 4096], NaN, values outside [0, 1]
    (non-uint8 numeric input) or an unsupported dtype.
    """
    if not 0.0 < threshold <= 1.0:
        raise ValueError(f"threshold must be in (0, 1], got {threshold}")
    grid = np.asarray(arr)
    if grid.ndim != 2:
        raise ValueError(f"occupancy must be a 2-D array (H, W), got shape {grid.shape}")
    validate_map_size(*grid.shape)
    if grid.dtype == np.bool_:
        return np.ascontiguousarray(grid)
    if grid.dtype == np.uint8:
        return (255 - grid.astype(np.float64)) / 255.0 >= threshold
    if not (np.issubdtype(grid.dtype, np.integer) or np.issubdtype(grid.dtype, np.floating)):
        raise ValueError(f"occupancy must be bool or numeric, got dtype {grid.dtype}")
    values = grid.astype(np.float64)
    if np.isnan(values).any():
        raise ValueError("occupancy contains NaN")
    low, high = float(values.min()), float(values.max())
    if low < 0.0 or high > 1.0:
        raise ValueError(
            f"numeric occupancy must lie in [0, 1], got values in [{low:g}, {high:g}] "
            "(pass a uint8 image or a bool array instead)"
        )
    return values >= threshold


def validate_endpoints(
    occ: np.ndarray, start: Sequence[float], goal: Sequence[float]
) -> tuple[np.ndarray, np.ndarray]:
    """Check that start and goal are free points of ``occ``; returns them as float64 (2,) arrays.

    Raises ValueError such as "start (x, y) is outside the map [0, W] x [0, H]" or
    "goal (x, y) is inside an obstacle".
    """
    grid = as_occupancy(occ)
    height, width = grid.shape
    checked = []
    for name, point in (("start", start), ("goal", goal)):
        xy = np.asarray(point, dtype=np.float64)
        if xy.shape != (2,) or not np.isfinite(xy).all():
            raise ValueError(f"{name} must be an (x, y) pair of finite numbers, got {point!r}")
        where = f"{name} ({xy[0]:g}, {xy[1]:g})"
        if not (0.0 <= xy[0] <= width and 0.0 <= xy[1] <= height):
            raise ValueError(f"{where} is outside the map [0, {width}] x [0, {height}]")
        if not point_is_free(grid, xy):
            raise ValueError(f"{where} is inside an obstacle")
        checked.append(xy)
    return checked[0], checked[1]


# ---------------------------------------------------------------------------------------------
# Images.
# ---------------------------------------------------------------------------------------------


def _image_occupancy(path: Path, negate: bool) -> np.ndarray:
    """Per-pixel occupancy in [0, 1]: (max - v) / max (dark = occupied), or v / max if negate."""
    try:
        with Image.open(path) as image:
            image.load()
            if image.mode == "P":
                image = image.convert("RGBA")
            elif image.mode == "1":
                image = image.convert("L")
            mode = image.mode
            pixels = np.asarray(image)
    except (OSError, ValueError, UnidentifiedImageError) as err:
        raise ValueError(f"{path}: cannot read image ({err})") from err
    if mode in ("L", "LA", "RGB", "RGBA"):
        peak = 255.0
    elif mode.startswith("I;16") or mode == "I":
        peak = 65535.0
    else:
        raise ValueError(f"{path}: unsupported image mode {mode}")
    values = pixels.astype(np.float64)
    if values.ndim == 3:
        colour = values.shape[2] - 1 if mode in ("LA", "RGBA") else values.shape[2]
        values = values[:, :, :colour].mean(axis=2)
    if values.min() < 0.0 or values.max() > peak:
        raise ValueError(f"{path}: pixel values outside [0, {peak:g}]")
    return values / peak if negate else (peak - values) / peak


def load_image_map(
    path: str | Path, occupied_thresh: float = 0.5, negate: bool = False
) -> np.ndarray:
    """Occupancy from a PNG/PGM image: a pixel is blocked when its occupancy >= occupied_thresh.

    Occupancy is (255 - v) / 255 for 8-bit images (dark = blocked), or v / 255 with ``negate``;
    16-bit images use 65535. With the defaults, 8-bit pixels v < 128 are blocked.
    """
    path = Path(path)
    occupancy = _image_occupancy(path, negate)
    try:
        return as_occupancy(occupancy, threshold=occupied_thresh)
    except ValueError as err:
        raise ValueError(f"{path}: {err}") from err


def save_image_map(path: str | Path, occ: np.ndarray) -> None:
    """Write an 8-bit grayscale image: blocked cells black (0), free cells white (255)."""
    grid = as_occupancy(occ)
    Image.fromarray(np.where(grid, 0, 255).astype(np.uint8)).save(Path(path))


# ---------------------------------------------------------------------------------------------
# ROS map_server.
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class MapMeta:
    """ROS map_server metadata: metres per cell, pose (x, y, yaw) of the bottom-left corner."""

    resolution: float = 1.0
    origin: tuple[float, float, float] = (0.0, 0.0, 0.0)
    negate: bool = False
    occupied_thresh: float = 0.65
    free_thresh: float = 0.196

    def _check_unrotated(self) -> None:
        if self.origin[2] != 0.0:
            raise ValueError(f"rotated map origins are not supported (yaw {self.origin[2]})")

    def map_to_world(self, points: np.ndarray | Sequence[float], height: int) -> np.ndarray:
        """(x, y) map points (cells, y down) of a map with ``height`` rows -> ROS world metres."""
        self._check_unrotated()
        xy = np.asarray(points, dtype=np.float64)
        world_x = self.origin[0] + xy[..., 0] * self.resolution
        world_y = self.origin[1] + (height - xy[..., 1]) * self.resolution
        return np.stack([world_x, world_y], axis=-1)

    def world_to_map(self, points: np.ndarray | Sequence[float], height: int) -> np.ndarray:
        """ROS world points (metres) -> (x, y) map points (cells, y down); see map_to_world."""
        self._check_unrotated()
        xy = np.asarray(points, dtype=np.float64)
        map_x = (xy[..., 0] - self.origin[0]) / self.resolution
        map_y = height - (xy[..., 1] - self.origin[1]) / self.resolution
        return np.stack([map_x, map_y], axis=-1)


def _parse_ros_meta(path: Path, data: object) -> tuple[Path, MapMeta]:
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected a YAML mapping")
    try:
        image = Path(str(data["image"]))
        resolution = float(data["resolution"])
        origin = tuple(float(v) for v in data["origin"])
        negate = int(data.get("negate", 0))
        occupied = float(data.get("occupied_thresh", 0.65))
        free = float(data.get("free_thresh", 0.196))
        mode = str(data.get("mode", "trinary"))
    except (KeyError, TypeError, ValueError) as err:
        raise ValueError(f"{path}: invalid ROS map metadata ({err!r})") from err
    if len(origin) != 3:
        raise ValueError(f"{path}: origin must be [x, y, yaw], got {data['origin']!r}")
    if not (resolution > 0.0 and math.isfinite(resolution)):
        raise ValueError(f"{path}: resolution must be positive, got {resolution}")
    if negate not in (0, 1):
        raise ValueError(f"{path}: negate must be 0 or 1, got {negate}")
    if not 0.0 < free <= occupied <= 1.0:
        raise ValueError(f"{path}: need 0 < free_thresh <= occupied_thresh <= 1")
    if mode not in ("trinary", "scale"):
        raise ValueError(f"{path}: unsupported mode {mode!r} (trinary and scale are supported)")
    meta = MapMeta(resolution, (origin[0], origin[1], origin[2]), bool(negate), occupied, free)
    return (image if image.is_absolute() else path.parent / image), meta


def load_ros_map(path: str | Path) -> tuple[np.ndarray, MapMeta]:
    """Read a ROS map_server YAML file and its image.

    A cell is free only when its occupancy (see :func:`load_image_map`, honouring ``negate``) is
    below ``free_thresh``; occupied and unknown cells are both blocked. The image path is relative
    to the YAML file. Rows keep the image orientation (row 0 at the top, y down); use
    :meth:`MapMeta.world_to_map` for ROS world coordinates.
    """
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as err:
        raise ValueError(f"{path}: cannot read ROS map YAML ({err})") from err
    image_path, meta = _parse_ros_meta(path, data)
    occupancy = _image_occupancy(image_path, meta.negate)
    try:
        grid = as_occupancy(~(occupancy < meta.free_thresh))
    except ValueError as err:
        raise ValueError(f"{path}: {err}") from err
    return grid, meta


def save_ros_map(path: str | Path, occ: np.ndarray, meta: MapMeta | None = None) -> None:
    """Write ``path`` (YAML) and a PGM image next to it with the same stem (free 254, blocked 0,
    inverted when ``meta.negate``)."""
    path = Path(path)
    meta = meta or MapMeta()
    grid = as_occupancy(occ)
    pixels = np.where(grid, 0, 254).astype(np.uint8)
    if meta.negate:
        pixels = 255 - pixels
    image_path = path.with_suffix(".pgm")
    Image.fromarray(pixels).save(image_path)
    data = {
        "image": image_path.name,
        "mode": "trinary",
        "resolution": meta.resolution,
        "origin": list(meta.origin),
        "negate": int(meta.negate),
        "occupied_thresh": meta.occupied_thresh,
        "free_thresh": meta.free_thresh,
    }
    path.write_text(yaml.safe_dump(data, sort_keys=False))


# ---------------------------------------------------------------------------------------------
# MovingAI benchmarks.
# ---------------------------------------------------------------------------------------------


def load_movingai_map(path: str | Path) -> np.ndarray:
    """Read a MovingAI ``.map`` file: '.', 'G', 'S' are free; '@', 'O', 'T', 'W' are blocked."""
    path = Path(path)
    try:
        lines = path.read_text().splitlines()
    except (OSError, UnicodeDecodeError) as err:
        raise ValueError(f"{path}: cannot read MovingAI map ({err})") from err
    header: dict[str, str] = {}
    row_start = None
    for number, line in enumerate(lines):
        words = line.split()
        if words == ["map"]:
            row_start = number + 1
            break
        if len(words) != 2:
            raise ValueError(f"{path}: line {number + 1}: malformed header line {line!r}")
        header[words[0]] = words[1]
    if row_start is None:
        raise ValueError(f"{path}: missing 'map' line")
    try:
        height, width = int(header["height"]), int(header["width"])
    except (KeyError, ValueError) as err:
        raise ValueError(f"{path}: header needs integer height and width ({err!r})") from err
    rows = [line.rstrip("\r\n") for line in lines[row_start:]]
    while rows and not rows[-1].strip():
        rows.pop()
    if len(rows) != height:
        raise ValueError(f"{path}: header says {height} rows, found {len(rows)}")
    grid = np.zeros((height, width), dtype=bool)
    for r, row in enumerate(rows):
        if len(row) != width:
            raise ValueError(
                f"{path}: line {row_start + r + 1}: expected {width} cells, got {len(row)}"
            )
        for c, char in enumerate(row):
            if char in _MOVINGAI_BLOCKED:
                grid[r, c] = True
            elif char not in _MOVINGAI_FREE:
                raise ValueError(f"{path}: line {row_start + r + 1}: unknown terrain {char!r}")
    try:
        return as_occupancy(grid)
    except ValueError as err:
        raise ValueError(f"{path}: {err}") from err


def save_movingai_map(path: str | Path, occ: np.ndarray) -> None:
    """Write a MovingAI octile ``.map`` file ('.' free, '@' blocked)."""
    grid = as_occupancy(occ)
    height, width = grid.shape
    rows = ["".join("@" if blocked else "." for blocked in row) for row in grid]
    text = "\n".join(["type octile", f"height {height}", f"width {width}", "map", *rows])
    Path(path).write_text(text + "\n")


@dataclass(frozen=True)
class Scenario:
    """One MovingAI scenario; start and goal are cell centres (column + 0.5, row + 0.5)."""

    bucket: int
    map_name: str
    width: int
    height: int
    start: tuple[float, float]
    goal: tuple[float, float]
    optimal_length: float


def _parse_scenario(path: Path, number: int, line: str) -> Scenario:
    fields = line.split("\t") if "\t" in line else line.split()
    if len(fields) != 9:
        raise ValueError(f"{path}: line {number}: expected 9 fields, got {len(fields)}")
    try:
        bucket, width, height, sx, sy, gx, gy = (int(fields[i]) for i in (0, 2, 3, 4, 5, 6, 7))
        optimal = float(fields[8])
    except ValueError as err:
        raise ValueError(f"{path}: line {number}: {err}") from err
    for x, y in ((sx, sy), (gx, gy)):
        if not (0 <= x < width and 0 <= y < height):
            raise ValueError(f"{path}: line {number}: cell ({x}, {y}) outside {width}x{height}")
    return Scenario(
        bucket, fields[1], width, height, (sx + 0.5, sy + 0.5), (gx + 0.5, gy + 0.5), optimal
    )


def load_scenarios(path: str | Path) -> list[Scenario]:
    """Read a MovingAI ``.scen`` file (``version 1`` header, tab-separated rows)."""
    path = Path(path)
    try:
        lines = path.read_text().splitlines()
    except (OSError, UnicodeDecodeError) as err:
        raise ValueError(f"{path}: cannot read scenario file ({err})") from err
    if not lines or lines[0].split()[:1] != ["version"]:
        raise ValueError(f"{path}: missing 'version' header")
    return [
        _parse_scenario(path, number, line)
        for number, line in enumerate(lines[1:], start=2)
        if line.strip()
    ]


def _scenario_cell(point: tuple[float, float]) -> tuple[int, int]:
    cell = (point[0] - 0.5, point[1] - 0.5)
    if not all(float(v).is_integer() for v in cell):
        raise ValueError(f"scenario point {point} is not a cell centre")
    return int(cell[0]), int(cell[1])


def save_scenarios(path: str | Path, scenarios: Sequence[Scenario]) -> None:
    """Write a MovingAI ``.scen`` file (start and goal must be cell centres)."""
    rows = ["version 1"]
    for s in scenarios:
        (sx, sy), (gx, gy) = _scenario_cell(s.start), _scenario_cell(s.goal)
        fields = (s.bucket, s.map_name, s.width, s.height, sx, sy, gx, gy, repr(s.optimal_length))
        rows.append("\t".join(str(f) for f in fields))
    Path(path).write_text("\n".join(rows) + "\n")


# ---------------------------------------------------------------------------------------------
# Dispatch on suffix.
# ---------------------------------------------------------------------------------------------


def load_map(path: str | Path) -> np.ndarray:
    """Load an occupancy grid from .npy, .png, .pgm, .yaml/.yml (ROS) or .map (MovingAI)."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix == ".npy":
        try:
            array = np.load(path, allow_pickle=False)
            return as_occupancy(array)
        except (OSError, ValueError) as err:
            raise ValueError(f"{path}: {err}") from err
    if suffix in _IMAGE_SUFFIXES:
        return load_image_map(path)
    if suffix in _YAML_SUFFIXES:
        return load_ros_map(path)[0]
    if suffix == ".map":
        return load_movingai_map(path)
    raise ValueError(f"{path}: unknown map format {suffix!r} (use .npy, .png, .pgm, .yaml, .map)")


def save_map(path: str | Path, occ: np.ndarray) -> None:
    """Save an occupancy grid; the format follows the suffix as in :func:`load_map`."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix == ".npy":
        np.save(path, as_occupancy(occ))
    elif suffix in _IMAGE_SUFFIXES:
        save_image_map(path, occ)
    elif suffix in _YAML_SUFFIXES:
        save_ros_map(path, occ)
    elif suffix == ".map":
        save_movingai_map(path, occ)
    else:
        raise ValueError(
            f"{path}: unknown map format {suffix!r} (use .npy, .png, .pgm, .yaml, .map)"
        )
