"""The evaluation's report.html: offline, bounded, and working in a real headless Chromium."""

from __future__ import annotations

import dataclasses
import re
import shutil

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from plankton_store.report import (
    GALLERY_HTML,
    GALLERY_THUMBS_DIR,
    MOSAIC_LIMIT,
    REPORT_HTML,
    THUMBS_DIR,
    Pictures,
    gallery_html,
    write_report,
)

pytest.importorskip("plankton_store.ml._models")
from plankton_store.ml import evaluate, predict_source
from plankton_store.store import open_store
from tests import browser as chromium
from tests.browser import load_all, natural_widths, open_page

browser = chromium.browser  # the fixture


def quiet(_: str) -> None:
    pass


@pytest.fixture(scope="module")
def report(small_store, small_model, dask_client, tmp_path_factory):
    out = tmp_path_factory.mktemp("html-report")
    ev = evaluate(small_store, small_model, out, client=dask_client, progress=False, echo=quiet)
    return out, ev


def test_page_is_offline_and_its_thumbnails_exist(report):
    out, ev = report
    page = (out / REPORT_HTML).read_text()
    assert not re.search(r"(src|href)=\"(https?:)?//", page), "nothing loads from the network"
    assert '<link rel="stylesheet"' not in page and "<script src" not in page
    sources = re.findall(r'<img src="([^"]+)"', page)
    assert sources and all(s.startswith(f"{THUMBS_DIR}/") for s in sources)
    assert all((out / s).is_file() for s in set(sources))
    assert all('loading="lazy"' in tag for tag in re.findall(r"<img [^>]+>", page))
    mosaics = re.findall(r'<div class="mosaic" data-class[^>]*>(.*?)</div>\n', page)
    assert len(mosaics) == 3 * len(ev.class_names)
    assert all(0 <= m.count("<figure>") <= MOSAIC_LIMIT for m in mosaics)
    assert max(m.count("<figure>") for m in mosaics) > 0


def test_unreadable_images_say_so_instead_of_broken_icons(report, tmp_path):
    _, ev = report
    out = write_report(dataclasses.replace(ev, pictures=Pictures()), tmp_path / "moved")
    page = (out / REPORT_HTML).read_text()
    assert "<img " not in page and '<div class="missing">no image</div>' in page
    assert "not readable" in page
    assert not (out / THUMBS_DIR).exists()


@pytest.fixture
def page(browser, report):
    out, _ = report
    page, problems = open_page(browser, out / REPORT_HTML)
    yield page, problems
    page.close()


def test_page_loads_cleanly_and_every_image_decodes(page):
    page, problems = page
    widths = natural_widths(page)
    assert widths and all(w > 0 for w in widths), widths
    assert page.locator(".missing").count() == 0
    assert problems == []


def test_clicking_a_confusion_cell_shows_that_pairs_images(page, report):
    page, problems = page
    _, ev = report
    wrong = [(int(t), int(p)) for t, p in zip(ev.y_true, ev.y_pred, strict=True) if t != p]
    i, j = wrong[0] if wrong else (int(ev.y_true[0]), int(ev.y_pred[0]))
    n = sum(1 for t, p in zip(ev.y_true, ev.y_pred, strict=True) if (t, p) == (i, j))
    page.click(f'#confusion td[data-i="{i}"][data-j="{j}"]')
    captions = page.locator("#pair-images figcaption").all_text_contents()
    assert len(captions) == min(n, MOSAIC_LIMIT)
    names = ev.class_names
    assert all(c.startswith(f"{names[i]} → {names[j]} ") for c in captions), captions
    assert f"true {names[i]}, predicted {names[j]}" in page.inner_text("#pair-title")
    assert page.locator("#pair-images img[data-alt]").count() == len(captions)
    assert problems == []


def test_clicking_a_header_sorts_the_table(page):
    page, problems = page

    def column(k: int) -> list[str]:
        return page.locator(f"#per-class tbody tr td:nth-child({k})").all_text_contents()

    page.click("#per-class th:nth-child(5)")  # F1, ascending
    f1 = [float(v) for v in column(5) if v != "n/a"]
    assert f1 == sorted(f1)
    page.click("#per-class th:nth-child(5)")  # again: descending
    f1 = [float(v) for v in column(5) if v != "n/a"]
    assert f1 == sorted(f1, reverse=True) and len(set(f1)) > 1
    page.click("#per-class th:nth-child(1)")  # class names
    names = column(1)
    assert names == sorted(names, key=str.lower) or names == sorted(names)
    assert problems == []


