"""The exploration notebook as a report, for an export, an image folder or a store.

Class counts (table and log-scale bars), missing labels, image height / width / area
distributions overall and per class, and a grid of example images per class, written as
``report.md`` with PNGs and CSVs beside it, and as ``index.html`` with a mosaic of at most
:data:`~plankton_store.report._thumbs.MOSAIC_LIMIT` images per class
(:mod:`plankton_store.report._explore_html`). For an export the sizes are read from the
image headers (no decode), on Dask in blocks; for a store they are its ``orig_height`` /
``orig_width`` arrays, the PNG's examples are the stored (resized) images and the page shows
the originals when the store's exports are reachable.
"""

from __future__ import annotations

import io
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from PIL import Image

from plankton_store.cluster import run_blocks
from plankton_store.io import (
    ECOTAXA_TRUSTED_STATUSES,
    Export,
    ImageDecodeError,
    Taxonomy,
    decode_gray,
    read_source,
    resize,
)
from plankton_store.report._explore_html import EXPLORE_HTML, exploration_html
from plankton_store.report._originals import store_pictures
from plankton_store.report._thumbs import MOSAIC_LIMIT, Pictures, file_images
from plankton_store.store import format as fmt
from plankton_store.store import is_store, open_store

NO_LABEL = "(no label)"
EXPLORE_FILES = (
    "report.md",
    "class_counts.csv",
    "class_counts.png",
    "sizes.csv",
    "sizes.png",
    "sizes_by_class.png",
    "examples.png",
    EXPLORE_HTML,
)
#: Image headers read per Dask task.
BLOCK_SIZE = 4096
#: Side of the padded example thumbnails of an export (pixels).
THUMB = 64


@dataclass
class Exploration:
    """What the report shows, as tables.

    Attributes
    ----------
    counts : pandas.DataFrame
        Index = class; ``images`` and, for a store, one column per split.
    sizes : pandas.DataFrame
        One row per image: ``label`` (``NO_LABEL`` when missing), ``height``, ``width``,
        ``area`` (0 when the header could not be read).
    examples : dict
        Class -> example images (uint8 arrays).
    missing_labels : int
    unreadable : int
        Images whose header could not be read (export only).
    title : str
    notes : list of str
    mosaics : dict
        Class -> ``(position, caption)`` of the page's images, at most ``MOSAIC_LIMIT``.
    pictures : Pictures
        Reads the images of those positions (originals, and a store's stored images).
    seed : int
        Seed of the random choice of examples and mosaics.
    """

    counts: pd.DataFrame
    sizes: pd.DataFrame
    examples: dict[str, list[np.ndarray]]
    missing_labels: int
    unreadable: int
    title: str
    notes: list[str] = field(default_factory=list)
    mosaics: dict[str, list[tuple[int, str]]] = field(default_factory=dict)
    pictures: Pictures = field(default_factory=Pictures)
    seed: int = 0


def header_sizes(fetch: Callable[[str], bytes], refs: list[str]) -> np.ndarray:
    """``(n, 2)`` int32 (height, width) from the image headers; 0 where unreadable."""
    out = np.zeros((len(refs), 2), dtype=np.int32)
    for i, ref in enumerate(refs):
        try:
            with Image.open(io.BytesIO(fetch(ref))) as im:
                out[i] = im.height, im.width
        except Exception:  # noqa: BLE001 - any unreadable file just counts as unreadable
            pass
    return out


def _export_sizes(export: Export, client: Any) -> np.ndarray:
    refs = export.table["image"].tolist()
    blocks = [refs[i : i + BLOCK_SIZE] for i in range(0, len(refs), BLOCK_SIZE)]
    if client is None:
        parts = [header_sizes(export.fetcher.fetch, b) for b in blocks]
    else:
        calls = [(export.fetcher.fetch, b) for b in blocks]
        parts = run_blocks(client, header_sizes, calls, name="explore", progress=False)
    return np.concatenate(parts) if parts else np.zeros((0, 2), np.int32)


def _pick(labels: pd.Series, per_class: int, seed: int) -> dict[str, np.ndarray]:
    """Up to ``max(per_class, MOSAIC_LIMIT)`` random positions per class in random order
    (the first ``per_class`` are the PNG's examples), classes by decreasing count."""
    rng = np.random.default_rng(seed)
    out = {}
    size = max(per_class, MOSAIC_LIMIT)
    for name in labels.value_counts().index:
        pos = np.flatnonzero((labels == name).to_numpy())
        out[str(name)] = rng.choice(pos, size=min(size, len(pos)), replace=False)
    return out


