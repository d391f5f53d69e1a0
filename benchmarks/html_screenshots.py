"""Screenshots of the three HTML pages (report.html, gallery.html, index.html) for the docs.

Runs the whole flow through the CLI in WORK: an export (``make-demo-data`` at a small scale,
or ``--source`` an existing export such as ../shared/data/ndsb-dev), ``build-store``,
``train`` (a quick model), ``evaluate``, ``predict`` and ``explore`` of the store, then opens
each page in Debian's Chromium (pip playwright, no browser download) and saves a clipped,
shrunk, palette PNG of at most 250 KB per page into ``--out`` (``<prefix>-<page>.png``).

    python benchmarks/html_screenshots.py --work /tmp/shots
    timeout 1500 python benchmarks/html_screenshots.py --work /tmp/shots-ndsb \
        --source ../shared/data/ndsb-dev --model features --prefix ndsb --pages report
"""

from __future__ import annotations

import argparse
import io
import os
import subprocess
import sys
import time
from pathlib import Path

from PIL import Image

REPO = Path(__file__).resolve().parents[1]
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--disable-gpu", "--no-sandbox", "--disable-dev-shm-usage"]
#: Largest PNG kept, in bytes.
MAX_BYTES = 250_000
#: shot name -> (file under WORK, CSS selector the shot starts at, height in CSS pixels);
#: report-pair: the images of the largest confusion, after a click on its cell.
PAGES = {
    "report": ("eval/report.html", "h1", 1000),
    "report-pair": ("eval/report.html", "#pair", 800),
    "gallery": ("pred/gallery.html", "h2", 900),
    "index": ("explore/index.html", "h1", 1100),
}
#: Train options of the quick models (seconds on two cores).
QUICK = {
    "mlp": ["--hidden", "64", "--epochs", "8", "--patience", "3"],
    "features": ["--epochs", "8"],
}


def jobs(*args: str) -> None:
    """Run ``plankton-jobs ARGS`` in a subprocess (this checkout's code), timed."""
    started = time.perf_counter()
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    subprocess.run([sys.executable, "-m", "jobs.cli", *args], check=True, env=env)
    print(f"  {args[0]}: {time.perf_counter() - started:.1f} s", flush=True)


def run_flow(work: Path, source: Path | None, model: str, scale: float) -> None:
    """make-demo-data (without ``source``), build-store, train, evaluate, predict, explore."""
    work.mkdir(parents=True, exist_ok=True)
    if source is None:
        source = work / "export"
        if not (source / "meta.csv").is_file():
            jobs("make-demo-data", str(source), "--scale", str(scale), "--workers", "2")
    store = work / "store.zarr"
    if not store.is_dir():
        build = ["build-store", str(source), str(store), "--workers", "2"]
        jobs(
            *build, "--augment-below", "0", *(["--compute-features"] if model == "features" else [])
        )
    model_dir = work / "model"
    if not (model_dir / "model.json").is_file():
        jobs(
            "train",
            str(store),
            "--model",
            model,
            "--out",
            str(model_dir),
            *QUICK[model],
            "--overwrite",
        )
    jobs(
        "evaluate",
        str(store),
        "--model",
        str(model_dir),
        "--out",
        str(work / "eval"),
        "--workers",
        "2",
    )
    jobs(
        "predict",
        str(source),
        "--model",
        str(model_dir),
        "--out",
        str(work / "pred" / "predictions.csv"),
        "--workers",
        "2",
    )
    jobs("explore", str(store), "--out", str(work / "explore"))


def shrink(png: bytes, width: int) -> bytes:
    """``png`` resized to ``width`` and quantised to a palette until it weighs <= MAX_BYTES."""
    im = Image.open(io.BytesIO(png)).convert("RGB")
    while True:
        small = im.resize((width, round(im.height * width / im.width)), Image.LANCZOS)
        out = io.BytesIO()
        small.quantize(colors=128, method=Image.Quantize.MEDIANCUT).save(out, "PNG", optimize=True)
        if out.tell() <= MAX_BYTES or width < 400:
            return out.getvalue()
        width = int(width * 0.85)


def screenshot(work: Path, pages: list[str], out: Path, prefix: str, width: int) -> None:
    """Shoot each page (images loaded eagerly, a confusion cell clicked) into ``out``."""
    from playwright.sync_api import sync_playwright

    out.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1200, "height": 900})
        for name in pages:
            path, start, height = PAGES[name]
            page.goto((work / path).as_uri(), wait_until="load")
            if name == "report-pair":  # the largest off-diagonal cell: its images show below
                page.evaluate(
                    """() => { let best = null, n = -1;
                    for (const td of document.querySelectorAll('#confusion td.c')) {
                      const k = Number(td.dataset.n);
                      if (td.dataset.i !== td.dataset.j && k > n) { best = td; n = k; } }
                    if (best) best.click(); }"""
                )
            page.evaluate(
                """async () => { const imgs = Array.from(document.images);
                for (const img of imgs) img.loading = 'eager';
                await Promise.all(imgs.map((i) => i.decode().catch(() => null))); }"""
            )
            if name == "gallery":  # start at the largest predicted class
                start = "#" + page.evaluate(
                    """() => Array.from(document.querySelectorAll('h2[id]')).map((h) =>
                    [Number(h.textContent.match(/\\((\\d+)\\)$/)[1]), h.id])
                    .sort((a, b) => b[0] - a[0])[0][1]"""
                )
            box = page.locator(start).first.bounding_box()
            top = max(0, (box or {"y": 0})["y"] - 10)
            full = page.evaluate("document.documentElement.scrollHeight")
            clip = {"x": 0, "y": top, "width": 1200, "height": min(height, full - top)}
            png = shrink(page.screenshot(full_page=True, clip=clip), width)
            target = out / f"{prefix}-{name}.png"
            target.write_bytes(png)
            print(f"{target}: {len(png) / 1000:.0f} KB", flush=True)
        browser.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", type=Path, required=True, help="Folder for data and pages.")
    parser.add_argument("--source", type=Path, help="An export (default: make-demo-data).")
    parser.add_argument("--scale", type=float, default=0.01, help="make-demo-data --scale.")
    parser.add_argument("--model", choices=sorted(QUICK), default="features")
    parser.add_argument("--out", type=Path, default=REPO / "docs" / "img")
    parser.add_argument("--prefix", default="demo")
    parser.add_argument("--pages", default=",".join(PAGES), help="Comma-separated pages.")
    parser.add_argument("--width", type=int, default=900, help="Width of the PNGs (pixels).")
    parser.add_argument("--shots-only", action="store_true", help="Reuse WORK's pages.")
    args = parser.parse_args()
    if not args.shots_only:
        run_flow(args.work, args.source, args.model, args.scale)
    screenshot(args.work, args.pages.split(","), args.out, args.prefix, args.width)


if __name__ == "__main__":
    main()
