"""Pixel operations on uint8 image batches: 90-degree turns, random flips and turns, and the
blend of SMOTE samples.

Images stay uint8 throughout; a turn of a non-square image is resized back to the store's
``(h, w)`` (what the store would hold for the turned original).
"""

from __future__ import annotations

import numpy as np

__all__ = ["augment_batch", "blend_images", "turn_images"]

#: Images turned per step by :func:`turn_images` (bounds its float32 temporaries).
_TURN_SPAN = 4096
#: Images blended per step by :func:`blend_images`.
_BLEND_SPAN = 256


def _interpolation_matrix(n_out: int, n_in: int) -> np.ndarray:
    """Bilinear (half-pixel centres) resampling matrix ``(n_out, n_in)``."""
    centres = (np.arange(n_out) + 0.5) * n_in / n_out - 0.5
    centres = np.clip(centres, 0, n_in - 1)
    lo = np.floor(centres).astype(int)
    hi = np.minimum(lo + 1, n_in - 1)
    frac = (centres - lo).astype(np.float32)
    m = np.zeros((n_out, n_in), dtype=np.float32)
    m[np.arange(n_out), lo] += 1 - frac
    m[np.arange(n_out), hi] += frac
    return m


def turn_images(images: np.ndarray) -> np.ndarray:
    """The ``(n, h, w)`` uint8 images turned by 90 degrees, at the same ``(h, w)``.

    A 90-degree turn of a non-square image is a transpose resized back to ``(h, w)``: for
    stretched images that is exactly what the store would hold for the turned original (whose
    height and width swap). Square images are just transposed.
    """
    turned = images.transpose(0, 2, 1)
    n, h, w = images.shape
    if h == w:
        return np.ascontiguousarray(turned)
    ry, rx = _interpolation_matrix(h, w), _interpolation_matrix(w, h)
    out = np.empty_like(images)
    for start in range(0, n, _TURN_SPAN):  # bounded float32 temporaries
        part = turned[start : start + _TURN_SPAN].astype(np.float32)
        out[start : start + _TURN_SPAN] = np.clip(np.rint(ry @ part @ rx.T), 0, 255)  # 2 matmuls
    return out


def augment_batch(
    images: np.ndarray, log_size: np.ndarray, rng: np.random.Generator, rotate: bool = True
) -> tuple[np.ndarray, np.ndarray]:
    """Random flips (left-right, top-bottom) and 90-degree turns (:func:`turn_images`, whose
    images swap height and width, so ``log_size`` swaps too) of a batch.

    ``rotate=False`` (padded stores, or images turned already) keeps flips only. Returns new
    arrays; the inputs are not changed.
    """
    images = images.copy()
    log_size = log_size.copy()
    n = len(images)
    lr = rng.random(n) < 0.5
    images[lr] = images[lr, :, ::-1]
    tb = rng.random(n) < 0.5
    images[tb] = images[tb, ::-1, :]
    if rotate:
        rot = np.flatnonzero(rng.random(n) < 0.5)
        if len(rot):
            images[rot] = turn_images(images[rot])
            log_size[rot] = log_size[rot, ::-1]
    return images, log_size


def blend_images(base: np.ndarray, other: np.ndarray, step: np.ndarray) -> np.ndarray:
    """SMOTE pixels: ``base + step * (other - base)`` per image, rounded, as uint8.

    Integer arithmetic with ``step`` in 1/256ths (``(base * (256 - s) + other * s + 128) >> 8``
    fits uint16): half the memory traffic of float32 and no rounding pass, for a step
    resolution far below what a random step in [0, 1) needs.
    """
    s = np.rint(np.asarray(step, np.float32) * 256).astype(np.uint16)[:, None, None]
    out = np.empty_like(base)
    # A few hundred images at a time into two reused uint16 buffers that stay in the CPU
    # cache (fresh temporaries per operation cost more than the arithmetic).
    mixed = np.empty((min(_BLEND_SPAN, len(base)), *base.shape[1:]), np.uint16)
    term = np.empty_like(mixed)
    for i in range(0, len(base), _BLEND_SPAN):
        n = min(_BLEND_SPAN, len(base) - i)
        part, acc, tmp = slice(i, i + n), mixed[:n], term[:n]
        np.multiply(base[part], 256 - s[part], out=acc, dtype=np.uint16)
        np.multiply(other[part], s[part], out=tmp, dtype=np.uint16)
        acc += tmp
        acc += 128
        acc >>= 8
        out[part] = acc
    return out
