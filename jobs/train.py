"""train: fit an mlp, cnn, seed-cnn or features model on the train split of a store.

Only the train split is sampled, resampled and augmented; val picks the best epoch (early
stopping on validation macro-F1); test is never read. A grid of settings runs as one Dask task
per combination. TensorFlow is imported only when a ``cnn`` / ``seed-cnn`` model is trained.
"""

from __future__ import annotations

import copy
import itertools
import math
import os
import shutil
import time
import warnings
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import click
import numpy as np
import pandas as pd

from jobs.cluster import cluster_options, dask_client
from jobs.options import seed_option
from plankton_store.head import HEAD_CHOICES, HEAD_MAX_ROWS, fit_head, head_sample
from plankton_store.metrics import macro_f1
from plankton_store.models import (
    MODEL_KINDS,
    ModelInputs,
    TrainedModel,
    feature_matrix,
    keras_inputs,
    save_model,
)
from plankton_store.sampling import (
    BALANCE_POLICIES,
    DEFAULT_MEMORY_LIMIT,
    PARTIAL_FIT_BLOCK,
    BalancedSampler,
    BatchPipeline,
    Normalisation,
    TrainSet,
)
from plankton_store.store import IncompleteStoreError, StoreFormatError, open_store

__all__ = [
    "GRID_KEYS",
    "TrainOptions",
    "TrainResult",
    "parse_grid",
    "run_grid",
    "train",
    "train_command",
]

#: Defaults that depend on the model: (balance, epochs, batch size, learning rate, augment).
MODEL_DEFAULTS: dict[str, tuple[str, int, int, float, bool]] = {
    "mlp": ("undersample", 50, 200, 5e-4, False),
    "cnn": ("sqrt", 40, 128, 2e-3, True),
    "seed-cnn": ("undersample", 40, 100, 1e-3, False),
    "features": ("class-weight", 40, 0, 0.1, False),
}
#: Boosting iterations per epoch of the ``features`` model.
TREES_PER_EPOCH = 10


@dataclass(frozen=True)
class TrainOptions:
    """Every option of a training run; ``None`` means the model's default
    (:data:`MODEL_DEFAULTS`). Recorded in ``model.json``."""

    model: str = "cnn"
    balance: str | None = None
    epochs: int | None = None
    batch_size: int | None = None
    lr: float | None = None
    augment: bool | None = None
    hidden: tuple[int, ...] = (100,)
    alpha: float = 1e-4
    patience: int = 8
    time_budget: float | None = None
    seed: int = 0
    threads: int | None = None
    memory_limit: int = DEFAULT_MEMORY_LIMIT
    head: str | None = None

    def resolved(self) -> TrainOptions:
        """These options with every ``None`` default filled in for the model."""
        if self.model not in MODEL_KINDS:
            raise ValueError(f"unknown model {self.model!r}; choose from {MODEL_KINDS}")
        balance, epochs, batch, lr, augment = MODEL_DEFAULTS[self.model]
        options = replace(
            self,
            balance=self.balance or balance,
            epochs=self.epochs or epochs,
            batch_size=self.batch_size or batch,
            lr=self.lr or lr,
            augment=augment if self.augment is None else self.augment,
            threads=self.threads or _cpus(),
            hidden=tuple(int(h) for h in self.hidden),
            head=self.head or ("logistic" if self.model == "cnn" else "softmax"),
        )
        if options.balance not in BALANCE_POLICIES:
            raise ValueError(
                f"unknown --balance {options.balance!r}; choose from {BALANCE_POLICIES}"
            )
        if options.augment and options.model not in ("cnn", "seed-cnn"):
            raise ValueError("--augment is for the cnn and seed-cnn models")
        if options.head not in HEAD_CHOICES:
            raise ValueError(f"unknown --head {options.head!r}; choose from {HEAD_CHOICES}")
        if options.head != "softmax" and options.model != "cnn":
            raise ValueError("--head auto / logistic is for the cnn model")
        if options.epochs < 1 or (options.model != "features" and options.batch_size < 1):
            raise ValueError("--epochs and --batch-size must be at least 1")
        return options


def _cpus() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


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


