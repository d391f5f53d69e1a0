"""Class-prior estimators for a sample, fitted on val, with a joint val + sample bootstrap.

Four estimators of a sample's true class counts (see docs/abundance.md for their comparison):

``cc``
    classify and count: the predicted-class counts, no correction.
``acc``
    adjusted classify-and-count: the counts ``q`` satisfy ``q ~= C.T @ t`` for the val
    confusion rates ``C[i, j] = P(predicted j | true i)``; ``t`` by non-negative least squares.
``pacc``
    probabilistic ACC: the same system with the mean probability vectors instead of counts.
``em``
    EM re-estimation of the priors (Saerens, Latinne & Decaestecker 2002) on probabilities
    calibrated on val by bias-corrected temperature scaling (Alexandari et al. 2020), starting
    from the val class mix (the mix the calibrated probabilities are valid for).

Intervals: :func:`fit_val_replicates` fits the val side (calibration, confusion rates, prior)
once per bootstrap replicate of the val set; each group's bootstrap pairs replicate ``b`` of
the val set with a redraw ``b`` of the group's objects, so the interval carries the
uncertainty of both.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.optimize import minimize, nnls

#: The estimators of :func:`estimate_counts`; ``cc`` is the raw count.
METHODS: tuple[str, ...] = ("em", "pacc", "acc", "cc")
#: Methods that need every object's probability vector.
PROBABILITY_METHODS: tuple[str, ...] = ("em", "pacc")
_EPS = 1e-12
#: Weight of the L2 penalty on the calibration biases (keeps classes rare on val finite).
_BIAS_PENALTY = 1e-3
#: Weight of the L2 penalty pulling the inverse temperatures towards 1 (vector scaling; 0.01
#: was the best of 0.01, 0.1 and 1 by EM's error on shifted samples simulated from val).
_SCALE_PENALTY = 1e-2


@dataclass(frozen=True)
class Calibration:
    """``softmax(log(p) / temperature + bias)``, one bias per class; one temperature for all
    classes (bias-corrected temperature scaling) or one per class (vector scaling)."""

    temperature: np.ndarray
    bias: np.ndarray

    def apply(self, proba: np.ndarray) -> np.ndarray:
        """Calibrated probabilities of ``proba`` (rows sum to 1), same shape."""
        logits = np.log(np.maximum(proba, _EPS)) / self.temperature + self.bias
        logits -= logits.max(axis=-1, keepdims=True)
        out = np.exp(logits)
        return out / out.sum(axis=-1, keepdims=True)


def fit_calibration(
    proba: np.ndarray,
    y_true: np.ndarray,
    start: Calibration | None = None,
    *,
    per_class: bool = False,
) -> Calibration:
    """Fit bias-corrected temperature scaling (or, ``per_class=True``, vector scaling) by
    minimising the val negative log-likelihood.

    A small L2 penalty pulls the biases towards 0 (and per-class inverse temperatures towards
    1), so that a class rare on val stays finite.

    Parameters
    ----------
    proba : ndarray, shape (n, n_classes)
        The model's val probabilities.
    y_true : ndarray of int, shape (n,)
        The val labels.
    start : Calibration, optional
        Starting point (a bootstrap replicate starts from the full-val fit).
    per_class : bool
        One temperature per class (vector scaling) or one for all (bias-corrected temperature
        scaling, the default: vector scaling was better on val simulations but worse on the
        ndsb-dev benchmark, see docs/abundance.md).
    """
    z = np.log(np.maximum(np.asarray(proba, dtype=float), _EPS))
    n, k = z.shape
    onehot = np.zeros((n, k))
    onehot[np.arange(n), y_true] = 1.0
    m = k if per_class else 1
    pull = _SCALE_PENALTY if per_class else 0.0  # one shared temperature is not pulled

    def loss(theta: np.ndarray) -> tuple[float, np.ndarray]:
        inv_t, bias = theta[:m], theta[m:]
        s = z * inv_t + bias
        s -= s.max(axis=1, keepdims=True)
        log_q = s - np.log(np.exp(s).sum(axis=1, keepdims=True))
        diff = (np.exp(log_q) - onehot) / n
        value = -(log_q * onehot).sum() / n + 0.5 * _BIAS_PENALTY * bias @ bias
        value += 0.5 * pull * (inv_t - 1) @ (inv_t - 1)
        grad_t = (diff * z).sum(axis=0) if per_class else np.array([(diff * z).sum()])
        grad = np.r_[grad_t + pull * (inv_t - 1), diff.sum(axis=0) + _BIAS_PENALTY * bias]
        return value, grad

    if start is None:
        theta0 = np.r_[np.ones(m), np.zeros(k)]
    else:
        theta0 = np.r_[(1 / np.asarray(start.temperature))[:m], start.bias]
    bounds = [(1e-2, 1e2)] * m + [(None, None)] * k
    res = minimize(loss, theta0, jac=True, method="L-BFGS-B", bounds=bounds)
    return Calibration(np.broadcast_to(1 / res.x[:m], (k,)).copy(), res.x[m:].copy())


def confusion_rates(y_true: np.ndarray, y_pred: np.ndarray, n_classes: int) -> np.ndarray:
    """Row-normalised confusion matrix ``P(pred j | true i)``; a class absent from val keeps
    the identity row (no correction is possible for it)."""
    flat = np.asarray(y_true) * n_classes + np.asarray(y_pred)
    counts = np.bincount(flat, minlength=n_classes * n_classes).reshape(n_classes, -1)
    totals = counts.sum(axis=1, keepdims=True)
    return np.divide(counts, totals, out=np.eye(n_classes), where=totals > 0)


def soft_confusion_rates(y_true: np.ndarray, proba: np.ndarray) -> np.ndarray:
    """Mean probability vector per true class ``E[p(x) | true i]`` (identity row if absent)."""
    k = proba.shape[1]
    onehot = np.zeros((len(y_true), k))
    onehot[np.arange(len(y_true)), y_true] = 1.0
    sums = onehot.T @ proba
    totals = np.bincount(y_true, minlength=k)[:, None].astype(float)
    return np.divide(sums, totals, out=np.eye(k), where=totals > 0)


def adjusted_counts(predicted_counts: np.ndarray, rates: np.ndarray) -> np.ndarray:
    """True counts ``t >= 0`` minimising ``|rates.T @ t - predicted_counts|`` (NNLS)."""
    q = np.asarray(predicted_counts, dtype=float)
    t, _ = nnls(np.asarray(rates, dtype=float).T, q)
    return t


def em_priors(
    proba: np.ndarray,
    start_prior: np.ndarray,
    weights: np.ndarray | None = None,
    *,
    max_steps: int = 300,
    tol: float = 1e-5,
) -> np.ndarray:
    """EM re-estimation of a sample's class priors (Saerens et al. 2002).

    Parameters
    ----------
    proba : ndarray, shape (..., n, n_classes)
        Calibrated probabilities, valid under ``start_prior``; leading axes are replicates.
    start_prior : ndarray, shape (..., n_classes)
        The class mix the probabilities are calibrated for (the val mix).
    weights : ndarray, shape (..., n), optional
        Object weights (bootstrap multiplicities); default 1.

    Returns
    -------
    ndarray, shape (..., n_classes)
        The priors maximising the sample's likelihood; they sum to 1.
    """
    proba = np.asarray(proba, dtype=float)
    start = np.maximum(np.asarray(start_prior, dtype=float), _EPS)
    w = np.ones(proba.shape[:-1]) if weights is None else np.asarray(weights, dtype=float)
    w = w / w.sum(axis=-1, keepdims=True)
    base = proba / start[..., None, :]
    prior = np.broadcast_to(start, proba.shape[:-2] + start.shape[-1:]).copy()
    for _ in range(max_steps):
        post = base * prior[..., None, :]
        post /= np.maximum(post.sum(axis=-1, keepdims=True), _EPS)
        new = np.einsum("...n,...nk->...k", w, post)
        done = np.abs(new - prior).max() < tol
        prior = new
        if done:
            break
    return prior


def _softmax_log(z: np.ndarray, temperature: np.ndarray, bias: np.ndarray) -> np.ndarray:
    """``softmax(z / temperature + bias)`` over the last axis, broadcasting replicates."""
    s = z / temperature + bias
    s -= s.max(axis=-1, keepdims=True)
    out = np.exp(s)
    return out / out.sum(axis=-1, keepdims=True)


@dataclass(frozen=True)
class ValFit:
    """The val side of the estimators: on the whole val set and on each bootstrap replicate.

    Index 0 of every ``rep_*`` array is the whole val set (the point estimate); indices
    ``1..resamples`` are the bootstrap replicates of the val pairs.
    """

    n_classes: int
    rates: np.ndarray
    soft_rates: np.ndarray | None
    prior: np.ndarray
    temperature: np.ndarray | None
    bias: np.ndarray | None

    @property
    def resamples(self) -> int:
        """Number of bootstrap replicates (the point fit excluded)."""
        return len(self.rates) - 1

    @property
    def has_probabilities(self) -> bool:
        """Whether the val probabilities were given (``em`` and ``pacc`` need them)."""
        return self.temperature is not None


def fit_val(
    val_true: np.ndarray,
    val_pred: np.ndarray,
    n_classes: int,
    val_proba: np.ndarray | None = None,
    *,
    resamples: int = 200,
    seed: int = 0,
) -> ValFit:
    """Fit confusion rates, val class mix and (with probabilities) the calibration, on the
    whole val set and on ``resamples`` bootstrap replicates of it.

    Parameters
    ----------
    val_true, val_pred : ndarray of int, shape (n,)
        Val labels and predicted classes (never test).
    n_classes : int
        Number of classes of the model.
    val_proba : ndarray, shape (n, n_classes), optional
        Val probabilities; needed by ``em`` and ``pacc``.
    resamples : int
        Bootstrap replicates of the val set.
    seed : int
        Seed of the val bootstrap.
    """
    val_true, val_pred = np.asarray(val_true, dtype=int), np.asarray(val_pred, dtype=int)
    if val_true.size == 0:
        raise ValueError("no val labels: the confusion rates cannot be measured")
    rng = np.random.default_rng(seed)
    draws = [np.arange(val_true.size)] + [
        rng.integers(0, val_true.size, val_true.size) for _ in range(resamples)
    ]
    rates = np.stack([confusion_rates(val_true[v], val_pred[v], n_classes) for v in draws])
    prior = np.stack([np.bincount(val_true[v], minlength=n_classes) + 0.5 for v in draws])
    prior /= prior.sum(axis=1, keepdims=True)
    if val_proba is None:
        return ValFit(n_classes, rates, None, prior, None, None)
    val_proba = np.asarray(val_proba, dtype=float)
    if val_proba.shape != (val_true.size, n_classes):
        raise ValueError(
            f"val probabilities have shape {val_proba.shape}, expected "
            f"({val_true.size}, {n_classes})"
        )
    soft = np.stack([soft_confusion_rates(val_true[v], val_proba[v]) for v in draws])
    fits = [fit_calibration(val_proba, val_true)]
    fits += [fit_calibration(val_proba[v], val_true[v], fits[0]) for v in draws[1:]]
    temperature = np.stack([f.temperature for f in fits])
    bias = np.stack([f.bias for f in fits])
    return ValFit(n_classes, rates, soft, prior, temperature, bias)


def _point_and_replicates(
    method: str, fit: ValFit, pred: np.ndarray, proba: np.ndarray | None, weights: np.ndarray
) -> np.ndarray:
    """Counts per class for each row of ``weights`` (row ``b`` paired with val replicate
    ``b``; row 0 is the point estimate), shape ``(len(weights), n_classes)``."""
    n, k = weights.shape[1], fit.n_classes
    if method in ("cc", "acc"):
        q = np.stack([np.bincount(pred, weights=w, minlength=k) for w in weights])
        if method == "cc":
            return q
        return np.stack([adjusted_counts(q[b], fit.rates[b]) for b in range(len(q))])
    if method == "pacc":
        q = weights @ proba
        return np.stack([adjusted_counts(q[b], fit.soft_rates[b]) for b in range(len(q))])
    z = np.log(np.maximum(proba, _EPS))
    out = np.empty((len(weights), k))
    chunk = max(1, int(4e6 // (n * k)))
    for lo in range(0, len(weights), chunk):
        b = slice(lo, lo + chunk)
        calibrated = _softmax_log(z[None], fit.temperature[b, None, :], fit.bias[b, None, :])
        out[b] = n * em_priors(calibrated, fit.prior[b], weights[b])
    return out


@dataclass(frozen=True)
class AbundanceEstimate:
    """One group's counts per class: raw, corrected and the corrected 95% interval."""

    raw: np.ndarray
    corrected: np.ndarray
    low: np.ndarray
    high: np.ndarray


