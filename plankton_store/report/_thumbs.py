"""Thumbnails of an evaluation's images, written once as small PNG files.

The HTML report shows at most :data:`MOSAIC_LIMIT` images per mosaic and per confusion cell,
so a page stays quick however many samples were scored; each chosen image is written once to
``REPORT_DIR/thumbs/<row>.png`` (``row``: the position of the scored row in
``predictions.csv``) and shared by every mosaic that shows it.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
from PIL import Image

from plankton_store.store import PlanktonStore

#: Most images in one mosaic or one confusion cell of the HTML report.
MOSAIC_LIMIT = 24
#: Folder of the thumbnails inside a report folder.
THUMBS_DIR = "thumbs"

#: Pixels of scored rows: row positions in, ``(n, y, x)`` uint8 arrays out (same order).
ImageReader = Callable[[np.ndarray], np.ndarray]


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


def write_thumbs(rows: np.ndarray, read: ImageReader | None, out_dir: Path) -> set[int]:
    """Write ``thumbs/<row>.png`` for each of ``rows``; the rows that have one.

    Files already there are kept, so a report folder is written once. Without a reader (an
    evaluation of an export, or a store that cannot be read) nothing is written.
    """
    folder = out_dir / THUMBS_DIR
    rows = np.unique(np.asarray(rows, dtype=np.int64))
    if read is None or not len(rows):
        return set()
    folder.mkdir(parents=True, exist_ok=True)
    todo = np.asarray([r for r in rows if not (folder / f"{r}.png").is_file()], dtype=np.int64)
    for start in range(0, len(todo), 256):
        chunk = todo[start : start + 256]
        for row, pixels in zip(chunk, read(chunk), strict=True):
            Image.fromarray(np.asarray(pixels, dtype=np.uint8)).save(folder / f"{row}.png")
    return {int(r) for r in rows}
