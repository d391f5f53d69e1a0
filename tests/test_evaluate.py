"""evaluate and compare on a small store with a tiny real scikit-learn model."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner
from PIL import Image
from sklearn.metrics import classification_report, f1_score

from jobs.compare import compare_command
from jobs.evaluate import evaluate_command
from plankton_store.ml import ModelMismatchError, evaluate, predict_proba_tta
from plankton_store.report import (
    INTERVAL_COLUMN,
    PAIRED_COLUMN,
    REPORT_FILES,
    compare_reports,
    per_class_table,
)
from plankton_store.report import _plots as plots
from plankton_store.store import open_store

pytest.importorskip("plankton_store.ml._models")
from plankton_store.ml import ModelInputs, load_model


def quiet(_: str) -> None:
    pass


@pytest.fixture(scope="module")
def report(small_store, small_model, dask_client, tmp_path_factory):
    out = tmp_path_factory.mktemp("report")
    ev = evaluate(small_store, small_model, out, client=dask_client, progress=False, echo=quiet)
    return out, ev


def test_every_report_file_exists_and_parses(report):
    out, ev = report
    for name in REPORT_FILES:
        assert (out / name).is_file() and (out / name).stat().st_size > 0, name
    summary = json.loads((out / "summary.json").read_text())
    for key in ("accuracy", "macro_f1", "weighted_f1", "balanced_accuracy", "top3_accuracy"):
        assert 0 <= summary[key] <= 1, key
    assert summary["top3_accuracy"] >= summary["accuracy"]
    for key in ("accuracy", "macro_f1"):  # bootstrap intervals around the figures
        low, high = summary["intervals"][key]
        assert 0 <= low <= summary[key] <= high <= 1 and low < high, key
    store = open_store(summary["data"]["source"])
    assert (
        summary["store_fingerprint"] == store.fingerprint == summary["model"]["store_fingerprint"]
    )
    assert len(summary["model_fingerprint"]) == 16 and summary["data"]["split"] == "test"
    assert not summary["notes"], "model and store match: nothing to warn about"
    per_class = pd.read_csv(out / "per_class.csv", keep_default_na=False)
    assert per_class.columns.tolist() == ["class", "support", "precision", "recall", "f1"]
    assert per_class["class"].tolist() == store.class_names
    for png in ("confusion.png", "per_class_f1.png"):
        with Image.open(out / png) as im:
            assert im.format == "PNG" and min(im.size) > 150
    md = (out / "report.md").read_text()
    worst = per_class.sort_values(["f1", "support"], ascending=[True, False])["class"]
    rows = [line.split("|")[1].strip() for line in md.splitlines() if line.startswith("| ")]
    listed = [r for r in rows if r in set(per_class["class"])]
    assert listed[: len(worst)] == worst.tolist()  # worst classes first
    assert "![Confusion matrix](confusion.png)" in md
    low, high = summary["intervals"]["macro_f1"]
    assert f"| macro f1 | {summary['macro_f1']:.3f} | {low:.3f}-{high:.3f} |" in md


def test_per_class_figures_equal_classification_report(report, small_store):
    out, ev = report
    predictions = pd.read_csv(out / "predictions.csv", keep_default_na=False)
    names = open_store(small_store).class_names
    expected = classification_report(
        predictions["label"],
        predictions["predicted"],
        labels=names,
        output_dict=True,
        zero_division=0,
    )
    per_class = pd.read_csv(out / "per_class.csv", keep_default_na=False)
    for row in per_class.itertuples(index=False):
        want = expected[row[0]]
        assert row.support == want["support"]
        assert row.precision == pytest.approx(want["precision"], abs=1e-6)
        assert row.recall == pytest.approx(want["recall"], abs=1e-6)
        assert row.f1 == pytest.approx(want["f1-score"], abs=1e-6)
    summary = json.loads((out / "summary.json").read_text())
    assert summary["accuracy"] == pytest.approx(expected["accuracy"])
    assert summary["weighted_f1"] == pytest.approx(expected["weighted avg"]["f1-score"])


def test_only_the_test_split_is_scored_and_dask_equals_direct(report, small_store, small_model):
    _, ev = report
    store = open_store(small_store)
    test = store.split_indices("test")
    np.testing.assert_array_equal(ev.ids["sample"], test)
    np.testing.assert_array_equal(ev.y_true, store.labels[test])
    model = load_model(small_model)
    direct = model.predict_proba(ModelInputs.from_store(store, test))
    np.testing.assert_allclose(ev.proba, direct, atol=1e-6)
    assert 0 < (ev.y_pred == ev.y_true).mean() < 1  # a real, imperfect model


def test_other_split_tta_and_in_process_path(small_store, small_model, tmp_path):
    ev = evaluate(small_store, small_model, tmp_path, "val", tta=True, progress=False, echo=quiet)
    store = open_store(small_store)
    val = store.split_indices("val")
    np.testing.assert_array_equal(ev.ids["sample"], val)
    model = load_model(small_model)
    inputs = ModelInputs.from_store(store, val)
    np.testing.assert_allclose(
        ev.proba, predict_proba_tta(model, inputs, model.resize_mode), atol=1e-6
    )
    assert json.loads((tmp_path / "summary.json").read_text())["tta"] is True


def test_a_model_of_another_class_list_is_refused(small_store, small_model, tmp_path):
    other = tmp_path / "other-model"
    shutil.copytree(small_model, other)
    meta = json.loads((other / "model.json").read_text())
    meta["class_names"] = [*meta["class_names"][1:], "radiolaria"]
    (other / "model.json").write_text(json.dumps(meta))
    with pytest.raises(ModelMismatchError, match="class lists differ") as err:
        evaluate(small_store, other, tmp_path / "out", progress=False, echo=quiet)
    message = str(err.value)
    assert "radiolaria" in message and repr(meta["label_column"]) in message
    assert not (tmp_path / "out").exists(), "nothing written for a refused model"
    result = CliRunner().invoke(
        evaluate_command, [small_store, "--model", str(other), "--out", str(tmp_path / "o2")]
    )
    assert result.exit_code == 1 and "class lists differ" in result.output


def test_an_export_with_labels_is_scored_directly(small_export, small_model, dask_client, tmp_path):
    with pytest.raises(ModelMismatchError, match="artefact"):
        evaluate(
            small_export, small_model, tmp_path, client=dask_client, progress=False, echo=quiet
        )
    ev = evaluate(
        small_export,
        small_model,
        tmp_path,
        client=dask_client,
        skip_unknown_labels=True,
        progress=False,
        echo=quiet,
    )
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["data"]["kind"] == "export"
    assert summary["n_samples"] == 196 - 6  # every labelled row but the 6 artefacts
    assert any("artefact" in note for note in summary["notes"])
    table = per_class_table(ev.y_true, ev.y_pred, ev.class_names)
    pd.testing.assert_frame_equal(table, pd.read_csv(tmp_path / "per_class.csv"), atol=1e-6)


def test_compare_side_by_side(report, small_store, small_model, tmp_path):
    first, _ = report
    second = tmp_path / "tta"
    evaluate(small_store, small_model, second, tta=True, progress=False, echo=quiet)
    overall, per_class, notes = compare_reports([first, second])
    assert overall["model"].tolist() == ["mlp:mlp", "mlp:mlp +TTA"] and not notes
    low, high = json.loads((first / "summary.json").read_text())["intervals"]["macro_f1"]
    assert overall[INTERVAL_COLUMN][0] == f"{low:.3f}-{high:.3f}"
    # The paired difference to the first report, computed from the two predictions.csv.
    a, b = (pd.read_csv(d / "predictions.csv", keep_default_na=False) for d in (first, second))
    want = f1_score(b["label"], b["predicted"], average="macro") - f1_score(
        a["label"], a["predicted"], average="macro"
    )
    cell = overall[PAIRED_COLUMN].tolist()
    assert cell[0] == "" and cell[1].startswith(f"{want:+.3f} [")
    low, high = (float(v) for v in cell[1].split("[")[1].rstrip("]").split(","))
    assert low <= want <= high
    for column, folder in zip(["mlp:mlp", "mlp:mlp +TTA"], [first, second], strict=True):
        f1 = pd.read_csv(folder / "per_class.csv").set_index("class")["f1"]
        assert per_class.set_index("class")[column].to_dict() == pytest.approx(f1.to_dict())
    out = tmp_path / "cmp"
    result = CliRunner().invoke(compare_command, [str(first), str(second), "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert pd.read_csv(out / "overall.csv").shape[0] == 2
    assert pd.read_csv(out / "per_class_f1.csv").shape[0] == len(per_class)
    md = (out / "comparison.md").read_text()
    assert "| mlp:mlp +TTA |" in md and "## F1 per class" in md and "paired" in md
    bad = CliRunner().invoke(compare_command, [str(tmp_path)])
    assert bad.exit_code == 2 and "summary.json" in bad.output


def test_plots_scale_with_forty_class_names(tmp_path):
    names = [f"Class name number {i} (Longfamilia)" for i in range(40)]
    rng = np.random.default_rng(0)
    rates = rng.dirichlet(np.ones(40) * 0.1, size=40)
    plots.confusion_png(rates, names, list(range(40)), tmp_path / "c.png")
    table = pd.DataFrame(
        {"class": names, "support": 5, "precision": 0.5, "recall": 0.5, "f1": rng.random(40)}
    )
    plots.per_class_f1_png(table, tmp_path / "f.png")
    with Image.open(tmp_path / "c.png") as c, Image.open(tmp_path / "f.png") as f:
        # >= 0.26 inch per class row at 110 dpi: 8 pt names cannot overlap.
        assert c.size[1] >= 40 * 0.26 * plots.DPI and f.size[1] >= 40 * 0.26 * plots.DPI
