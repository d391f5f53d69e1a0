"""The fit loops of the scikit-learn models, and the cnn's refitted head.

Each loop draws a new balanced selection of the train split every epoch, scores val after
every epoch (macro-F1 picks the best epoch) and stops early through :class:`History`.
"""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from plankton_store.ml._balance import BalancedSampler
from plankton_store.ml._batches import PARTIAL_FIT_BLOCK, BatchPipeline
from plankton_store.ml._head import HEAD_MAX_ROWS, fit_head, head_sample
from plankton_store.ml._history import val_metrics
from plankton_store.ml._inputs import ModelInputs, feature_matrix, store_feature_columns
from plankton_store.ml._models import TrainedModel
from plankton_store.ml._options import TrainOptions
from plankton_store.ml._trainset import TrainSet
from plankton_store.ml._tta import predict_proba_tta

#: Boosting iterations per epoch of the ``features`` model.
TREES_PER_EPOCH = 10


def sampler(
    train_set: TrainSet, options: TrainOptions, represent: np.ndarray | None = None
) -> BalancedSampler:
    """The epoch-by-epoch balanced sampler of ``options.balance`` over the train split."""
    if represent is None and options.balance in ("cluster-centroids", "smote"):
        represent = train_set.pooled()
    return BalancedSampler(
        train_set.labels, train_set.n_classes, options.balance, options.seed, represent
    )


