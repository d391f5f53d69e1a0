"""The trained model of every kind, and how a MODEL_DIR is saved and loaded.

The MODEL_DIR's files are listed in :mod:`plankton_store.ml._modeldir`. Every model predicts
from :class:`~plankton_store.ml.ModelInputs` (the arrays of a store, as stored) and
standardises them itself with the train-split :class:`~plankton_store.ml.Normalisation`
(Keras models carry it as layers). Keras is imported only inside the Keras code paths, so
loading or using an ``mlp`` or ``features`` model never imports TensorFlow.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from plankton_store import __version__
from plankton_store.ml._ensemble import pool_probabilities
from plankton_store.ml._head import embedding_model, head_matrix
from plankton_store.ml._inputs import ModelInputs, feature_matrix, keras_inputs
from plankton_store.ml._keras import import_keras
from plankton_store.ml._modeldir import (
    ENSEMBLE_KIND,
    HEAD_FILE,
    HISTORY_CSV,
    HISTORY_PNG,
    KERAS_KINDS,
    MODEL_JSON,
    MODEL_KINDS,
    ensemble_members,
    model_file,
)
from plankton_store.ml._trainset import Normalisation

#: Types a skops file of ours may hold beyond skops' defaults (checked before loading).
SKOPS_TRUSTED: tuple[str, ...] = (
    "sklearn.neural_network._stochastic_optimizers.AdamOptimizer",
    "sklearn.neural_network._stochastic_optimizers.SGDOptimizer",
    "sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor",
    "sklearn.ensemble._hist_gradient_boosting.binning._BinMapper",
    "sklearn._loss.loss.HalfMultinomialLoss",
    "sklearn._loss.link.MultinomialLogit",
    "sklearn._loss.link.Interval",
    "numpy.dtype",  # in the imputer of a cnn's logistic head
)


class TrainedModel:
    """A fitted model with everything needed to predict from a store's arrays.

    Attributes
    ----------
    kind : str
        ``"mlp"``, ``"cnn"``, ``"seed-cnn"`` or ``"features"``.
    class_names : list of str
        Column order of :meth:`predict_proba`.
    label_column, store_fingerprint : str
        The labels and the store it learned from.
    image_size : tuple of int
        ``(height, width)`` of the images it expects.
    resize_mode : str
        How the store resized them (``stretch`` / ``pad``).
    feature_columns : dict
        Feature tables and columns the ``features`` model needs (``{}`` otherwise).
    normalisation : Normalisation
        Train-split statistics.
    info : dict
        The rest of ``model.json`` (options, seed, best_epoch, val metrics, store, ...).
    estimator
        The Keras model or scikit-learn estimator.
    head
        A ``cnn``'s logistic-regression head (:mod:`plankton_store.ml._head`), or None: the
        Keras model's own softmax layer. With a head, ``feature_columns`` are its tables.
    """

    def __init__(
        self,
        kind: str,
        estimator: Any,
        class_names: list[str],
        label_column: str,
        store_fingerprint: str,
        image_size: tuple[int, int],
        resize_mode: str,
        normalisation: Normalisation,
        feature_columns: dict[str, list[str]] | None = None,
        info: dict[str, Any] | None = None,
        head: Any = None,
    ) -> None:
        if kind not in (*MODEL_KINDS, ENSEMBLE_KIND):
            raise ValueError(f"unknown model kind {kind!r}; choose from {MODEL_KINDS}")
        if head is not None and kind != "cnn":
            raise ValueError(f"only a cnn has a head, not a {kind}")
        self.kind = kind
        self.head = head
        self._embedder: Any = None
        self.estimator = estimator
        self.class_names = list(class_names)
        self.label_column = label_column
        self.store_fingerprint = store_fingerprint
        self.image_size = (int(image_size[0]), int(image_size[1]))
        self.resize_mode = resize_mode
        self.normalisation = normalisation
        self.feature_columns = dict(feature_columns or {})
        self.info = dict(info or {})

    def __repr__(self) -> str:
        return (
            f"<TrainedModel {self.kind}: {len(self.class_names)} classes by "
            f"{self.label_column}, {self.image_size[0]}x{self.image_size[1]}, "
            f"store {self.store_fingerprint}>"
        )

    def predict_proba(self, inputs: ModelInputs, batch_size: int = 1024) -> np.ndarray:
        """Class probabilities ``(n, n_classes)`` float32, columns in ``class_names`` order."""
        n_classes = len(self.class_names)
        if not len(inputs):
            return np.zeros((0, n_classes), dtype=np.float32)
        if self.kind == ENSEMBLE_KIND:
            members, weights = self.estimator, self.info["weights"]
            return pool_probabilities(
                [m.predict_proba(inputs, batch_size) if w > 0 else None
                 for m, w in zip(members, weights, strict=True)],
                weights,
            )  # fmt: skip
        if self.kind in KERAS_KINDS:
            if tuple(inputs.images.shape[1:]) != self.image_size:
                raise ValueError(
                    f"images are {inputs.images.shape[1:]}, the model expects {self.image_size}"
                )
            if self.head is not None:
                return self._head_proba(inputs, batch_size)
            proba = self.estimator.predict(
                keras_inputs(inputs, self.kind), batch_size=batch_size, verbose=0
            )
            return _normalise_rows(np.asarray(proba, dtype=np.float32))
        out = np.zeros((len(inputs), n_classes), dtype=np.float32)
        columns = np.asarray(self.estimator.classes_, dtype=np.int64)
        for start in range(0, len(inputs), batch_size):
            rows = slice(start, start + batch_size)
            if self.kind == "mlp":
                x = self.normalisation.images(inputs.images[rows]).reshape(
                    len(inputs.images[rows]), -1
                )
            else:
                x = feature_matrix(
                    inputs.subset(np.arange(len(inputs))[rows]), self.feature_columns
                )
            out[rows, columns] = self.estimator.predict_proba(x)
        return _normalise_rows(out)

    @property
    def head_kind(self) -> str:
        """``logistic`` for a cnn with a refitted head, else ``softmax``."""
        return "softmax" if self.head is None else "logistic"

    def embed(self, inputs: ModelInputs, batch_size: int = 1024) -> np.ndarray:
        """A ``cnn``'s embedding ``(n, d)`` float32: what its softmax layer (or head) sees."""
        if self.kind != "cnn":
            raise ValueError(f"only a cnn has an embedding, not a {self.kind}")
        if self._embedder is None:
            self._embedder = embedding_model(self.estimator)
        out = self._embedder.predict(
            keras_inputs(inputs, self.kind), batch_size=batch_size, verbose=0
        )
        return np.asarray(out, dtype=np.float32)

    def _head_proba(self, inputs: ModelInputs, batch_size: int) -> np.ndarray:
        x = head_matrix(
            self.embed(inputs, batch_size), feature_matrix(inputs, self.feature_columns)
        )
        out = np.zeros((len(inputs), len(self.class_names)), dtype=np.float32)
        out[:, np.asarray(self.head.classes_, dtype=np.int64)] = self.head.predict_proba(x)
        return _normalise_rows(out)

    def metadata(self) -> dict[str, Any]:
        """The content of ``model.json``."""
        return {
            "kind": self.kind,
            "class_names": self.class_names,
            "label_column": self.label_column,
            "store_fingerprint": self.store_fingerprint,
            "image_size": list(self.image_size),
            "resize_mode": self.resize_mode,
            "normalisation": self.normalisation.to_dict(),
            "feature_columns": self.feature_columns,
            "plankton_jobs_version": __version__,
            **self.info,
            **({"head": self.head_kind} if self.kind == "cnn" else {}),
        }


