"""``explore``'s ``index.html``: class counts, size distributions and a mosaic per class.

The page uses the frame, CSS and script of :mod:`plankton_store.report._page` (sortable
tables, original/stored toggle, missing-file notice); the size histograms are inline SVG, so
the page loads nothing but its thumbnails (written once into ``thumbs/``, at most
:data:`~plankton_store.report._thumbs.MOSAIC_LIMIT` per class, lazily loaded).
"""

from __future__ import annotations

from pathlib import Path
from string import Template

import numpy as np
import pandas as pd

from plankton_store.report._page import esc, figure, frame, image_note, toggle_button
from plankton_store.report._thumbs import MOSAIC_LIMIT, THUMBS_DIR, Pictures, write_pictures

#: The page ``explore`` writes into its report folder.
EXPLORE_HTML = "index.html"

_BODY = Template("""<ul>$facts</ul>
<h2>Images per class</h2>
<p class="note">Click a column header to sort; a class name leads to its images.</p>
<table id="class-counts" class="sortable"><thead><tr>$count_head</tr></thead><tbody>
$counts</tbody></table>
<h2>Image sizes (pixels, before resizing)</h2>
$histograms
<table id="sizes" class="sortable"><thead><tr><th class="name">class</th><th>images</th>
<th>height median</th><th>width median</th><th>area median</th><th>area 25%</th>
<th>area 75%</th></tr></thead><tbody>
$sizes</tbody></table>
<p class="note">Also as figures: <a href="class_counts.png">class_counts.png</a>,
<a href="sizes.png">sizes.png</a>, <a href="sizes_by_class.png">sizes_by_class.png</a>;
full quartiles in <a href="sizes.csv">sizes.csv</a>.</p>
<h2>Images of each class</h2>
<p class="note">At most $limit images per class, drawn at random (seed $seed); each captioned
with its height × width before resizing.</p>
$image_note$toggle
$mosaics
""")


def svg_histogram(values: np.ndarray, title: str, log: bool = False, bins: int = 30) -> str:
    """An inline SVG histogram of ``values`` (log-spaced bins with ``log``)."""
    width, height, pad = 320, 150, 22
    values = np.asarray(values, dtype=float)
    values = values[values > 0] if log else values
    head = f'<svg class="hist" width="{width}" height="{height}" role="img">'
    label = f'<text x="{width / 2}" y="14" text-anchor="middle" font-size="12">{esc(title)}</text>'
    if not len(values):
        return f"{head}{label}</svg>"
    lo, hi = float(values.min()), float(values.max())
    hi = hi if hi > lo else lo + 1
    edges = np.geomspace(lo, hi, bins + 1) if log else np.linspace(lo, hi, bins + 1)
    counts, _ = np.histogram(values, edges)
    top = max(int(counts.max()), 1)
    bar_w = (width - 2 * pad) / bins
    bars = "".join(
        f'<rect x="{pad + k * bar_w:.1f}" y="{height - pad - h:.1f}" width="{bar_w - 1:.1f}" '
        f'height="{h:.1f}" fill="#4a7bb7"><title>{edges[k]:.0f}-{edges[k + 1]:.0f}: {n}'
        "</title></rect>"
        for k, n in enumerate(counts)
        for h in [(height - 2 * pad - 14) * n / top]
    )
    axis = (
        f'<text x="{pad}" y="{height - 6}" font-size="10">{lo:.0f}</text>'
        f'<text x="{width - pad}" y="{height - 6}" font-size="10" text-anchor="end">{hi:.0f}'
        f"{' (log scale)' if log else ''}</text>"
        f'<text x="{pad - 4}" y="{pad + 14}" font-size="10" text-anchor="end">{top}</text>'
    )
    return f"{head}{label}{bars}{axis}</svg>"


