"""Path metrics, arc-length resampling and benchmark summaries."""

from __future__ import annotations

import math

import numpy as np
import pytest

from latentdiff.path import geometry
from latentdiff.path.metrics import (
    PlanOutcome,
    clearance,
    length_ratio,
    max_turn,
    path_length,
    resample_path,
    smoothness,
    summarize,
    turning_angles,
)

L_PATH = np.array([[0.0, 0.0], [4.0, 0.0], [4.0, 3.0]])  # arc length 7, one right angle


def test_path_length() -> None:
    assert path_length(L_PATH) == pytest.approx(7.0)
    assert path_length([[1.0, 1.0], [4.0, 5.0]]) == pytest.approx(5.0)
    assert path_length([[2.0, 2.0]]) == 0.0


def test_turning_angles_and_max_turn() -> None:
    np.testing.assert_allclose(turning_angles(L_PATH), [math.pi / 2])
    zigzag = [[0, 0], [1, 0], [2, 1], [3, 1], [3, 1], [2, 1]]  # repeated point, then a U-turn
    np.testing.assert_allclose(turning_angles(zigzag), [math.pi / 4, math.pi / 4, math.pi])
    assert max_turn(zigzag) == pytest.approx(math.pi)
    assert max_turn([[0, 0], [5, 5]]) == 0.0
    # Heading wrap-around: from pointing just above -x to just below -x is a small turn.
    wrap = [[1.0, 0.0], [0.0, 0.01], [-1.0, 0.0]]
    assert turning_angles(wrap)[0] == pytest.approx(2 * math.atan2(0.01, 1.0))


def test_smoothness_is_total_turning_per_length() -> None:
    assert smoothness([[0, 0], [3, 0], [9, 0]]) == 0.0
    assert smoothness(L_PATH) == pytest.approx((math.pi / 2) / 7.0)
    assert smoothness([[1, 1], [1, 1]]) == 0.0
    # A quarter circle of radius 10 with n vertices turns (n - 2) / (n - 1) * pi / 2 in total;
    # densely sampled, smoothness approaches the curvature 1 / radius.
    for n in (8, 200):
        theta = np.linspace(0.0, math.pi / 2, n)
        arc = 10.0 * np.stack([np.cos(theta), np.sin(theta)], axis=1)
        expected = (n - 2) / (n - 1) * (math.pi / 2) / path_length(arc)
        assert smoothness(arc) == pytest.approx(expected, rel=1e-9)
    assert smoothness(arc) == pytest.approx(0.1, rel=0.01)


def test_length_ratio() -> None:
    assert length_ratio(L_PATH, 5.0) == pytest.approx(1.4)
    assert length_ratio([[1, 1], [1, 1]], 0.0) == 1.0
    assert math.isinf(length_ratio(L_PATH, 0.0))


def test_resample_keeps_endpoints_and_spaces_uniformly() -> None:
    out = resample_path(L_PATH, 8)
    assert out.shape == (8, 2)
    np.testing.assert_array_equal(out[[0, -1]], L_PATH[[0, -1]])
    # Arc-length coordinate of each point on the L: x on the first leg, 4 + y on the second.
    arc = np.where(out[:, 1] == 0.0, out[:, 0], 4.0 + out[:, 1])
    np.testing.assert_allclose(arc, np.linspace(0.0, 7.0, 8), atol=1e-12)
    on_first_leg = (out[:, 1] == 0.0) & (out[:, 0] <= 4.0)
    on_second_leg = (out[:, 0] == 4.0) & (out[:, 1] >= 0.0)
    assert np.all(on_first_leg | on_second_leg)


def test_resample_exact_for_irregular_path() -> None:
    rng = np.random.default_rng(0)
    path = np.cumsum(rng.normal(size=(9, 2)), axis=0)
    out = resample_path(path, 50)
    np.testing.assert_array_equal(out[[0, -1]], path[[0, -1]])
    # Point k sits at arc length k * L / 49: locate its segment and interpolate independently.
    cumulative = np.concatenate([[0.0], np.cumsum(np.hypot(*np.diff(path, axis=0).T))])
    for k, point in enumerate(out):
        s = k * cumulative[-1] / 49
        i = min(int(np.searchsorted(cumulative, s, side="right")) - 1, len(path) - 2)
        t = (s - cumulative[i]) / (cumulative[i + 1] - cumulative[i])
        np.testing.assert_allclose(point, path[i] + t * (path[i + 1] - path[i]), atol=1e-9)
    np.testing.assert_array_equal(resample_path(path, 2), path[[0, -1]])


def test_resample_degenerate_inputs() -> None:
    np.testing.assert_array_equal(
        resample_path([[3.0, 4.0], [3.0, 4.0]], 5), np.tile([3.0, 4.0], (5, 1))
    )
    with pytest.raises(ValueError):
        resample_path(L_PATH, 1)


def test_clearance_is_geometry_path_clearance() -> None:
    assert clearance is geometry.path_clearance


def test_summarize() -> None:
    results = [
        PlanOutcome(success=True, length_ratio=1.0, time_s=0.1),
        PlanOutcome(success=True, length_ratio=1.2, time_s=0.2),
        PlanOutcome(success=False, time_s=0.3),
        PlanOutcome(success=True, length_ratio=1.5, time_s=0.4),
    ]
    summary = summarize(results)
    assert summary["n"] == 4
    assert summary["success_rate"] == pytest.approx(0.75)
    assert summary["length_ratio_mean"] == pytest.approx((1.0 + 1.2 + 1.5) / 3)
    assert summary["length_ratio_p95"] == pytest.approx(np.percentile([1.0, 1.2, 1.5], 95))
    assert summary["time_p50_s"] == pytest.approx(0.25)
    assert summary["time_p90_s"] == pytest.approx(np.percentile([0.1, 0.2, 0.3, 0.4], 90))
    empty = summarize([PlanOutcome(success=False, time_s=1.0)])
    assert empty["success_rate"] == 0.0 and math.isnan(empty["length_ratio_mean"])


def test_resample_keeping_vertices_traces_the_same_polyline() -> None:
    path = np.array([[0.0, 0.0], [2.0, 0.0], [4.0, 0.0], [4.0, 3.0], [1.0, 7.0]])
    out = resample_path(path, 12, keep_vertices=True)
    assert out.shape == (12, 2)
    # Every bend is a point (the straight-through vertex (2, 0) need not be) ...
    for bend in path[[0, 2, 3, 4]]:
        assert np.any(np.all(out == bend, axis=1))
    # ... and the points walk the polyline in order, so the length is unchanged.
    assert path_length(out) == pytest.approx(path_length(path))
    # The 8 extra points split the legs (4, 3, 5) as evenly as possible: 4 + 3 + 4 parts.
    steps = np.hypot(*np.diff(out, axis=0).T)
    np.testing.assert_allclose(np.sort(steps), [1.0] * 7 + [1.25] * 4)


def test_resample_keeping_vertices_falls_back_when_bends_outnumber_points() -> None:
    zigzag = np.array([[float(i), float(i % 2)] for i in range(10)])
    np.testing.assert_array_equal(
        resample_path(zigzag, 5, keep_vertices=True), resample_path(zigzag, 5)
    )
    np.testing.assert_array_equal(
        resample_path([[3.0, 4.0], [3.0, 4.0]], 3, keep_vertices=True), np.tile([3.0, 4.0], (3, 1))
    )
