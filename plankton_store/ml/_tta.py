"""Test-time augmentation over the 8 symmetries of the square (flips and 90° rotations).

Plankton have no canonical orientation, so a prediction averaged over the dihedral group is
less sensitive to the pose of the animal in the frame.

Non-square images: the four symmetries that keep the axes (identity, left-right flip,
top-bottom flip, 180° rotation) are exact pixel permutations of the stored image. The other
four (90° and 270° rotations, transpose, anti-transpose) turn an ``h x w`` image into
``w x h``; the transposed image is resized back to ``h x w`` with
:func:`plankton_store.io.resize` in the store's own resize mode (the same filter as
build-store), and ``orig_height`` / ``orig_width`` are swapped, as rotating the original
image before the build would have done. For ``stretch`` this equals stretching the rotated
original up to one extra bilinear resampling; for ``pad`` the padding is background, so the
object is refitted into the frame much as a padded build of the rotated original would be.
Square images need no resize, and all 8 views are exact.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import replace

import numpy as np
from PIL import Image

from plankton_store.io import ResizeMode, resize

#: The 8 views: name -> (number of counter-clockwise quarter turns, then flip left-right).
DIHEDRAL: dict[str, tuple[int, bool]] = {
    "identity": (0, False),
    "rot90": (1, False),
    "rot180": (2, False),
    "rot270": (3, False),
    "flip_lr": (0, True),
    "anti_transpose": (1, True),
    "flip_tb": (2, True),
    "transpose": (3, True),  # rot270 then flip_lr == reflection about the main diagonal
}


def dihedral(images: np.ndarray, name: str) -> np.ndarray:
    """Apply one symmetry to a ``(n, h, w)`` stack, with no resizing (shape may become w x h)."""
    turns, flip = DIHEDRAL[name]
    out = np.rot90(images, k=turns, axes=(1, 2))
    if flip:
        out = out[:, :, ::-1]
    return np.ascontiguousarray(out)


def dihedral_view(
    images: np.ndarray,
    orig_height: np.ndarray,
    orig_width: np.ndarray,
    name: str,
    resize_mode: ResizeMode = "stretch",
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One TTA view of a ``(n, h, w)`` uint8 stack, with the shape kept at ``h x w``.

    Returns
    -------
    images, orig_height, orig_width : numpy.ndarray
        The view; original sizes are swapped for the four axis-swapping symmetries.
    """
    size = images.shape[1:]
    out = dihedral(images, name)
    swaps = DIHEDRAL[name][0] % 2 == 1
    if swaps and out.shape[1:] != size:
        out = np.stack([resize(Image.fromarray(im), size, resize_mode) for im in out])
    if swaps:
        return out, orig_width, orig_height
    return out, orig_height, orig_width


def tta_views(
    images: np.ndarray,
    orig_height: np.ndarray,
    orig_width: np.ndarray,
    resize_mode: ResizeMode = "stretch",
) -> Iterator[tuple[str, np.ndarray, np.ndarray, np.ndarray]]:
    """Yield ``(name, images, orig_height, orig_width)`` for each of the 8 views, lazily."""
    for name in DIHEDRAL:
        yield name, *dihedral_view(images, orig_height, orig_width, name, resize_mode)


def predict_proba_views(
    model: object,
    inputs: object,
    resize_mode: ResizeMode = "stretch",
    batch_size: int = 1024,
    predict: Callable[[object, object], np.ndarray] | None = None,
) -> np.ndarray:
    """Class probabilities of each of the 8 views of ``inputs``, ``(8, n, n_classes)`` float32.

    Parameters
    ----------
    model
        Anything with ``predict_proba(inputs, batch_size=...)``
        (:class:`plankton_store.ml.TrainedModel`).
    inputs
        A :class:`plankton_store.ml.ModelInputs` (a dataclass with ``images``,
        ``orig_height``, ``orig_width``, ``features``); features do not change with the
        view (they describe the object, whatever its pose).
    resize_mode
        The store's resize mode, used to bring rotated non-square views back to shape.
    predict
        Override of ``model.predict_proba`` (tests).
    """
    if predict is None:

        def predict(m: object, x: object) -> np.ndarray:
            return m.predict_proba(x, batch_size=batch_size)  # type: ignore[attr-defined]

    views = [
        np.asarray(
            predict(model, replace(inputs, images=images, orig_height=height, orig_width=width)),  # type: ignore[type-var]
            dtype=np.float32,
        )
        for _name, images, height, width in tta_views(
            inputs.images,  # type: ignore[attr-defined]
            inputs.orig_height,  # type: ignore[attr-defined]
            inputs.orig_width,  # type: ignore[attr-defined]
            resize_mode,
        )
    ]
    return np.stack(views)


def predict_proba_tta(
    model: object,
    inputs: object,
    resize_mode: ResizeMode = "stretch",
    batch_size: int = 1024,
    predict: Callable[[object, object], np.ndarray] | None = None,
) -> np.ndarray:
    """Mean class probabilities over the 8 views of ``inputs``
    (:func:`predict_proba_views`, same parameters).

    Returns
    -------
    numpy.ndarray
        ``(n, n_classes)``: the arithmetic mean of the 8 probability arrays.
    """
    views = predict_proba_views(model, inputs, resize_mode, batch_size, predict)
    return views.mean(axis=0, dtype=np.float64)
