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
    adjusted_counts,
    em_priors,
    estimate_abundance,
    fit_calibration,
    fit_val,
    soft_confusion_rates,
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