def estimate_abundance(
    fit: ValFit,
    pred: np.ndarray | None = None,
    proba: np.ndarray | None = None,
    *,
    method: str = "em",
    seed: int = 0,
) -> AbundanceEstimate:
    """Raw and corrected counts of one group, with 95% bootstrap percentile intervals.

    Parameters
    ----------
    fit : ValFit
        From :func:`fit_val`; its replicates set the number of bootstrap resamples.
    pred : ndarray of int, shape (n,), optional
        Predicted class of each object (default: ``proba.argmax(axis=1)``).
    proba : ndarray, shape (n, n_classes), optional
        Each object's probabilities (needed by ``em`` and ``pacc``).
    method : str
        One of :data:`METHODS`.
    seed : int
        Seed of the group's bootstrap.

    Returns
    -------
    AbundanceEstimate
        Per class (arrays of shape ``(n_classes,)``): predicted-class counts, the
        method's estimate of the true counts, and its 95% interval: bootstrap percentiles
        widened outward to whole objects.
    """
    if method not in METHODS:
        raise ValueError(f"unknown method {method!r}: one of {', '.join(METHODS)}")
    if method in PROBABILITY_METHODS and (proba is None or not fit.has_probabilities):
        raise ValueError(
            f"--method {method} needs every object's probabilities and the val ones: "
            "run predict --probabilities and thresholds again, or use --method acc"
        )
    if pred is None:
        pred = np.asarray(proba).argmax(axis=1)
    pred = np.asarray(pred, dtype=int)
    if pred.size == 0:
        raise ValueError("empty group: it has no predictions to count")
    rng = np.random.default_rng(seed)
    draws = rng.integers(0, pred.size, (fit.resamples, pred.size))
    weights = np.ones((fit.resamples + 1, pred.size))
    weights[1:] = np.stack([np.bincount(d, minlength=pred.size) for d in draws])
    counts = _point_and_replicates(method, fit, pred, proba, weights)
    raw = np.bincount(pred, minlength=fit.n_classes).astype(float)
    low, high = np.percentile(counts[1:], [2.5, 97.5], axis=0)
    # A count is a whole number of objects: the interval is the smallest whole-number one
    # holding the percentile interval (an estimate's 0.3 lower end becomes 0).
    return AbundanceEstimate(raw, counts[0], np.floor(low), np.ceil(high))
