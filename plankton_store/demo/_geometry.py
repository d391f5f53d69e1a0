"""Drawing primitives and the geometry helpers of the shape painters.

A shape painter returns primitives in local coordinates with the long axis along x; the
renderer rotates them and scales them uniformly to fit the image::

    ("poly", points (n, 2), fill ink, outline ink)
    ("line", points (n, 2), width, ink)
    ("dots", centres (n, 2), radius, ink)

Ink is darkness 0..255 (0 = background).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

#: One drawing primitive: ``(kind, points, ...)`` as above.
Prim = tuple[Any, ...]
#: The random generator of one image, passed to every painter and helper.
Rng = np.random.Generator

_THETA = np.linspace(0, 2 * np.pi, 28, endpoint=False)
_COS, _SIN = np.cos(_THETA), np.sin(_THETA)


def ellipse(cx: float, cy: float, a: float, b: float, rot: float = 0.0) -> np.ndarray:
    """Closed outline: ellipse of centre (cx, cy), semi-axes a and b, rotated by ``rot``."""
    x, y = a * _COS, b * _SIN
    c, s = math.cos(rot), math.sin(rot)
    return np.column_stack([cx + c * x - s * y, cy + s * x + c * y])


def wobbly(rng: Rng, a: float, b: float, rough: float) -> np.ndarray:
    """Closed outline: ellipse with random low-frequency radial harmonics."""
    r = np.ones_like(_THETA)
    for k in range(2, 6):
        r += rough / k * rng.standard_normal() * np.cos(k * _THETA + rng.uniform(0, 2 * np.pi))
    r = np.clip(r, 0.35, None)
    return np.column_stack([a * r * _COS, b * r * _SIN])


def curve(rng: Rng, length: float, n: int = 10, bend: float = 0.5) -> np.ndarray:
    """Smooth random polyline of about ``length`` along x."""
    turns = np.cumsum(rng.normal(0, bend / math.sqrt(n), n))
    turns -= turns.mean()
    step = length / n
    pts = np.zeros((n + 1, 2))
    pts[1:, 0] = np.cumsum(step * np.cos(turns))
    pts[1:, 1] = np.cumsum(step * np.sin(turns))
    return pts - pts.mean(axis=0)


def specks(rng: Rng, outline: np.ndarray, n: int, scale: float, ink: float) -> Prim:
    """Small dark dots inside (roughly) the outline's extent."""
    lo, hi = outline.min(axis=0), outline.max(axis=0)
    centre = (lo + hi) / 2
    pts = centre + (rng.uniform(-0.35, 0.35, (n, 2)) * (hi - lo))
    return ("dots", pts, scale, ink)
