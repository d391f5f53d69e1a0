"""explore's index.html, and every page where the original images are not reachable.

Checked on disk (offline, bounded, one mosaic per class) and in a real headless Chromium:
the page loads with no error, every image decodes, the tables sort; a store whose export was
moved shows its stored images and says so; deleted thumbnails are listed as missing.
"""

from __future__ import annotations

import io
import re
import shutil
import zipfile

import numpy as np
import pytest
from PIL import Image

from plankton_store.report import (
    EXPLORE_HTML,
    MOSAIC_LIMIT,
    REPORT_HTML,
    THUMBS_DIR,
    explore,
)
from plankton_store.store import open_store
from tests import browser as chromium
from tests.browser import load_all, natural_widths, open_page
from tests.conftest import SMALL_STORE_OPTIONS, write_flowcam_export

browser = chromium.browser  # the fixture


def quiet(_: str) -> None:
    pass


def images(page_text: str) -> list[str]:
    return re.findall(r"<img [^>]+>", page_text)


@pytest.fixture(scope="module")
def explored(small_store, tmp_path_factory):
    out = tmp_path_factory.mktemp("explore-html")
    explore(small_store, out)
    return out


def test_index_counts_every_class_and_bounds_its_mosaics(explored, small_store):
    page = (explored / EXPLORE_HTML).read_text()
    assert not re.search(r"(src|href)=\"(https?:)?//", page), "nothing loads from the network"
    assert "<script src" not in page and '<link rel="stylesheet"' not in page
    counts = open_store(small_store).counts()
    mosaics = dict(re.findall(r'<div class="mosaic" data-class="([^"]+)">(.*?)</div>', page))
    table = re.search(r'<table id="class-counts".*?</table>', page, re.S).group(0)
    for name in set(open_store(small_store).class_names):
        assert f">{name}</a></td>" in table
        assert name in mosaics
    for name, figures in mosaics.items():
        n = int(re.search(rf'<h3 id="class-\d+">{re.escape(name)} \((\d+)\)</h3>', page)[1])
        assert figures.count("<figure>") == min(n, MOSAIC_LIMIT)
    assert counts  # the store has per-class counts to show
    tags = images(page)
    assert tags and all('loading="lazy"' in t for t in tags)
    for tag in tags:  # originals (the export is there), each with its stored image
        src, alt = re.search(r'src="([^"]+)" data-alt="([^"]+)"', tag).groups()
        assert src.startswith(f"{THUMBS_DIR}/") and alt.endswith(".stored.png")
        assert (explored / src).is_file() and (explored / alt).is_file()
    assert page.count("<svg") == 3, "height, width and area histograms"


def test_index_loads_cleanly_and_sorts(browser, explored):
    page, problems = open_page(browser, explored / EXPLORE_HTML)
    widths = natural_widths(page)
    assert widths and all(w > 0 for w in widths), widths
    assert page.locator(".missing").count() == 0 and page.locator("#missing").is_hidden()

    def column(k: int) -> list[str]:
        return page.locator(f"#class-counts tbody tr td:nth-child({k})").all_text_contents()

    page.click("#class-counts th:nth-child(2)")  # images, ascending
    n = [int(v) for v in column(2)]
    assert n == sorted(n) and len(set(n)) > 1
    page.click("#class-counts th:nth-child(2)")  # again: descending
    assert [int(v) for v in column(2)] == sorted(n, reverse=True)
    page.click("#class-counts th:nth-child(1)")
    names = column(1)
    assert names == sorted(names, key=str.lower) or names == sorted(names)
    page.click("#sizes th:nth-child(5)")  # median area
    area = [float(v) for v in page.locator("#sizes tbody td:nth-child(5)").all_text_contents()]
    assert area == sorted(area)
    assert problems == []
    page.close()


def test_a_deleted_thumbnail_is_listed_at_the_top(browser, explored, tmp_path):
    moved = tmp_path / "moved-report"
    shutil.copytree(explored, moved)
    gone = sorted((moved / THUMBS_DIR).glob("*[0-9].png"))[:2]
    for path in gone:
        path.unlink()
    page = browser.new_page()
    page.goto((moved / EXPLORE_HTML).as_uri(), wait_until="load")
    load_all(page)
    notice = page.inner_text("#missing")
    assert page.locator("#missing").is_visible() and notice.startswith("2 image files")
    for path in gone:
        assert f"{THUMBS_DIR}/{path.name}" in notice
        assert f"missing: {THUMBS_DIR}/{path.name}" in page.inner_text("body")
    assert page.evaluate("Array.from(document.images).every((i) => i.naturalWidth > 0)")
    page.close()


