"""Size and speed of the HTML pages on synthetic data: 40 classes, 20,000 images.

Builds an evaluation (class sizes falling off geometrically, about 70% of the predictions
right) and an exploration of as many images, with original images (JPEG files of 30 to 300
pixels a side, decoded and shrunk as for a real export) and stored 64x48 images, writes
``report.html`` and ``index.html`` with their thumbnails, then opens each page in Debian's
Chromium (pip playwright) and prints:

- write time of the page with its thumbnails (and of the whole report folder),
- page weight (the HTML file, and the HTML plus every thumbnail), thumbnail count,
- time to the ``load`` event (navigation start to ``loadEventEnd``), cold (first) and warm,
- for report.html, a confusion-cell click: from the click until that pair's images are
  decoded (median of 5 cells).

    python benchmarks/html_pages.py --work /tmp/html-pages
"""

from __future__ import annotations

import argparse
import io
import shutil
import statistics
import time
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image, ImageDraw

from plankton_store.report import (
    EXPLORE_HTML,
    MOSAIC_LIMIT,
    REPORT_HTML,
    Evaluation,
    Exploration,
    Pictures,
    file_images,
    normalised_confusion,
    per_class_table,
    write_exploration,
    write_report,
)
from plankton_store.report._evaluation import report_html

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--disable-gpu", "--no-sandbox", "--disable-dev-shm-usage"]
#: Distinct original JPEGs; image ``i`` is file ``i % POOL`` (decoded for each thumbnail).
POOL = 500


def jpeg_pool(rng: np.random.Generator) -> list[bytes]:
    """POOL JPEGs of random size (30-300 px a side): a dark blob on a light background."""
    out = []
    for _ in range(POOL):
        w, h = (int(v) for v in rng.integers(30, 300, 2))
        im = Image.new("L", (w, h), int(rng.integers(190, 240)))
        ImageDraw.Draw(im).ellipse(
            [w * 0.15, h * 0.2, w * 0.85, h * 0.8], fill=int(rng.integers(20, 90))
        )
        buf = io.BytesIO()
        im.save(buf, "JPEG", quality=90)
        out.append(buf.getvalue())
    return out


def pictures(n: int, rng: np.random.Generator) -> Pictures:
    """Originals decoded from the pool, and random stored 64x48 images."""
    pool = jpeg_pool(rng)
    refs = [str(i % POOL) for i in range(n)]

    def stored(rows: np.ndarray) -> np.ndarray:
        g = np.random.default_rng(int(rows[0]) if len(rows) else 0)
        return g.integers(0, 256, (len(rows), 64, 48), dtype=np.uint8)

    return Pictures(file_images(lambda ref: pool[int(ref)], refs), stored)


def synthetic_evaluation(n: int, k: int, seed: int) -> Evaluation:
    rng = np.random.default_rng(seed)
    share = 0.9 ** np.arange(k)
    y_true = rng.choice(k, size=n, p=share / share.sum())
    logits = rng.normal(0, 1, (n, k))
    logits[np.arange(n), y_true] += rng.normal(2.2, 1.0, n)
    proba = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    y_pred = proba.argmax(axis=1)
    names = [f"class_{c:02d}" for c in range(k)]
    summary = {
        "model": {"name": "synthetic", "dir": "-", "kind": "mlp"},
        "data": {"kind": "store", "split": "test", "source": "-", "fingerprint": "-"},
        "tta": False,
        "notes": [],
        "n_samples": n,
        "n_classes": k,
        "n_classes_present": k,
        "model_fingerprint": "-",
        "created": "-",
        "seconds": 0.0,
        **{m: float(np.mean(y_true == y_pred)) for m in ("accuracy", "macro_f1")},
        **{m: None for m in ("weighted_f1", "balanced_accuracy", "top3_accuracy")},
    }
    summary["model"]["store_fingerprint"] = "-"
    ev = Evaluation(
        y_true,
        y_pred,
        proba,
        names,
        per_class_table(y_true, y_pred, names),
        summary,
        pd.DataFrame({"sample": np.arange(n), "objid": np.arange(n)}),
    )
    ev.pictures = pictures(n, rng)
    return ev


