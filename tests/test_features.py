"""Tests of plankton_store.io._computed: values on hand-made images."""

from __future__ import annotations

import math

import numpy as np
import pytest

from plankton_store.io import (
    COMPUTED_COLUMNS,
    DESCRIPTOR_COLUMNS,
    FEATURE_COLUMNS,
    compute_features,
)

REQUIRED = (
    "area", "mean", "stddev", "min", "max", "median", "width", "height",
    "major", "minor", "esd", "elongation", "perim.", "circ.",
)  # fmt: skip


def test_required_columns() -> None:
    assert set(REQUIRED) <= set(FEATURE_COLUMNS)
    assert len(set(COMPUTED_COLUMNS)) == len(COMPUTED_COLUMNS)
    assert COMPUTED_COLUMNS == FEATURE_COLUMNS + DESCRIPTOR_COLUMNS


def _ring_and_dot() -> np.ndarray:
    """A square ring (a 10x10 hole) and, apart from it, a 4x4 dot, dark on light."""
    img = np.full((50, 60), 230, np.uint8)
    img[10:30, 10:30] = 30
    img[15:25, 15:25] = 230
    img[40:44, 50:54] = 30
    return img


def test_descriptors_of_a_ring_and_a_dot() -> None:
    f = compute_features(_ring_and_dot(), descriptors=True)
    assert set(f) == set(COMPUTED_COLUMNS)
    assert f["area"] == 400 - 100 + 16
    assert f["parts"] == 2
    assert f["largest_part"] == pytest.approx(300 / 316)
    assert f["filled_share"] == pytest.approx(316 / 416)
    assert f["dark_q10"] == f["dark_q90"] == 200 and f["dark_sum"] == 200 * 316
    assert f["radial_25"] <= f["radial_50"] <= f["radial_75"] < 1 and 0 < f["radial_mean"] < 1
    assert f["edge_mean"] > 0 and f["laplace_std"] > 0


def test_descriptors_are_invariant_to_a_rotation_and_a_mirror() -> None:
    img = _ring_and_dot()
    f = compute_features(img, descriptors=True)
    for turned in (np.rot90(img), img[:, ::-1]):
        g = compute_features(np.ascontiguousarray(turned), descriptors=True)
        for name in DESCRIPTOR_COLUMNS:
            assert g[name] == pytest.approx(f[name], rel=1e-6, abs=1e-9), name


def test_a_symmetric_solid_object() -> None:
    img = np.full((40, 40), 220, np.uint8)
    img[10:30, 5:35] = 50
    f = compute_features(img, descriptors=True)
    assert (f["parts"], f["largest_part"], f["filled_share"]) == (1, 1, 1)
    # Hu's first invariant of a w x h rectangle of pixels: (w^2 - 1 + h^2 - 1) / (12 w h).
    assert f["hu1"] == pytest.approx(-math.log10((30**2 + 20**2 - 2) / (12 * 30 * 20)))
    assert f["dark_q10"] == f["dark_q90"] == 170


def test_black_rectangle_on_white() -> None:
    img = np.full((30, 40), 255, np.uint8)
    img[5:15, 10:30] = 0  # 10 high, 20 wide
    f = compute_features(img)
    assert set(f) == set(FEATURE_COLUMNS)
    assert f["area"] == 200
    assert (f["width"], f["height"]) == (20, 10)
    assert f["mean"] == f["min"] == f["max"] == f["median"] == 0
    assert f["stddev"] == 0
    assert f["bg_level"] == 255
    assert f["esd"] == pytest.approx(2 * math.sqrt(200 / math.pi))
    # Uniform rectangle: variance (n^2 - 1)/12 + 1/12 = n^2/12 along each side.
    assert f["major"] == pytest.approx(4 * math.sqrt(400 / 12))
    assert f["minor"] == pytest.approx(4 * math.sqrt(100 / 12))
    assert f["elongation"] == pytest.approx(2.0)
    assert f["perim."] == 60
    assert f["circ."] == pytest.approx(4 * math.pi * 200 / 60**2)
    assert f["angle"] == pytest.approx(0.0)


def test_ellipse_axes_and_grey_levels() -> None:
    yy, xx = np.mgrid[0:101, 0:151]
    inside = ((xx - 75) / 50.0) ** 2 + ((yy - 50) / 20.0) ** 2 <= 1
    img = np.where(inside, 60, 220).astype(np.uint8)
    img[50, 75] = 20
    f = compute_features(img)
    assert f["major"] == pytest.approx(100, rel=0.03)
    assert f["minor"] == pytest.approx(40, rel=0.03)
    assert f["area"] == pytest.approx(math.pi * 50 * 20, rel=0.02)
    assert (f["min"], f["median"], f["max"]) == (20, 60, 60)
    assert 0.8 < f["circ."] < 1.0 or f["circ."] < 0.8  # defined and finite
    assert math.isfinite(f["circ."]) and 0 < f["circ."] <= 1.0


def test_noisy_background_only_is_no_object() -> None:
    rng = np.random.default_rng(0)
    img = np.clip(rng.normal(225, 2.0, (60, 50)), 0, 255).astype(np.uint8)
    f = compute_features(img)
    assert f["area"] == 0
    assert all(math.isnan(f[c]) for c in FEATURE_COLUMNS if c not in ("area", "bg_level"))
    f = compute_features(img, descriptors=True)
    assert all(math.isnan(f[c]) for c in DESCRIPTOR_COLUMNS)


def test_rejects_colour_images() -> None:
    with pytest.raises(ValueError):
        compute_features(np.zeros((5, 5, 3), np.uint8))
