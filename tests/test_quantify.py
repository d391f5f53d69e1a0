"""Class-prior estimators on a synthetic classifier whose calibration is known exactly.

Objects of class ``y`` have one feature ``x ~ N(MEANS[y], 1)``; the posterior under the val
mix ``VAL_PRIOR`` is then known in closed form, so a classifier that outputs it is perfectly
calibrated on val, and EM (Saerens et al. 2002) is consistent on samples whose mix differs.
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import norm

from plankton_store.report import (
    METHODS,
    IntervalMargins,
    adjusted_counts,
    em_priors,
    estimate_abundance,
    fit_calibration,
    fit_margins,
    fit_val,
    soft_confusion_rates,
    widen_interval,
)

MEANS = np.array([0.0, 1.5, 3.0])
VAL_PRIOR = np.array([0.5, 0.3, 0.2])


def _draw(counts: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Labels and calibrated-under-VAL_PRIOR probabilities of ``counts[c]`` objects per class."""
    y = np.repeat(np.arange(len(counts)), counts)
    x = rng.normal(MEANS[y], 1.0)
    joint = VAL_PRIOR * norm.pdf(x[:, None], MEANS, 1.0)
    return y, joint / joint.sum(axis=1, keepdims=True)


def test_em_recovers_shifted_priors_that_the_raw_count_misses() -> None:
    rng = np.random.default_rng(0)
    truth = np.array([0.1, 0.2, 0.7])
    _, proba = _draw(np.round(truth * 20000).astype(int), rng)
    prior = em_priors(proba, VAL_PRIOR)
    raw = np.bincount(proba.argmax(axis=1), minlength=3) / len(proba)
    assert np.abs(prior - truth).max() < 0.02
    assert np.abs(raw - truth).max() > 0.05  # the raw count is biased for this mix
    assert prior.sum() == pytest.approx(1.0) and (prior >= 0).all()


def test_pacc_is_exact_at_the_expected_mean_probabilities() -> None:
    rng = np.random.default_rng(1)
    y, proba = _draw(np.array([4000, 4000, 4000]), rng)
    rates = soft_confusion_rates(y, proba)
    truth = np.array([50.0, 300.0, 650.0])
    np.testing.assert_allclose(adjusted_counts(rates.T @ truth, rates), truth, atol=1e-6)


def test_calibration_undoes_a_known_overconfidence() -> None:
    rng = np.random.default_rng(2)
    y, proba = _draw(np.array([3000, 1800, 1200]), rng)
    sharp = proba**3 / (proba**3).sum(axis=1, keepdims=True)  # temperature 1/3
    cal = fit_calibration(sharp, y)
    assert cal.temperature == pytest.approx(3.0, rel=0.1)
    np.testing.assert_allclose(cal.apply(sharp), proba, atol=0.03)


def test_vector_scaling_undoes_a_per_class_overconfidence() -> None:
    rng = np.random.default_rng(8)
    y, proba = _draw(np.array([3000, 1800, 1200]), rng)
    logits = np.log(proba) * np.array([3.0, 1.0, 0.5])  # temperatures 1/3, 1 and 2
    skewed = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    vector = fit_calibration(skewed, y, per_class=True)
    shared = fit_calibration(skewed, y)
    assert vector.temperature[0] > 2.5 > 1.2 > vector.temperature[1] > 0.8 > vector.temperature[2]
    assert np.ptp(shared.temperature) == 0.0
    vector_error = np.abs(vector.apply(skewed) - proba).mean()
    shared_error = np.abs(shared.apply(skewed) - proba).mean()
    assert vector_error < 0.02 and vector_error < shared_error / 2, (vector_error, shared_error)


@pytest.mark.parametrize("method", METHODS)
def test_estimates_are_never_negative_and_corrections_beat_the_raw_count(method) -> None:
    rng = np.random.default_rng(3)
    val_y, val_proba = _draw(np.array([1000, 600, 400]), rng)
    fit = fit_val(val_y, val_proba.argmax(axis=1), 3, val_proba, resamples=30, seed=0)
    truth = np.array([20, 80, 900])
    _, proba = _draw(truth, rng)
    est = estimate_abundance(fit, None, proba, method=method, seed=0)
    assert (est.corrected >= 0).all() and (est.low >= 0).all()
    assert (est.low <= est.corrected + 1e-9).all() and (est.corrected <= est.high + 1e-9).all()
    error, raw_error = np.abs(est.corrected - truth).sum(), np.abs(est.raw - truth).sum()
    if method == "cc":
        np.testing.assert_array_equal(est.corrected, est.raw)
    else:
        assert error < raw_error / 2


def test_em_intervals_cover_the_truth_at_about_the_nominal_rate() -> None:
    """30 shifted samples x 3 classes, fixed seeds: about 95% of the 90 pairs are covered;
    the bound is loose (0.85) so that the test does not depend on the draw."""
    rng = np.random.default_rng(4)
    val_y, val_proba = _draw(np.array([500, 300, 200]), rng)
    fit = fit_val(val_y, val_proba.argmax(axis=1), 3, val_proba, resamples=100, seed=0)
    covered = []
    for s in range(30):
        truth = rng.multinomial(300, rng.dirichlet(np.full(3, 0.5)))
        _, proba = _draw(truth, rng)
        est = estimate_abundance(fit, None, proba, method="em", seed=s)
        covered += list((est.low <= truth) & (truth <= est.high))
    assert 0.85 <= np.mean(covered) <= 1.0


