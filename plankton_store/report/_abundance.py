"""Abundances corrected for classifier error: adjusted classify-and-count with intervals.

The classifier's confusion rates ``C[i, j] = P(predicted j | true i)`` are measured on val.
A sample's predicted-class counts ``q`` then satisfy ``q ~= C.T @ t`` for its true counts
``t``; the corrected counts solve that system by non-negative least squares
(:func:`scipy.optimize.nnls`), so they are never negative and exact when ``q`` equals its
expectation. The 95% intervals come from a bootstrap that redraws both the sample's
predictions and the val pairs the confusion rates were measured on.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.optimize import nnls
from sklearn.metrics import confusion_matrix

#: Resamples of the abundance bootstrap.
ABUNDANCE_RESAMPLES = 200


def confusion_rates(y_true: np.ndarray, y_pred: np.ndarray, n_classes: int) -> np.ndarray:
    """Row-normalised confusion matrix ``P(pred j | true i)``; a class absent from val keeps
    the identity row (no correction is possible for it)."""
    counts = confusion_matrix(y_true, y_pred, labels=np.arange(n_classes)).astype(float)
    totals = counts.sum(axis=1, keepdims=True)
    rates = np.divide(counts, totals, out=np.eye(n_classes), where=totals > 0)
    return rates


def adjusted_counts(predicted_counts: np.ndarray, rates: np.ndarray) -> np.ndarray:
    """True counts ``t >= 0`` minimising ``|rates.T @ t - predicted_counts|`` (NNLS)."""
    q = np.asarray(predicted_counts, dtype=float)
    t, _ = nnls(np.asarray(rates, dtype=float).T, q)
    return t


@dataclass(frozen=True)
class AbundanceEstimate:
    """One group's counts per class: raw, corrected and the corrected 95% interval."""

    raw: np.ndarray
    corrected: np.ndarray
    low: np.ndarray
    high: np.ndarray


def estimate_abundance(
    sample_pred: np.ndarray,
    val_true: np.ndarray,
    val_pred: np.ndarray,
    n_classes: int,
    *,
    resamples: int = ABUNDANCE_RESAMPLES,
    seed: int = 0,
) -> AbundanceEstimate:
    """Raw and error-corrected counts of one sample, with bootstrap 95% intervals.

    Parameters
    ----------
    sample_pred : ndarray of int
        Predicted class index of each object of the sample.
    val_true, val_pred : ndarray of int
        True and predicted classes on the validation split (never test).
    n_classes : int
        Number of classes of the model.
    resamples : int
        Bootstrap resamples; each redraws the sample and the val pairs.
    seed : int
        Seed of the bootstrap.
    """
    sample_pred = np.asarray(sample_pred)
    if sample_pred.size == 0:
        raise ValueError("empty group: it has no predictions to count")
    val_true, val_pred = np.asarray(val_true), np.asarray(val_pred)
    raw = np.bincount(sample_pred, minlength=n_classes).astype(float)
    corrected = adjusted_counts(raw, confusion_rates(val_true, val_pred, n_classes))
    rng = np.random.default_rng(seed)
    boot = np.empty((resamples, n_classes))
    for b in range(resamples):
        s = rng.integers(0, sample_pred.size, sample_pred.size)
        v = rng.integers(0, val_true.size, val_true.size)
        q = np.bincount(sample_pred[s], minlength=n_classes)
        boot[b] = adjusted_counts(q, confusion_rates(val_true[v], val_pred[v], n_classes))
    low, high = np.percentile(boot, [2.5, 97.5], axis=0)
    return AbundanceEstimate(raw, corrected, low, high)
