"""Abundance tables: counts per group and class, corrected for classifier error.

The estimators and their intervals are in :mod:`plankton_store.report._quantify`; this module
groups a predictions table, runs one estimator per group and writes ``abundance.csv`` and
``abundance.png``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from plankton_store.report._margins import IntervalMargins, widen_interval
from plankton_store.report._quantify import PROBABILITY_METHODS, ValFit, estimate_abundance

#: Resamples of the abundance bootstrap (of the val set, paired with each group's objects).
ABUNDANCE_RESAMPLES = 200

#: Columns of ``abundance.csv``; ``concentration`` only with a volume column.
ABUNDANCE_COLUMNS = ("group", "class", "raw_count", "corrected_count", "low", "high")


def _check_columns(predictions: pd.DataFrame, *columns: str | None) -> None:
    for column in columns:
        if column is not None and column not in predictions.columns:
            raise ValueError(
                f"column {column!r} is not in the predictions ({', '.join(predictions.columns)});"
                " copy it with plankton-jobs predict --keep-column"
            )


def abundance_table(
    predictions: pd.DataFrame,
    by: str,
    class_names: list[str],
    fit: ValFit,
    *,
    proba: np.ndarray | None = None,
    method: str = "em",
    volume_column: str | None = None,
    margins: IntervalMargins | None = None,
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
    fit : ValFit
        The model's val side (:func:`plankton_store.report.fit_val`).
    proba : ndarray, shape (len(predictions), n_classes), optional
        Each row's probabilities (``predict --probabilities``); needed by ``em`` and ``pacc``.
    method : str
        One of :data:`plankton_store.report.METHODS`.
    volume_column : str, optional
        Volume imaged per object's group (litres); adds ``concentration`` = count / volume.
    margins : IntervalMargins, optional
        Val-fitted margins added to each interval (:func:`plankton_store.report.fit_margins`);
        without them the intervals are the plain bootstrap ones.

    Raises
    ------
    ValueError
        ``by`` or ``volume_column`` is not a column, a group is empty, the predictions name
        classes the model does not have, or ``method`` needs probabilities that are missing.
    """
    _check_columns(predictions, by, volume_column)
    if method in PROBABILITY_METHODS and proba is None:
        raise ValueError(
            f"--method {method} needs every object's probabilities: run plankton-jobs predict "
            "--probabilities, or use --method acc"
        )
    guess = "best_guess" if "best_guess" in predictions.columns else "predicted"
    index = {c: i for i, c in enumerate(class_names)}
    unknown = sorted(set(predictions[guess].astype(str)) - set(index))
    if unknown:
        raise ValueError(
            f"predictions name classes the model does not have: {unknown[:5]}; "
            "they come from another model"
        )
    codes = predictions[guess].astype(str).map(index).to_numpy(dtype=int)
    rows = []
    for group, at in predictions.groupby(by, sort=True, dropna=False).indices.items():
        part = predictions.iloc[at]
        est = estimate_abundance(
            fit,
            codes[at],
            None if proba is None else proba[at],
            method=method,
            seed=seed,
        )
        low, high = est.low, est.high
        if margins is not None:
            low, high = widen_interval(est.corrected, low, high, len(at), margins, method)
        frame = pd.DataFrame(
            {
                "group": group,
                "class": class_names,
                "raw_count": est.raw,
                "corrected_count": est.corrected,
                "low": low,
                "high": high,
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
