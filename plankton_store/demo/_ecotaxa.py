"""The demo as an EcoTaxa export: one ``ecotaxa_<sample>.tsv`` per sample folder.

:func:`make_ecotaxa_demo_export` writes the rows of :func:`make_meta` (same classes, counts,
images and sample metadata as the FlowCam demo) the way an EcoTaxa export holds them::

    out/<sample_id>/ecotaxa_<sample_id>.tsv    tab-separated, one row per image
    out/<sample_id>/images/<object_id>.jpg     the main image (img_rank 0)
    out/<sample_id>/images/<object_id>_1.jpg   a second image (img_rank 1), a few objects

What a reader meets in real exports is in it on purpose: the tables differ in encoding
(latin-1, or UTF-8 with a byte-order mark; both with a ``µ`` in the column
``object_area_µm2``), one has no type row, ``object_id`` is text (``demo_000123``),
``object_annotation_status`` is mostly ``validated`` with some ``predicted`` and a few
``dubious`` rows, ``object_annotation_hierarchy`` is the lineage joined with ``>`` root
first, and the free ``object_*`` features carry ZooProcess punctuation (``object_perim.``).
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from plankton_store.demo._writer import _chunks, _default_workers, _render_chunk, make_meta
from plankton_store.io._computed import FEATURE_COLUMNS
from plankton_store.io._layout import ECOTAXA_HIERARCHY_COLUMN, LINEAGE_SEPARATOR

#: Sample folders (one table each) of a demo EcoTaxa export, fewer for tiny exports.
N_SAMPLES = 4
#: Rows per sample folder at least: tiny exports get fewer folders.
MIN_SAMPLE_ROWS = 20
#: Share of the objects whose status is ``predicted`` / ``dubious``; the rest ``validated``.
PREDICTED_SHARE = 0.12
DUBIOUS_SHARE = 0.03
#: Every SECOND_IMAGE_EVERY-th object has a second image (``img_rank`` 1).
SECOND_IMAGE_EVERY = 25
#: The object id of row ``i``: text, as EcoTaxa keeps it.
OBJECT_ID = "demo_{:06d}"
#: Pixel size of the demo instrument, for ``object_area_µm2`` and ``acq_pixel_um``.
PIXEL_UM = 1.37
#: The column that carries a non-ASCII name: latin-1 in some tables, UTF-8 in others.
MICRO_COLUMN = "object_area_µm2"
IMAGE_FOLDER = "images"

_FIXED = (
    "object_id",
    "img_file_name",
    "img_rank",
    "object_lat",
    "object_lon",
    "object_date",
    "object_time",
    "object_depth_min",
    "object_depth_max",
    "object_annotation_status",
    "object_annotation_category",
    ECOTAXA_HIERARCHY_COLUMN,
)
_SAMPLE = ("sample_id", "sample_station", "acq_id", "acq_instrument", "acq_pixel_um")
_TEXT = {
    "object_id",
    "img_file_name",
    "object_date",
    "object_time",
    "object_annotation_status",
    "object_annotation_category",
    ECOTAXA_HIERARCHY_COLUMN,
    "sample_id",
    "sample_station",
    "acq_id",
    "acq_instrument",
}


#: How the table of each sample folder is written, in turn: encoding, whether it has a type
#: row, whether it has :data:`MICRO_COLUMN`.
TABLE_STYLES: tuple[tuple[str, bool, bool], ...] = (
    ("latin-1", True, True),
    ("utf-8-sig", False, True),
    ("latin-1", True, False),
)


def table_style(sample: int) -> tuple[str, bool, bool]:
    """How the table of sample folder ``sample`` is written (:data:`TABLE_STYLES`)."""
    return TABLE_STYLES[sample % len(TABLE_STYLES)]


def _statuses(n: int, seed: int) -> list[str]:
    rng = np.random.default_rng([seed, 3])
    draw = rng.random(n)
    return [
        "predicted" if d < PREDICTED_SHARE else "dubious" if d > 1 - DUBIOUS_SHARE else "validated"
        for d in draw
    ]


def _object_row(i: int, meta: dict[str, Any], status: str, feats: list[float]) -> dict[str, Any]:
    """The EcoTaxa columns of object ``i`` (its main image)."""
    object_id = OBJECT_ID.format(i)
    row = {
        "object_id": object_id,
        "img_file_name": f"{IMAGE_FOLDER}/{object_id}.jpg",
        "img_rank": 0,
        "object_lat": meta["latitude"],
        "object_lon": meta["longitude"],
        "object_date": meta["objdate"].replace("-", ""),
        "object_time": meta["objtime"].replace(":", ""),
        "object_depth_min": meta["depth_min"],
        "object_depth_max": meta["depth_max"],
        "object_annotation_status": status,
        "object_annotation_category": meta["unique_name"],
        ECOTAXA_HIERARCHY_COLUMN: meta["lineage"].replace("/", LINEAGE_SEPARATOR),
    }
    row.update({f"object_{c}": v for c, v in zip(FEATURE_COLUMNS, feats, strict=True)})
    area = feats[FEATURE_COLUMNS.index("area")]
    row[MICRO_COLUMN] = round(area * PIXEL_UM**2, 2)
    return row


def _cell(value: Any) -> str:
    if isinstance(value, float):
        return "" if math.isnan(value) else f"{value:.6g}"
    return str(value)


def _write_table(folder: Path, sample_id: str, rows: list[dict[str, Any]], sample: int) -> Path:
    """One sample's table, in the encoding and with the type row of :func:`table_style`."""
    encoding, type_row, micro = table_style(sample)
    features = [f"object_{c}" for c in FEATURE_COLUMNS] + ([MICRO_COLUMN] if micro else [])
    columns = [*_FIXED, *features, *_SAMPLE]
    lines = ["\t".join(columns)]
    if type_row:
        lines.append("\t".join("[t]" if c in _TEXT else "[f]" for c in columns))
    lines += ["\t".join(_cell(r[c]) for c in columns) for r in rows]
    path = folder / f"ecotaxa_{sample_id}.tsv"
    path.write_bytes(("\n".join(lines) + "\n").encode(encoding))
    return path


