"""Tests of plankton_store.features: values on hand-made images."""

from __future__ import annotations

import math

import numpy as np
import pytest

from plankton_store.features import FEATURE_COLUMNS, compute_features

REQUIRED = (
    "area", "mean", "stddev", "min", "max", "median", "width", "height",
    "major", "minor", "esd", "elongation", "perim.", "circ.",
)  # fmt: skip


def test_required_columns() -> None:
    assert set(REQUIRED) <= set(FEATURE_COLUMNS)
    assert len(set(FEATURE_COLUMNS)) == len(FEATURE_COLUMNS)


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


def test_rejects_colour_images() -> None:
    with pytest.raises(ValueError):
        compute_features(np.zeros((5, 5, 3), np.uint8))