def _normalise_rows(proba: np.ndarray) -> np.ndarray:
    total = proba.sum(axis=1, keepdims=True)
    return (proba / np.where(total > 0, total, 1.0)).astype(np.float32)


def save_model(
    model_dir: str | os.PathLike, model: TrainedModel, history: pd.DataFrame | None = None
) -> None:
    """Write ``model_dir``: the model file, ``model.json`` and (given a history)
    ``history.csv`` and ``history.png``. The folder is created if needed."""
    path = Path(model_dir)
    path.mkdir(parents=True, exist_ok=True)
    target = path / model_file(model.kind)
    if model.kind == ENSEMBLE_KIND:
        pass  # the members are their own MODEL_DIRs, listed in model.json
    elif model.kind in KERAS_KINDS:
        model.estimator.save(target)
    else:
        import skops.io as sio

        sio.dump(model.estimator, target)
    if model.head is not None:
        import skops.io as sio

        sio.dump(model.head, path / HEAD_FILE)
    (path / MODEL_JSON).write_text(json.dumps(model.metadata(), indent=2, default=_json) + "\n")
    if history is not None:
        from plankton_store.report import history_png  # matplotlib: only when writing

        history.to_csv(path / HISTORY_CSV, index=False)
        history_png(history, path / HISTORY_PNG, title=f"{model.kind} on {model.label_column}")


