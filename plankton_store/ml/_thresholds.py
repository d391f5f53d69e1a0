"""Per-class probability thresholds that reach a target precision, fitted on val only.

A class's threshold is the lowest probability at which the predictions of that class, kept
only above it, reach the target precision by the *lower* bound of a 95% Wilson interval, so
that a small class needs more evidence than a large one. A class that never reaches it gets
an infinite threshold: it is never auto-classified. Predictions under their class's threshold
become :data:`UNCLASSIFIED`.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.stats import norm

from plankton_store.ml._modeldir import THRESHOLDS_JSON

#: Label given to a prediction under its class's threshold.
UNCLASSIFIED = "unclassified"


def _lower_bound(correct: np.ndarray, kept: np.ndarray, alpha: float) -> np.ndarray:
    """Lower end of the two-sided Wilson score interval of ``correct / kept``."""
    z = norm.ppf(1 - alpha / 2)
    n = np.maximum(kept, 1).astype(float)
    p = correct / n
    centre = p + z * z / (2 * n)
    spread = z * np.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    return np.where(kept > 0, (centre - spread) / (1 + z * z / n), 0.0)


def fit_thresholds(
    y_true: np.ndarray,
    proba: np.ndarray,
    *,
    target_precision: float = 0.9,
    alpha: float = 0.05,
) -> np.ndarray:
    """One threshold per class from validation labels and probabilities.

    Parameters
    ----------
    y_true : ndarray of int, shape (n,)
        True class indices (validation split, never test).
    proba : ndarray, shape (n, n_classes)
        Predicted probabilities.
    target_precision : float
        Precision each class's kept predictions must reach, by its lower confidence bound.
    alpha : float
        1 - confidence level of the bound.

    Returns
    -------
    ndarray, shape (n_classes,)
        Thresholds; ``inf`` for a class that cannot reach the target.
    """
    if not 0 < target_precision < 1:
        raise ValueError(f"target precision must be in (0, 1), got {target_precision}")
    y_true = np.asarray(y_true)
    proba = np.asarray(proba, dtype=float)
    pred = proba.argmax(axis=1)
    best = proba.max(axis=1)
    out = np.full(proba.shape[1], np.inf)
    for k in range(proba.shape[1]):
        mask = pred == k
        if not mask.any():
            continue
        order = np.argsort(-best[mask], kind="stable")
        scores = best[mask][order]
        hits = (y_true[mask][order] == k).astype(int)
        kept = np.arange(1, len(scores) + 1)
        ok = _lower_bound(np.cumsum(hits), kept, alpha) >= target_precision
        if ok.any():
            out[k] = scores[np.flatnonzero(ok)[-1]]
    return out


def apply_thresholds(proba: np.ndarray, thresholds: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Best-guess class per row and whether it clears its class's threshold."""
    proba = np.asarray(proba, dtype=float)
    pred = proba.argmax(axis=1)
    return pred, proba.max(axis=1) >= np.asarray(thresholds)[pred]


def save_thresholds(
    model_dir: str | Path, class_names: list[str], thresholds: np.ndarray, **meta: object
) -> Path:
    """Write ``thresholds.json`` in MODEL_DIR (``null`` for a never-auto-classified class)."""
    path = Path(model_dir) / THRESHOLDS_JSON
    values = {
        c: (None if not np.isfinite(t) else float(t))
        for c, t in zip(class_names, thresholds, strict=True)
    }
    path.write_text(json.dumps({"thresholds": values, **meta}, indent=2) + "\n")
    return path


def load_thresholds(model_dir: str | Path, class_names: list[str]) -> np.ndarray | None:
    """The saved thresholds in class order, or None when MODEL_DIR has none."""
    path = Path(model_dir) / THRESHOLDS_JSON
    if not path.exists():
        return None
    values = json.loads(path.read_text())["thresholds"]
    missing = sorted(set(class_names) - set(values))
    if missing:
        raise ValueError(f"{path} lacks classes {missing[:5]}: rerun plankton-jobs thresholds")
    return np.array([np.inf if values[c] is None else values[c] for c in class_names])


def mark_unclassified(
    frame: pd.DataFrame, proba: np.ndarray, thresholds: np.ndarray | None
) -> pd.DataFrame:
    """Predictions under their class's threshold become :data:`UNCLASSIFIED`; the best
    guess stays in a ``best_guess`` column. No thresholds: ``frame`` unchanged."""
    if thresholds is None:
        return frame
    _, kept = apply_thresholds(proba, thresholds)
    out = frame.copy()
    at = out.columns.get_loc("predicted") + 1
    out.insert(at, "best_guess", out["predicted"])
    out.loc[~kept, "predicted"] = UNCLASSIFIED
    return out


def keep_source_columns(
    frame: pd.DataFrame, source_rows: pd.DataFrame, columns: tuple[str, ...]
) -> pd.DataFrame:
    """Copy source metadata ``columns`` (rows aligned with ``frame``) into the predictions.

    Raises
    ------
    ValueError
        A column is not in the source, naming the ones it has.
    """
    missing = [c for c in columns if c not in source_rows.columns]
    if missing:
        raise ValueError(
            f"--keep-column {missing[0]!r} is not a column of the source "
            f"(it has {', '.join(map(str, source_rows.columns))})"
        )
    out = frame.copy()
    for column in columns:
        out[column] = source_rows[column].to_numpy()
    return out
