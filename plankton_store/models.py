"""Model builders and the MODEL_DIR contract shared by the train, evaluate and predict jobs.

A MODEL_DIR holds::

    model.keras | model.skops   the fitted model (Keras 3 / scikit-learn via skops); an
                                ``ensemble`` has none: its model.json lists its members'
                                folders (relative to it) and their weights
    model.json                  kind, class_names, label_column, store_fingerprint, store,
                                image_size, resize_mode, normalisation, feature_columns,
                                options, seed, best_epoch, val_macro_f1, val_accuracy,
                                head, plankton_jobs_version
    head.skops                  a ``cnn``'s logistic-regression head, if it has one
                                (:mod:`plankton_store.head`): it replaces the softmax layer
    history.csv                 one row per epoch: epoch, loss, accuracy, val_loss,
                                val_accuracy, val_macro_f1, lr, samples, seconds, elapsed
    history.png                 loss, accuracy and validation macro-F1 curves

Every model predicts from :class:`ModelInputs` (the arrays of a store, as stored) and
standardises them itself with the train-split :class:`~plankton_store.sampling.Normalisation`
(Keras models carry it as layers). TensorFlow is imported only inside the Keras code paths,
so loading or using an ``mlp`` or ``features`` model never imports it.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from plankton_store import __version__
from plankton_store import format as fmt
from plankton_store.inference import MODEL_JSON, ensemble_members
from plankton_store.sampling import Normalisation, gather_images, log_sizes
from plankton_store.store import PlanktonStore

__all__ = [
    "ENSEMBLE_KIND",
    "KERAS_KINDS",
    "MODEL_KINDS",
    "ModelInputs",
    "TrainedModel",
    "build_cnn",
    "build_seed_cnn",
    "conv_trunk",
    "feature_matrix",
    "load_model",
    "plot_history",
    "save_model",
]

MODEL_KINDS: tuple[str, ...] = ("mlp", "cnn", "seed-cnn", "features")
#: Kind of a MODEL_DIR that pools other MODEL_DIRs (``plankton-jobs ensemble``).
ENSEMBLE_KIND = "ensemble"
KERAS_KINDS: tuple[str, ...] = ("cnn", "seed-cnn")
HISTORY_CSV = "history.csv"
HISTORY_PNG = "history.png"
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


@dataclass
class ModelInputs:
    """What every model predicts from: the per-sample arrays of a store, as stored.

    Attributes
    ----------
    images : numpy.ndarray
        ``(n, h, w)`` uint8.
    orig_height, orig_width : numpy.ndarray
        ``(n,)`` int32 size before resizing.
    features : dict
        Table name -> ``(n, F)`` float32 (NaN allowed); may be empty.
    """

    images: np.ndarray
    orig_height: np.ndarray
    orig_width: np.ndarray
    features: dict[str, np.ndarray] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.images)

    @classmethod
    def from_store(
        cls, store: PlanktonStore, indices: np.ndarray, images: bool = True
    ) -> ModelInputs:
        """Gather samples ``indices`` of ``store``, reading each needed chunk once.

        ``images=False`` skips the pixels (``images`` is then ``(n, 0, 0)``), for the
        ``features`` model.
        """
        indices = np.asarray(indices, dtype=np.int64)
        features = {}
        for table in store.feature_tables:
            arr, _ = store.features(table)
            features[table] = np.asarray(arr[:], dtype=np.float32)[indices]
        pixels = (
            gather_images(store.images, indices)
            if images
            else np.zeros((len(indices), 0, 0), dtype=np.uint8)
        )
        return cls(
            images=pixels,
            orig_height=np.asarray(store.array(fmt.ORIG_HEIGHT)[:], np.int32)[indices],
            orig_width=np.asarray(store.array(fmt.ORIG_WIDTH)[:], np.int32)[indices],
            features=features,
        )

    def subset(self, rows: np.ndarray) -> ModelInputs:
        """The inputs of ``rows`` (positions into these inputs)."""
        return ModelInputs(
            self.images[rows],
            self.orig_height[rows],
            self.orig_width[rows],
            {k: v[rows] for k, v in self.features.items()},
        )

    @property
    def log_size(self) -> np.ndarray:
        return log_sizes(self.orig_height, self.orig_width)


def feature_matrix(inputs: ModelInputs, feature_columns: dict[str, list[str]]) -> np.ndarray:
    """The ``features`` model's input: every table of ``feature_columns`` (in that order)
    then ``log(orig_height), log(orig_width)``, as float32 (NaN kept)."""
    parts = []
    for table, columns in feature_columns.items():
        if table not in inputs.features:
            raise ValueError(f"the features model needs feature table {table!r}")
        values = inputs.features[table]
        if values.shape[1] != len(columns):
            raise ValueError(
                f"feature table {table!r} has {values.shape[1]} columns, not {len(columns)}"
            )
        parts.append(values.astype(np.float32, copy=False))
    parts.append(inputs.log_size)
    return np.concatenate(parts, axis=1)


# ------------------------------------------------------------------------------------------
# Keras builders (TensorFlow imported lazily).
# ------------------------------------------------------------------------------------------


def _standardise_layer(keras: Any, normalisation: Normalisation) -> Any:
    std = normalisation.image_std
    return keras.layers.Rescaling(
        1.0 / std, offset=-normalisation.image_mean / std, name="standardise"
    )


def build_seed_cnn(
    image_size: tuple[int, int], n_classes: int, normalisation: Normalisation, lr: float = 1e-3
) -> Any:
    """The seed notebook's CNN as published (3.2M parameters at 64x48), compiled.

    Conv2D 32 (5x5)-BN-32 (5x5)-BN-MaxPool-Dropout .25, Conv2D 64 (3x3)-BN-64 (3x3)-BN-MaxPool-
    Dropout .25, Dense 256-BN-Dropout .5, softmax; RMSprop. Differences: images the right way
    up, and inputs standardised with the train statistics (the shared pipeline) instead of
    divided by 255. Its conv batch norms train with TensorFlow's fused kernel, as tf.keras 2
    (the notebook's Keras) did (:class:`~plankton_store.keras_layers.FusedBatchNormalization`).
    """
    import keras

    from plankton_store.keras_layers import FusedBatchNormalization

    layers = keras.layers
    image = keras.Input((*image_size, 1), dtype="uint8", name="image")
    x = _standardise_layer(keras, normalisation)(image)
    for filters, kernel in ((32, 5), (64, 3)):
        for _ in range(2):
            x = layers.Conv2D(filters, kernel, padding="same", activation="relu")(x)
            x = FusedBatchNormalization()(x)
        x = layers.MaxPooling2D(2)(x)
        x = layers.Dropout(0.25)(x)
    x = layers.Flatten()(x)
    x = layers.Dense(256, activation="relu")(x)
    x = layers.BatchNormalization()(x)
    x = layers.Dropout(0.5)(x)
    out = layers.Dense(n_classes, activation="softmax", name="probabilities")(x)
    model = keras.Model({"image": image}, out, name="seed_cnn")
    model.compile(
        optimizer=keras.optimizers.RMSprop(lr),
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
    )
    return model


def conv_trunk(x: Any, widths: tuple[int, ...], convs_per_block: int = 1) -> Any:
    """The conv blocks of :func:`build_cnn`, then global average + max pooling.

    Each block is ``convs_per_block`` x (Conv2D 3x3 - BatchNorm (momentum .9; the fused
    kernel in training) - ReLU) and a 2x max pooling between blocks. Takes and returns Keras
    tensors (functional API).
    """
    import keras

    from plankton_store.keras_layers import FusedBatchNormalization

    layers = keras.layers
    for i, filters in enumerate(widths):
        for _ in range(convs_per_block):
            x = layers.Conv2D(filters, 3, padding="same", use_bias=False)(x)
            x = FusedBatchNormalization(momentum=0.9)(x)
            x = layers.ReLU()(x)
        if i < len(widths) - 1:
            x = layers.MaxPooling2D(2)(x)
    pooled = [layers.GlobalAveragePooling2D()(x), layers.GlobalMaxPooling2D()(x)]
    return layers.Concatenate()(pooled)


def build_cnn(
    image_size: tuple[int, int],
    n_classes: int,
    normalisation: Normalisation,
    lr: float = 2e-3,
    widths: tuple[int, ...] = (16, 48, 96, 192),
    dropout: float = 0.5,
    rotate: bool = False,
) -> Any:
    """Our default CNN: compact conv blocks, global pooling and the original size as input.

    Pixels are inverted to ``1 - x / 255`` (background 0, object up to 1), so that the
    zero padding of the convolutions, of rotations and of padded stores looks like
    background. ``rotate`` adds a random rotation by any angle while training (for padded
    stores, whose images keep their aspect ratio; plankton has no up or down). Images 48 px
    high or more are then average-pooled 2x (64x48 -> 32x24: the conv layers cost a quarter,
    and the shapes survive it). Each block is Conv2D 3x3 - BatchNorm (momentum .9: right
    after short runs) - ReLU - MaxPool; global average and max pooling replace the big dense
    layer. The log original height and width (standardised inside the model) join before the
    classifier, since the resize to a fixed size erases them. About 0.27M parameters (the seed
    CNN has 3.2M); Adam. Each choice was measured on real plankton
    (``benchmarks/real_recipe.md``).
    """
    import keras

    from plankton_store.keras_layers import JittableRandomRotation

    layers = keras.layers
    image = keras.Input((*image_size, 1), dtype="uint8", name="image")
    size = keras.Input((2,), dtype="float32", name="size")
    x = layers.Rescaling(-1.0 / 255, offset=1.0, name="invert")(image)
    if rotate:
        x = JittableRandomRotation(0.5, fill_mode="constant", fill_value=0.0)(x)
    if image_size[0] >= 48:
        x = layers.AveragePooling2D(2)(x)
    x = conv_trunk(x, widths)
    s = layers.Normalization(
        mean=list(normalisation.size_mean),
        variance=[v * v for v in normalisation.size_std],
        name="standardise_size",
    )(size)
    s = layers.Dense(16, activation="relu")(s)
    x = layers.Concatenate()([x, s])
    x = layers.Dense(128, activation="relu")(x)
    x = layers.Dropout(dropout)(x)
    out = layers.Dense(n_classes, activation="softmax", name="probabilities")(x)
    model = keras.Model({"image": image, "size": size}, out, name="cnn")
    model.compile(
        optimizer=keras.optimizers.Adam(lr),
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
    )
    return model


def keras_inputs(inputs: ModelInputs, kind: str) -> dict[str, np.ndarray]:
    """The Keras input dictionary of a ``cnn`` / ``seed-cnn`` model."""
    data = {"image": inputs.images[..., None]}
    if kind == "cnn":
        data["size"] = inputs.log_size
    return data


# ------------------------------------------------------------------------------------------
# The trained model and MODEL_DIR.
# ------------------------------------------------------------------------------------------


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
        A ``cnn``'s logistic-regression head (:mod:`plankton_store.head`), or None: the
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
            from plankton_store.ensemble import pool_probabilities

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
            from plankton_store.head import embedding_model

            self._embedder = embedding_model(self.estimator)
        out = self._embedder.predict(
            keras_inputs(inputs, self.kind), batch_size=batch_size, verbose=0
        )
        return np.asarray(out, dtype=np.float32)

    def _head_proba(self, inputs: ModelInputs, batch_size: int) -> np.ndarray:
        from plankton_store.head import head_matrix

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


def model_file(kind: str) -> str:
    """``model.keras`` for Keras kinds, ``model.json`` for an ensemble, else ``model.skops``."""
    if kind == ENSEMBLE_KIND:
        return MODEL_JSON
    return "model.keras" if kind in KERAS_KINDS else "model.skops"


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

        from plankton_store.head import HEAD_FILE

        sio.dump(model.head, path / HEAD_FILE)
    (path / MODEL_JSON).write_text(json.dumps(model.metadata(), indent=2, default=_json) + "\n")
    if history is not None:
        history.to_csv(path / HISTORY_CSV, index=False)
        plot_history(history, path / HISTORY_PNG, title=f"{model.kind} on {model.label_column}")


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
        import plankton_store.keras_layers  # noqa: F401  (backend settings; our layers)

        # isort: split
        import keras

        estimator = keras.saving.load_model(target, compile=False, safe_mode=True)
    else:
        estimator = _load_skops(target)
    head = None
    if meta.get("head") == "logistic":
        from plankton_store.head import HEAD_FILE

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


def plot_history(history: pd.DataFrame, out: str | os.PathLike, title: str = "") -> None:
    """PNG of loss, accuracy and validation macro-F1 per epoch."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(13, 3.6))
    epoch = history["epoch"]
    panels = (
        ("loss", [("loss", "train"), ("val_loss", "val")]),
        ("accuracy", [("accuracy", "train (balanced batches)"), ("val_accuracy", "val")]),
        ("val macro-F1", [("val_macro_f1", "val")]),
    )
    for ax, (name, series) in zip(axes, panels, strict=True):
        for column, label in series:
            if column in history and history[column].notna().any():
                ax.plot(epoch, history[column], marker=".", label=label)
        ax.set_title(name)
        ax.set_xlabel("epoch")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    if "val_macro_f1" in history and history["val_macro_f1"].notna().any():
        best = int(history["val_macro_f1"].to_numpy().argmax())
        axes[2].axvline(epoch.iloc[best], color="grey", ls="--", lw=1)
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(out, dpi=90)
    plt.close(fig)