def _json(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, tuple | set):
        return list(value)
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def load_model(model_dir: str | os.PathLike) -> TrainedModel:
    """Load a MODEL_DIR written by :func:`save_model`.

    Keras models load with ``safe_mode=True`` (no arbitrary code); scikit-learn models load
    with skops, trusting only skops' defaults and :data:`SKOPS_TRUSTED`.

    Raises
    ------
    FileNotFoundError
        If ``model_dir`` has no ``model.json`` or model file.
    ValueError
        If the skops file holds a type outside the allow-list.
    """
    path = Path(model_dir)
    meta_file = path / MODEL_JSON
    if not meta_file.is_file():
        raise FileNotFoundError(f"{path} is not a model dir: no {MODEL_JSON}")
    meta = json.loads(meta_file.read_text())
    kind = meta["kind"]
    target = path / model_file(kind)
    if not target.is_file():
        raise FileNotFoundError(f"{path}: {target.name} is missing")
    if kind == ENSEMBLE_KIND:
        estimator = [load_model(member) for member in ensemble_members(path, meta)]
    elif kind in KERAS_KINDS:
        keras = import_keras()
        estimator = keras.saving.load_model(target, compile=False, safe_mode=True)
    else:
        estimator = _load_skops(target)
    head = None
    if meta.get("head") == "logistic":
        if not (path / HEAD_FILE).is_file():
            raise FileNotFoundError(f"{path}: {HEAD_FILE} is missing (model.json says head)")
        head = _load_skops(path / HEAD_FILE)
    known = {
        "kind",
        "class_names",
        "label_column",
        "store_fingerprint",
        "image_size",
        "resize_mode",
        "normalisation",
        "feature_columns",
        "head",
    }
    return TrainedModel(
        kind=kind,
        estimator=estimator,
        class_names=meta["class_names"],
        label_column=meta["label_column"],
        store_fingerprint=meta["store_fingerprint"],
        image_size=tuple(meta["image_size"]),  # type: ignore[arg-type]
        resize_mode=meta["resize_mode"],
        normalisation=Normalisation.from_dict(meta["normalisation"]),
        feature_columns=meta.get("feature_columns") or {},
        info={k: v for k, v in meta.items() if k not in known},
        head=head,
    )


def _load_skops(target: Path) -> Any:
    """A skops file, trusting only skops' defaults and :data:`SKOPS_TRUSTED`."""
    import skops.io as sio

    untrusted = sio.get_untrusted_types(file=target)
    unknown = sorted(set(untrusted) - set(SKOPS_TRUSTED))
    if unknown:
        raise ValueError(f"{target} holds types that are not on the allow-list: {unknown}")
    return sio.load(target, trusted=untrusted)