def _mosaics(
    picked: dict[str, np.ndarray], hw: np.ndarray, ids: np.ndarray
) -> dict[str, list[tuple[int, str]]]:
    """The page's images: per class, at most MOSAIC_LIMIT positions captioned with their id
    and their size before resizing (``hw``: height, width per position; 0 = unreadable)."""
    out = {}
    for name, pos in picked.items():
        rows = []
        for p in np.sort(pos[:MOSAIC_LIMIT]):
            h, w = (int(v) for v in hw[p])
            rows.append((int(p), f"{ids[p]}, {h}×{w} px" if h else f"{ids[p]}, unreadable"))
        out[name] = rows
    return out


def explore_export(
    source: str | Path,
    label_column: str = "level2",
    client: Any = None,
    per_class: int = 8,
    seed: int = 0,
    statuses: tuple[str, ...] = ECOTAXA_TRUSTED_STATUSES,
) -> Exploration:
    """Explore an export or image folder (labels optional; an EcoTaxa TSV export's labels
    of the rows whose status is in ``statuses``)."""
    export, _ = read_source(source, label_column, statuses)
    table = export.table
    labels = table["label"].astype("string").fillna(NO_LABEL).astype(str)
    hw = _export_sizes(export, client)
    sizes = pd.DataFrame(
        {
            "label": labels.to_numpy(),
            "height": hw[:, 0],
            "width": hw[:, 1],
            "area": hw[:, 0].astype(np.int64) * hw[:, 1],
        }
    )
    counts = labels.value_counts().rename("images").to_frame()
    counts.index.name = "class"
    examples: dict[str, list[np.ndarray]] = {}
    refs = table["image"].to_numpy()
    picked = _pick(labels, per_class, seed)
    for name, pos in picked.items():
        thumbs = []
        for p in np.sort(pos[:per_class]):
            try:
                im = decode_gray(export.fetcher.fetch(refs[p]))
            except (ImageDecodeError, OSError):
                continue
            thumbs.append(resize(im, (THUMB, THUMB), "pad"))
        examples[name] = thumbs
    notes = []
    if len(export.rejects):
        notes.append(f"{len(export.rejects)} input rows rejected by the reader (not shown)")
    unreadable = int((hw[:, 0] == 0).sum())
    return Exploration(
        counts=counts,
        sizes=sizes[sizes["area"] > 0].reset_index(drop=True),
        examples=examples,
        missing_labels=int(table["label"].isna().sum()),
        unreadable=unreadable,
        title=f"{export.layout} export {export.root} (label column {export.label_column!r})",
        notes=notes,
        mosaics=_mosaics(picked, hw, table["objid"].to_numpy()),
        pictures=Pictures(originals=file_images(export.fetcher.fetch, refs)),
        seed=seed,
    )


def explore_store(store_path: str, per_class: int = 8, seed: int = 0) -> Exploration:
    """Explore a store: its original (not augmented, not rejected) samples."""
    store = open_store(store_path)
    augmentation = store.array(fmt.AUGMENTATION)[:]
    keep = (augmentation == 0) & (store.splits != fmt.Split.REJECTED)
    names = np.asarray(store.class_names, dtype=object)
    labels = pd.Series(names[store.labels[keep]], dtype=str)
    split_names = {int(s): s.name.lower() for s in fmt.Split}
    splits = pd.Series([split_names[int(s)] for s in store.splits[keep]])
    height = store.array(fmt.ORIG_HEIGHT)[:][keep]
    width = store.array(fmt.ORIG_WIDTH)[:][keep]
    sizes = pd.DataFrame(
        {
            "label": labels.to_numpy(),
            "height": height,
            "width": width,
            "area": height.astype(np.int64) * width,
        }
    )
    counts = pd.crosstab(labels.rename("class"), splits).reindex(
        columns=["train", "val", "test"], fill_value=0
    )
    counts.columns.name = None
    counts.insert(0, "images", counts.sum(axis=1))
    counts = counts.sort_values("images", ascending=False)
    kept_index = np.flatnonzero(keep)
    picked = _pick(labels, per_class, seed)
    examples = {
        name: list(
            store.images.get_orthogonal_selection(
                (kept_index[np.sort(pos[:per_class])], slice(None), slice(None))
            )
        )
        for name, pos in picked.items()
    }
    missing = 0
    notes = ["examples.png shows the stored images, after resizing"]
    taxonomy = Taxonomy.from_attrs(store.attrs.get(fmt.Attr.TAXONOMY))
    if not taxonomy.is_identity:
        notes.append(f"labels regrouped when the store was built: {taxonomy.describe()}")
    rejects = Path(fmt.rejects_path(store_path))
    if rejects.is_file():
        reasons = pd.read_csv(rejects)["reason"].astype(str)
        missing = int((reasons == f"no {store.label_column} label").sum())
        other = len(reasons) - missing
        if other:
            notes.append(f"{other} other input rows were not stored (see {rejects.name})")
    objids = store.array(fmt.OBJID)[:][keep]
    return Exploration(
        counts=counts,
        sizes=sizes,
        examples=examples,
        missing_labels=missing,
        unreadable=0,
        title=f"store {store_path} (label column {store.label_column!r})",
        notes=notes,
        mosaics=_mosaics(picked, np.stack([height, width], axis=1), objids),
        pictures=store_pictures(store, kept_index),
        seed=seed,
    )


