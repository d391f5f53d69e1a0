"""Train one model on the train split of a store and write its MODEL_DIR.

Only the train split is sampled, resampled and augmented; val picks the best epoch (early
stopping on validation macro-F1); test is never read. Keras is imported only when a ``cnn`` /
``seed-cnn`` model is trained.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from plankton_store.ml._fit import fit_features, fit_mlp, refit_head
from plankton_store.ml._fit_keras import fit_keras
from plankton_store.ml._history import History
from plankton_store.ml._inputs import ModelInputs, store_feature_columns
from plankton_store.ml._modeldir import clear_model_dir, grouping_info
from plankton_store.ml._models import TrainedModel, save_model
from plankton_store.ml._options import TrainOptions
from plankton_store.ml._trainset import Normalisation, TrainSet
from plankton_store.store import PlanktonStore, open_store


@dataclass
class TrainResult:
    """What one run did (also in MODEL_DIR/model.json and history.csv)."""

    model_dir: str
    model: str
    val_macro_f1: float
    val_accuracy: float
    best_epoch: int
    epochs_run: int
    seconds: float
    train_samples_per_second: float
    options: dict[str, Any] = field(default_factory=dict)


def _check_train_split(train: TrainSet, class_names: list[str]) -> None:
    missing = [name for name, n in zip(class_names, train.counts(), strict=True) if n == 0]
    if missing:
        raise ValueError(
            f"no train samples for class(es) {missing}: rebuild the store with these classes "
            "dropped (--drop-class) or with more images of them"
        )


def train(
    store: str,
    out: str | os.PathLike,
    options: TrainOptions,
    overwrite: bool = False,
    echo: Callable[[str], None] | None = print,
) -> TrainResult:
    """Train one model on the train split of ``store`` and write MODEL_DIR ``out``.

    Parameters
    ----------
    store
        Path or URL of a complete plankton store.
    out
        The MODEL_DIR to write (see :mod:`plankton_store.ml._modeldir`).
    options
        Model, balance policy, epochs, ... (``None`` fields take the model's defaults).
    overwrite
        Replace an existing MODEL_DIR.
    echo
        Where per-epoch progress goes (None: quiet).

    Returns
    -------
    TrainResult

    Raises
    ------
    FileExistsError
        If ``out`` exists and ``overwrite`` is False.
    ValueError
        For bad options, a class without train samples or an empty val split.
    """
    options = options.resolved()
    out = clear_model_dir(out, overwrite)
    started = time.perf_counter()
    st = open_store(store)
    train_set, normalisation, val, val_y = _load_splits(st, store, options, echo)

    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=options.threads):
        fit = {"mlp": fit_mlp, "features": fit_features}.get(options.model, fit_keras)
        history = History(options, echo)
        estimator = fit(st, train_set, normalisation, val, val_y, options, history)

    model = _trained_model(st, store, options, estimator, normalisation, history, len(train_set))
    if options.head != "softmax":
        with threadpool_limits(limits=options.threads):
            refit_head(model, st, train_set, val, val_y, options, echo)
    model.info["train_seconds"] = round(time.perf_counter() - started, 3)
    save_model(out, model, history.frame())
    seconds = time.perf_counter() - started
    info = model.info  # the best epoch's figures (_trained_model)
    if echo:
        # With a refitted head these are still the softmax layer's one-view figures (the
        # head's 8-view ones are in the line before): say so, or they read as the model's.
        which = " (softmax layer, 1 view)" if "head_fit" in info else ""
        echo(
            f"best epoch {history.best_epoch}: val macro-F1 {info['val_macro_f1']:.4f}, "
            f"val accuracy {info['val_accuracy']:.4f}{which}; wrote {out} in {seconds:.1f} s"
        )
    return TrainResult(
        model_dir=str(out),
        model=options.model,
        val_macro_f1=info["val_macro_f1"],
        val_accuracy=info["val_accuracy"],
        best_epoch=info["best_epoch"],
        epochs_run=info["epochs_run"],
        seconds=seconds,
        train_samples_per_second=history.train_samples / max(history.train_seconds, 1e-9),
        options=info["options"],
    )


def _load_splits(
    st: PlanktonStore, store: str, options: TrainOptions, echo: Callable[[str], None] | None
) -> tuple[TrainSet, Normalisation, ModelInputs, np.ndarray]:
    """The train split, its normalisation, and the val split's inputs and labels.

    Raises
    ------
    ValueError
        For a class without train samples or an empty val split.
    """
    class_names = st.class_names
    train_set = TrainSet(st, memory_limit=options.memory_limit)
    _check_train_split(train_set, class_names)
    val_idx = st.split_indices("val")
    if not len(val_idx):
        raise ValueError(f"{store} has no val split: rebuild it with --val-fraction > 0")
    normalisation = Normalisation.from_train(train_set)
    val = ModelInputs.from_store(st, val_idx)
    val_y = st.labels[val_idx].astype(np.int64)
    if echo:
        where = "in RAM" if train_set.in_ram else "streamed from the store"
        echo(
            f"train {options.model} on {store}: {len(train_set)} train samples ({where}), "
            f"{len(val_idx)} val, {len(class_names)} classes, balance {options.balance}"
        )
    return train_set, normalisation, val, val_y


def _trained_model(
    st: PlanktonStore,
    store: str,
    options: TrainOptions,
    estimator: Any,
    normalisation: Normalisation,
    history: History,
    train_samples: int,
) -> TrainedModel:
    """The fitted model with the best epoch's figures of ``history`` in its info."""
    frame = history.frame()
    best = frame.loc[frame["epoch"] == history.best_epoch].iloc[0]
    return TrainedModel(
        kind=options.model,
        estimator=estimator,
        class_names=st.class_names,
        label_column=st.label_column,
        store_fingerprint=st.fingerprint,
        image_size=st.image_size,
        resize_mode=st.resize_mode,
        normalisation=normalisation,
        feature_columns=store_feature_columns(st) if options.model == "features" else {},
        info={
            "store": str(store),
            "store_version": st.version,
            "options": {**asdict(options), "hidden": list(options.hidden)},
            "seed": options.seed,
            "best_epoch": int(history.best_epoch),
            "epochs_run": len(frame),
            "val_macro_f1": float(best["val_macro_f1"]),
            "val_accuracy": float(best["val_accuracy"]),
            "train_samples": train_samples,
            **grouping_info(st.attrs),
        },
    )
