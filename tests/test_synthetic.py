"""Tests of the synthetic export (plankton_store.demo) and the make-demo-data job."""

from __future__ import annotations

import io
import re
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner
from PIL import Image

from plankton_store import demo
from plankton_store.demo import _render
from plankton_store.io import FEATURE_COLUMNS, META_FILE, SIZE_COLUMNS, TAXO_FILE, ZIP_NAME

SCALE = 0.003
SEED = 7


@pytest.fixture(scope="module")
def export(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("export")
    return demo.make_demo_export(out, scale=SCALE, seed=SEED, workers=1, progress=False)


def read_meta(export: Path) -> pd.DataFrame:
    return pd.read_csv(export / META_FILE, keep_default_na=False)


def test_expected_counts() -> None:
    full = demo.expected_level2_counts(1.0)
    assert sum(full.values()) == 243_610
    assert full[demo.EMPTY_LABEL] == 1003 == demo.EMPTY_LABEL_COUNT
    assert len(demo.expected_level2_counts(1.0, include_empty=False)) == 39
    small = demo.expected_level2_counts(0.001)
    assert small["Bacteriastrum"] == demo.MIN_CLASS_COUNT
    assert small["detritus"] == 138
    with pytest.raises(ValueError):
        demo.expected_level2_counts(0)


def test_every_class_has_a_recipe_and_lineage() -> None:
    for row in demo.taxonomy_table():
        assert row["level1"] in demo.RECIPES
        assert demo.RECIPES[row["level1"]].shape in demo.SHAPES
        assert row["lineage"].endswith(row["unique_name"]) or row["level1"] == row["level2"]
    assert set(demo.LINEAGES) == set(demo.LEVEL2_COUNTS)


def test_level2_counts_in_meta(export: Path) -> None:
    meta = read_meta(export)
    assert tuple(meta.columns) == demo.META_COLUMNS
    assert meta["level2"].value_counts().to_dict() == demo.expected_level2_counts(SCALE)


def test_level1_nested_in_level2(export: Path) -> None:
    meta = read_meta(export)
    assert (meta.groupby("level1")["level2"].nunique() == 1).all()
    assert ((meta["level1"] == "") == (meta["level2"] == "")).all()
    assert meta.loc[meta["level2"] == "detritus", "level1"].nunique() >= 2
    taxo = pd.read_csv(export / TAXO_FILE)
    assert tuple(taxo.columns) == demo.TAXO_COLUMNS
    assert taxo["level1"].is_unique
    labelled = meta[meta["level1"] != ""]
    pairs = set(zip(labelled["level1"], labelled["level2"], strict=True))
    assert pairs <= set(zip(taxo["level1"], taxo["level2"], strict=True))
    assert taxo["count"].sum() == len(labelled)


def test_meta_values_plausible(export: Path) -> None:
    meta = read_meta(export)
    objid = meta["objid"].to_numpy()
    assert objid.min() >= 10_000_000 and (np.diff(objid) > 0).all()
    assert not (np.diff(objid) == 1).all()
    # Classes interleaved: consecutive rows change class most of the time.
    assert (meta["level2"].to_numpy()[1:] != meta["level2"].to_numpy()[:-1]).mean() > 0.4
    assert (meta["status"] == "validated").all()
    assert meta["objdate"].map(lambda s: bool(re.fullmatch(r"\d{4}-\d\d-\d\d", s))).all()
    assert meta["objtime"].map(lambda s: bool(re.fullmatch(r"\d\d:\d\d:\d\d", s))).all()
    assert meta["latitude"].between(-90, 90).all() and meta["longitude"].between(-180, 180).all()
    assert (meta["depth_min"] <= meta["depth_max"]).all()
    assert (meta["lineage"].str.len() > 0).all() and (meta["unique_name"].str.len() > 0).all()


def test_size_sampling_quartiles() -> None:
    rng = np.random.default_rng(0)
    counts = demo.expected_level2_counts(1.0)
    names = [l1 for l2 in demo.LEVEL2_COUNTS for l1, _ in demo.level1_classes(l2)] + [""]
    weights = np.array(
        [counts[l2] * s for l2 in demo.LEVEL2_COUNTS for _, s in demo.level1_classes(l2)]
        + [counts[""]]
    )
    picks = rng.choice(len(names), 3000, p=weights / weights.sum())
    hw = np.array([demo.sample_image_size(names[k], rng) for k in picks])
    np.testing.assert_allclose(np.percentile(hw[:, 0], [25, 50, 75]), [70, 109, 166], rtol=0.15)
    np.testing.assert_allclose(np.percentile(hw[:, 1], [25, 50, 75]), [50, 73, 122], rtol=0.15)
    assert hw[:, 0].min() >= 9 and hw[:, 0].max() <= 739
    assert hw[:, 1].min() >= 6 and hw[:, 1].max() <= 972


def test_images_and_features(export: Path) -> None:
    meta = read_meta(export)
    feats = pd.read_csv(export / demo.FEATURES_FILE)
    assert tuple(feats.columns) == ("objid", *FEATURE_COLUMNS)
    assert (feats["objid"].to_numpy() == meta["objid"].to_numpy()).all()
    assert feats[list(SIZE_COLUMNS)].notna().all().all()
    with zipfile.ZipFile(export / ZIP_NAME) as zf:
        infos = zf.infolist()
        assert [i.filename for i in infos] == [f"imgs/{o}.jpg" for o in meta["objid"]]
        assert all(i.compress_type == zipfile.ZIP_STORED for i in infos)
        filled = []
        for k in range(0, len(meta), 7):
            img = Image.open(io.BytesIO(zf.read(infos[k])))
            assert (img.format, img.mode) == ("JPEG", "L")
            # Image size is the one drawn for this row, whatever the class.
            level1 = meta["level1"].iat[k]
            h, w = demo.sample_image_size(level1, demo.image_rng(SEED, k))
            assert img.size == (w, h)
            a = np.asarray(img)
            border = np.concatenate([a[0], a[-1], a[:, 0], a[:, -1]])
            assert np.median(border) > 185  # light background
            assert a.min() < np.median(border) - 30  # dark object
            f = feats.iloc[k]
            assert 0 < f["width"] <= w and 0 < f["height"] <= h
            assert f["area"] > 0
            filled.append(max(f["width"] / w, f["height"] / h))
    # The object spans most of its image along one side at least, like a FlowCam crop.
    assert np.mean(np.array(filled) > 0.6) > 0.8


def test_nan_cells_only_in_non_size_columns(monkeypatch: pytest.MonkeyPatch) -> None:
    # render_row reads NAN_FRACTION from the module that defines it.
    monkeypatch.setattr(_render, "NAN_FRACTION", 1.0)
    _, values = demo.render_row(0, 0, "detritus")
    for name, v in zip(FEATURE_COLUMNS, values, strict=True):
        assert np.isnan(v) == (name not in SIZE_COLUMNS)


@pytest.mark.parametrize("level1", sorted(demo.RECIPES))
def test_every_class_renders(level1: str) -> None:
    img = demo.render_image(level1, np.random.default_rng(1), size=(90, 70))
    assert img.shape == (90, 70) and img.dtype == np.uint8
    assert np.median(img[0]) > 185 and img.min() < np.median(img[0]) - 30


def test_deterministic_and_independent_of_workers(export: Path, tmp_path: Path) -> None:
    again = demo.make_demo_export(tmp_path / "a", scale=SCALE, seed=SEED, workers=2, progress=False)
    for name in (META_FILE, TAXO_FILE, demo.FEATURES_FILE, ZIP_NAME):
        assert (again / name).read_bytes() == (export / name).read_bytes(), name
    other = demo.make_meta(SCALE, SEED + 1)
    assert [r["level2"] for r in other] != read_meta(export)["level2"].tolist()


def test_cli(tmp_path: Path) -> None:
    from jobs.cli import main

    runner = CliRunner()
    out, png = tmp_path / "demo", tmp_path / "sheet.png"
    args = ["make-demo-data", str(out), "--scale", "0.0005", "--seed", "3", "--workers", "1"]
    res = runner.invoke(main, [*args, "--preview", str(png)])
    assert res.exit_code == 0, res.output
    assert "rows" in res.output and "images/s" in res.output
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert sorted(p.name for p in out.iterdir()) == sorted(
        [META_FILE, TAXO_FILE, demo.FEATURES_FILE, ZIP_NAME]
    )
    refused = runner.invoke(main, args)
    assert refused.exit_code != 0 and "not empty" in refused.output
    assert runner.invoke(main, [*args, "--overwrite"]).exit_code == 0
    bad = runner.invoke(main, ["make-demo-data", str(tmp_path / "x"), "--scale", "0"])
    assert bad.exit_code != 0 and "scale" in bad.output
    help_text = runner.invoke(main, ["make-demo-data", "--help"]).output
    assert "--scale" in help_text and "default: 0.01" in help_text