def _sample_bounds(n: int) -> list[tuple[int, int]]:
    """Contiguous row ranges, one per sample folder."""
    k = max(1, min(N_SAMPLES, n // MIN_SAMPLE_ROWS))
    edges = [round(n * j / k) for j in range(k + 1)]
    return list(zip(edges[:-1], edges[1:], strict=True))


def _render_all(level1s: Sequence[str], seed: int, workers: int, progress: bool) -> tuple:
    """JPEG bytes and feature values of every row, in row order."""
    jpegs: list[bytes] = []
    feats: list[list[float]] = []
    bar = tqdm(total=len(level1s), unit="img", desc="make-demo-data", disable=not progress)
    pool = ProcessPoolExecutor(max_workers=workers) if workers > 1 else None
    try:
        chunks = _chunks(level1s, seed)
        for j, f in pool.map(_render_chunk, chunks) if pool else map(_render_chunk, chunks):
            jpegs += j
            feats += f
            bar.update(len(j))
    finally:
        if pool:
            pool.shutdown(cancel_futures=True)
        bar.close()
    return jpegs, feats


def make_ecotaxa_demo_export(
    out: str | os.PathLike[str],
    scale: float = 0.01,
    seed: int = 0,
    workers: int | None = None,
    progress: bool = True,
) -> list[Path]:
    """Write the demo export as an EcoTaxa export into the folder ``out``.

    Parameters
    ----------
    out
        Folder to write (created if missing).
    scale
        Fraction of the real export's 243,610 images, as for the FlowCam demo.
    seed
        Same seed, same bytes; the images are those of the FlowCam demo of the same seed.
    workers
        Worker processes drawing the images (default: the CPUs available).
    progress
        Show a progress bar.

    Returns
    -------
    list of Path
        The tables written, in sample order.
    """
    out = Path(out)
    meta = make_meta(scale, seed)
    statuses = _statuses(len(meta), seed)
    workers = _default_workers() if workers is None else workers
    jpegs, feats = _render_all([r["level1"] for r in meta], seed, workers, progress)
    tables = []
    for sample, (start, stop) in enumerate(_sample_bounds(len(meta))):
        sample_id = f"demo_s{sample + 1:02d}"
        folder = out / sample_id
        (folder / IMAGE_FOLDER).mkdir(parents=True, exist_ok=True)
        common = {
            "sample_id": sample_id,
            "sample_station": f"station {sample % 2 + 1}",
            "acq_id": f"{sample_id}_acq",
            "acq_instrument": "FlowCam",
            "acq_pixel_um": PIXEL_UM,
        }
        rows = []
        for i in range(start, stop):
            row = _object_row(i, meta[i], statuses[i], feats[i]) | common
            (folder / row["img_file_name"]).write_bytes(jpegs[i])
            rows.append(row)
            if i % SECOND_IMAGE_EVERY == SECOND_IMAGE_EVERY - 1:
                second = row | {
                    "img_rank": 1,
                    "img_file_name": row["img_file_name"][:-4] + "_1.jpg",
                }
                (folder / second["img_file_name"]).write_bytes(jpegs[i])
                rows.append(second)
        tables.append(_write_table(folder, sample_id, rows, sample))
    return tables