class _History:
    """Per-epoch rows, console progress, early stopping and the time budget."""

    def __init__(self, options: TrainOptions, echo: Callable[[str], None] | None) -> None:
        self.options = options
        self.echo = echo
        self.rows: list[dict[str, Any]] = []
        self.started = time.perf_counter()
        self.best_f1 = -1.0
        self.best_epoch = 0
        self.train_seconds = 0.0
        self.train_samples = 0

    def out_of_time(self) -> bool:
        budget = self.options.time_budget
        return budget is not None and time.perf_counter() - self.started >= budget

    def add(self, epoch: int, seconds: float, samples: int, **metrics: float) -> bool:
        """Record an epoch; True when it is the best so far."""
        self.train_seconds += seconds
        self.train_samples += samples
        row = {
            "epoch": epoch,
            **metrics,
            "samples": samples,
            "seconds": round(seconds, 3),
            "elapsed": round(time.perf_counter() - self.started, 3),
        }
        self.rows.append(row)
        improved = row["val_macro_f1"] > self.best_f1
        if improved:
            self.best_f1, self.best_epoch = row["val_macro_f1"], epoch
        if self.echo:
            lr = f"  lr {row['lr']:.2g}" if "lr" in row and row["lr"] == row["lr"] else ""
            self.echo(
                f"epoch {epoch:>3}/{self.options.epochs}  loss {row['loss']:.4f}  "
                f"acc {_measured(row['accuracy'])}  val_loss {row['val_loss']:.4f}  "
                f"val_acc {row['val_accuracy']:.3f}  val_macro_f1 {row['val_macro_f1']:.3f}"
                f"{' *' if improved else '  '}{lr}  {seconds:.1f} s "
                f"({samples / max(seconds, 1e-9):,.0f} samples/s)"
            )
        return improved

    def should_stop(self, epoch: int) -> str | None:
        if epoch - self.best_epoch >= self.options.patience:
            return f"no better val macro-F1 for {self.options.patience} epochs"
        if self.out_of_time():
            return f"time budget of {self.options.time_budget:g} s used"
        return None

    def frame(self) -> pd.DataFrame:
        return pd.DataFrame(self.rows)


def _measured(value: float) -> str:
    """A metric for the epoch line: three decimals, or a dash where it was not measured."""
    return "  -  " if math.isnan(value) else f"{value:.3f}"