def fit_mlp(st, train_set, normalisation, val, val_y, options, history):  # noqa: ANN001, ANN202
    """partial_fit loop: one pass over each epoch's balanced selection."""
    from sklearn.neural_network import MLPClassifier

    pipeline = BatchPipeline(
        train_set, sampler(train_set, options), options.batch_size, seed=options.seed
    )
    clf = MLPClassifier(
        hidden_layer_sizes=options.hidden,
        solver="adam",
        learning_rate_init=options.lr,
        alpha=options.alpha,
        batch_size=options.batch_size,
        random_state=options.seed,
    )
    classes = np.arange(train_set.n_classes)
    val_x = normalisation.images(val.images).reshape(len(val), -1)
    best = None
    for epoch in range(1, options.epochs + 1):
        t0 = time.perf_counter()
        losses, correct, seen, samples = [], 0, 0, 0
        # Blocks of whole mini-batches, about a thousand samples (the quick size).
        block_size = options.batch_size * max(1, PARTIAL_FIT_BLOCK // options.batch_size)
        for x, y, w in pipeline.blocks(epoch - 1, normalisation, block_size=block_size):
            # Accuracy before each update, as Keras reports it; the very first block has no
            # model to ask, so an epoch of one block has no train accuracy (NaN), not 0.
            if hasattr(clf, "coefs_"):
                correct += int((clf.predict(x) == y).sum())
                seen += len(y)
            clf.batch_size = min(options.batch_size, len(y))  # a short last block
            clf.partial_fit(x, y, sample_weight=w, classes=classes)
            losses.append((clf.loss_, len(y)))
            samples += len(y)
        seconds = time.perf_counter() - t0
        loss = sum(v * n for v, n in losses) / max(samples, 1)
        metrics = val_metrics(clf.predict_proba(val_x), val_y)
        if history.add(
            epoch,
            seconds,
            samples,
            loss=loss,
            accuracy=correct / seen if seen else math.nan,
            **metrics,
            lr=options.lr,
        ):
            best = copy.deepcopy(clf)
        if history.stopping(epoch):
            break
    return best


def fit_features(st, train_set, normalisation, val, val_y, options, history):  # noqa: ANN001, ANN202
    """HistGradientBoosting on the feature tables + log original size, grown
    TREES_PER_EPOCH iterations per epoch on one balanced draw of the train split."""
    from sklearn.ensemble import HistGradientBoostingClassifier

    tables = st.feature_tables
    if not tables:
        raise ValueError(f"{st.path} has no feature tables: the features model needs them")
    columns = store_feature_columns(st)
    x_all = feature_matrix(ModelInputs.from_store(st, train_set.indices, images=False), columns)
    represent = None
    if options.balance in ("cluster-centroids", "smote"):
        # Distances on standardised features, missing values at the (zero) mean.
        mu, sd = np.nanmean(x_all, axis=0), np.nanstd(x_all, axis=0)
        represent = np.nan_to_num((x_all - mu) / np.where(sd > 0, sd, 1.0)).astype(np.float32)
    selection = sampler(train_set, options, represent).epoch(0)
    x = x_all[selection.positions]
    if selection.partners is not None:
        syn = selection.partners >= 0
        step = selection.steps[syn][:, None]
        x[syn] = x[syn] + step * (x_all[selection.partners[syn]] - x[syn])
    y = train_set.labels[selection.positions]
    probe = np.random.default_rng(options.seed).permutation(len(y))[:5000]
    clf = HistGradientBoostingClassifier(
        learning_rate=options.lr,
        # Keeps leaf values finite for classes of a few samples, whose hessians vanish:
        # without it, boosting diverged on ndsb-dev level1 (121 classes; val accuracy fell
        # from 0.20 to 0.10 in the second epoch).
        l2_regularization=1.0,
        max_iter=0,
        early_stopping=False,
        warm_start=True,
        random_state=options.seed,
    )
    val_x = feature_matrix(val, columns)
    best = None
    for epoch in range(1, options.epochs + 1):
        t0 = time.perf_counter()
        clf.max_iter += TREES_PER_EPOCH
        clf.fit(x, y, sample_weight=selection.weights)
        seconds = time.perf_counter() - t0
        train_m = val_metrics(_all_classes(clf, x[probe], train_set.n_classes), y[probe])
        metrics = val_metrics(_all_classes(clf, val_x, train_set.n_classes), val_y)
        improved = history.add(
            epoch,
            seconds,
            len(y),
            loss=train_m["val_loss"],
            accuracy=train_m["val_accuracy"],
            **metrics,
            lr=options.lr,
        )
        if improved:
            best = copy.deepcopy(clf)
        if history.stopping(epoch):
            break
    return best


def _all_classes(clf: Any, x: np.ndarray, n_classes: int) -> np.ndarray:
    """``clf``'s probabilities of ``x`` in ``n_classes`` columns: 0 for the classes missing
    from its draw of the train split."""
    proba = np.zeros((len(x), n_classes))
    proba[:, clf.classes_] = clf.predict_proba(x)
    return proba


def refit_head(
    model: TrainedModel,
    st: Any,
    train_set: TrainSet,
    val: ModelInputs,
    val_y: np.ndarray,
    options: TrainOptions,
    echo: Callable[[str], None] | None,
) -> None:
    """Fit a cnn's logistic-regression head (:mod:`plankton_store.ml._head`) and keep it when
    ``--head logistic``, or with ``auto`` when it scores at least as well on val.

    Both heads are scored on the 8 dihedral views of val (as ``evaluate --tta`` does): the
    one-view figure of the softmax layer is that of the epoch picked for it, so it is biased
    upwards. Both heads' figures go in ``model.info["head_fit"]``.
    """
    started = time.perf_counter()
    n_classes = len(model.class_names)
    rows = head_sample(train_set.labels, HEAD_MAX_ROWS // 8, seed=options.seed)
    inputs = ModelInputs.from_store(st, train_set.indices[rows])
    columns = store_feature_columns(st)
    head = fit_head(
        model.embed,
        lambda x: feature_matrix(x, columns),
        inputs,
        train_set.labels[rows],
        np.bincount(train_set.labels, minlength=n_classes),
        model.resize_mode,
    )
    candidate = copy.copy(model)
    candidate.head, candidate.feature_columns = head, columns
    scores = {
        name: val_metrics(
            predict_proba_tta(m, val, m.resize_mode).astype(np.float64),  # type: ignore[arg-type]
            val_y,
        )
        for name, m in (("softmax", model), ("logistic", candidate))
    }
    softmax, logistic = scores["softmax"], scores["logistic"]
    keep = options.head == "logistic" or logistic["val_macro_f1"] >= softmax["val_macro_f1"]
    model.info["head_fit"] = {
        **{
            name: {k: round(v, 4) for k, v in s.items() if k != "val_loss"}
            for name, s in scores.items()
        },
        "views": 8,
        "train_samples": len(rows),
        "seconds": round(time.perf_counter() - started, 3),
    }
    if keep:
        model.head, model.feature_columns = head, columns
    if echo:
        echo(
            f"logistic head, val with 8 views: macro-F1 {logistic['val_macro_f1']:.4f} "
            f"against {softmax['val_macro_f1']:.4f} for the softmax layer, accuracy "
            f"{logistic['val_accuracy']:.4f} against {softmax['val_accuracy']:.4f} "
            f"({time.perf_counter() - started:.0f} s): "
            + ("kept" if keep else "not kept (--head logistic keeps it anyway)")
        )