def _count_rows(counts: pd.DataFrame, anchors: dict[str, int]) -> tuple[str, str]:
    total = max(int(counts["images"].sum()), 1)
    most = max(int(counts["images"].max()), 1) if len(counts) else 1
    extra = [c for c in counts.columns if c != "images"]
    head = (
        '<th class="name">class</th><th>images</th><th>share</th>'
        + "".join(f"<th>{esc(c)}</th>" for c in extra)
        + '<th class="name">bar</th>'
    )
    rows = []
    for name, r in counts.iterrows():
        n = int(r["images"])
        link = f'<a href="#class-{anchors[name]}">{esc(name)}</a>' if name in anchors else esc(name)
        rows.append(
            f'<tr><td class="name">{link}</td><td data-v="{n}">{n}</td>'
            f'<td data-v="{n / total:.6g}">{n / total:.2%}</td>'
            + "".join(f'<td data-v="{int(r[c])}">{int(r[c])}</td>' for c in extra)
            + f'<td class="name" data-v="{n}"><span style="display:inline-block;height:.8em;'
            f'background:#4a7bb7;width:{120 * n / most:.1f}px"></span></td></tr>'
        )
    return head, "\n".join(rows)


def _size_rows(sizes: pd.DataFrame) -> str:
    rows = []
    for name, group in sizes.groupby("label", sort=True):
        q = group["area"].quantile([0.25, 0.5, 0.75]).to_numpy()
        cells = [len(group), group["height"].median(), group["width"].median(), *q[[1, 0, 2]]]
        rows.append(
            f'<tr><td class="name">{esc(name)}</td>'
            + "".join(f'<td data-v="{v:.6g}">{v:.0f}</td>' for v in cells)
            + "</tr>"
        )
    return "\n".join(rows)


def exploration_html(
    title: str,
    facts: list[str],
    tables: tuple[pd.DataFrame, pd.DataFrame],
    mosaics: dict[str, list[tuple[int, str]]],
    pictures: Pictures,
    out_dir: Path,
    seed: int = 0,
) -> str:
    """The page of an exploration; writes its thumbnails into ``out_dir/thumbs``.

    Parameters
    ----------
    title, facts
        Heading and the lines under it (plain text).
    tables
        ``(counts, sizes)``: images per class (index: class; column ``images``, then any
        per-split columns) and one row per image (``label``, ``height``, ``width``,
        ``area``).
    mosaics
        Class -> ``(row, caption)`` of its images, at most ``MOSAIC_LIMIT``.
    pictures
        Reads the images of those rows.
    out_dir
        The report folder (the page's folder).
    seed
        Seed of the random choice of images (said on the page).

    Returns
    -------
    str
        The page.
    """
    counts, sizes = tables
    every = np.unique(np.asarray([p for rows in mosaics.values() for p, _ in rows], dtype=np.int64))
    shown = write_pictures(every, pictures, out_dir, THUMBS_DIR)
    anchors = {name: k for k, name in enumerate(mosaics)}
    parts = []
    for name, rows in mosaics.items():
        n = int(counts.loc[name, "images"]) if name in counts.index else len(rows)
        figures = "".join(figure(caption, shown.get(int(p))) for p, caption in rows)
        parts.append(
            f'<h3 id="class-{anchors[name]}">{esc(name)} ({n})</h3>'
            f'<div class="mosaic" data-class="{esc(name)}">{figures}</div>'
        )
    count_head, count_rows = _count_rows(counts, anchors)
    histograms = "".join(
        svg_histogram(sizes[col].to_numpy(), f"{col} ({len(sizes)} images)", log=log)
        for col, log in (("height", False), ("width", False), ("area", True))
    )
    body = _BODY.substitute(
        facts="".join(f"<li>{esc(f)}</li>" for f in facts),
        count_head=count_head,
        counts=count_rows,
        histograms=f"<div>{histograms}</div>",
        sizes=_size_rows(sizes),
        limit=MOSAIC_LIMIT,
        seed=seed,
        image_note=image_note(shown, len(every), pictures.note),
        toggle=toggle_button(shown),
        mosaics="\n".join(parts),
    )
    return frame(title, body)
