"""Per-class thresholds and error-corrected abundances on data with known confusion."""

from __future__ import annotations

import json

import numpy as np
import pytest

from plankton_store.ml import apply_thresholds, fit_thresholds, load_thresholds, save_thresholds
from plankton_store.report import adjusted_counts, confusion_rates, estimate_abundance, fit_val

RATES = np.array([[0.8, 0.15, 0.05], [0.1, 0.7, 0.2], [0.0, 0.25, 0.75]])


def _val_pairs(per_class: int) -> tuple[np.ndarray, np.ndarray]:
    """Val labels and predictions whose confusion rates are exactly RATES."""
    y_true, y_pred = [], []
    for i, row in enumerate(RATES):
        for j, rate in enumerate(row):
            n = round(rate * per_class)
            y_true += [i] * n
            y_pred += [j] * n
    return np.array(y_true), np.array(y_pred)


def test_confusion_rates_match_the_generating_matrix() -> None:
    y_true, y_pred = _val_pairs(100)
    np.testing.assert_allclose(confusion_rates(y_true, y_pred, 3), RATES)


def test_corrected_counts_are_exact_at_the_expected_predictions() -> None:
    truth = np.array([900.0, 60.0, 40.0])
    expected_predictions = RATES.T @ truth
    np.testing.assert_allclose(adjusted_counts(expected_predictions, RATES), truth, atol=1e-9)
    raw_error = np.abs(expected_predictions - truth).sum()
    assert raw_error > 100  # the raw counts are badly biased for this mix


def test_corrected_counts_are_never_negative() -> None:
    corrected = adjusted_counts(np.array([0.0, 100.0, 0.0]), RATES)
    assert (corrected >= 0).all()


def test_intervals_cover_a_shifted_sample_and_correction_beats_raw() -> None:
    rng = np.random.default_rng(1)
    y_true, y_pred = _val_pairs(400)
    truth = np.array([700, 50, 250])
    sample_true = np.repeat(np.arange(3), truth)
    sample_pred = np.array([rng.choice(3, p=RATES[t]) for t in sample_true])
    fit = fit_val(y_true, y_pred, 3, resamples=100, seed=0)
    est = estimate_abundance(fit, sample_pred, method="acc", seed=0)
    assert np.abs(est.corrected - truth).sum() < np.abs(est.raw - truth).sum() / 2
    assert ((est.low <= truth) & (truth <= est.high)).all()
    assert (est.low >= 0).all()


def test_an_empty_group_is_named_in_the_error() -> None:
    fit = fit_val(*_val_pairs(10), 3, resamples=5)
    with pytest.raises(ValueError, match="empty group"):
        estimate_abundance(fit, np.array([], dtype=int), method="acc")