def test_probability_methods_refuse_to_run_without_probabilities() -> None:
    rng = np.random.default_rng(5)
    val_y, val_proba = _draw(np.array([100, 100, 100]), rng)
    pred = val_proba.argmax(axis=1)
    without = fit_val(val_y, pred, 3, resamples=5)
    with pytest.raises(ValueError, match="probabilities"):
        estimate_abundance(without, pred, None, method="em")
    with pytest.raises(ValueError, match="probabilities"):
        estimate_abundance(without, pred, val_proba, method="pacc")
    with pytest.raises(ValueError, match="unknown method 'mle'"):
        estimate_abundance(without, pred, method="mle")
    with pytest.raises(ValueError, match="shape"):
        fit_val(val_y, pred, 4, val_proba, resamples=5)
    with pytest.raises(ValueError, match="empty group"):
        estimate_abundance(without, np.array([], dtype=int), method="acc")


def _draw_biased(counts: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Like :func:`_draw`, but 15% of class 0 looks like class 2: the classifier is confidently
    wrong on them, which no calibration of its probabilities can undo, so EM is biased."""
    y = np.repeat(np.arange(len(counts)), counts)
    looks = np.where((y == 0) & (rng.random(y.size) < 0.15), 2, y)
    x = rng.normal(MEANS[looks], 1.0)
    joint = VAL_PRIOR * norm.pdf(x[:, None], MEANS, 1.0)
    return y, joint / joint.sum(axis=1, keepdims=True)


def test_widen_interval_adds_the_margins_of_each_share_bin() -> None:
    margins = IntervalMargins(
        {"em": [0.0, 0.01, 0.02, 0.1]}, {"em": [0.004, 0.01, 0.05, 0.2]}, pairs=10
    )
    corrected = np.array([0.0, 2.0, 10.0, 50.0, 200.0])  # shares 0, .004, .02, .1, .4 of 500
    low = np.array([0.0, 0.0, 6.0, 40.0, 180.0])
    high = np.array([1.0, 4.0, 14.0, 60.0, 220.0])
    new_low, new_high = widen_interval(corrected, low, high, 500, margins, "em")
    np.testing.assert_array_equal(new_low, [0, 0, 1, 30, 130])  # never under 0
    np.testing.assert_array_equal(new_high, [3, 6, 19, 85, 320])
    same = widen_interval(corrected, low, high, 500, margins, "cc")  # cc is never widened
    np.testing.assert_array_equal(same[0], low)
    np.testing.assert_array_equal(same[1], high)
    assert IntervalMargins.from_json(margins.to_json()) == margins
    with pytest.raises(ValueError, match="share bins"):
        IntervalMargins.from_json({**margins.to_json(), "share_edges": [0.5]})


def test_val_fitted_margins_restore_coverage_that_the_bias_breaks() -> None:
    """A biased classifier: EM's bootstrap intervals miss the truth far more than 5% of the
    time on fresh shifted samples (0.82 covered); margins fitted on samples simulated from
    val alone bring the coverage of the same intervals back above 0.9 (0.925; fixed seeds)."""
    rng = np.random.default_rng(6)
    val_y, val_proba = _draw_biased(np.array([600, 360, 240]), rng)
    margins = fit_margins(val_y, val_proba, methods=("em",), folds=4, samples_per_fold=10,
                          sample_size=300, resamples=30, seed=0)  # fmt: skip
    assert all(m >= 0 for m in margins.low["em"] + margins.high["em"]) and margins.pairs == 120
    fit = fit_val(val_y, val_proba.argmax(axis=1), 3, val_proba, resamples=30, seed=0)
    plain, widened = [], []
    for s in range(40):
        mix = rng.dirichlet(np.full(3, 0.3))
        if s % 2:
            mix = 0.3 * mix
            mix[rng.integers(3)] += 0.7
        truth = rng.multinomial(300, mix)
        _, proba = _draw_biased(truth, rng)
        est = estimate_abundance(fit, None, proba, method="em", seed=s)
        low, high = widen_interval(est.corrected, est.low, est.high, 300, margins, "em")
        assert (low <= est.low).all() and (high >= est.high).all()
        plain += list((est.low <= truth) & (truth <= est.high))
        widened += list((low <= truth) & (truth <= high))
    assert np.mean(plain) < 0.85 and np.mean(widened) >= 0.9


def test_margins_refuse_the_raw_count_and_a_tiny_val_set() -> None:
    rng = np.random.default_rng(7)
    val_y, val_proba = _draw(np.array([30, 20, 10]), rng)
    with pytest.raises(ValueError, match="no interval margins for \\['cc'\\]"):
        fit_margins(val_y, val_proba, methods=("cc",))
    with pytest.raises(ValueError, match="cannot be split into 5 folds"):
        fit_margins(val_y[:8], val_proba[:8])
    with pytest.raises(ValueError, match="too small to simulate"):
        fit_margins(val_y[::4], val_proba[::4], folds=5)
