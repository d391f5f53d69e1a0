"""Fit and save the per-class thresholds on a store split; read back the val confusion."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from plankton_store.ml._evaluate import class_mapping, predict_store, split_indices
from plankton_store.ml._modeldir import THRESHOLDS_JSON, read_model_info
from plankton_store.ml._thresholds import fit_thresholds, save_thresholds
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

    The val labels and predictions are saved with them: ``plankton-jobs abundance`` measures
    the confusion rates from them.

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