@pytest.fixture(scope="module")
def moved_store(small_export, dask_client, tmp_path_factory):
    """A store whose export was moved away after the build."""
    from plankton_store.store import BuildOptions, build_store

    root = tmp_path_factory.mktemp("moved")
    shutil.copytree(small_export, root / "export")
    store = str(root / "store.zarr")
    build_store(
        str(root / "export"),
        store,
        BuildOptions(**SMALL_STORE_OPTIONS),
        dask_client,
        progress=False,
        echo=quiet,
    )
    (root / "export").rename(root / "export-elsewhere")
    return store


def test_a_moved_export_shows_the_stored_images_and_says_so(browser, moved_store, tmp_path):
    explore(moved_store, tmp_path)
    text = (tmp_path / EXPLORE_HTML).read_text()
    tags = images(text)
    assert tags and all('class="stored"' in t and 'data-alt="' not in t for t in tags)
    assert 'id="toggle-all"' not in text
    page, problems = open_page(browser, tmp_path / EXPLORE_HTML)
    note = page.inner_text("#image-note")
    assert "not reachable" in note and "export" in note and "stored" in note
    height, width = open_store(moved_store).image_size
    assert set(natural_widths(page)) == {width}
    assert problems == []
    page.close()


def test_evaluating_a_moved_store_falls_back_to_stored_images(
    browser, moved_store, small_model, dask_client, tmp_path
):
    from plankton_store.ml import evaluate

    evaluate(moved_store, small_model, tmp_path, client=dask_client, progress=False, echo=quiet)
    page, problems = open_page(browser, tmp_path / REPORT_HTML)
    assert "not reachable" in page.inner_text("#image-note")
    assert page.locator("img:not(.stored)").count() == 0 and page.locator("img").count() > 0
    assert all(w > 0 for w in natural_widths(page))
    assert problems == []
    page.close()


def test_an_export_page_shows_originals_and_names_unreadable_ones(browser, tmp_path):
    export = write_flowcam_export(tmp_path / "export", {"copepod": 5, "egg": 2}, seed=3)
    with zipfile.ZipFile(export / "imgs.zip", "a") as zf:
        zf.writestr("imgs/9999.jpg", b"garbage")
    meta = (export / "meta.csv").read_text()
    (export / "meta.csv").write_text(meta + "9999,validated,egg_fine,egg\n")
    explore(export, tmp_path / "report")
    text = (tmp_path / "report" / EXPLORE_HTML).read_text()
    assert len(images(text)) == 7 and 'data-alt="' not in text and 'class="stored"' not in text
    assert text.count('<div class="missing">no image</div>') == 1
    page, problems = open_page(browser, tmp_path / "report" / EXPLORE_HTML)
    assert "1 image could not be read" in page.inner_text("#image-note")
    assert all(w > 0 for w in natural_widths(page))
    assert problems == []
    page.close()


def test_originals_follow_each_version_to_its_export(dask_client, tmp_path):
    """Build from one export, ingest another, move the second away: the build's samples
    show their own original (by objid), the ingest's their stored image, and the note
    names the missing export."""
    from plankton_store.report import THUMB_SIZE, store_pictures
    from plankton_store.store import format as fmt
    from plankton_store.store import ingest_store
    from tests.test_ingest import _build, _subset

    full = write_flowcam_export(tmp_path / "full", {"detritus": 60, "copepod": 30})
    first = _subset(full, tmp_path / "a", lambda i, _: i < 1045)
    second = _subset(full, tmp_path / "b", lambda i, _: i >= 1045)
    store = _build(first, tmp_path / "s.zarr", dask_client)
    ingest_store(store, str(second), dask_client, progress=False, echo=quiet)
    (tmp_path / "b").rename(tmp_path / "b-moved")
    st = open_store(store)
    kept = (st.array(fmt.AUGMENTATION)[:] == 0) & (st.splits != fmt.Split.REJECTED)
    originals = np.flatnonzero(kept)
    pictures = store_pictures(st, originals)
    objids = st.array(fmt.OBJID)[:][originals]
    rows = np.arange(len(originals))
    read = pictures.originals(rows)
    stored = pictures.stored(rows)
    assert all(s.shape == tuple(st.image_size) for s in stored)
    with zipfile.ZipFile(first / "imgs.zip") as zf:
        for pixels, objid in zip(read, objids, strict=True):
            if objid >= 1045:
                assert pixels is None
                continue
            with Image.open(io.BytesIO(zf.read(f"imgs/{objid}.jpg"))) as im:
                im = im.convert("L")
                im.thumbnail((THUMB_SIZE, THUMB_SIZE))
                assert np.array_equal(pixels, np.asarray(im))
    assert (objids >= 1045).any() and (objids < 1045).any()
    assert str(second) in pictures.note and "not reachable" in pictures.note
    assert str(first) not in pictures.note