def _val_proba(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Class 0 right when confident; half of class 1 called 0 at low confidence; class 2
    has 3 examples only."""
    rng = np.random.default_rng(seed)
    y = np.r_[np.zeros(n, int), np.ones(n, int), np.full(3, 2)]
    guess = y.copy()
    conf = rng.uniform(0.5, 1.0, y.size)
    wrong = np.arange(n, 2 * n, 2)
    guess[wrong] = 0
    conf[wrong] = rng.uniform(0.35, 0.6, wrong.size)
    proba = np.repeat(((1 - conf) / 2)[:, None], 3, axis=1)
    proba[np.arange(y.size), guess] = conf
    return y, proba


def test_thresholds_reach_the_target_and_small_classes_are_never_auto() -> None:
    y, proba = _val_proba(300, 0)
    thresholds = fit_thresholds(y, proba, target_precision=0.9)
    assert np.isinf(thresholds[2])  # 3 perfect examples: the Wilson bound stays below 0.9
    assert np.isfinite(thresholds[0])
    pred, kept = apply_thresholds(proba, thresholds)
    assert kept.any() and not kept.all()
    assert (pred[kept & (pred == 0)] == y[kept & (pred == 0)]).mean() >= 0.9
    # fitted on val only: fresh data drawn the same way keeps the precision
    y2, proba2 = _val_proba(300, 1)
    pred2, kept2 = apply_thresholds(proba2, thresholds)
    assert (pred2[kept2] == y2[kept2]).mean() >= 0.85


def test_thresholds_round_trip_and_name_missing_classes(tmp_path) -> None:
    thresholds = np.array([0.5, np.inf, 0.7])
    save_thresholds(tmp_path, ["a", "b", "c"], thresholds, split="val")
    np.testing.assert_array_equal(load_thresholds(tmp_path, ["a", "b", "c"]), thresholds)
    assert load_thresholds(tmp_path / "none", ["a"]) is None
    with pytest.raises(ValueError, match="'d'"):
        load_thresholds(tmp_path, ["a", "d"])


def test_thresholds_and_abundance_jobs(small_store, small_model, tmp_path) -> None:
    import shutil

    import pandas as pd
    from click.testing import CliRunner

    from jobs.abundance import abundance_command
    from jobs.thresholds import thresholds_command
    from plankton_store.ml import fit_store_thresholds, read_model_info, save_probabilities
    from plankton_store.ml._modeldir import ABUNDANCE_MARGINS_JSON, VAL_SCORES_NPZ
    from plankton_store.report import IntervalMargins

    model = tmp_path / "model"
    shutil.copytree(small_model, model)
    with pytest.raises(ValueError, match="never fitted on the test split"):
        fit_store_thresholds(small_store, model, split="test")
    result = CliRunner().invoke(thresholds_command, [small_store, "--model", str(model)])
    assert result.exit_code == 0, result.output
    assert "bundance interval margins" in result.output  # fitted, or why not (val too small)
    classes = read_model_info(model).class_names
    assert load_thresholds(model, classes).shape == (len(classes),)

    assert (model / VAL_SCORES_NPZ).exists()

    rng = np.random.default_rng(0)
    frame = pd.DataFrame(
        {
            "objid": np.arange(60),
            "predicted": rng.choice(classes, 60),
            "sample_id": np.repeat(["s1", "s2"], 30),
            "litres": np.repeat([2.0, 4.0], 30),
        }
    )
    frame.to_csv(tmp_path / "predictions.csv", index=False)
    args = [str(tmp_path / "predictions.csv"), "--model", str(model), "--out", str(tmp_path)]
    # em (the default) needs every object's probabilities: predict --probabilities
    result = CliRunner().invoke(abundance_command, [*args, "--by", "sample_id"])
    assert result.exit_code != 0 and "--probabilities" in result.output
    result = CliRunner().invoke(abundance_command, [*args, "--by", "sample_id", "-v", "litres"])
    assert result.exit_code != 0  # -v is not an option
    acc = [*args, "--by", "sample_id", "--method", "acc", "--resamples", "20"]
    result = CliRunner().invoke(abundance_command, [*acc, "--volume-column", "litres"])
    assert result.exit_code == 0, result.output
    table = pd.read_csv(tmp_path / "abundance.csv")
    assert set(table["group"]) == {"s1", "s2"} and len(table) == 2 * len(classes)
    assert (table["corrected_count"] >= 0).all() and (table["low"] <= table["high"]).all()
    s1 = table[table["group"] == "s1"]
    assert s1["raw_count"].sum() == 30
    np.testing.assert_allclose(s1["concentration"], s1["corrected_count"] / 2.0)
    assert (tmp_path / "abundance.png").stat().st_size > 0

    proba = rng.dirichlet(np.ones(len(classes)), 60)
    frame["predicted"] = np.asarray(classes)[proba.argmax(axis=1)]
    frame.to_csv(tmp_path / "predictions.csv", index=False)
    save_probabilities(tmp_path / "predictions.csv", frame["objid"], proba, classes)
    em = [*args, "--by", "sample_id", "--resamples", "20"]
    result = CliRunner().invoke(abundance_command, em)
    assert result.exit_code == 0, result.output
    table = pd.read_csv(tmp_path / "abundance.csv")
    assert (table["corrected_count"] >= 0).all()
    for group in ("s1", "s2"):
        assert table.loc[table["group"] == group, "corrected_count"].sum() == pytest.approx(30)
    # known margins: the same bootstrap intervals, widened by exactly them; none: a note
    margins = IntervalMargins({"em": [0.1] * 4}, {"em": [0.2] * 4}, pairs=1)  # 3, 6 of 30
    (model / ABUNDANCE_MARGINS_JSON).write_text(json.dumps(margins.to_json()))
    result = CliRunner().invoke(abundance_command, em)
    assert result.exit_code == 0 and "plain bootstrap" not in result.output, result.output
    widened = pd.read_csv(tmp_path / "abundance.csv")
    (model / ABUNDANCE_MARGINS_JSON).unlink()
    result = CliRunner().invoke(abundance_command, em)
    assert result.exit_code == 0 and "plain bootstrap" in result.output, result.output
    plain = pd.read_csv(tmp_path / "abundance.csv")
    np.testing.assert_array_equal(widened["corrected_count"], plain["corrected_count"])
    np.testing.assert_array_equal(widened["low"], np.maximum(np.floor(plain["low"] - 3), 0))
    np.testing.assert_array_equal(widened["high"], np.ceil(plain["high"] + 6))
    save_probabilities(
        tmp_path / "predictions.csv", frame["objid"], proba, [f"x{c}" for c in classes]
    )
    result = CliRunner().invoke(abundance_command, em)
    assert result.exit_code != 0 and "another model" in result.output

    missing = CliRunner().invoke(abundance_command, [*args, "--method", "acc", "--by", "station"])
    assert missing.exit_code != 0 and "'station'" in missing.output
    frame.loc[0, "predicted"] = "not-a-class"
    frame.to_csv(tmp_path / "predictions.csv", index=False)
    other = CliRunner().invoke(abundance_command, acc)
    assert other.exit_code != 0 and "not-a-class" in other.output


def test_predict_marks_unclassified_and_keeps_columns(
    small_store, small_export, small_model, dask_client, tmp_path
) -> None:
    import shutil

    from plankton_store.ml import (
        UNCLASSIFIED,
        load_probabilities,
        predict_source,
        read_model_info,
    )

    model = tmp_path / "model"
    shutil.copytree(small_model, model)
    classes = read_model_info(model).class_names
    thresholds = np.full(len(classes), np.inf)
    thresholds[classes.index("detritus")] = 0.0  # only detritus is auto-classified
    save_thresholds(model, classes, thresholds)
    kwargs = {"progress": False, "echo": lambda _: None}
    out = tmp_path / "p.csv"
    result = predict_source(
        small_export,
        model,
        out,
        dask_client,
        keep_columns=("level2",),
        probabilities=True,
        **kwargs,
    )
    frame = result.predictions
    proba = load_probabilities(out, frame, classes)
    assert proba.shape == (len(frame), len(classes))
    np.testing.assert_array_equal(np.asarray(classes)[proba.argmax(axis=1)], frame["best_guess"])
    with pytest.raises(ValueError, match="no row"):
        load_probabilities(out, frame.assign(objid=frame["objid"] + 10**6), classes)
    assert set(frame["predicted"]) <= {"detritus", UNCLASSIFIED}
    guessed_other = frame["best_guess"] != "detritus"
    assert guessed_other.any()
    assert (frame.loc[guessed_other, "predicted"] == UNCLASSIFIED).all()
    assert "level2" in frame.columns
    plain = predict_source(small_export, model, out, dask_client, use_thresholds=False, **kwargs)
    assert UNCLASSIFIED not in set(plain.predictions["predicted"])
    assert "best_guess" not in plain.predictions.columns
    with pytest.raises(FileNotFoundError, match="--probabilities"):
        load_probabilities(tmp_path / "other.csv", plain.predictions, classes)
    with pytest.raises(ValueError, match="'station'"):
        predict_source(small_export, model, out, dask_client, keep_columns=("station",), **kwargs)


def test_evaluate_reports_thresholds_and_living_macro_f1(small_store, small_model, tmp_path):
    import json
    import shutil

    import pandas as pd
    from click.testing import CliRunner

    from jobs.evaluate import evaluate_command
    from plankton_store.ml import read_model_info

    model = tmp_path / "model"
    shutil.copytree(small_model, model)
    classes = read_model_info(model).class_names
    save_thresholds(model, classes, np.full(len(classes), 0.5))
    out = tmp_path / "report"
    args = [small_store, "--model", str(model), "--out", str(out)]
    result = CliRunner().invoke(evaluate_command, args)
    assert result.exit_code == 0, result.output
    summary = json.loads((out / "summary.json").read_text())
    assert 0 <= summary["thresholds"]["share_auto_classified"] <= 1
    table = pd.read_csv(out / "per_class_thresholds.csv")
    assert list(table["class"]) == classes and "unclassified" not in set(table["class"])
    assert (table["recall_thresholded"] <= table["recall"] + 1e-12).all()
    # every class non-living but one: living macro-F1 is that class's F1 alone
    keep = classes[0]
    others = ",".join(c for c in classes if c != keep)
    result = CliRunner().invoke(
        evaluate_command, [*args, "--no-thresholds", "--non-living", others]
    )
    assert result.exit_code == 0, result.output
    summary = json.loads((out / "summary.json").read_text())
    assert "thresholds" not in summary
    per_class = pd.read_csv(out / "per_class.csv").set_index("class")
    assert summary["living_macro_f1"] == pytest.approx(per_class.loc[keep, "f1"], abs=1e-3)


def test_val_scores_of_other_classes_are_refused(tmp_path) -> None:
    from plankton_store.ml import ModelMismatchError, load_val_scores
    from plankton_store.ml._modeldir import VAL_SCORES_NPZ

    save_thresholds(tmp_path, ["a", "b"], np.array([0.5, 0.5]), val_true=[0, 1], val_pred=[0, 0])
    true, pred, proba = load_val_scores(tmp_path, ["a", "b"])
    assert proba is None and pred.tolist() == [0, 0]  # older thresholds: acc still works
    np.savez(
        tmp_path / VAL_SCORES_NPZ,
        y_true=np.array([0, 1]),
        proba=np.array([[0.9, 0.1], [0.2, 0.8]]),
        class_names=np.array(["a", "c"]),
    )
    with pytest.raises(ModelMismatchError, match="other classes"):
        load_val_scores(tmp_path, ["a", "b"])
    true, pred, proba = load_val_scores(tmp_path, ["a", "c"])
    assert pred.tolist() == [0, 1] and proba.shape == (2, 2)


def test_abundance_margins_are_fitted_on_the_val_scores_alone(tmp_path) -> None:
    from plankton_store.ml import load_abundance_margins, save_abundance_margins
    from plankton_store.ml._modeldir import VAL_SCORES_NPZ
    from plankton_store.report import fit_margins

    rng = np.random.default_rng(0)
    y = np.repeat([0, 1, 2], [300, 200, 100])
    proba = rng.dirichlet(np.ones(3), y.size)
    proba[np.arange(y.size), y] += 1.0
    proba /= proba.sum(axis=1, keepdims=True)
    names = ["a", "b", "c"]
    save_thresholds(tmp_path, names, np.full(3, 0.5), val_true=y.tolist(),
                    val_pred=proba.argmax(axis=1).tolist())  # fmt: skip
    assert load_abundance_margins(tmp_path) is None
    with pytest.raises(FileNotFoundError, match="thresholds"):
        save_abundance_margins(tmp_path, names)
    np.savez(tmp_path / VAL_SCORES_NPZ, y_true=y, proba=proba, class_names=np.array(names))
    path = save_abundance_margins(tmp_path, names)
    saved = load_abundance_margins(tmp_path)
    assert path.exists() and saved == fit_margins(y, proba)  # val scores in, nothing else
    assert set(saved.low) == {"em", "pacc", "acc"} and saved.pairs == 5 * 16 * 3
