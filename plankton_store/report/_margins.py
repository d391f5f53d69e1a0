"""Interval margins for the bias the abundance bootstrap cannot see, fitted on val only.

The bootstrap of :func:`plankton_store.report.estimate_abundance` carries the sampling
error of the group and of the val set, but not the estimator's bias under a strong shift
(EM leaks a few objects into each absent class and takes them from the abundant ones).
:func:`fit_margins` measures that bias on simulated shifted samples drawn from the val set
alone: ``folds``-fold on val, fitting the val side on the other folds and drawing
``sample_size``-object samples with strongly shifted class mixes (half Dirichlet(0.3), half
70% dominated by one class) from the held-out fold. For each estimator and each bin of the
estimated share of the group (:data:`SHARE_EDGES`) it keeps, per side, the conformal
``(1 - alpha / 2)`` quantile of how far the truth fell outside the bootstrap interval, as a
share of the group's size (split conformal calibration of an interval, Romano et al. 2019,
one side at a time and per bin). :func:`widen_interval` adds those margins to a group's
interval.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from plankton_store.report._quantify import METHODS, estimate_abundance, fit_val

#: Upper edges of the bins of the estimated share of the group (4 bins: under 1%, 1-6%,
#: 6-20%, above 20%; at 500 objects: under 5, 5-30, 30-100 and above 100 objects). Fixed
#: before any fit, never tuned.
SHARE_EDGES: tuple[float, ...] = (0.01, 0.06, 0.2)
#: Estimators the margins are fitted for (``cc`` is the raw count: it is never widened).
MARGIN_METHODS: tuple[str, ...] = tuple(m for m in METHODS if m != "cc")
#: A class is drawn into simulated samples only with at least this many held-out objects:
#: hundreds of copies of one or two objects say nothing about how a class is estimated.
MIN_POOL = 5


@dataclass(frozen=True)
class IntervalMargins:
    """Per estimator, the low-side and high-side margins per share bin (shares of the group).

    ``low[method][b]`` is subtracted from the lower end and ``high[method][b]`` added to the
    upper end, both times the group's size, for a class whose estimated share falls in bin
    ``b`` of :data:`SHARE_EDGES`. ``pairs`` is the number of simulated (sample, class) pairs
    they were fitted on.
    """

    low: dict[str, list[float]]
    high: dict[str, list[float]]
    pairs: int

    def to_json(self) -> dict:
        """The margins as a JSON-ready dict (see :meth:`from_json`)."""
        return {"share_edges": list(SHARE_EDGES), "low": self.low, "high": self.high,
                "pairs": self.pairs}  # fmt: skip

    @classmethod
    def from_json(cls, saved: dict) -> IntervalMargins:
        """Read margins written by :meth:`to_json`.

        Raises
        ------
        ValueError
            They were fitted with other share bins than :data:`SHARE_EDGES`.
        """
        if list(saved.get("share_edges", [])) != list(SHARE_EDGES):
            raise ValueError(
                f"interval margins fitted on share bins {saved.get('share_edges')}, expected "
                f"{list(SHARE_EDGES)}: rerun plankton-jobs thresholds"
            )
        return cls(dict(saved["low"]), dict(saved["high"]), int(saved["pairs"]))


def _share_bin(corrected: np.ndarray, n: int) -> np.ndarray:
    return np.searchsorted(np.asarray(SHARE_EDGES), np.asarray(corrected) / max(n, 1), "right")


def widen_interval(
    corrected: np.ndarray,
    low: np.ndarray,
    high: np.ndarray,
    n: int,
    margins: IntervalMargins,
    method: str,
) -> tuple[np.ndarray, np.ndarray]:
    """Widen a group's whole-number intervals by the margins of ``method``.

    Parameters
    ----------
    corrected, low, high : ndarray, shape (n_classes,)
        The estimate and its bootstrap interval (:class:`AbundanceEstimate`).
    n : int
        Number of objects of the group.
    margins : IntervalMargins
        From :func:`fit_margins`.
    method : str
        The estimator; one without margins (``cc``) is returned unchanged.

    Returns
    -------
    tuple of ndarray
        The widened ``low`` (never under 0) and ``high``, whole numbers of objects.
    """
    if method not in margins.low:
        return low, high
    b = _share_bin(corrected, n)
    new_low = np.maximum(np.floor(low - np.asarray(margins.low[method])[b] * n), 0.0)
    return new_low, np.ceil(high + np.asarray(margins.high[method])[b] * n)


def _shifted_counts(rng: np.random.Generator, present: np.ndarray, size: int) -> np.ndarray:
    """Class counts of one shifted sample: half Dirichlet(0.3) mixes, half 70% one class."""
    k = present.size
    mix = rng.dirichlet(np.full(k, 0.3))
    if rng.random() < 0.5:
        mix = 0.3 * mix
        mix[rng.choice(np.flatnonzero(present))] += 0.7
    mix = mix * present
    return rng.multinomial(size, mix / mix.sum())


def _conformal_quantile(scores: np.ndarray, level: float) -> float:
    """The ``ceil((N + 1) level)``-th smallest score (the largest if that exceeds N), >= 0."""
    if scores.size == 0:
        return 0.0
    rank = min(int(np.ceil((scores.size + 1) * level)), scores.size)
    return float(max(np.sort(scores)[rank - 1], 0.0))


def fit_margins(
    val_true: np.ndarray,
    val_proba: np.ndarray,
    *,
    methods: tuple[str, ...] = MARGIN_METHODS,
    folds: int = 5,
    samples_per_fold: int = 16,
    sample_size: int = 500,
    resamples: int = 50,
    alpha: float = 0.05,
    seed: int = 0,
) -> IntervalMargins:
    """Fit the interval margins on simulated shifted samples of the val set (never test).

    Parameters
    ----------
    val_true : ndarray of int, shape (n,)
        Val labels.
    val_proba : ndarray, shape (n, n_classes)
        Val probabilities.
    methods : tuple of str
        Estimators to fit margins for (a subset of :data:`MARGIN_METHODS`).
    folds : int
        Folds of val: the val side is fitted on ``folds - 1``, samples drawn from the last.
    samples_per_fold, sample_size : int
        Simulated samples per fold and objects per sample (drawn with replacement).
    resamples : int
        Bootstrap replicates of each simulated interval.
    alpha : float
        Miss rate of the intervals: each side is calibrated to miss at most ``alpha / 2``.
    seed : int
        Seed of the folds, the mixes and the bootstraps.

    Raises
    ------
    ValueError
        A method has no margins (``cc``), or val is too small to simulate samples from.
    """
    unknown = sorted(set(methods) - set(MARGIN_METHODS))
    if unknown:
        raise ValueError(f"no interval margins for {unknown}: one of {', '.join(MARGIN_METHODS)}")
    val_true = np.asarray(val_true, dtype=int)
    val_proba = np.asarray(val_proba, dtype=float)
    if folds < 2 or val_true.size < 2 * folds:
        raise ValueError(f"{val_true.size} val objects cannot be split into {folds} folds")
    k = val_proba.shape[1]
    rng = np.random.default_rng(seed)
    fold_of = rng.permutation(val_true.size) % folds
    below = {m: [] for m in methods}
    above = {m: [] for m in methods}
    bins = {m: [] for m in methods}
    for f in range(folds):
        fit_idx, held = np.flatnonzero(fold_of != f), np.flatnonzero(fold_of == f)
        fit = fit_val(val_true[fit_idx], val_proba[fit_idx].argmax(axis=1), k,
                      val_proba[fit_idx], resamples=resamples, seed=seed + f)  # fmt: skip
        pools = [held[val_true[held] == c] for c in range(k)]
        present = np.array([p.size >= MIN_POOL for p in pools])
        if not present.any():
            raise ValueError(
                f"no class has {MIN_POOL} objects in a fold of {folds} of the "
                f"{val_true.size} val objects: val is too small to simulate samples from"
            )
        for s in range(samples_per_fold):
            counts = _shifted_counts(rng, present, sample_size)
            idx = np.concatenate([rng.choice(pools[c], n) for c, n in enumerate(counts) if n])
            for m in methods:
                est = estimate_abundance(fit, None, val_proba[idx], method=m, seed=s)
                below[m].append((est.low - counts) / sample_size)
                above[m].append((counts - est.high) / sample_size)
                bins[m].append(_share_bin(est.corrected, sample_size))
    low, high = {}, {}
    for m in methods:
        b, lo, hi = (np.concatenate(x[m]) for x in (bins, below, above))
        level, edges = 1 - alpha / 2, range(len(SHARE_EDGES) + 1)
        low[m] = [_conformal_quantile(lo[b == i], level) for i in edges]
        high[m] = [_conformal_quantile(hi[b == i], level) for i in edges]
    return IntervalMargins(low, high, int(sum(x.size for x in bins[methods[0]])))
