"""Headless Chromium for the HTML page tests: Debian's browser driven by pip playwright.

No browser download: the tests use ``/usr/bin/chromium`` (``.ci/install-chromium`` installs
it) and are skipped, saying why, where it or playwright is missing.
"""

from __future__ import annotations

from pathlib import Path

import pytest

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--disable-gpu", "--no-sandbox", "--disable-dev-shm-usage"]


@pytest.fixture(scope="module")
def browser():
    """A Chromium browser for the module's tests (skips where there is none)."""
    if not CHROMIUM.is_file():
        pytest.skip(f"no {CHROMIUM}: run .ci/install-chromium (Debian's chromium package)")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.skip("no playwright: pip install '.[test]' (browser from .ci/install-chromium)")
    with sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


def open_page(browser, path: Path):
    """The page at ``path`` once loaded, and the list its console errors, page errors and
    failed requests are added to."""
    page = browser.new_page()
    problems: list[str] = []
    page.on("console", lambda m: m.type == "error" and problems.append(f"console: {m.text}"))
    page.on("pageerror", lambda e: problems.append(f"pageerror: {e}"))
    page.on("requestfailed", lambda r: problems.append(f"requestfailed: {r.url}"))
    page.goto(path.as_uri(), wait_until="load")
    return page, problems


def natural_widths(page) -> list[int]:
    """naturalWidth of every img once all are loaded eagerly and decoded."""
    return page.evaluate(
        """async () => {
        const imgs = Array.from(document.images);
        for (const img of imgs) { img.loading = 'eager'; }
        await Promise.all(imgs.map((img) => img.decode().catch(() => null)));
        return imgs.map((img) => img.naturalWidth);
    }"""
    )


def load_all(page) -> None:
    """Load every lazy image now (those that fail are replaced by their "missing" text)."""
    page.evaluate(
        """async () => { const imgs = Array.from(document.images);
        for (const img of imgs) img.loading = 'eager';
        await Promise.all(imgs.map((img) => new Promise((done) => {
          if (img.complete) return done();
          img.addEventListener('load', done); img.addEventListener('error', done); })));
        await new Promise((r) => setTimeout(r, 50)); }"""
    )
