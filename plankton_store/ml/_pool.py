"""Pool models trained on one store into one MODEL_DIR, weights fitted on val.

The members' class probabilities are combined by a weighted geometric mean; the weights are
chosen by greedy forward selection on the validation split's macro-F1
(:mod:`plankton_store.ml._ensemble`), never on test. With ``--tta`` they are fitted on what
``evaluate --tta`` will compute: each of the 8 views pooled, then the views averaged. The
result is a MODEL_DIR like any other: ``evaluate`` and ``predict`` (with ``--tta``) take it
as they take a single model.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from plankton_store.ml._ensemble import fit_weights, pool_views
from plankton_store.ml._inference import inputs_from_store, predict_inputs
from plankton_store.ml._modeldir import (
    ENSEMBLE_KIND,
    MODEL_JSON,
    ModelMismatchError,
    grouping_info,
    read_model_info,
)
from plankton_store.ml._models import TrainedModel, load_model, save_model
from plankton_store.ml._tta import predict_proba_views
from plankton_store.report import macro_f1
from plankton_store.store import PlanktonStore, open_store


@dataclass
class EnsembleResult:
    """What :func:`ensemble` wrote and how each member and the pool scored on val."""

    model_dir: str
    members: list[str]
    weights: list[float]
    member_val_macro_f1: list[float]
    val_macro_f1: float
    val_accuracy: float
    seconds: float


def ensemble(
    store_path: str,
    member_dirs: Sequence[str | os.PathLike[str]],
    out_dir: str | os.PathLike[str],
    tta: bool = False,
    overwrite: bool = False,
    echo: Callable[[str], None] | None = print,
) -> EnsembleResult:
    """Fit member weights on the val split of ``store_path`` and write the ensemble.

    Parameters
    ----------
    store_path
        The store every member was trained on (its val split picks the weights).
    member_dirs
        Two or more MODEL_DIRs of ``plankton-jobs train`` (or ensembles).
    out_dir
        The ensemble's MODEL_DIR: a ``model.json`` that names the members by relative path,
        so move the folders together.
    tta
        Fit the weights on test-time-augmented probabilities (as ``evaluate --tta`` uses).

    Raises
    ------
    ModelMismatchError
        A member learned from another store or another class list.
    FileExistsError
        ``out_dir`` holds a model and ``overwrite`` is False.
    """
    started = time.perf_counter()
    say = echo or (lambda _: None)
    if len(member_dirs) < 2:
        raise ValueError("an ensemble needs at least two --member models")
    store = open_store(store_path)
    _check_members(store, store_path, member_dirs)
    out = Path(out_dir)
    if (out / MODEL_JSON).exists() and not overwrite:
        raise FileExistsError(f"{out} holds a model already: pass --overwrite to replace it")

    val = store.split_indices("val")
    if not len(val):
        raise ValueError(f"{store_path} has no val split to fit the weights on")
    y_val = store.labels[val].astype(np.int64)
    models, probas = _member_probabilities(store, val, y_val, member_dirs, tta, say)
    weights, best = fit_weights(probas, y_val)
    pooled = pool_views(probas, weights).argmax(axis=1)
    out.mkdir(parents=True, exist_ok=True)
    result = EnsembleResult(
        model_dir=str(out),
        members=[str(m) for m in member_dirs],
        weights=[round(float(w), 4) for w in weights],
        member_val_macro_f1=[round(macro_f1(y_val, _labels(p)), 4) for p in probas],
        val_macro_f1=round(best, 4),
        val_accuracy=round(float(np.mean(pooled == y_val)), 4),
        seconds=0.0,
    )
    save_model(out, _pool_model(store, store_path, models, member_dirs, out, tta, result))
    result.seconds = round(time.perf_counter() - started, 2)
    say(
        "weights "
        + ", ".join(f"{Path(m).name} {w:.2f}" for m, w in zip(member_dirs, weights, strict=True))
        + f": val macro-F1 {result.val_macro_f1:.4f} (best member "
        f"{max(result.member_val_macro_f1):.4f}), val accuracy {result.val_accuracy:.4f}; "
        f"wrote {out} in {result.seconds:.1f} s"
    )
    return result


def _check_members(
    store: PlanktonStore, store_path: str, member_dirs: Sequence[str | os.PathLike[str]]
) -> None:
    """Refuse members that learned from another store or another class list.

    Raises
    ------
    ModelMismatchError
        A member learned from another store or another class list.
    """
    for member in member_dirs:
        info = read_model_info(member)
        if info.store_fingerprint != store.fingerprint:
            raise ModelMismatchError(
                f"{member} learned from another store (fingerprint {info.store_fingerprint}, "
                f"{store_path} is {store.fingerprint}): its val split could overlap the "
                "member's training data. Ensemble models trained on this very store."
            )
        if info.class_names != store.class_names:
            raise ModelMismatchError(f"{member}: its class list differs from {store_path}'s")


def _member_probabilities(
    store: PlanktonStore,
    val: np.ndarray,
    y_val: np.ndarray,
    member_dirs: Sequence[str | os.PathLike[str]],
    tta: bool,
    say: Callable[[str], None],
) -> tuple[list[TrainedModel], list[np.ndarray]]:
    """Each member loaded, and its val probabilities (per view with ``tta``)."""
    inputs = inputs_from_store(store, val)
    models, probas = [], []
    for member in member_dirs:
        model = load_model(member)
        models.append(model)
        # With TTA each view goes through the whole ensemble and the pooled views are
        # averaged (predict_proba_tta of the ensemble): fit on exactly that, so keep views.
        probas.append(
            predict_proba_views(model, inputs, store.resize_mode)
            if tta
            else predict_inputs(model, inputs, False, store.resize_mode)
        )
        say(f"{member}: val macro-F1 {macro_f1(y_val, _labels(probas[-1])):.4f}")
    return models, probas


def _pool_model(
    store: PlanktonStore,
    store_path: str,
    models: list[TrainedModel],
    member_dirs: Sequence[str | os.PathLike[str]],
    out: Path,
    tta: bool,
    result: EnsembleResult,
) -> TrainedModel:
    """The ensemble as a model: the members by path relative to ``out``, and the weights
    and val figures of ``result``."""
    feature_columns: dict[str, list[str]] = {}
    for model in models:
        feature_columns.update(model.feature_columns)
    return TrainedModel(
        kind=ENSEMBLE_KIND,
        estimator=models,
        class_names=store.class_names,
        label_column=store.label_column,
        store_fingerprint=store.fingerprint,
        image_size=store.image_size,
        resize_mode=store.resize_mode,
        normalisation=models[0].normalisation,
        feature_columns=feature_columns,
        info={
            "members": [os.path.relpath(Path(m).resolve(), out.resolve()) for m in member_dirs],
            "weights": result.weights,
            "pooling": "weighted geometric mean",
            "store": str(store_path),
            "fitted_with_tta": tta,
            "member_val_macro_f1": result.member_val_macro_f1,
            "val_macro_f1": result.val_macro_f1,
            "val_accuracy": result.val_accuracy,
            **grouping_info(store.attrs),
        },
    )


def _labels(proba: np.ndarray) -> np.ndarray:
    """One member's predicted classes, scored as fit_weights scores it (views averaged)."""
    return pool_views([proba], [1.0]).argmax(axis=1)
