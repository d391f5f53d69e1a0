"""Rendering: a class's recipe to an image, its JPEG bytes and its feature values.

Image sizes follow the real export's (:func:`sample_image_size`); :func:`render_row` draws
row ``i`` from :func:`image_rng` ``(seed, i)`` alone, so an export is the same whatever the
number of worker processes.
"""

from __future__ import annotations

import io
import math

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

from plankton_store.demo._geometry import Prim, Rng
from plankton_store.demo._recipes import RECIPES
from plankton_store.demo._shapes import SHAPES
from plankton_store.demo._taxonomy import (
    EMPTY_LABEL,
    EMPTY_LABEL_COUNT,
    LEVEL2_COUNTS,
    level1_classes,
)
from plankton_store.io._computed import FEATURE_COLUMNS, SIZE_COLUMNS, compute_features

#: Real image size quartiles (pixels): height 70 / 109 / 166, width 50 / 73 / 122.
HEIGHT_RANGE = (9, 739)
WIDTH_RANGE = (6, 972)
#: Fraction of non-size feature cells blanked, as real tables have a few NaNs.
NAN_FRACTION = 0.001
JPEG_QUALITY = 90

# --------------------------------------------------------------------------------------------
# Image size: correlated log-normal per class, centred so that the overall quartiles are real.
# --------------------------------------------------------------------------------------------

_LOG_H = math.log(110.0)
_LOG_W = math.log(73.0)
_SIGMA_H = 0.6
_SIGMA_W = 0.63
_SIZE_CORR = 0.7


def _class_shares() -> dict[str, float]:
    """Share of all rows of each level1 class (and the empty label) at scale 1."""
    total = sum(LEVEL2_COUNTS.values()) + EMPTY_LABEL_COUNT
    shares = {EMPTY_LABEL: EMPTY_LABEL_COUNT / total}
    for l2, n in LEVEL2_COUNTS.items():
        for l1, share in level1_classes(l2):
            shares[l1] = n * share / total
    return shares


def _size_centres() -> tuple[float, float]:
    """Mean log offsets of height and width over the real class mix (subtracted below)."""
    shares = _class_shares()
    dh = sum(s * (RECIPES[c].size + RECIPES[c].aspect / 2) for c, s in shares.items())
    dw = sum(s * (RECIPES[c].size - RECIPES[c].aspect / 2) for c, s in shares.items())
    return dh, dw


_CENTRE_H, _CENTRE_W = _size_centres()


def sample_image_size(level1: str, rng: np.random.Generator) -> tuple[int, int]:
    """Draw the ``(height, width)`` of one image of a level1 class.

    Correlated log-normal around the class's size and aspect offsets, clipped to the real
    extremes (9..739 x 6..972). Over the real class mix the quartiles are close to the real
    ones (height 70 / 109 / 166, width 50 / 73 / 122).
    """
    r = RECIPES[level1]
    z1, z2 = rng.standard_normal(2)
    z2 = _SIZE_CORR * z1 + math.sqrt(1 - _SIZE_CORR**2) * z2
    log_h = _LOG_H + r.size + r.aspect / 2 - _CENTRE_H + _SIGMA_H * z1
    log_w = _LOG_W + r.size - r.aspect / 2 - _CENTRE_W + _SIGMA_W * z2
    h = int(np.clip(round(math.exp(log_h)), *HEIGHT_RANGE))
    w = int(np.clip(round(math.exp(log_w)), *WIDTH_RANGE))
    return h, w


# --------------------------------------------------------------------------------------------
# Rendering.
# --------------------------------------------------------------------------------------------


def _fit(prims: list[Prim], h: int, w: int, rng: Rng) -> tuple[np.ndarray, float, np.ndarray]:
    """Rotation matrix, scale and offset that fit the primitives into an h x w image."""
    pts = np.concatenate([np.asarray(p[1], float).reshape(-1, 2) for p in prims])
    lo, hi = pts.min(axis=0), pts.max(axis=0)
    # The long axis (x, by convention) follows the image's long side, with some jitter.
    base = 0.0 if (hi - lo)[0] >= (hi - lo)[1] else np.pi / 2
    base += 0.0 if w >= h else np.pi / 2
    angle = base + rng.normal(0, 0.25) + np.pi * int(rng.integers(2))
    c, s = math.cos(angle), math.sin(angle)
    rot = np.array([[c, -s], [s, c]])
    r = pts @ rot.T
    lo, hi = r.min(axis=0), r.max(axis=0)
    margin = 1.0 + 0.06 * min(h, w)
    span = np.maximum(hi - lo, 1e-6)
    scale = min((w - 2 * margin) / span[0], (h - 2 * margin) / span[1])
    scale = max(scale, 1e-3)
    slack = np.maximum(np.array([w, h]) - 2 * margin - span * scale, 0)
    offset = margin + slack * rng.uniform(0.3, 0.7, 2) - lo * scale
    return rot, scale, offset


