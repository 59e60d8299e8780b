"""mm per pixel from a flat pattern and from an object of known size."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from calibration.errors import CalibrationError
from calibration.scale import scale_from_object, scale_from_pattern
from calibration.synthetic import SyntheticCamera, fronto_parallel_view
from calibration.undistort import Undistorter
from inspector.config import Recipe
from inspector.decision import RecipeRules


@pytest.mark.parametrize("rotation", [0.0, 23.0])
def test_flat_pattern_gives_distance_over_focal_length(checker, cam, rotation):
    z = 120.0
    view = fronto_parallel_view(checker, cam, z, rotation_deg=rotation)
    und = Undistorter(cam.camera_matrix, cam.dist_coeffs, cam.size)
    r = scale_from_pattern(view.image, checker, und)
    # pinhole: a length L at distance z spans f L / z pixels
    assert r.mm_per_px == pytest.approx(z / np.sqrt(cam.fx * cam.fy), rel=0.003)
    if rotation == 0.0:
        assert r.mm_per_px_x == pytest.approx(z / cam.fx, rel=0.003)
        assert r.mm_per_px_y == pytest.approx(z / cam.fy, rel=0.003)
    assert r.residual_px < 0.3 and r.warnings == []
    raw = scale_from_pattern(view.image, checker)
    assert any("no intrinsics" in w for w in raw.warnings)


def test_tilted_pattern_is_flagged(checker):
    cam = SyntheticCamera(dist=(0.0, 0.0, 0.0, 0.0, 0.0))
    from calibration.synthetic import render_view

    R = cv2.Rodrigues(np.radians([25.0, 0.0, 0.0]))[0]
    t = np.array([-20.0, -12.0, 110.0])
    view = render_view(checker, cam, cv2.Rodrigues(R)[0].reshape(3), t)
    r = scale_from_pattern(view.image, checker, Undistorter(cam.camera_matrix, cam.dist_coeffs, cam.size))
    assert any("tilted" in w for w in r.warnings)


def test_object_of_known_size():
    k = 8  # drawn at 8x and reduced, so the edges are anti-aliased like a camera's
    big = np.full((480 * k, 640 * k), 40, np.uint8)
    box = cv2.boxPoints(((320 * k, 240 * k), (300 * k, 180 * k), 12.0))  # 300 x 180 px, turned 12 degrees
    cv2.fillPoly(big, [np.round(box).astype(np.int32)], 230)
    img = cv2.resize(big, (640, 480), interpolation=cv2.INTER_AREA)
    r = scale_from_object(img, 75.0, 45.0)  # 0.25 mm per px
    assert r.mm_per_px == pytest.approx(0.25, rel=0.003)
    assert abs(r.anisotropy) < 0.01


def test_missing_target_errors():
    blank = np.full((480, 640), 90, np.uint8)
    with pytest.raises(CalibrationError, match="no object found"):
        scale_from_object(blank, 50, 40)
    from calibration.pattern import Pattern

    with pytest.raises(CalibrationError, match="pattern checkerboard:9x6:5mm not found"):
        scale_from_pattern(blank, Pattern.parse("checkerboard:9x6:5mm"))


def test_recipe_min_defect_mm_uses_the_scale(checker, cam):
    view = fronto_parallel_view(checker, cam, 120.0)
    r = scale_from_pattern(view.image, checker, Undistorter(cam.camera_matrix, cam.dist_coeffs, cam.size))
    rules = RecipeRules(Recipe(min_defect_mm=1.0), mm_per_px=r.mm_per_px)
    assert rules.min_px == pytest.approx(1.0 / r.mm_per_px)
