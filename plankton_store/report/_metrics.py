"""Evaluation figures computed from predictions: pure functions, no I/O, no plotting.

Every figure is defined over the model's class list (``class_names``), so a class that the
model knows but that has no sample in the evaluated data still gets a row (support 0), and
its precision, recall and F1 follow scikit-learn's ``zero_division=0`` convention.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import Any

import numpy as np
import pandas as pd
from sklearn.metrics import confusion_matrix, f1_score, precision_recall_fscore_support

PER_CLASS_COLUMNS = ("class", "support", "precision", "recall", "f1")


def per_class_table(
    y_true: np.ndarray, y_pred: np.ndarray, class_names: Sequence[str]
) -> pd.DataFrame:
    """Precision, recall, F1 and support of every class, in class-list order.

    Parameters
    ----------
    y_true, y_pred : numpy.ndarray
        Integer class indices into ``class_names``.
    class_names : sequence of str
        The model's classes.

    Returns
    -------
    pandas.DataFrame
        Columns :data:`PER_CLASS_COLUMNS`; the same figures as
        ``sklearn.metrics.classification_report`` with ``labels=range(len(class_names))``.
    """
    labels = np.arange(len(class_names))
    precision, recall, f1, support = precision_recall_fscore_support(
        y_true, y_pred, labels=labels, zero_division=0
    )
    return pd.DataFrame(
        {
            "class": list(class_names),
            "support": support.astype(np.int64),
            "precision": precision,
            "recall": recall,
            "f1": f1,
        }
    )


def macro_f1(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    """The task's metric: F1 averaged over the classes in ``y_true`` or ``y_pred``.

    This is ``sklearn.metrics.f1_score(average="macro")``; training (validation macro-F1)
    and evaluation both use it, so their figures are comparable.
    """
    return float(f1_score(y_true, y_pred, average="macro", zero_division=0))


def macro_f1_rows(y_true: np.ndarray, y_pred: np.ndarray, n_classes: int) -> np.ndarray:
    """:func:`macro_f1` of each row of ``(..., n)`` label arrays at once.

    The vectorised form the bootstrap needs (thousands of resamples per call): per-class
    counts of every row come from one ``bincount`` over ``row * n_classes + class``.
    """
    y_true, y_pred = np.asarray(y_true), np.asarray(y_pred)
    lead = y_true.shape[:-1]
    t = y_true.reshape(-1, y_true.shape[-1]).astype(np.int64)
    p = y_pred.reshape(-1, y_pred.shape[-1]).astype(np.int64)
    offset = np.arange(len(t))[:, None] * n_classes
    size = len(t) * n_classes

    def counts(index: np.ndarray) -> np.ndarray:
        return np.bincount(index, minlength=size).reshape(len(t), n_classes)

    support, predicted = counts((offset + t).ravel()), counts((offset + p).ravel())
    hits = counts((offset + t)[t == p])
    # F1 = 2 TP / (2 TP + FP + FN) = 2 TP / (support + predicted); averaged over the
    # classes seen in either, as f1_score(average="macro") does.
    seen = support + predicted
    f1 = np.divide(2 * hits, seen, out=np.zeros(seen.shape), where=seen > 0)
    return (f1.sum(axis=1) / np.maximum((seen > 0).sum(axis=1), 1)).reshape(lead)


#: Bootstrap resamples behind the intervals of :func:`bootstrap_intervals`: the 2.5 and
#: 97.5 percentiles move by about 0.002 between seeds at 1,000.
BOOTSTRAP_RESAMPLES = 1000


def bootstrap_intervals(
    y_true: np.ndarray,
    y_pred: np.ndarray,
    n_classes: int,
    confidence: float = 0.95,
    n_resamples: int = BOOTSTRAP_RESAMPLES,
    seed: int = 0,
) -> dict[str, Any] | None:
    """Percentile bootstrap intervals of accuracy and macro-F1 over the evaluated samples.

    How much the figures would move on another draw of as many images of each class: with
    rare classes of a few test images each, macro-F1 moves by a few points, so two models
    (or two runs) closer than the interval's half-width are not told apart by this data.
    Resamples are paired (each draws images with their predictions), drawn within each
    true class (see :func:`_stratified_resamples`) and the same for both figures (same
    seed).

    Returns
    -------
    dict or None
        ``{"confidence", "resamples", "accuracy": [low, high], "macro_f1": [low, high]}``;
        None with fewer than two samples.
    """
    y_true, y_pred = np.asarray(y_true), np.asarray(y_pred)
    if len(y_true) < 2:
        return None

    def accuracy(t: np.ndarray, p: np.ndarray) -> np.ndarray:
        return np.mean(t == p, axis=-1)

    def macro(t: np.ndarray, p: np.ndarray) -> np.ndarray:
        return macro_f1_rows(t, p, n_classes)

    result: dict[str, Any] = {"confidence": confidence, "resamples": n_resamples}
    for name, statistic in (("accuracy", accuracy), ("macro_f1", macro)):
        result[name] = _percentile_interval(
            (y_true, y_pred), statistic, confidence, n_resamples, seed
        )
    return result


def _stratified_resamples(
    strata: np.ndarray, n_resamples: int, rng: np.random.Generator, batch: int = 100
) -> Iterator[np.ndarray]:
    """Bootstrap resamples as ``(b, n)`` index arrays, each drawn with replacement within
    every stratum (true class), so that every resample keeps each class's support.

    A resample of the whole sample (scipy's ``bootstrap``) leaves out a class of one test
    image about a third of the time; macro-F1, averaged over the classes present, then
    loses a class that is usually scored 0, so the interval sat above the estimate (demo
    store, features model: 0.313 in [0.296, 0.434]; within classes [0.272, 0.346]).
    The test split holds a fixed number of images per class, which is what this keeps.
    Batches of ``batch`` resamples bound the memory at any ``n``; scikit-learn's
    ``resample(stratify=)`` draws one resample per call (28 ms at 73,000 images).
    """
    members = [np.flatnonzero(strata == s) for s in np.unique(strata)]
    for start in range(0, n_resamples, batch):
        size = min(batch, n_resamples - start)
        yield np.concatenate([m[rng.integers(0, len(m), (size, len(m)))] for m in members], 1)


def _percentile_interval(
    data: tuple[np.ndarray, ...],
    statistic: Callable[..., np.ndarray],
    confidence: float,
    n_resamples: int,
    seed: int,
) -> list[float]:
    """``[low, high]`` of a paired percentile bootstrap of ``statistic`` (a function of
    ``(..., n)`` arrays), resampling within the true classes ``data[0]``."""
    resamples = _stratified_resamples(data[0], n_resamples, np.random.default_rng(seed))
    values = np.concatenate([statistic(*(v[index] for v in data)) for index in resamples])
    tail = (1 - confidence) / 2
    low, high = np.quantile(values, [tail, 1 - tail])
    return [round(float(low), 4), round(float(high), 4)]


def paired_macro_f1_difference(
    y_true: np.ndarray,
    y_pred_a: np.ndarray,
    y_pred_b: np.ndarray,
    n_classes: int,
    confidence: float = 0.95,
    n_resamples: int = BOOTSTRAP_RESAMPLES,
    seed: int = 0,
) -> dict[str, Any] | None:
    """Macro-F1 of predictions ``b`` minus that of ``a`` on the same images, with a paired
    percentile bootstrap interval (resampled within each true class, as
    :func:`bootstrap_intervals`).

    Pairing (each resample draws images with both models' predictions) cancels what the two
    models share, so the interval of the difference is much narrower than the two models'
    own intervals suggest: an interval that excludes 0 says these images tell them apart.

    Returns
    -------
    dict or None
        ``{"difference", "interval": [low, high], "confidence", "resamples"}``; None with
        fewer than two samples.
    """
    y_true, a, b = (np.asarray(v) for v in (y_true, y_pred_a, y_pred_b))
    if len(y_true) < 2:
        return None

    def difference(t: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        return macro_f1_rows(t, b, n_classes) - macro_f1_rows(t, a, n_classes)

    return {
        "difference": round(float(difference(y_true, a, b)), 4),
        "interval": _percentile_interval((y_true, a, b), difference, confidence, n_resamples, seed),
        "confidence": confidence,
        "resamples": n_resamples,
    }


def top_k_accuracy(y_true: np.ndarray, proba: np.ndarray, k: int = 3) -> float:
    """Share of samples whose true class is among the ``k`` most probable ones.

    Ties are broken by class index (a stable sort), as :func:`top_k` does.
    """
    if len(y_true) == 0:
        return float("nan")
    k = min(k, proba.shape[1])
    top = top_k_indices(proba, k)
    return float((top == np.asarray(y_true)[:, None]).any(axis=1).mean())


def top_k_indices(proba: np.ndarray, k: int) -> np.ndarray:
    """``(n, k)`` class indices, most probable first (ties: lower index first)."""
    order = np.argsort(-proba, axis=1, kind="stable")
    return order[:, : min(k, proba.shape[1])]


def format_top_k(proba: np.ndarray, class_names: Sequence[str], k: int = 3) -> list[str]:
    """Each row's ``k`` best classes as ``"a:0.71|b:0.20|c:0.05"``."""
    top = top_k_indices(proba, k)
    values = np.take_along_axis(proba, top, axis=1)
    names = np.asarray(class_names, dtype=object)
    return [
        "|".join(f"{names[c]}:{p:.2f}" for c, p in zip(row, vals, strict=True))
        for row, vals in zip(top, values, strict=True)
    ]


def summary_metrics(
    y_true: np.ndarray,
    y_pred: np.ndarray,
    class_names: Sequence[str],
    proba: np.ndarray | None = None,
) -> dict[str, Any]:
    """Overall figures: accuracy, macro-F1, weighted-F1, balanced accuracy, top-3 accuracy.

    Macro-F1 averages over the classes that occur in ``y_true`` or ``y_pred`` (scikit-learn's
    ``f1_score(average="macro")``): a class with no test sample that is never predicted
    would otherwise count as F1 0. Balanced accuracy is the mean recall over the classes
    present in ``y_true`` (``balanced_accuracy_score``). ``top3_accuracy`` is None without
    probabilities.
    """
    table = per_class_table(y_true, y_pred, class_names)
    support = table["support"].to_numpy()
    present = support > 0
    seen = present | np.isin(np.arange(len(class_names)), y_pred)
    n = int(len(y_true))
    return {
        "n_samples": n,
        "n_classes": len(class_names),
        "n_classes_present": int(present.sum()),
        "accuracy": float(np.mean(y_true == y_pred)) if n else float("nan"),
        "macro_f1": float(table["f1"][seen].mean()) if n else float("nan"),
        "weighted_f1": float(np.average(table["f1"], weights=support)) if n else float("nan"),
        "balanced_accuracy": float(table["recall"][present].mean()) if n else float("nan"),
        "top3_accuracy": None if proba is None else top_k_accuracy(y_true, proba, 3),
    }


def normalised_confusion(
    y_true: np.ndarray, y_pred: np.ndarray, n_classes: int
) -> tuple[np.ndarray, np.ndarray]:
    """Confusion counts and their row-normalised form (rows = true class; an empty row is 0)."""
    counts = confusion_matrix(y_true, y_pred, labels=np.arange(n_classes))
    totals = counts.sum(axis=1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        rates = np.where(totals > 0, counts / np.maximum(totals, 1), 0.0)
    return counts, rates