def synthetic_exploration(n: int, k: int, seed: int) -> Exploration:
    rng = np.random.default_rng(seed)
    share = 0.9 ** np.arange(k)
    names = np.array([f"class_{c:02d}" for c in range(k)])
    labels = names[rng.choice(k, size=n, p=share / share.sum())]
    hw = rng.integers(30, 300, (n, 2))
    sizes = pd.DataFrame(
        {"label": labels, "height": hw[:, 0], "width": hw[:, 1], "area": hw[:, 0] * hw[:, 1]}
    )
    counts = sizes["label"].value_counts().rename("images").to_frame()
    counts.index.name = "class"
    mosaics = {}
    for name in counts.index:
        pos = np.sort(rng.choice(np.flatnonzero(labels == name), MOSAIC_LIMIT, replace=False))
        mosaics[name] = [(int(p), f"{p}, {hw[p, 0]}×{hw[p, 1]} px") for p in pos]
    examples = {name: [np.zeros((64, 64), np.uint8)] * 8 for name in counts.index}
    return Exploration(
        counts, sizes, examples, 0, 0, "synthetic", [], mosaics, pictures(n, rng), seed
    )


def weight(folder: Path, page: str) -> tuple[int, int, int]:
    """HTML bytes, HTML + thumbnails bytes, thumbnail count."""
    thumbs = [p for p in (folder / "thumbs").iterdir()] if (folder / "thumbs").is_dir() else []
    html = (folder / page).stat().st_size
    return html, html + sum(p.stat().st_size for p in thumbs), len(thumbs)


LOAD_MS = "() => performance.getEntriesByType('navigation')[0].loadEventEnd"
#: From the click until the pair's images (scrolled into view) are decoded; 10 s at most.
CLICK_MS = """async (td) => { const t0 = performance.now(); td.click();
  document.getElementById('pair').scrollIntoView();
  const imgs = Array.from(document.querySelectorAll('#pair-images img'));
  const done = Promise.all(imgs.map((i) => i.decode().catch(() => null)));
  await Promise.race([done, new Promise((r) => setTimeout(r, 10000))]);
  return [performance.now() - t0, imgs.length]; }"""


def browse(path: Path, clicks: bool) -> dict[str, float]:
    from playwright.sync_api import sync_playwright

    out: dict[str, float] = {}
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        for run in ("cold", "warm"):
            page.goto(path.as_uri(), wait_until="load")
            out[f"load_{run}_s"] = page.evaluate(LOAD_MS) / 1000
        if clicks:
            cells = page.locator("#confusion td.c[data-n]:not([data-n='0'])")
            times = []
            for q in np.linspace(0, cells.count() - 1, 5).astype(int):
                ms, _ = cells.nth(int(q)).evaluate(CLICK_MS)
                times.append(ms / 1000)
            out["click_median_s"] = statistics.median(times)
            out["click_max_s"] = max(times)
        out["chromium"] = browser.version
        browser.close()
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", type=Path, required=True)
    parser.add_argument("--images", type=int, default=20_000)
    parser.add_argument("--classes", type=int, default=40)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    if args.work.exists():
        shutil.rmtree(args.work)
    n, k = args.images, args.classes
    print(f"{n} images, {k} classes, at most {MOSAIC_LIMIT} images per mosaic", flush=True)

    ev = synthetic_evaluation(n, k, args.seed)
    folder = args.work / "eval"
    started = time.perf_counter()
    write_report(ev, folder)
    total = time.perf_counter() - started
    counts, rates = normalised_confusion(ev.y_true, ev.y_pred, k)
    started = time.perf_counter()
    (folder / REPORT_HTML).write_text(
        report_html(ev, counts, rates, ev.proba.max(axis=1), folder), encoding="utf-8"
    )
    page = time.perf_counter() - started
    html, heavy, thumbs = weight(folder, REPORT_HTML)
    print(
        f"report.html: written in {page:.1f} s (report folder {total:.1f} s), "
        f"{html / 1e6:.2f} MB HTML, {heavy / 1e6:.1f} MB with {thumbs} thumbnail files"
    )
    print(
        "  ",
        {
            k: round(v, 3) if isinstance(v, float) else v
            for k, v in browse(folder / REPORT_HTML, clicks=True).items()
        },
    )

    ex = synthetic_exploration(n, k, args.seed)
    folder = args.work / "explore"
    started = time.perf_counter()
    write_exploration(ex, folder)
    total = time.perf_counter() - started
    html, heavy, thumbs = weight(folder, EXPLORE_HTML)
    print(
        f"index.html: report folder written in {total:.1f} s, {html / 1e6:.2f} MB HTML, "
        f"{heavy / 1e6:.1f} MB with {thumbs} thumbnail files"
    )
    print(
        "  ",
        {
            k: round(v, 3) if isinstance(v, float) else v
            for k, v in browse(folder / EXPLORE_HTML, clicks=False).items()
        },
    )


if __name__ == "__main__":
    main()
