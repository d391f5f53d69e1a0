"""Thumbnails of an evaluation's images, written once as small PNG files.

The HTML report shows at most :data:`MOSAIC_LIMIT` images per mosaic and per confusion cell,
so a page stays quick however many samples were scored; each chosen image is written once to
``REPORT_DIR/thumbs/<row>.png`` (``row``: the position of the scored row in
``predictions.csv``) and shared by every mosaic that shows it. ``predict``'s gallery does the
same in ``gallery-thumbs/`` beside its CSV, from the original images.
"""

from __future__ import annotations

import io
import shutil
from collections.abc import Callable, Sequence
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

#: Pixels of rows: row positions in, one 2-D uint8 array per row out (same order).
ImageReader = Callable[[np.ndarray], Sequence[np.ndarray]]


def file_images(fetch: Callable[[str], bytes], refs: Sequence[str]) -> ImageReader:
    """An :data:`ImageReader` of original images (``fetch(ref)`` gives a file's bytes).

    Each image is decoded to grey and shrunk to at most :data:`THUMB_SIZE` pixels a side;
    one that cannot be read comes back as a 1x1 black image.
    """
    refs = list(refs)

    def one(ref: str) -> np.ndarray:
        try:
            with Image.open(io.BytesIO(fetch(ref))) as im:
                im = im.convert("L")
                im.thumbnail((THUMB_SIZE, THUMB_SIZE))
                return np.asarray(im, dtype=np.uint8)
        except Exception:  # noqa: BLE001 - a gallery shows what it can
            return np.zeros((1, 1), dtype=np.uint8)

    def read(rows: np.ndarray) -> list[np.ndarray]:
        return [one(refs[int(r)]) for r in rows]

    return read


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


def write_thumbs(
    rows: np.ndarray, read: ImageReader | None, out_dir: Path, folder_name: str = THUMBS_DIR
) -> set[int]:
    """Write ``<folder_name>/<row>.png`` once for each of ``rows``; the rows that have one.

    The folder is emptied first: thumbnails of an earlier run into the same folder (another
    split, store or model) are never shown under new captions. Without a reader (an
    evaluation of an export) nothing is written.
    """
    folder = out_dir / folder_name
    rows = np.unique(np.asarray(rows, dtype=np.int64))
    if folder.is_dir():
        shutil.rmtree(folder)
    if read is None or not len(rows):
        return set()
    folder.mkdir(parents=True)
    todo = rows
    for start in range(0, len(todo), 256):
        chunk = todo[start : start + 256]
        for row, pixels in zip(chunk, read(chunk), strict=True):
            Image.fromarray(np.asarray(pixels, dtype=np.uint8)).save(folder / f"{row}.png")
    return {int(r) for r in rows}
