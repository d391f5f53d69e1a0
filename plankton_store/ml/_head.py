"""A logistic-regression head refitted on a trained ``cnn``'s embedding.

After the Keras fit, the ``cnn``'s softmax layer is replaced by a multinomial logistic
regression on what that layer sees (the 128-unit embedding) joined with the store's feature
tables and the log original size, fitted on the 8 dihedral views of the train split with
classes weighted by ``count ** -0.5`` (the balance the net trained with). On real plankton
(``benchmarks/real_recipe.md``) this raised val accuracy by 0.015-0.017 and val macro-F1 by
0.013-0.035 on two independently trained nets: the softmax layer is trained with dropout 0.5
on rotated images, the head sees the embedding without either, and the feature tables add
full-resolution shape and grey-level measures that the 64-pixel images lose.

The idea is the classifier re-training of Kang et al., "Decoupling Representation and
Classifier for Long-Tailed Recognition" (ICLR 2020), with a scikit-learn classifier.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import Any

import numpy as np

from plankton_store.ml._keras import import_keras
from plankton_store.ml._tta import tta_views

__all__ = [
    "HEAD_BALANCE_POWER",
    "HEAD_C",
    "HEAD_CHOICES",
    "HEAD_MAX_ROWS",
    "embedding_model",
    "fit_head",
    "head_matrix",
    "head_sample",
]

#: ``--head`` values: ``logistic`` (the cnn's default) fits the head and keeps it; ``auto``
#: keeps it when it scores at least as well as the softmax layer on val macro-F1 (8 views);
#: ``softmax`` fits none.
HEAD_CHOICES: tuple[str, ...] = ("auto", "logistic", "softmax")
#: Inverse regularisation strength of the logistic regression (0.03-0.3 scored alike on val).
HEAD_C = 0.1
#: Classes weigh ``count ** -HEAD_BALANCE_POWER`` (0.5: the cnn's sqrt balance).
HEAD_BALANCE_POWER = 0.5
#: At most this many rows (train samples x 8 views) fit the head: a larger train split is
#: subsampled with every class kept up to a common cap, so rare classes keep all theirs.
HEAD_MAX_ROWS = 120_000
#: Name of the ``cnn``'s output layer, whose input is the embedding.
OUTPUT_LAYER = "probabilities"


def embedding_model(keras_model: Any) -> Any:
    """A Keras model from the same inputs to the input of the output (softmax) layer.

    Dropout is inactive at inference, so this is the embedding the softmax layer sees.
    """
    keras = import_keras()
    return keras.Model(keras_model.inputs, keras_model.get_layer(OUTPUT_LAYER).input)


def head_matrix(embedding: np.ndarray, features: np.ndarray) -> np.ndarray:
    """The head's input: the embedding, then the feature matrix
    (:func:`plankton_store.ml.feature_matrix`: feature tables and log size; NaN kept)."""
    return np.concatenate(
        [np.asarray(embedding, np.float32), np.asarray(features, np.float32)], axis=1
    )


def head_sample(labels: np.ndarray, max_samples: int, seed: int = 0) -> np.ndarray:
    """Positions of at most ``max_samples`` labels, every class kept up to a common cap.

    Water-filling: the cap is the largest per-class count for which the total fits, so
    classes smaller than the cap keep every sample. Sorted positions.
    """
    labels = np.asarray(labels)
    if len(labels) <= max_samples:
        return np.arange(len(labels))
    classes, counts = np.unique(labels, return_counts=True)
    cap = 0
    for candidate in np.unique(counts):
        if np.minimum(counts, candidate).sum() > max_samples:
            break
        cap = int(candidate)
    # The rest of the room is shared equally among the classes above the cap.
    room = max_samples - int(np.minimum(counts, cap).sum())
    rng = np.random.default_rng(seed)
    kept = []
    big = counts > cap
    extra = np.zeros(len(classes), dtype=np.int64)
    if big.any() and room > 0:
        per_class = room // int(big.sum())
        extra[big] = np.minimum(counts[big] - cap, per_class)
    for label, count, more in zip(classes, counts, extra, strict=True):
        rows = np.flatnonzero(labels == label)
        take = min(count, cap + int(more))
        kept.append(rows if take >= count else rng.choice(rows, take, replace=False))
    return np.sort(np.concatenate(kept))


def fit_head(
    embed: Callable[[Any], np.ndarray],
    features: Callable[[Any], np.ndarray],
    inputs: Any,
    labels: np.ndarray,
    class_counts: np.ndarray,
    resize_mode: str,
) -> Any:
    """Fit the head on the 8 dihedral views of ``inputs``.

    Parameters
    ----------
    embed
        ``ModelInputs -> (n, d)`` embeddings (the cnn without its softmax layer).
    features
        ``ModelInputs -> (n, f)`` feature matrix (feature tables and log size).
    inputs
        :class:`plankton_store.ml.ModelInputs` of the train split, or of a
        :func:`head_sample` of it.
    labels
        Their class codes.
    class_counts
        Train samples per class code in the whole train split: classes weigh
        ``count ** -HEAD_BALANCE_POWER``, and a subsample is weighted back to these counts.
    resize_mode
        The store's resize mode (how rotated non-square views are brought back to shape).

    Returns
    -------
    sklearn.pipeline.Pipeline
        Median imputation (NaN features), standardisation, logistic regression; its
        ``classes_`` are the class codes present in ``labels``.
    """
    from sklearn.impute import SimpleImputer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    labels = np.asarray(labels, dtype=np.int64)
    counts = np.asarray(class_counts, dtype=np.float64)
    parts = [
        head_matrix(embed(view), features(view))
        for view in (
            replace(inputs, images=images, orig_height=height, orig_width=width)
            for _name, images, height, width in tta_views(
                inputs.images, inputs.orig_height, inputs.orig_width, resize_mode
            )
        )
    ]
    x = np.concatenate(parts)
    y = np.tile(labels, len(parts))
    # count ** -power of the whole train split, times count / kept to undo a subsample.
    kept = np.bincount(labels, minlength=len(counts)).astype(np.float64)
    weight_of = np.where(kept > 0, counts ** (1 - HEAD_BALANCE_POWER) / np.maximum(kept, 1), 0.0)
    weights = weight_of[y]
    head = make_pipeline(
        SimpleImputer(strategy="median", keep_empty_features=True),
        StandardScaler(),
        LogisticRegression(C=HEAD_C, max_iter=500),
    )
    head.fit(x, y, logisticregression__sample_weight=weights / weights.mean())
    return head