def write_exploration(exploration: Exploration, out_dir: str | Path) -> Path:
    """Write :data:`EXPLORE_FILES` into ``out_dir``."""
    from plankton_store.report import _plots as plots  # matplotlib: only when writing

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    ex = exploration
    ex.counts.to_csv(out / "class_counts.csv")
    quantiles = (
        ex.sizes.groupby("label")[["height", "width", "area"]]
        .describe(percentiles=[0.25, 0.5, 0.75])
        .round(1)
    )
    quantiles.columns = [f"{a}_{b}" for a, b in quantiles.columns]
    overall = ex.sizes[["height", "width", "area"]].describe(percentiles=[0.25, 0.5, 0.75])
    overall_row = pd.DataFrame(
        {
            f"{c}_{s}": [overall.loc[s, c]]
            for c in ("height", "width", "area")
            for s in overall.index
        },
        index=pd.Index(["ALL"], name="label"),
    ).round(1)
    sizes_table = pd.concat([overall_row, quantiles])
    sizes_table.to_csv(out / "sizes.csv")
    plots.class_counts_png(ex.counts["images"], out / "class_counts.png")
    plots.size_histograms_png(ex.sizes, out / "sizes.png")
    plots.size_by_class_png(ex.sizes, out / "sizes_by_class.png")
    plots.example_grid_png(ex.examples, out / "examples.png")
    (out / "report.md").write_text(exploration_markdown(ex, sizes_table))
    facts = [
        f"{int(ex.counts['images'].sum())} images in {len(ex.counts)} classes",
        f"Missing labels: {ex.missing_labels}",
        *([f"Unreadable image headers: {ex.unreadable}"] if ex.unreadable else []),
        *ex.notes,
    ]
    page = exploration_html(
        f"Exploration of {ex.title}",
        facts,
        (ex.counts, ex.sizes),
        ex.mosaics,
        ex.pictures,
        out,
        ex.seed,
    )
    (out / EXPLORE_HTML).write_text(page, encoding="utf-8")
    return out


def exploration_markdown(ex: Exploration, sizes_table: pd.DataFrame) -> str:
    """The Markdown report."""
    total = int(ex.counts["images"].sum())
    counts = ex.counts.reset_index()
    counts["share"] = (counts["images"] / max(total, 1)).map(lambda v: f"{v:.2%}")
    cols = list(counts.columns)
    lines = [
        f"# Exploration of {ex.title}",
        "",
        f"- {total} images in {len(ex.counts) - (NO_LABEL in ex.counts.index)} classes",
        f"- Missing labels: {ex.missing_labels}",
    ]
    if ex.unreadable:
        lines.append(f"- Unreadable image headers: {ex.unreadable} (left out of the sizes)")
    lines += [f"- {n}" for n in ex.notes]
    lines += [
        "",
        "## Images per class",
        "",
        "| " + " | ".join(cols) + " |",
        "|" + "|".join("---" if c == "class" else "---:" for c in cols) + "|",
        *("| " + " | ".join(str(v) for v in row) + " |" for row in counts.itertuples(index=False)),
        "",
        "![Images per class](class_counts.png)",
        "",
        "## Image sizes (pixels, before resizing)",
        "",
        "| | height median | width median | area median | area 25% | area 75% |",
        "|---|---:|---:|---:|---:|---:|",
        *(
            f"| {name} | {r['height_50%']:.0f} | {r['width_50%']:.0f} | {r['area_50%']:.0f} "
            f"| {r['area_25%']:.0f} | {r['area_75%']:.0f} |"
            for name, r in sizes_table.iterrows()
        ),
        "",
        "Full quartiles: `sizes.csv`.",
        "",
        "![Size histograms](sizes.png)",
        "",
        "![Sizes per class](sizes_by_class.png)",
        "",
        "## Examples per class",
        "",
        "![Examples](examples.png)",
        "",
    ]
    return "\n".join(lines)


def explore(
    source: str | Path,
    out_dir: str | Path,
    label_column: str = "level2",
    client: Any = None,
    per_class: int = 8,
    seed: int = 0,
    statuses: tuple[str, ...] = ECOTAXA_TRUSTED_STATUSES,
) -> Path:
    """Explore a store, an export or an image folder and write the report into ``out_dir``;
    returns the path of ``report.md``. ``client`` (Dask) reads an export's image headers;
    ``statuses`` are the EcoTaxa statuses whose labels count (EcoTaxa TSV exports)."""
    if is_store(source):
        exploration = explore_store(str(source), per_class, seed)
    else:
        exploration = explore_export(source, label_column, client, per_class, seed, statuses)
    return write_exploration(exploration, out_dir) / EXPLORE_FILES[0]
