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
from sklearn.metrics import f1_score, precision_recall_fscore_support

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


#: Name fragments of the classes that are not organisms, matched case-insensitively.
DEFAULT_NON_LIVING: tuple[str, ...] = (
    "detritus",
    "artefact",
    "artifact",
    "bubble",
    "badfocus",
    "fecal",
)


def living_classes(class_names: list[str], non_living: tuple[str, ...]) -> np.ndarray:
    """Indices of the classes whose name contains none of the ``non_living`` fragments."""
    parts = [p.strip().lower() for p in non_living if p.strip()]
    return np.array(
        [i for i, c in enumerate(class_names) if not any(p in c.lower() for p in parts)], int
    )


def threshold_report(
    y_true: np.ndarray, proba: np.ndarray, thresholds: np.ndarray, class_names: list[str]
) -> tuple[pd.DataFrame, dict[str, float]]:
    """Per-class precision and recall with and without thresholds, and the share kept.

    ``unclassified`` is never a class here: an object left unclassified is a miss for its
    true class's recall and counts in no class's precision.
    """
    labels = np.arange(len(class_names))
    pred, kept = apply_thresholds(proba, thresholds)
    plain_p, plain_r, _, _ = precision_recall_fscore_support(
        y_true, pred, labels=labels, zero_division=0
    )
    auto = np.where(kept, pred, -1)
    thr_p, thr_r, _, _ = precision_recall_fscore_support(
        y_true, auto, labels=labels, zero_division=0
    )
    share = np.array([kept[pred == k].mean() if (pred == k).any() else 0.0 for k in labels])
    table = pd.DataFrame(
        {
            "class": class_names,
            "threshold": thresholds,
            "precision": plain_p,
            "recall": plain_r,
            "precision_thresholded": thr_p,
            "recall_thresholded": thr_r,
            "share_auto": share,
        }
    )
    summary = {
        "share_auto_classified": float(kept.mean()) if kept.size else 0.0,
        "precision_auto_classified": float((pred[kept] == y_true[kept]).mean())
        if kept.any()
        else float("nan"),
    }
    return table, summary


def evaluation_extras(
    y_true: np.ndarray,
    proba: np.ndarray,
    class_names: list[str],
    model_dir: str | Path,
    out_dir: str | Path,
    use_thresholds: bool = True,
    non_living: tuple[str, ...] = DEFAULT_NON_LIVING,
) -> dict[str, object]:
    """The summary entries of the biological metrics, writing ``per_class_thresholds.csv``.

    ``living_macro_f1`` is macro-F1 over the living classes only (present in the labels or
    predictions); with thresholds (MODEL_DIR has them and ``use_thresholds``), the share of
    images auto-classified and the precision they reach, beside the per-class table.
    """
    y_pred = proba.argmax(axis=1)
    living = living_classes(class_names, non_living)
    present = np.intersect1d(living, np.union1d(y_true, y_pred))
    extras: dict[str, object] = {
        "non_living": list(non_living),
        "living_macro_f1": float(
            f1_score(y_true, y_pred, labels=present, average="macro", zero_division=0)
        )
        if present.size
        else float("nan"),
    }
    thresholds = load_thresholds(model_dir, class_names) if use_thresholds else None
    if thresholds is not None:
        table, summary = threshold_report(y_true, proba, thresholds, class_names)
        Path(out_dir).mkdir(parents=True, exist_ok=True)
        table.to_csv(Path(out_dir) / "per_class_thresholds.csv", index=False)
        extras["thresholds"] = summary
    return extras
