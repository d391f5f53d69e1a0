"""A synthetic FlowCam/EcoTaxa export: same files, columns, class counts and image sizes.

:func:`make_demo_export` writes a folder that looks like a real export::

    meta.csv               objid, projid, id, status, latitude, longitude, objdate, objtime,
                           depth_min, depth_max, unique_name, lineage, level1, level2
    taxo.csv               one row per level1 class: level1, level2, unique_name, lineage, count
    features_native.csv.gz objid + :data:`plankton_store.io.FEATURE_COLUMNS`
    imgs.zip               imgs/<objid>.jpg, grayscale JPEGs, stored without compression

The ``level2`` counts are those of the real export times ``scale`` (:func:`expected_level2_counts`).
Every image is drawn from its class's recipe (:data:`plankton_store.demo.RECIPES`): a morphology
(``shape``), a size and aspect offset, blur and darkness. Related classes share a shape with
nearby parameters, so a classifier finds some classes easy and some hard. Image ``i`` only
depends on ``(seed, i)``, so the output is identical whatever the number of worker processes.

The taxonomy is in :mod:`plankton_store.demo._taxonomy`, the recipes in
:mod:`plankton_store.demo._recipes` and the drawing in :mod:`plankton_store.demo._render`; this
module writes the tables and the zip, and draws a preview sheet of an export.
"""

from __future__ import annotations

import csv
import gzip
import io
import math
import os
import time
import zipfile
from collections.abc import Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image
from tqdm.auto import tqdm

from plankton_store.demo._render import render_row
from plankton_store.demo._taxonomy import (
    EMPTY_LABEL,
    EMPTY_TAXA,
    expected_level2_counts,
    level1_classes,
    level1_lineage,
    taxonomy_table,
    unique_name,
)
from plankton_store.io._computed import FEATURE_COLUMNS
from plankton_store.io._layout import META_FILE, TAXO_FILE, ZIP_NAME, feature_file, image_member

META_COLUMNS: tuple[str, ...] = (
    "objid",
    "projid",
    "id",
    "status",
    "latitude",
    "longitude",
    "objdate",
    "objtime",
    "depth_min",
    "depth_max",
    "unique_name",
    "lineage",
    "level1",
    "level2",
)
TAXO_COLUMNS: tuple[str, ...] = ("level1", "level2", "unique_name", "lineage", "count")

FEATURES_FILE = feature_file("native")

#: Rows per task sent to a worker process; fixed so that the output never depends on it.
CHUNK_ROWS = 2000
_ZIP_DATE = (2020, 1, 1, 0, 0, 0)


def _render_chunk(args: tuple[int, int, Sequence[str]]) -> tuple[list[bytes], list[list[float]]]:
    seed, start, level1s = args
    jpegs, feats = [], []
    for k, l1 in enumerate(level1s):
        jpeg, values = render_row(seed, start + k, l1)
        jpegs.append(jpeg)
        feats.append(values)
    return jpegs, feats


# --------------------------------------------------------------------------------------------
# The export.
# --------------------------------------------------------------------------------------------


def _split_counts(n: int, shares: Sequence[float]) -> list[int]:
    """Integers summing to n, proportional to shares (largest remainder)."""
    raw = np.asarray(shares, float) / sum(shares) * n
    out = np.floor(raw).astype(int)
    for k in np.argsort(-(raw - out), kind="stable")[: n - out.sum()]:
        out[k] += 1
    return out.tolist()


