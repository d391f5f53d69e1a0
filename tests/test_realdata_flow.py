"""Opt-in: the whole flow on a small sample of the real NDSB images (skipped when absent)."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from jobs.cli import main
from plankton_store.store import open_store
from tests.conftest import NDSB_DEV

pytestmark = [
    pytest.mark.realdata,
    pytest.mark.skipif(not NDSB_DEV.is_dir(), reason=f"real export not found at {NDSB_DEV}"),
]


def run(*args: str) -> str:
    result = CliRunner().invoke(main, list(args))
    assert result.exit_code == 0, result.output
    return result.output


@pytest.mark.parametrize("label_column", ["level2", "level1"])
def test_build_train_evaluate_predict_on_real_images(tmp_path, label_column):
    store = tmp_path / "ndsb.zarr"
    output = run(
        "build-store", str(NDSB_DEV), str(store), "--label-column", label_column,
        "--max-per-class", "40", "--augment-below", "0", "--resize", "pad",
        "--size", "32x32", "--workers", "2", "--keep-all-classes", "--compute-features",
    )  # fmt: skip
    assert "Rows read 21233 = stored" in output
    opened = open_store(str(store))
    assert len(opened.class_names) == (35 if label_column == "level2" else 121)
    # The real images are RGB JPEGs with equal channels: stored as gray, sizes kept.
    assert (opened.array("orig_height")[:] >= 21).all()
    assert opened.images[:50].std() > 10

    # The default recipe (cnn: any-angle rotations on this padded store, cosine schedule).
    model = tmp_path / "cnn"
    output = run("train", str(store), "--out", str(model), "--epochs", "8", "--threads", "1")
    assert "balance sqrt" in output
    # Pooled with gradient boosting on the features computed from the images.
    features = tmp_path / "features"
    run("train", str(store), "--model", "features", "--out", str(features), "--epochs", "5")
    pool = tmp_path / "pool"
    run("ensemble", str(store), "--member", str(model), "--member", str(features),
        "--out", str(pool), "--tta")  # fmt: skip
    weights = json.loads((pool / "model.json").read_text())["weights"]
    assert len(weights) == 2 and sum(weights) == pytest.approx(1.0)
    model = pool
    report = tmp_path / "report"
    output = run("evaluate", str(store), "--model", str(model), "--out", str(report),
                 "--workers", "1", "--tta")  # fmt: skip
    summary = json.loads((report / "summary.json").read_text())
    low, high = summary["intervals"]["macro_f1"]
    assert f"macro f1 {summary['macro_f1']:.3f} [{low:.3f}-{high:.3f}]" in output
    chance = 1 / len(opened.class_names)
    assert summary["accuracy"] > 2 * chance
    assert len(pd.read_csv(report / "per_class.csv")) == len(opened.class_names)

    predictions = tmp_path / "predictions.csv"
    sample = tmp_path / "sample"
    (sample / "unlabelled").mkdir(parents=True)
    import zipfile

    with zipfile.ZipFile(NDSB_DEV / "imgs.zip") as zf:
        for name in zf.namelist()[:20]:
            (sample / "unlabelled" / name.split("/")[-1]).write_bytes(zf.read(name))
    run("predict", str(sample / "unlabelled"), "--model", str(model), "--out", str(predictions),
        "--workers", "1", "--tta")  # fmt: skip
    table = pd.read_csv(predictions)
    assert len(table) == 20 and table["predicted"].isin(opened.class_names).all()
    assert np.allclose(table["probability"].between(0, 1), True)
