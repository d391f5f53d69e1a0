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
from pathlib import Path

import numpy as np
import pandas as pd
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


#: Columns of ``abundance.csv``; ``concentration`` only with a volume column.
ABUNDANCE_COLUMNS = ("group", "class", "raw_count", "corrected_count", "low", "high")


def abundance_table(
    predictions: pd.DataFrame,
    by: str,
    class_names: list[str],
    val_true: np.ndarray,
    val_pred: np.ndarray,
    *,
    volume_column: str | None = None,
    resamples: int = ABUNDANCE_RESAMPLES,
    seed: int = 0,
) -> pd.DataFrame:
    """Raw and corrected counts per group and class from a predictions table.

    Parameters
    ----------
    predictions : DataFrame
        ``predictions.csv`` of ``plankton-jobs predict``: a ``predicted`` column (the best
        guess, ``best_guess`` when thresholds made it ``unclassified``) and ``by``.
    by : str
        Column to group by, usually ``sample_id``.
    class_names : list of str
        The model's classes, in its order.
    val_true, val_pred : ndarray of int
        Val labels and predictions of the model, for its confusion rates.
    volume_column : str, optional
        Volume imaged per object's group (litres); adds ``concentration`` = count / volume.

    Raises
    ------
    ValueError
        ``by`` or ``volume_column`` is not a column, a group is empty, or the predictions
        name classes the model does not have.
    """
    for column in (by, volume_column):
        if column is not None and column not in predictions.columns:
            raise ValueError(
                f"column {column!r} is not in the predictions ({', '.join(predictions.columns)});"
                " copy it with plankton-jobs predict --keep-column"
            )
    guess = "best_guess" if "best_guess" in predictions.columns else "predicted"
    index = {c: i for i, c in enumerate(class_names)}
    unknown = sorted(set(predictions[guess].astype(str)) - set(index))
    if unknown:
        raise ValueError(
            f"predictions name classes the model does not have: {unknown[:5]}; "
            "they come from another model"
        )
    rows = []
    for group, part in predictions.groupby(by, sort=True, dropna=False):
        pred = part[guess].astype(str).map(index).to_numpy(dtype=int)
        est = estimate_abundance(
            pred, val_true, val_pred, len(class_names), resamples=resamples, seed=seed
        )
        frame = pd.DataFrame(
            {
                "group": group,
                "class": class_names,
                "raw_count": est.raw,
                "corrected_count": est.corrected,
                "low": est.low,
                "high": est.high,
            }
        )
        if volume_column is not None:
            frame["concentration"] = est.corrected / float(part[volume_column].iloc[0])
        rows.append(frame)
    if not rows:
        raise ValueError("the predictions table is empty: no group to count")
    return pd.concat(rows, ignore_index=True)


def write_abundance(table: pd.DataFrame, out_dir: str | Path) -> tuple[Path, Path]:
    """Write ``abundance.csv`` and ``abundance.png`` (corrected relative abundance per group,
    the ten most abundant classes) into ``out_dir``."""
    from plankton_store.report._plots import plt

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    csv_path, png_path = out / "abundance.csv", out / "abundance.png"
    table.to_csv(csv_path, index=False)
    wide = table.pivot(index="group", columns="class", values="corrected_count")
    top = wide.sum().nlargest(10).index
    share = wide[top].div(wide.sum(axis=1).replace(0, np.nan), axis=0)
    fig, ax = plt.subplots(figsize=(8, 0.4 * len(share) + 2))
    share.plot.barh(stacked=True, ax=ax, width=0.8)
    ax.set_xlabel("corrected relative abundance")
    ax.legend(fontsize=7, bbox_to_anchor=(1.0, 1.0), loc="upper left")
    fig.tight_layout()
    fig.savefig(png_path, dpi=100)
    plt.close(fig)
    return csv_path, png_path
