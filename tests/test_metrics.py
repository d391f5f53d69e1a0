"""Report figures against scikit-learn, top-k formatting, and TTA averaging on hand-made cases."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pytest
from sklearn.metrics import (
    accuracy_score,
    balanced_accuracy_score,
    classification_report,
    f1_score,
    top_k_accuracy_score,
)

from plankton_store.ml import DIHEDRAL, predict_proba_tta, tta_views
from plankton_store.ml._tta import dihedral, dihedral_view
from plankton_store.report import (
    bootstrap_intervals,
    format_top_k,
    macro_f1_rows,
    normalised_confusion,
    paired_macro_f1_difference,
    per_class_table,
    summary_metrics,
    top_k_accuracy,
)

CLASSES = ["a", "b", "c", "d", "e"]  # "e" never occurs and is never predicted


@pytest.fixture
def predictions() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(3)
    y_true = rng.integers(0, 4, size=300)
    proba = rng.random((300, 5)) * np.array([1, 1, 1, 1, 0.0])
    proba[np.arange(300), y_true] += rng.random(300) * 1.2  # mostly right, not always
    proba /= proba.sum(axis=1, keepdims=True)
    return y_true, proba.argmax(axis=1), proba


def test_per_class_table_equals_classification_report(predictions):
    y_true, y_pred, _ = predictions
    table = per_class_table(y_true, y_pred, CLASSES)
    report = classification_report(
        y_true,
        y_pred,
        labels=range(len(CLASSES)),
        target_names=CLASSES,
        output_dict=True,
        zero_division=0,
    )
    assert table["class"].tolist() == CLASSES
    for row in table.itertuples():
        expected = report[row[1]]
        assert row.support == expected["support"]
        assert row.precision == pytest.approx(expected["precision"])
        assert row.recall == pytest.approx(expected["recall"])
        assert row.f1 == pytest.approx(expected["f1-score"])
    assert table.loc[4, ["support", "precision", "recall", "f1"]].tolist() == [0, 0, 0, 0]


def test_summary_equals_sklearn_scores(predictions):
    y_true, y_pred, proba = predictions
    s = summary_metrics(y_true, y_pred, CLASSES, proba)
    assert s["accuracy"] == pytest.approx(accuracy_score(y_true, y_pred))
    # Classes never seen nor predicted ("e") do not drag macro-F1 down, as in sklearn's default.
    assert s["macro_f1"] == pytest.approx(f1_score(y_true, y_pred, average="macro"))
    assert s["weighted_f1"] == pytest.approx(f1_score(y_true, y_pred, average="weighted"))
    assert s["balanced_accuracy"] == pytest.approx(balanced_accuracy_score(y_true, y_pred))
    assert s["top3_accuracy"] == pytest.approx(
        top_k_accuracy_score(y_true, proba, k=3, labels=range(5))
    )
    assert 0 < s["accuracy"] < s["top3_accuracy"] <= 1
    assert (s["n_samples"], s["n_classes"], s["n_classes_present"]) == (300, 5, 4)
    assert summary_metrics(y_true, y_pred, CLASSES)["top3_accuracy"] is None


def test_macro_f1_rows_equals_sklearn_on_every_row():
    rng = np.random.default_rng(3)
    y_true = rng.integers(0, 6, (4, 3, 40))
    noise = rng.integers(0, 7, y_true.shape)  # class 6 is predicted but never true
    y_pred = np.where(rng.random(y_true.shape) < 0.5, y_true, noise)
    y_true[0, 0] = 2  # a row with a single true class
    rows = macro_f1_rows(y_true, y_pred, 7)
    assert rows.shape == (4, 3)
    for i, j in np.ndindex(4, 3):
        want = f1_score(y_true[i, j], y_pred[i, j], average="macro", zero_division=0)
        assert rows[i, j] == pytest.approx(want, abs=1e-12)


def test_bootstrap_intervals_have_the_binomial_width_and_hold_the_estimate():
    rng = np.random.default_rng(0)
    n = 4000
    y_true = rng.integers(0, 5, n)
    y_pred = np.where(rng.random(n) < 0.8, y_true, (y_true + 1) % 5)
    ci = bootstrap_intervals(y_true, y_pred, 5)
    accuracy = np.mean(y_true == y_pred)
    low, high = ci["accuracy"]
    assert low < accuracy < high
    # The bootstrap of a mean is the normal interval +-1.96 sd of a binomial share.
    half = 1.96 * np.sqrt(accuracy * (1 - accuracy) / n)
    assert (high - low) / 2 == pytest.approx(half, rel=0.15)
    low, high = ci["macro_f1"]
    assert low < f1_score(y_true, y_pred, average="macro") < high < 1
    assert ci == bootstrap_intervals(y_true, y_pred, 5)  # seeded
    small = bootstrap_intervals(y_true[:250], y_pred[:250], 5)
    assert small["macro_f1"][1] - small["macro_f1"][0] > 2 * (high - low)  # fewer images
    perfect = bootstrap_intervals(y_true, y_true, 5)
    assert perfect["accuracy"] == perfect["macro_f1"] == [1.0, 1.0]
    assert bootstrap_intervals(y_true[:1], y_pred[:1], 5) is None


def test_bootstrap_keeps_every_class_so_missed_rare_ones_do_not_lift_the_interval():
    """A test split holds a fixed number of images per class. Resampling the whole sample
    drops a class of one image (missed: F1 0) from a third of the resamples, which lifts
    their macro-F1 and puts the interval above the estimate; resampling within each class
    keeps the interval around it."""
    rng = np.random.default_rng(2)
    common = rng.integers(0, 3, 600)
    y_true = np.concatenate([common, np.arange(3, 23)])  # and 20 classes of one image each
    y_pred = np.concatenate([np.where(rng.random(600) < 0.9, common, (common + 1) % 3),
                             np.zeros(20, dtype=int)])  # fmt: skip
    estimate = f1_score(y_true, y_pred, average="macro", zero_division=0)
    ci = bootstrap_intervals(y_true, y_pred, 23)
    low, high = ci["macro_f1"]
    assert low < estimate < high
    assert abs((low + high) / 2 - estimate) < 0.1 * (high - low)
    assert high < 3 / 23  # the rare classes' zeros stay in every resample
    low, high = paired_macro_f1_difference(y_true, y_pred, y_true, 23)["interval"]
    assert low < 1 - estimate < high


def test_paired_difference_tells_a_better_model_from_an_equal_one():
    rng = np.random.default_rng(1)
    n = 3000
    y_true = rng.integers(0, 8, n)
    wrong = (y_true + 1) % 8
    a = np.where(rng.random(n) < 0.75, y_true, wrong)
    b = np.where(rng.random(n) < 0.2, y_true, a)  # a, with a fifth of its errors fixed
    diff = paired_macro_f1_difference(y_true, a, b, 8)
    want = f1_score(y_true, b, average="macro") - f1_score(y_true, a, average="macro")
    assert diff["difference"] == pytest.approx(want, abs=1e-4)
    low, high = diff["interval"]
    assert 0 < low < diff["difference"] < high  # b is better, and these images show it
    # Pairing: the interval of the difference is narrower than either model's own one.
    own = bootstrap_intervals(y_true, a, 8)["macro_f1"]
    assert high - low < 0.75 * (own[1] - own[0])
    noisy = np.where(rng.random(n) < 0.5, a, np.where(rng.random(n) < 0.75, y_true, wrong))
    low, high = paired_macro_f1_difference(y_true, a, noisy, 8)["interval"]
    assert low < 0 < high  # as good as a, by construction: not told apart
    same = paired_macro_f1_difference(y_true, a, a, 8)
    assert same["difference"] == 0 and same["interval"] == [0, 0]


def test_top_k_by_hand():
    proba = np.array([[0.1, 0.7, 0.2], [0.5, 0.25, 0.25]])
    assert format_top_k(proba, ["x", "y", "z"], 3) == [
        "y:0.70|z:0.20|x:0.10",
        "x:0.50|y:0.25|z:0.25",  # a tie keeps class order
    ]
    assert format_top_k(proba, ["x", "y", "z"], 1) == ["y:0.70", "x:0.50"]
    assert top_k_accuracy(np.array([2, 2]), proba, 1) == 0.0
    assert top_k_accuracy(np.array([2, 2]), proba, 2) == 0.5
    assert top_k_accuracy(np.array([2, 2]), proba, 3) == 1.0


def test_confusion_rows_are_normalised_and_empty_rows_zero():
    counts, rates = normalised_confusion(np.array([0, 0, 0, 1]), np.array([0, 1, 1, 1]), 3)
    np.testing.assert_array_equal(counts, [[1, 2, 0], [0, 1, 0], [0, 0, 0]])
    np.testing.assert_allclose(rates, [[1 / 3, 2 / 3, 0], [0, 1, 0], [0, 0, 0]])


# --------------------------------------------------------------------------- TTA


def test_the_eight_views_of_a_square_image_are_the_dihedral_group():
    im = np.arange(9, dtype=np.uint8).reshape(1, 3, 3)
    views = {name: dihedral(im, name)[0] for name in DIHEDRAL}
    a = im[0]
    expected = {
        "identity": a,
        "rot90": np.rot90(a),
        "rot180": a[::-1, ::-1],
        "rot270": np.rot90(a, 3),
        "flip_lr": a[:, ::-1],
        "flip_tb": a[::-1],
        "transpose": a.T,
        "anti_transpose": a[::-1, ::-1].T,
    }
    for name, want in expected.items():
        np.testing.assert_array_equal(views[name], want, err_msg=name)
    assert len({v.tobytes() for v in views.values()}) == 8  # all distinct


def test_non_square_views_keep_the_shape_and_swap_original_sizes():
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(2, 8, 6), dtype=np.uint8)
    height, width = np.array([80, 40], np.int32), np.array([60, 10], np.int32)
    for name, view, h, w in tta_views(images, height, width, "stretch"):
        assert view.shape == images.shape and view.dtype == np.uint8, name
        swapped = DIHEDRAL[name][0] % 2 == 1
        np.testing.assert_array_equal(h, width if swapped else height)
        np.testing.assert_array_equal(w, height if swapped else width)
    # The shape-keeping views are exact flips of the stored pixels.
    np.testing.assert_array_equal(
        dihedral_view(images, height, width, "rot180")[0], images[:, ::-1, ::-1]
    )
    # A 90° view of a uniform image stays uniform after the resize back (no padding artefact).
    flat = np.full((1, 8, 6), 77, np.uint8)
    for mode in ("stretch", "pad"):
        assert (dihedral_view(flat, height[:1], width[:1], "rot90", mode)[0] == 77).all()


@dataclass
class Inputs:
    images: np.ndarray
    orig_height: np.ndarray
    orig_width: np.ndarray
    features: dict = field(default_factory=dict)


class CornerModel:
    """Two classes; P(class 1) = top-left pixel / 255: depends on the orientation."""

    def predict_proba(self, inputs: Inputs, batch_size: int = 1024) -> np.ndarray:
        p1 = inputs.images[:, 0, 0].astype(float) / 255
        return np.stack([1 - p1, p1], axis=1)


def test_tta_averages_the_eight_views_by_hand():
    # The four corners 0, 51, 102, 255 each come to the top-left corner in two of the 8
    # views (a rotation and a reflection), so the mean is their plain average.
    im = np.zeros((1, 4, 4), np.uint8)
    im[0, 0, 0], im[0, 0, -1], im[0, -1, 0], im[0, -1, -1] = 0, 51, 102, 255
    inputs = Inputs(im, np.array([4]), np.array([4]))
    proba = predict_proba_tta(CornerModel(), inputs)
    expected = (0 + 51 + 102 + 255) / 4 / 255
    np.testing.assert_allclose(proba, [[1 - expected, expected]])
    # Without TTA only the identity view counts.
    np.testing.assert_allclose(CornerModel().predict_proba(inputs), [[1, 0]])


def test_tta_passes_each_view_with_its_sizes_and_the_same_features():
    seen = []

    def spy(model, view):
        seen.append((view.images.shape, int(view.orig_height[0]), view.features["t"].sum()))
        return np.full((1, 3), 1 / 3)

    inputs = Inputs(
        np.zeros((1, 8, 6), np.uint8), np.array([30]), np.array([20]), {"t": np.ones((1, 2))}
    )
    proba = predict_proba_tta(None, inputs, predict=spy)
    np.testing.assert_allclose(proba, 1 / 3)
    assert [s[0] for s in seen] == [(1, 8, 6)] * 8
    assert sorted(s[1] for s in seen) == [20] * 4 + [30] * 4
    assert {s[2] for s in seen} == {2.0}