def test_a_click_swaps_original_and_stored_image(page, report, small_store):
    page, problems = page
    out, _ = report
    height, width = open_store(small_store).image_size
    img = page.locator("#class-0 ~ .mosaic img").first
    original, stored = img.get_attribute("src"), img.get_attribute("data-alt")
    assert stored == original.replace(".png", ".stored.png") and (out / stored).is_file()
    load = "async (i) => { await i.decode(); return [i.getAttribute('src'), i.naturalWidth]; }"
    with Image.open(out / original) as im:
        assert img.evaluate(load) == [original, im.width]
    img.click()
    assert img.evaluate(load) == [stored, width] and "stored" in img.get_attribute("class")
    img.click()
    assert img.evaluate(load)[0] == original
    page.click("#toggle-all")
    assert page.locator("img[data-alt]:not(.stored)").count() == 0
    assert page.inner_text("#toggle-all") == "Show the original images"
    page.click("#toggle-all")
    assert page.locator("img.stored").count() == 0
    assert problems == []


def test_an_export_evaluation_shows_its_original_images(
    browser, small_export, small_model, dask_client, tmp_path
):
    evaluate(
        small_export,
        small_model,
        tmp_path,
        client=dask_client,
        progress=False,
        echo=quiet,
        skip_unknown_labels=True,
    )
    text = (tmp_path / REPORT_HTML).read_text()
    assert ">no image</div>" not in text and text.count("<img ") > 0
    assert 'data-alt="' not in text, "an export has no stored version"
    page, problems = open_page(browser, tmp_path / REPORT_HTML)
    assert "original images" in page.inner_text("#image-note")
    widths = natural_widths(page)
    assert widths and all(w > 0 for w in widths)
    assert problems == []
    page.close()


def test_a_deleted_thumbnail_shows_as_missing(browser, report, tmp_path):
    out, _ = report
    moved = tmp_path / "copy"
    shutil.copytree(out, moved)
    first = sorted((moved / THUMBS_DIR).glob("*[0-9].png"))[0]  # a shown original
    first.unlink()
    page = browser.new_page()
    page.goto((moved / REPORT_HTML).as_uri(), wait_until="load")
    load_all(page)
    assert f"missing: {THUMBS_DIR}/{first.name}" in page.inner_text("body")
    assert f"{THUMBS_DIR}/{first.name}" in page.inner_text("#missing")
    page.close()


@pytest.fixture(scope="module")
def gallery(small_export, small_model, dask_client, tmp_path_factory):
    out = tmp_path_factory.mktemp("gallery") / "predictions.csv"
    result = predict_source(small_export, small_model, out, dask_client, progress=False, echo=quiet)
    return out.parent, result


def test_gallery_has_a_bounded_mosaic_per_predicted_class(gallery):
    folder, result = gallery
    assert result.gallery == folder / GALLERY_HTML
    page = result.gallery.read_text()
    assert not re.search(r"(src|href)=\"(https?:)?//", page)
    predicted = result.predictions["predicted"]
    for name in set(predicted):
        assert f"{name} ({int((predicted == name).sum())})</h2>" in page
    mosaics = re.findall(r'<div class="mosaic"[^>]*>(.*?)</div>\n', page)
    counts = predicted.value_counts()
    assert len(mosaics) == predicted.nunique() + int((counts > MOSAIC_LIMIT).sum())
    assert all(m.count("<figure>") <= MOSAIC_LIMIT for m in mosaics)
    low = [float(c.rsplit(" ", 1)[1]) for c in re.findall(r"<figcaption>([^<]+)<", mosaics[0])]
    assert low == sorted(low), "lowest scores first"
    sources = re.findall(r'<img src="([^"]+)"', page)
    assert sources and all(s.startswith(f"{GALLERY_THUMBS_DIR}/") for s in sources)


def test_no_gallery_writes_none(small_export, small_model, dask_client, tmp_path):
    out = tmp_path / "predictions.csv"
    result = predict_source(
        small_export, small_model, out, dask_client, progress=False, echo=quiet, gallery=False
    )
    assert result.gallery is None and not (tmp_path / GALLERY_HTML).exists()
    assert not (tmp_path / GALLERY_THUMBS_DIR).exists()


def test_gallery_loads_cleanly_in_the_browser(browser, gallery):
    folder, _ = gallery
    page, problems = open_page(browser, folder / GALLERY_HTML)
    widths = natural_widths(page)
    assert widths and all(w > 0 for w in widths), widths
    assert page.locator(".missing").count() == 0
    assert problems == []
    page.close()


def test_gallery_shows_the_unclassified_bucket_with_best_guesses(tmp_path):
    frame = pd.DataFrame(
        {
            "label": ["a", "b", "a"],
            "predicted": ["a", "unclassified", "a"],
            "best_guess": ["a", "a", "a"],
            "probability": [0.9, 0.3, 0.8],
        }
    )
    grey = Pictures(originals=lambda rows: [np.full((10, 12), 128, np.uint8) for _ in rows])
    page = gallery_html("thresholds", frame, tmp_path, grey)
    assert "unclassified (1)</h2>" in page and "a (2)</h2>" in page
    assert "<figcaption>b → unclassified (best guess a) 0.30</figcaption>" in page
    assert "<figcaption>a → a 0.80</figcaption>" in page
    assert len(list((tmp_path / GALLERY_THUMBS_DIR).glob("*.png"))) == 3