def _draw(prims: list[Prim], h: int, w: int, rng: Rng, ink_scale: float) -> Image.Image:
    """Draw the primitives as a darkness layer ("L", 0 = background)."""
    rot, scale, offset = _fit(prims, h, w, rng)
    layer = Image.new("L", (w, h), 0)
    d = ImageDraw.Draw(layer)
    for kind, pts, *rest in prims:
        xy = np.asarray(pts, float).reshape(-1, 2) @ rot.T * scale + offset
        if kind == "poly":
            fill, outline = rest
            d.polygon(
                [tuple(p) for p in xy.tolist()],
                fill=int(min(255, fill * ink_scale)),
                outline=int(min(255, outline * ink_scale)),
            )
        elif kind == "line":
            width, ink = rest
            d.line(
                [tuple(p) for p in xy.tolist()],
                fill=int(min(255, ink * ink_scale)),
                width=max(1, round(width * scale)),
            )
        else:  # dots
            radius, ink = rest
            r = max(0.6, radius * scale)
            fill = int(min(255, ink * ink_scale))
            for x, y in xy.tolist():
                d.ellipse((x - r, y - r, x + r, y + r), fill=fill)
    return layer


def render_image(
    level1: str, rng: np.random.Generator, size: tuple[int, int] | None = None
) -> np.ndarray:
    """Draw one synthetic image of a level1 class.

    Parameters
    ----------
    level1 : str
        A key of :data:`RECIPES` (a level1 class, or ``""`` for an unlabelled row).
    rng : numpy.random.Generator
        Source of all randomness of this image.
    size : (int, int), optional
        ``(height, width)``; drawn with :func:`sample_image_size` when omitted.

    Returns
    -------
    numpy.ndarray
        ``uint8`` array of shape (height, width): light background (about 200-245 with noise
        and vignetting), dark object.
    """
    recipe = RECIPES[level1]
    h, w = size if size is not None else sample_image_size(level1, rng)
    prims = SHAPES[recipe.shape](rng, recipe.params)
    layer = _draw(prims, h, w, rng, recipe.ink * rng.uniform(0.85, 1.1))
    # A little blur always (optics); badfocus much more, relative to the image size.
    radius = 0.4 + rng.uniform(0, 0.5) + recipe.blur * min(h, w) * rng.uniform(0.7, 1.3)
    peak = layer.getextrema()[1]
    layer = layer.filter(ImageFilter.GaussianBlur(radius))
    ink = np.asarray(layer, dtype=np.float32) * (1 / 255)
    if recipe.blur:
        # Heavy blur spreads thin objects into nothing: keep some contrast, as real
        # out-of-focus objects are still seen (and cropped) by the instrument.
        ink *= max(1.0, 0.6 * peak / 255 / max(float(ink.max()), 1e-3))

    bg = rng.uniform(205.0, 240.0)
    yy = np.linspace(-1, 1, h, dtype=np.float32)[:, None] ** 2
    xx = np.linspace(-1, 1, w, dtype=np.float32)[None, :] ** 2
    background = bg - rng.uniform(0, 10) * (yy + xx)  # vignetting: darker corners
    dark = rng.uniform(10, 40)
    img = background - ink * (background - dark)
    img += rng.uniform(1.0, 2.5) * rng.standard_normal((h, w), dtype=np.float32)
    return np.clip(img, 0, 255).astype(np.uint8)


def encode_jpeg(gray: np.ndarray, quality: int = JPEG_QUALITY) -> bytes:
    """Encode a 2-D uint8 array as a grayscale JPEG."""
    buf = io.BytesIO()
    Image.fromarray(gray, mode="L").save(buf, format="JPEG", quality=quality)
    return buf.getvalue()


def image_rng(seed: int, index: int) -> np.random.Generator:
    """The random generator of row ``index`` (its size, shape, noise and NaN cells)."""
    # Row index, not worker or chunk: the output does not depend on how work is split.
    return np.random.default_rng([seed, 1, index])


def render_row(seed: int, index: int, level1: str) -> tuple[bytes, list[float]]:
    """JPEG bytes and feature values (in :data:`FEATURE_COLUMNS` order) of row ``index``."""
    rng = image_rng(seed, index)
    jpeg = encode_jpeg(render_image(level1, rng))
    # Features of the image as stored, i.e. after JPEG compression, like a real export.
    decoded = np.asarray(Image.open(io.BytesIO(jpeg)))
    feats = compute_features(decoded)
    values = [feats[c] for c in FEATURE_COLUMNS]
    blank = rng.random(len(FEATURE_COLUMNS)) < NAN_FRACTION
    for k, c in enumerate(FEATURE_COLUMNS):
        if blank[k] and c not in SIZE_COLUMNS:
            values[k] = math.nan
    return jpeg, values
