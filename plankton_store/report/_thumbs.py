"""Thumbnails of the HTML pages, written once as small PNG files.

A page shows at most :data:`MOSAIC_LIMIT` images per mosaic (and per confusion cell), so it
stays quick however many images there are; each chosen image is written once, by
:func:`write_pictures`, to ``<folder>/<row>.png`` (the original image where it is reachable,
else the stored one) and, for a store, ``<folder>/<row>.stored.png`` (the stored version of
a shown original), and shared by every mosaic that shows it. ``row`` is the image's position
in the page's table (``predictions.csv`` for an evaluation). A :class:`Pictures` names the
readers of both versions.
"""

from __future__ import annotations

import io
import shutil
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from plankton_store.store import PlanktonStore

#: Most images in one mosaic or one confusion cell of the HTML report.
MOSAIC_LIMIT = 24
#: Folder of the thumbnails inside a report folder.
THUMBS_DIR = "thumbs"
#: Folder of the gallery's thumbnails beside ``predict``'s CSV.
GALLERY_THUMBS_DIR = "gallery-thumbs"
#: Longest side of a thumbnail made from an original image, in pixels.
THUMB_SIZE = 96

_GREY_MODES = ("1", "L", "LA", "I", "I;16", "F")

#: Pixels of rows: row positions in, one uint8 array (grey 2-D or RGB 3-D) per row out, in the
#: same order; ``None`` for a row whose image cannot be read.
ImageReader = Callable[[np.ndarray], Sequence[np.ndarray | None]]


def file_images(fetch: Callable[[str], bytes], refs: Sequence[str]) -> ImageReader:
    """An :data:`ImageReader` of original images (``fetch(ref)`` gives a file's bytes).

    Each image keeps its colours (grey stays grey) and is shrunk to at most
    :data:`THUMB_SIZE` pixels a side; one that cannot be read (or whose ref is ``None``)
    comes back as ``None``.
    """
    refs = list(refs)

    def read(rows: np.ndarray) -> list[np.ndarray | None]:
        return [original_thumb(fetch, refs[int(r)]) for r in rows]

    return read


def original_thumb(fetch: Callable[[str], bytes], ref: str | None) -> np.ndarray | None:
    """The image ``ref`` in its colours, at most :data:`THUMB_SIZE` pixels a side; ``None``
    where it cannot be fetched or decoded."""
    if ref is None:
        return None
    try:
        with Image.open(io.BytesIO(fetch(ref))) as im:
            im = im.convert("L" if im.mode in _GREY_MODES else "RGB")
            im.thumbnail((THUMB_SIZE, THUMB_SIZE))
            return np.asarray(im, dtype=np.uint8)
    except Exception:  # noqa: BLE001 - a page shows what it can, and says what it cannot
        return None


def store_images(store: PlanktonStore, samples: np.ndarray) -> ImageReader:
    """An :data:`ImageReader` for scored rows whose store sample indices are ``samples``."""
    samples = np.asarray(samples, dtype=np.int64)

    def read(rows: np.ndarray) -> np.ndarray:
        wanted = samples[np.asarray(rows, dtype=np.int64)]
        if not len(wanted):
            return np.zeros((0, *store.image_size), dtype=np.uint8)
        order = np.argsort(wanted, kind="stable")
        pixels = store.images.get_orthogonal_selection((wanted[order],))
        out = np.empty_like(pixels)
        out[order] = pixels
        return out

    return read


def pick(rows: np.ndarray, score: np.ndarray, limit: int, highest: bool) -> np.ndarray:
    """At most ``limit`` of ``rows``, ordered by ``score`` (highest or lowest first)."""
    rows = np.asarray(rows, dtype=np.int64)
    order = np.argsort(-score[rows] if highest else score[rows], kind="stable")
    return rows[order][:limit]


@dataclass(frozen=True)
class Pictures:
    """Where a page's images come from.

    Attributes
    ----------
    originals : ImageReader or None
        The original images (from the export), shrunk to :data:`THUMB_SIZE`; a row whose
        original is not reachable reads as ``None``.
    stored : ImageReader or None
        The stored (resized) images of a store; ``None`` for an export.
    note : str
        What the page says about them (e.g. why the originals are not shown).
    """

    originals: ImageReader | None = None
    stored: ImageReader | None = None
    note: str = ""


@dataclass(frozen=True)
class Shown:
    """The image files of one row, relative to the page: ``src`` is shown, ``alt`` (the
    stored version of an original, else "") is a click away; ``stored``: ``src`` is the
    stored image."""

    src: str
    alt: str = ""
    stored: bool = False


def _save(pixels: np.ndarray | None, path: Path) -> bool:
    if pixels is None:
        return False
    Image.fromarray(np.asarray(pixels, dtype=np.uint8)).save(path)
    return True


def write_pictures(
    rows: np.ndarray, pictures: Pictures, out_dir: Path, folder_name: str = THUMBS_DIR
) -> dict[int, Shown]:
    """Write the thumbnails of ``rows`` once into ``out_dir/folder_name``; what each row shows.

    ``<row>.png`` is the original image where it is reachable, else the stored one;
    ``<row>.stored.png`` is the stored image of a row whose original is shown. A row with
    neither is left out of the result. The folder is emptied first: thumbnails of an earlier
    run into the same folder (another split, store or model) are never shown under new
    captions.
    """
    folder = out_dir / folder_name
    rows = np.unique(np.asarray(rows, dtype=np.int64))
    if folder.is_dir():
        shutil.rmtree(folder)
    if (pictures.originals is None and pictures.stored is None) or not len(rows):
        return {}
    folder.mkdir(parents=True)
    shown: dict[int, Shown] = {}
    for start in range(0, len(rows), 256):
        chunk = rows[start : start + 256]
        none = [None] * len(chunk)
        originals = pictures.originals(chunk) if pictures.originals is not None else none
        stored = pictures.stored(chunk) if pictures.stored is not None else none
        for row, original, small in zip(chunk, originals, stored, strict=True):
            main, second = f"{folder_name}/{row}.png", f"{folder_name}/{row}.stored.png"
            if _save(original, out_dir / main):
                has_stored = _save(small, out_dir / second)
                shown[int(row)] = Shown(main, second if has_stored else "")
            elif _save(small, out_dir / main):
                shown[int(row)] = Shown(main, stored=True)
    return shown