def _val_metrics(proba: np.ndarray, y: np.ndarray) -> dict[str, float]:
    pred = proba.argmax(axis=1)
    p = np.clip(proba[np.arange(len(y)), y], 1e-7, 1.0)
    return {
        "val_loss": float(-np.log(p).mean()),
        "val_accuracy": float((pred == y).mean()),
        "val_macro_f1": macro_f1(y, pred),
    }


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
    echo: Callable[[str], None] | None = click.echo,
) -> TrainResult:
    """Train one model on the train split of ``store`` and write MODEL_DIR ``out``.

    Parameters
    ----------
    store
        Path or URL of a complete plankton store.
    out
        The MODEL_DIR to write (see :mod:`plankton_store.models`).
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
    out = Path(out)
    if out.exists():
        if not overwrite:
            raise FileExistsError(f"{out} already exists: pass --overwrite to replace it")
        if out.is_dir() and any(out.iterdir()) and not (out / "model.json").is_file():
            raise FileExistsError(f"{out} is not a model dir; refusing to replace it")
        shutil.rmtree(out) if out.is_dir() else out.unlink()
    started = time.perf_counter()
    st = open_store(store)
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

    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=options.threads):
        fit = {"mlp": _fit_mlp, "features": _fit_features}.get(options.model, _fit_keras)
        history = _History(options, echo)
        estimator = fit(st, train_set, normalisation, val, val_y, options, history)

    frame = history.frame()
    best = frame.loc[frame["epoch"] == history.best_epoch].iloc[0]
    model = TrainedModel(
        kind=options.model,
        estimator=estimator,
        class_names=class_names,
        label_column=st.label_column,
        store_fingerprint=st.fingerprint,
        image_size=st.image_size,
        resize_mode=st.attrs.get("resize_mode", "stretch"),
        normalisation=normalisation,
        feature_columns=_feature_columns(st) if options.model == "features" else {},
        info={
            "store": str(store),
            "options": {**asdict(options), "hidden": list(options.hidden)},
            "seed": options.seed,
            "best_epoch": int(history.best_epoch),
            "epochs_run": len(frame),
            "val_macro_f1": float(best["val_macro_f1"]),
            "val_accuracy": float(best["val_accuracy"]),
            "train_samples": len(train_set),
        },
    )
    if options.head != "softmax":
        with threadpool_limits(limits=options.threads):
            _refit_head(model, st, train_set, val, val_y, options, echo)
    model.info["train_seconds"] = round(time.perf_counter() - started, 3)
    save_model(out, model, frame)
    seconds = time.perf_counter() - started
    if echo:
        # With a refitted head these are still the softmax layer's one-view figures (the
        # head's 8-view ones are in the line before): say so, or they read as the model's.
        which = " (softmax layer, 1 view)" if "head_fit" in model.info else ""
        echo(
            f"best epoch {history.best_epoch}: val macro-F1 {best['val_macro_f1']:.4f}, "
            f"val accuracy {best['val_accuracy']:.4f}{which}; wrote {out} in {seconds:.1f} s"
        )
    return TrainResult(
        model_dir=str(out),
        model=options.model,
        val_macro_f1=float(best["val_macro_f1"]),
        val_accuracy=float(best["val_accuracy"]),
        best_epoch=int(history.best_epoch),
        epochs_run=len(frame),
        seconds=seconds,
        train_samples_per_second=history.train_samples / max(history.train_seconds, 1e-9),
        options=model.info["options"],
    )


def _feature_columns(st: Any) -> dict[str, list[str]]:
    """Every feature table of store ``st`` and its column names."""
    return {t: st.features(t)[1] for t in st.feature_tables}


def _refit_head(
    model: TrainedModel,
    st: Any,
    train_set: TrainSet,
    val: ModelInputs,
    val_y: np.ndarray,
    options: TrainOptions,
    echo: Callable[[str], None] | None,
) -> None:
    """Fit a cnn's logistic-regression head (:mod:`plankton_store.head`) and keep it when
    ``--head logistic``, or with ``auto`` when it scores at least as well on val.

    Both heads are scored on the 8 dihedral views of val (as ``evaluate --tta`` does): the
    one-view figure of the softmax layer is that of the epoch picked for it, so it is biased
    upwards. Both heads' figures go in ``model.info["head_fit"]``.
    """
    from plankton_store.tta import predict_proba_tta

    started = time.perf_counter()
    n_classes = len(model.class_names)
    rows = head_sample(train_set.labels, HEAD_MAX_ROWS // 8, seed=options.seed)
    inputs = ModelInputs.from_store(st, train_set.indices[rows])
    columns = _feature_columns(st)
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
        name: _val_metrics(
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


def _sampler(train_set: TrainSet, options: TrainOptions, represent: np.ndarray | None = None):
    if represent is None and options.balance in ("cluster-centroids", "smote"):
        represent = train_set.pooled()
    return BalancedSampler(
        train_set.labels, train_set.n_classes, options.balance, options.seed, represent
    )


def _fit_mlp(st, train_set, normalisation, val, val_y, options, history):  # noqa: ANN001, ANN202
    """partial_fit loop: one pass over each epoch's balanced selection."""
    from sklearn.neural_network import MLPClassifier

    pipeline = BatchPipeline(
        train_set, _sampler(train_set, options), options.batch_size, seed=options.seed
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
        metrics = _val_metrics(clf.predict_proba(val_x), val_y)
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
        reason = history.should_stop(epoch)
        if reason:
            if history.echo:
                history.echo(f"stopping: {reason}")
            break
    return best


def _fit_features(st, train_set, normalisation, val, val_y, options, history):  # noqa: ANN001, ANN202
    """HistGradientBoosting on the feature tables + log original size, grown
    TREES_PER_EPOCH iterations per epoch on one balanced draw of the train split."""
    from sklearn.ensemble import HistGradientBoostingClassifier

    tables = st.feature_tables
    if not tables:
        raise ValueError(f"{st.path} has no feature tables: the features model needs them")
    columns = {t: st.features(t)[1] for t in tables}
    x_all = feature_matrix(ModelInputs.from_store(st, train_set.indices, images=False), columns)
    represent = None
    if options.balance in ("cluster-centroids", "smote"):
        # Distances on standardised features, missing values at the (zero) mean.
        mu, sd = np.nanmean(x_all, axis=0), np.nanstd(x_all, axis=0)
        represent = np.nan_to_num((x_all - mu) / np.where(sd > 0, sd, 1.0)).astype(np.float32)
    selection = _sampler(train_set, options, represent).epoch(0)
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
        train_proba = np.zeros((len(probe), train_set.n_classes))
        train_proba[:, clf.classes_] = clf.predict_proba(x[probe])
        train_m = _val_metrics(train_proba, y[probe])
        val_proba = np.zeros((len(val_y), train_set.n_classes))
        val_proba[:, clf.classes_] = clf.predict_proba(val_x)
        metrics = _val_metrics(val_proba, val_y)
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
        reason = history.should_stop(epoch)
        if reason:
            if history.echo:
                history.echo(f"stopping: {reason}")
            break
    return best


def configure_keras(threads: int, seed: int) -> Any:
    """Import Keras with every seed set and, under TensorFlow (the default backend), its
    thread pools pinned; returns keras.

    Thread pools can only be sized before TensorFlow starts its runtime. A later call with
    another size keeps the first one and warns: the thread count changes the order of
    floating-point sums, so the same seed then trains a different model than in a fresh process.
    Other Keras backends (``KERAS_BACKEND=jax``, e.g. on a GPU machine without TensorFlow)
    import no TensorFlow and keep their own thread settings.
    """
    import plankton_store.keras_layers  # noqa: F401  (our layers and backend settings first)

    # isort: split
    import keras

    if keras.backend.backend() == "tensorflow":
        import tensorflow as tf

        try:
            tf.config.threading.set_intra_op_parallelism_threads(threads)
            tf.config.threading.set_inter_op_parallelism_threads(min(threads, 2))
        except RuntimeError:
            current = tf.config.threading.get_intra_op_parallelism_threads()
            warnings.warn(
                "TensorFlow already runs in this process with "
                f"{f'{current} threads' if current else 'one thread per core'} per op, so "
                f"threads={threads} cannot take effect and the same seed trains a different "
                "model than a fresh process would. Train in a new process to get that setting.",
                RuntimeWarning,
                stacklevel=2,
            )
    keras.utils.set_random_seed(seed)
    return keras


def _fit_keras(st, train_set, normalisation, val, val_y, options, history):  # noqa: ANN001, ANN202
    """Keras fit on balanced batches (a tf.data pipeline under TensorFlow); val macro-F1
    every epoch."""
    from plankton_store.models import build_cnn, build_seed_cnn

    keras = configure_keras(options.threads, options.seed)
    n_classes = len(st.class_names)
    padded = st.attrs.get("resize_mode", "stretch") == "pad"
    if options.model == "cnn":
        # Any-angle rotation only where images keep their aspect ratio.
        rotate = padded and bool(options.augment)
        model = build_cnn(st.image_size, n_classes, normalisation, lr=options.lr, rotate=rotate)
    else:
        model = build_seed_cnn(st.image_size, n_classes, normalisation, lr=options.lr)
    pipeline = BatchPipeline(
        train_set,
        _sampler(train_set, options),
        options.batch_size,
        augment=options.augment,
        rotate=st.attrs.get("resize_mode", "stretch") == "stretch" or len(set(st.image_size)) == 1,
        seed=options.seed,
    )
    steps = pipeline.steps_per_epoch()
    with_size = options.model == "cnn"
    dataset = (
        pipeline.tf_dataset(with_size)
        if keras.backend.backend() == "tensorflow"
        else pipeline.keras_batches(with_size)
    )
    val_inputs = keras_inputs(val, options.model)
    state: dict[str, Any] = {"weights": None}

    class EpochEnd(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
            self.t0 = time.perf_counter()
            self.samples = 0

        def on_train_batch_end(self, batch: int, logs: dict | None = None) -> None:
            self.samples = min((batch + 1) * options.batch_size, pipeline.sampler.epoch_size())
            if history.out_of_time():
                self.model.stop_training = True

        def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
            seconds = time.perf_counter() - self.t0
            proba = self.model.predict(val_inputs, batch_size=1024, verbose=0)
            metrics = _val_metrics(np.asarray(proba, np.float64), val_y)
            logs = logs if logs is not None else {}
            logs.update(metrics)  # ReduceLROnPlateau (seed-cnn) reads val_loss from here
            lr = float(keras.ops.convert_to_numpy(self.model.optimizer.learning_rate))
            improved = history.add(
                epoch + 1,
                seconds,
                self.samples,
                loss=float(logs.get("loss", math.nan)),
                accuracy=float(logs.get("accuracy", math.nan)),
                **metrics,
                lr=lr,
            )
            if improved:
                state["weights"] = self.model.get_weights()
            reason = history.should_stop(epoch + 1)
            if reason:
                self.model.stop_training = True
                if history.echo:
                    history.echo(f"stopping: {reason}")

    callbacks: list[Any] = [EpochEnd()]
    if options.model == "cnn":
        callbacks.insert(0, _cosine_schedule(keras, options, steps, history))
    if options.model == "seed-cnn":
        callbacks.append(
            keras.callbacks.ReduceLROnPlateau(monitor="val_loss", patience=2, factor=0.5, verbose=0)
        )
    model.fit(
        dataset,
        epochs=options.epochs,
        steps_per_epoch=steps,
        callbacks=callbacks,
        shuffle=False,  # the pipeline shuffles
        verbose=0,
    )
    if state["weights"] is not None:
        model.set_weights(state["weights"])
    return model


def _cosine_schedule(keras: Any, options: TrainOptions, steps: int, history: _History) -> Any:
    """Linear warm-up over the first epoch, then cosine decay to ~0 at the last planned
    epoch (the cnn's schedule).

    The plan is ``--epochs``; with ``--time-budget`` it is re-fitted after every epoch to the
    epochs that fit the budget at the typical epoch duration so far, so that a budgeted run
    uses its budget and still ends on a small learning rate instead of being cut off at a
    large one.
    """

    class CosineSchedule(keras.callbacks.Callback):
        def __init__(self) -> None:
            super().__init__()
            self.planned = options.epochs
            self.step = 0
            self.last_end = 0.0
            self.durations: list[float] = []

        def on_train_batch_begin(self, batch: int, logs: dict | None = None) -> None:
            progress = min(self.step / (steps * self.planned), 1.0)
            warm = min(1.0, (self.step + 1) / steps)
            lr = options.lr * warm * 0.5 * (1.0 + math.cos(math.pi * progress))
            self.model.optimizer.learning_rate.assign(max(lr, 1e-3 * options.lr))
            self.step += 1

        def on_train_begin(self, logs: dict | None = None) -> None:
            self.last_end = time.perf_counter()

        def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
            now = time.perf_counter()
            self.durations.append(now - self.last_end)
            self.last_end = now
            if options.time_budget is not None:
                # Epoch 1 pays for tracing: the median of the later ones (the last ten, as
                # the machine's load drifts) is the typical epoch.
                typical = float(np.median(self.durations[1:][-10:] or self.durations))
                left = options.time_budget - (now - history.started)
                fit = epoch + 1 + int(0.98 * left // max(typical, 1e-9))
                self.planned = max(epoch + 1, min(options.epochs, fit))
                if history.echo and epoch == 1 and self.planned < options.epochs:
                    history.echo(
                        f"time budget: planning {self.planned} epochs of about {typical:.0f} s"
                    )
            if epoch + 1 >= self.planned:
                self.model.stop_training = True

    return CosineSchedule()


# ------------------------------------------------------------------------------------------
# Grids on Dask.
# ------------------------------------------------------------------------------------------

#: ``--grid`` keys -> (TrainOptions field, value parser).
GRID_KEYS: dict[str, tuple[str, Callable[[str], Any]]] = {
    "hidden": ("hidden", lambda v: tuple(int(h) for h in v.split("x"))),
    "lr": ("lr", float),
    "alpha": ("alpha", float),
    "batch-size": ("batch_size", int),
    "balance": ("balance", str),
    "epochs": ("epochs", int),
    "seed": ("seed", int),
}


def parse_grid(specs: Iterable[str]) -> list[dict[str, Any]]:
    """``["hidden=50,100", "lr=1e-3,5e-4"]`` -> one TrainOptions override dict per
    combination (4 here), in order. ``hidden`` takes ``AxB`` for several layers."""
    axes: list[list[tuple[str, str, Any]]] = []
    for spec in specs:
        key, sep, values = spec.partition("=")
        key = key.strip().replace("_", "-")
        if not sep or not values:
            raise ValueError(f"--grid {spec!r}: expected KEY=V1,V2,...")
        if key not in GRID_KEYS:
            raise ValueError(f"--grid key {key!r} unknown; known: {sorted(GRID_KEYS)}")
        name, parse = GRID_KEYS[key]
        try:
            axes.append([(key, name, parse(v.strip())) for v in values.split(",") if v.strip()])
        except ValueError:
            raise ValueError(f"--grid {spec!r}: bad value") from None
    return [
        {"_name": "_".join(f"{k}={_label(v)}" for k, _, v in combo), **{n: v for _, n, v in combo}}
        for combo in itertools.product(*axes)
    ]


def _label(value: Any) -> str:
    return (
        "x".join(map(str, value))
        if isinstance(value, tuple)
        else f"{value:g}"
        if isinstance(value, float)
        else str(value)
    )


def _train_task(store: str, out: str, options: TrainOptions, overwrite: bool) -> TrainResult:
    return train(store, out, options, overwrite=overwrite, echo=None)


def run_grid(
    store: str,
    out: str | os.PathLike,
    options: TrainOptions,
    grid: list[dict[str, Any]],
    client: Any,
    overwrite: bool = False,
    echo: Callable[[str], None] | None = click.echo,
) -> pd.DataFrame:
    """Train one model per grid combination as Dask tasks, each into ``out/<run-name>/``.

    Each task runs single-threaded (``threads=1``): the cluster's workers are the
    parallelism. Returns the summary table, best val macro-F1 first.
    """
    from distributed import as_completed

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    futures = {}
    for combo in grid:
        name = combo["_name"]
        run_options = replace(
            options, threads=1, **{k: v for k, v in combo.items() if k != "_name"}
        )
        run_options.resolved()  # fail early on bad settings, on the client
        future = client.submit(
            _train_task,
            store,
            str(out / name),
            run_options,
            overwrite,
            key=f"train-{name}-{time.time_ns()}",
            pure=False,
        )
        futures[future] = name
    rows = []
    for future in as_completed(futures):
        result = future.result()
        if echo:
            echo(
                f"done {futures[future]}: val macro-F1 {result.val_macro_f1:.4f} "
                f"({result.seconds:.0f} s)"
            )
        rows.append(
            {
                "run": futures[future],
                "val_macro_f1": result.val_macro_f1,
                "val_accuracy": result.val_accuracy,
                "best_epoch": result.best_epoch,
                "epochs": result.epochs_run,
                "seconds": round(result.seconds, 1),
                "model_dir": result.model_dir,
            }
        )
    table = pd.DataFrame(rows).sort_values("val_macro_f1", ascending=False, ignore_index=True)
    table.to_csv(out / "grid_summary.csv", index=False)
    return table


# ------------------------------------------------------------------------------------------
# CLI.
# ------------------------------------------------------------------------------------------


@click.command("train")
@click.argument("store")
@click.option(
    "--model",
    "model",
    type=click.Choice(MODEL_KINDS),
    default="cnn",
    show_default=True,
    help="mlp: pixels MLP (scikit-learn); cnn: our compact CNN; seed-cnn: the notebook's "
    "CNN; features: gradient boosting on the feature tables + original size.",
)
@click.option(
    "--out",
    "out",
    required=True,
    type=click.Path(),
    help="MODEL_DIR to write (grid: one sub-folder per run).",
)
@click.option(
    "--balance",
    type=click.Choice(BALANCE_POLICIES),
    default=None,
    help="Balancing of the train split, redrawn every epoch: sqrt draws each class in "
    "proportion to the square root of its count [default: cnn sqrt, features class-weight, "
    "else undersample].",
)
@click.option(
    "--epochs", type=click.IntRange(min=1), default=None, help="Most epochs [default: 40]."
)
@click.option(
    "--batch-size",
    type=click.IntRange(min=1),
    default=None,
    help="Samples per batch [default: mlp 200, cnn 128, seed-cnn 100].",
)
@click.option(
    "--lr",
    type=click.FloatRange(min=0, min_open=True),
    default=None,
    help="Learning rate [default: mlp 5e-4, cnn 2e-3, seed-cnn 1e-3, features 0.1].",
)
@click.option(
    "--hidden",
    default="100",
    show_default=True,
    help="MLP hidden layer sizes, e.g. 100 or 200x100.",
)
@click.option(
    "--patience",
    type=click.IntRange(min=1),
    default=8,
    show_default=True,
    help="Stop after this many epochs without a better val macro-F1.",
)
@click.option(
    "--time-budget",
    type=click.FloatRange(min=0, min_open=True),
    default=None,
    metavar="SECONDS",
    help="Stop training after this many seconds (the best epoch so far is kept).",
)
@click.option(
    "--augment/--no-augment",
    default=None,
    help="Random flips and 90-degree rotations of train batches, and any-angle rotations "
    "for the cnn on padded stores [default: on for cnn].",
)
@seed_option
@click.option(
    "--threads",
    type=click.IntRange(min=1),
    default=None,
    help="CPU threads for BLAS / TensorFlow [default: the CPUs available; grid runs: 1].",
)
@click.option(
    "--memory-limit",
    type=click.FloatRange(min=0),
    default=DEFAULT_MEMORY_LIMIT / 1024**3,
    show_default=True,
    metavar="GIB",
    help="Hold train images in RAM up to this size; larger train splits are streamed.",
)
@click.option(
    "--head",
    type=click.Choice(HEAD_CHOICES),
    default=None,
    help="cnn only: after training, refit its classifier as a logistic regression on the "
    "net's embedding, the store's feature tables and the original size (8 views of the "
    "train split). logistic [cnn default] keeps it; auto keeps it if it scores at least as "
    "well on val macro-F1 (8 views); softmax keeps the net's own layer.",
)
@click.option(
    "--grid",
    "grid",
    multiple=True,
    metavar="KEY=V1,V2",
    help=f"Run every combination as a Dask task (repeatable); keys: {', '.join(GRID_KEYS)}.",
)
@click.option("--overwrite", is_flag=True, help="Replace an existing MODEL_DIR.")
@cluster_options
def train_command(
    store: str,
    model: str,
    out: str,
    balance: str | None,
    epochs: int | None,
    batch_size: int | None,
    lr: float | None,
    hidden: str,
    patience: int,
    time_budget: float | None,
    augment: bool | None,
    seed: int,
    threads: int | None,
    memory_limit: float,
    head: str | None,
    grid: tuple[str, ...],
    overwrite: bool,
    workers: int | None,
    scheduler: str | None,
    cluster_config: str | None,
) -> None:
    """Train a model on the train split of STORE and write it to MODEL_DIR (--out).

    Only the train split is sampled, balanced and augmented; the val split picks the best
    epoch (early stopping on val macro-F1); the test split is never read. MODEL_DIR gets the
    model, model.json (classes, normalisation, options, store fingerprint), history.csv and
    history.png. With --grid, every combination trains as one task on the Dask cluster into
    MODEL_DIR/<run-name>/ and a summary table is printed.

    The Keras models (cnn, seed-cnn) train on TensorFlow; with KERAS_BACKEND=jax they train
    on JAX instead (e.g. on a GPU machine without TensorFlow).
    """
    try:
        options = TrainOptions(
            model=model,
            balance=balance,
            epochs=epochs,
            batch_size=batch_size,
            lr=lr,
            augment=augment,
            hidden=tuple(int(h) for h in hidden.split("x")),
            patience=patience,
            time_budget=time_budget,
            seed=seed,
            threads=threads,
            memory_limit=int(memory_limit * 1024**3),
            head=head,
        )
        options.resolved()
        combos = parse_grid(grid) if grid else []
    except ValueError as exc:
        raise click.UsageError(str(exc)) from None
    try:
        if not combos:
            train(store, out, options, overwrite=overwrite)
            return
        with dask_client(workers, scheduler, cluster_config) as client:
            table = run_grid(store, out, options, combos, client, overwrite=overwrite)
        click.echo(table.drop(columns="model_dir").to_string(index=False))
        click.echo(
            f"Best: {table.iloc[0]['model_dir']} (summary in {Path(out) / 'grid_summary.csv'})"
        )
    except (FileExistsError, StoreFormatError, IncompleteStoreError, ValueError) as exc:
        raise click.ClickException(str(exc)) from None
