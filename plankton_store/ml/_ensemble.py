"""Ensembles of trained models: pooled class probabilities with weights fitted on val.

Members are combined by a weighted geometric mean of their probabilities (log-linear
pooling, renormalised per row): a class keeps a high score only if no member rules it out,
which suits members as different as a CNN on pixels and boosting on shape features. The
weights come from greedy forward selection with replacement (Caruana et al., "Ensemble
selection from libraries of models", ICML 2004) on the validation split's macro-F1: start
from the best member, then repeatedly add the member whose extra share improves the score
most. A member that never helps keeps weight 0, so the ensemble is never worse on val than
its best member.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from plankton_store.report import macro_f1

__all__ = ["fit_weights", "pool_probabilities", "pool_views"]

#: Floor of a probability before its log: one member's 0 must not veto a class outright.
_EPS = 1e-6


def pool_probabilities(probas: Sequence[np.ndarray], weights: Sequence[float]) -> np.ndarray:
    """Weighted geometric mean of ``(..., n_classes)`` probability arrays, rows summing to 1.

    Parameters
    ----------
    probas
        One array per member, all of one shape, columns in the same class order; leading
        axes (e.g. the views of test-time augmentation) are pooled element by element.
    weights
        Non-negative, one per member (normalised here); members with weight 0 are skipped.

    Returns
    -------
    numpy.ndarray
        float32, the shape of each member's array.
    """
    w = np.asarray(weights, dtype=np.float64)
    if len(w) != len(probas) or (w < 0).any() or w.sum() <= 0:
        raise ValueError(f"need one non-negative weight per member, not all 0; got {weights}")
    w = w / w.sum()
    pairs = zip(w, probas, strict=True)
    log_pool = sum(wi * np.log(np.clip(p, _EPS, 1.0)) for wi, p in pairs if wi > 0)
    log_pool = log_pool - log_pool.max(axis=-1, keepdims=True)
    pooled = np.exp(log_pool)
    return (pooled / pooled.sum(axis=-1, keepdims=True)).astype(np.float32)


def pool_views(probas: Sequence[np.ndarray], weights: Sequence[float]) -> np.ndarray:
    """The pooled probabilities of members given per view, ``(views, n, n_classes)`` each:
    pooled view by view, then averaged over the views.

    This is what an ensemble predicts under test-time augmentation (each view goes through
    the whole ensemble, :func:`plankton_store.ml.predict_proba_tta`), so weights fitted on
    it are fitted on the very predictions ``evaluate --tta`` makes. Plain ``(n, n_classes)``
    members are pooled as :func:`pool_probabilities` does.
    """
    pooled = pool_probabilities(probas, weights)
    return pooled.mean(axis=0) if pooled.ndim == 3 else pooled


def fit_weights(
    probas: Sequence[np.ndarray],
    y_true: np.ndarray,
    rounds: int = 20,
    score: Callable[[np.ndarray, np.ndarray], float] = macro_f1,
) -> tuple[np.ndarray, float]:
    """Member weights by greedy forward selection with replacement on held-out data.

    Parameters
    ----------
    probas
        Each member's probabilities on the held-out (val) samples: ``(n, n_classes)``, or
        ``(views, n, n_classes)`` to fit the test-time-augmented ensemble (:func:`pool_views`).
    y_true
        Their true class indices.
    rounds
        Selections; weights are multiples of ``1 / rounds``.
    score
        ``score(y_true, y_pred)``, higher is better (default macro-F1).

    Returns
    -------
    weights : numpy.ndarray
        One per member, summing to 1.
    best : float
        The score of the pooled ensemble with these weights.
    """
    if not probas:
        raise ValueError("an ensemble needs at least one member")
    counts = np.zeros(len(probas))
    singles = [score(y_true, pool_views([p], [1.0]).argmax(axis=1)) for p in probas]
    counts[int(np.argmax(singles))] = 1
    best_counts, best = counts.copy(), max(singles)
    # Caruana's procedure: always add the best candidate (a worse step may open a better
    # mix later), then keep the mix of the best round, the earliest among ties.
    for _ in range(rounds - 1):
        trials = []
        for j in range(len(probas)):
            trial = counts.copy()
            trial[j] += 1
            trials.append(score(y_true, pool_views(probas, trial).argmax(axis=1)))
        counts[int(np.argmax(trials))] += 1
        if max(trials) > best:
            best_counts, best = counts.copy(), max(trials)
    return best_counts / best_counts.sum(), float(best)
