"""Fit and save the per-class thresholds on a store split; read back the val confusion."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from plankton_store.ml._evaluate import class_mapping, predict_store, split_indices
from plankton_store.ml._modeldir import (
    ABUNDANCE_MARGINS_JSON,
    THRESHOLDS_JSON,
    VAL_SCORES_NPZ,
    ModelMismatchError,
    read_model_info,
)
from plankton_store.ml._thresholds import fit_thresholds, save_thresholds
from plankton_store.report import IntervalMargins, fit_margins
from plankton_store.store import open_store


def fit_store_thresholds(
    source: str | Path,
    model_dir: str | Path,
    *,
    target_precision: float = 0.9,
    split: str = "val",
    client: Any = None,
) -> tuple[np.ndarray, Path]:
    """Score a store split (val by default, never test), fit and save the thresholds.

    The val labels and predictions are saved with them, and the val probabilities in
    ``val_scores.npz``: ``plankton-jobs abundance`` measures the confusion rates and fits its
    calibration on them.

    Raises
    ------
    ValueError
        ``split`` is ``test``: thresholds fitted on test would bias every test figure.
    """
    if split == "test":
        raise ValueError("thresholds are never fitted on the test split: use --split val")
    info = read_model_info(model_dir)
    store = open_store(str(source))
    mapping = class_mapping(info, store.class_names, f"store {source}")
    indices = split_indices(store, split)
    if not len(indices):
        raise ValueError(f"store {source} has no {split} samples to fit thresholds on")
    y_true = mapping[store.labels[indices]]
    proba = predict_store(store, info, indices, client, False, False)
    thresholds = fit_thresholds(y_true, proba, target_precision=target_precision)
    path = save_thresholds(
        model_dir,
        info.class_names,
        thresholds,
        target_precision=target_precision,
        split=split,
        store_fingerprint=store.fingerprint,
        val_true=y_true.tolist(),
        val_pred=proba.argmax(axis=1).tolist(),
    )
    np.savez_compressed(
        Path(model_dir) / VAL_SCORES_NPZ,
        y_true=y_true.astype(np.int32),
        proba=proba.astype(np.float32),
        class_names=np.asarray(info.class_names, dtype=str),
    )
    return thresholds, path


def load_val_confusion(model_dir: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """The val labels and predictions saved by :func:`fit_store_thresholds`."""
    path = Path(model_dir) / THRESHOLDS_JSON
    if not path.exists():
        raise FileNotFoundError(
            f"{path} not found: run plankton-jobs thresholds STORE --model {model_dir} first"
        )
    saved = json.loads(path.read_text())
    return np.asarray(saved["val_true"], dtype=int), np.asarray(saved["val_pred"], dtype=int)


def load_val_scores(
    model_dir: str | Path, class_names: list[str]
) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """Val labels, predicted classes and probabilities (None when only thresholds.json of an
    older ``plankton-jobs thresholds`` is there).

    Raises
    ------
    FileNotFoundError
        MODEL_DIR has no thresholds.json: run ``plankton-jobs thresholds`` first.
    ModelMismatchError
        ``val_scores.npz`` names other classes than the model's.
    """
    val_true, val_pred = load_val_confusion(model_dir)
    path = Path(model_dir) / VAL_SCORES_NPZ
    if not path.exists():
        return val_true, val_pred, None
    with np.load(path, allow_pickle=False) as saved:
        if saved["class_names"].tolist() != list(class_names):
            raise ModelMismatchError(
                f"{path} was scored with other classes than the model's: rerun "
                f"plankton-jobs thresholds STORE --model {model_dir}"
            )
        y_true, proba = saved["y_true"].astype(int), saved["proba"].astype(float)
    return y_true, proba.argmax(axis=1), proba


def save_abundance_margins(model_dir: str | Path, class_names: list[str], seed: int = 0) -> Path:
    """Fit the abundance interval margins on the saved val scores and write them.

    The margins (:func:`plankton_store.report.fit_margins`) are fitted on shifted samples
    simulated from the val split only, and saved as ``abundance_margins.json`` in MODEL_DIR.

    Raises
    ------
    FileNotFoundError
        MODEL_DIR has no val probabilities: run ``plankton-jobs thresholds`` first.
    ValueError
        The val split is too small to simulate samples from.
    """
    val_true, _, val_proba = load_val_scores(model_dir, class_names)
    if val_proba is None:
        raise FileNotFoundError(
            f"{Path(model_dir) / VAL_SCORES_NPZ} not found: run plankton-jobs thresholds first"
        )
    margins = fit_margins(val_true, val_proba, seed=seed)
    path = Path(model_dir) / ABUNDANCE_MARGINS_JSON
    path.write_text(json.dumps(margins.to_json(), indent=1))
    return path


def load_abundance_margins(model_dir: str | Path) -> IntervalMargins | None:
    """The interval margins saved by :func:`save_abundance_margins`; None when MODEL_DIR has
    none (a ``plankton-jobs thresholds`` older than them, or a val split too small)."""
    path = Path(model_dir) / ABUNDANCE_MARGINS_JSON
    if not path.exists():
        return None
    return IntervalMargins.from_json(json.loads(path.read_text()))