def make_meta(scale: float, seed: int) -> list[dict[str, Any]]:
    """The rows of meta.csv (shuffled classes, increasing objids) as dicts.

    Parameters
    ----------
    scale : float
        Fraction of the real export (see :func:`expected_level2_counts`).
    seed : int
        Seed of the shuffling and of the sample metadata.

    Returns
    -------
    list of dict
        One dict per row with the keys of :data:`META_COLUMNS`, in objid order.
    """
    rng = np.random.default_rng([seed, 0])
    counts = expected_level2_counts(scale)
    taxon_ids = {row["level1"]: 45000 + 7 * k for k, row in enumerate(taxonomy_table())}
    labels: list[tuple[str, str, str, str, int]] = []  # level1, level2, unique_name, lineage, id
    for l2, n in counts.items():
        if l2 == EMPTY_LABEL:
            for k, m in enumerate(_split_counts(n, [4, 2, 1, 1])):
                name, lineage = EMPTY_TAXA[k]
                labels += [("", "", name, lineage, 90000 + k)] * m
            continue
        subs = level1_classes(l2)
        for (l1, _), m in zip(subs, _split_counts(n, [s for _, s in subs]), strict=True):
            labels += [(l1, l2, unique_name(l1), level1_lineage(l1, l2), taxon_ids[l1])] * m
    order = rng.permutation(len(labels))
    n = len(labels)
    objids = 10_000_000 + np.cumsum(rng.integers(1, 60, n))
    # Rows come in samples (one net tow or bottle each): contiguous objid ranges.
    n_samples = max(1, n // 500)
    sample = np.sort(rng.integers(0, n_samples, n))
    s_lat = 43.685 + rng.normal(0, 0.03, n_samples)
    s_lon = 7.316 + rng.normal(0, 0.03, n_samples)
    s_day = rng.integers(0, 6 * 365, n_samples)
    s_sec = rng.integers(6 * 3600, 18 * 3600, n_samples)
    s_depth = rng.choice([20.0, 50.0, 75.0], n_samples)
    base = np.datetime64("2008-01-01")
    rows = []
    for k in range(n):
        l1, l2, name, lineage, taxon = labels[order[k]]
        s = sample[k]
        sec = int(s_sec[s]) + k % 900
        rows.append(
            {
                "objid": int(objids[k]),
                "projid": 2251 + int(s_day[s] // 730),
                "id": taxon,
                "status": "validated",
                "latitude": round(float(s_lat[s]), 4),
                "longitude": round(float(s_lon[s]), 4),
                "objdate": str(base + np.timedelta64(int(s_day[s]), "D")),
                "objtime": f"{sec // 3600:02d}:{sec // 60 % 60:02d}:{sec % 60:02d}",
                "depth_min": 0.0,
                "depth_max": float(s_depth[s]),
                "unique_name": name,
                "lineage": lineage,
                "level1": l1,
                "level2": l2,
            }
        )
    return rows


def _write_csv(path: Path, columns: Sequence[str], rows: list[dict[str, Any]]) -> None:
    with open(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=list(columns), lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)


def _format(v: float) -> str:
    return "" if math.isnan(v) else f"{v:.6g}"


def _chunks(level1s: Sequence[str], seed: int) -> Iterator[tuple[int, int, Sequence[str]]]:
    for start in range(0, len(level1s), CHUNK_ROWS):
        yield seed, start, level1s[start : start + CHUNK_ROWS]


def _write_tables(out: Path, rows: list[dict[str, Any]]) -> None:
    """Write meta.csv and taxo.csv (one row per level1 class, with its number of rows)."""
    _write_csv(out / META_FILE, META_COLUMNS, rows)
    counts: dict[str, int] = {}
    for r in rows:
        counts[r["level1"]] = counts.get(r["level1"], 0) + 1
    taxo = [dict(t, count=counts.get(t["level1"], 0)) for t in taxonomy_table()]
    _write_csv(out / TAXO_FILE, TAXO_COLUMNS, taxo)


def _default_workers() -> int:
    """Worker processes by default: the CPUs this process may run on."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def _write_images(
    out: Path, rows: list[dict[str, Any]], seed: int, workers: int, progress: bool
) -> None:
    """Draw every row's image; write imgs.zip and the feature table, both in row order."""
    level1s = [r["level1"] for r in rows]
    objids = [r["objid"] for r in rows]
    bar = tqdm(total=len(rows), unit="img", desc="make-demo-data", disable=not progress)
    # mtime=0 and no file name in the gzip header: identical bytes for identical content.
    with (
        zipfile.ZipFile(out / ZIP_NAME, "w", compression=zipfile.ZIP_STORED, allowZip64=True) as zf,
        open(out / FEATURES_FILE, "wb") as raw,
        gzip.GzipFile(filename="", fileobj=raw, mode="wb", mtime=0) as gz,
        io.TextIOWrapper(gz, encoding="utf-8", newline="\n") as ft,
    ):
        ft.write(",".join(("objid", *FEATURE_COLUMNS)) + "\n")
        pool = ProcessPoolExecutor(max_workers=workers) if workers > 1 else None
        try:
            results = (
                pool.map(_render_chunk, _chunks(level1s, seed))
                if pool
                else map(_render_chunk, _chunks(level1s, seed))
            )
            i = 0
            for jpegs, feats in results:  # in row (= objid) order
                for jpeg, values in zip(jpegs, feats, strict=True):
                    info = zipfile.ZipInfo(image_member(objids[i]), date_time=_ZIP_DATE)
                    info.compress_type = zipfile.ZIP_STORED
                    info.external_attr = 0o644 << 16
                    zf.writestr(info, jpeg)
                    ft.write(f"{objids[i]}," + ",".join(_format(v) for v in values) + "\n")
                    i += 1
                bar.update(len(jpegs))
        finally:
            if pool:
                pool.shutdown(cancel_futures=True)
            bar.close()


def make_demo_export(
    out: str | Path,
    scale: float = 0.01,
    seed: int = 0,
    workers: int | None = None,
    progress: bool = True,
) -> Path:
    """Write a synthetic FlowCam/EcoTaxa export into the folder ``out``.

    Parameters
    ----------
    out : str or Path
        Folder to write (created if missing; existing files of the export are replaced).
    scale : float
        Fraction of the real export's 243,610 images (see :func:`expected_level2_counts`).
    seed : int
        Same seed, same bytes: meta.csv, taxo.csv, the features and every image.
    workers : int, optional
        Worker processes drawing the images; default the CPUs available. 1 draws in-process.
        The output does not depend on it.
    progress : bool
        Show a tqdm progress bar.

    Returns
    -------
    Path
        The export folder.
    """
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    rows = make_meta(scale, seed)
    _write_tables(out, rows)
    _write_images(out, rows, seed, _default_workers() if workers is None else workers, progress)
    return out


# --------------------------------------------------------------------------------------------
# Preview.
# --------------------------------------------------------------------------------------------


def preview_sheet(export_dir: str | Path, out_png: str | Path, per_class: int = 8) -> Path:
    """Draw a grid of example images, one row per level2 class (largest first).

    Parameters
    ----------
    export_dir : str or Path
        A folder written by :func:`make_demo_export` (or a real export with the same layout).
    out_png : str or Path
        PNG file to write.
    per_class : int
        Examples per class (the first ones in objid order).

    Returns
    -------
    Path
        ``out_png``.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import pandas as pd

    export_dir = Path(export_dir)
    meta = pd.read_csv(
        export_dir / META_FILE, usecols=["objid", "level1", "level2"], keep_default_na=False
    )
    classes = list(meta["level2"].value_counts().index)
    fig, axes = plt.subplots(
        len(classes), per_class, figsize=(1.3 * per_class + 2.2, 1.3 * len(classes)), squeeze=False
    )
    with zipfile.ZipFile(export_dir / ZIP_NAME) as zf:
        for r, cls in enumerate(classes):
            sub = meta[meta["level2"] == cls]
            for c in range(per_class):
                ax = axes[r, c]
                ax.set_xticks([])
                ax.set_yticks([])
                for spine in ax.spines.values():
                    spine.set_visible(False)
                if c < len(sub):
                    row = sub.iloc[c]
                    img = np.asarray(Image.open(io.BytesIO(zf.read(image_member(row.objid)))))
                    ax.imshow(img, cmap="gray", vmin=0, vmax=255)
                    if row.level1 != cls:
                        ax.set_title(row.level1, fontsize=6)
            name = cls or "(no label)"
            axes[r, 0].set_ylabel(
                f"{name}\n{len(sub)}", rotation=0, ha="right", va="center", fontsize=9
            )
    fig.tight_layout()
    out_png = Path(out_png)
    fig.savefig(out_png, dpi=80)
    plt.close(fig)
    return out_png


def timed_export(**kwargs: Any) -> tuple[Path, int, float]:
    """Run :func:`make_demo_export`; return its folder, the number of rows and the seconds."""
    t0 = time.perf_counter()
    out = make_demo_export(**kwargs)
    seconds = time.perf_counter() - t0
    with open(out / META_FILE, encoding="utf-8") as f:
        n = sum(1 for _ in f) - 1
    return out, n, seconds
