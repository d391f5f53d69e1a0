"""The fit loop of the Keras models (cnn, seed-cnn) and the cnn's learning-rate schedule."""

from __future__ import annotations

import math
import time
from typing import Any

import numpy as np

from plankton_store.ml._batches import BatchPipeline
from plankton_store.ml._fit import sampler
from plankton_store.ml._history import History, val_metrics
from plankton_store.ml._inputs import keras_inputs
from plankton_store.ml._keras import configure_keras
from plankton_store.ml._large import build_large_for, float32_copy, init_from, use_mixed_precision
from plankton_store.ml._nets import build_cnn, build_seed_cnn
from plankton_store.ml._options import TrainOptions
from plankton_store.ml._trainset import Normalisation


def fit_keras(st, train_set, normalisation, val, val_y, options, history):  # noqa: ANN001, ANN202
    """Keras fit on balanced batches (a tf.data pipeline under TensorFlow); val macro-F1
    every epoch."""
    keras = configure_keras(options.threads, options.seed)
    mixed = options.preset == "large" and use_mixed_precision()
    model = _build_model(st, normalisation, options, mixed)
    if options.init is not None:
        init_from(model, options.init, st.class_names, history.echo)
    pipeline = BatchPipeline(
        train_set,
        sampler(train_set, options),
        options.batch_size,
        augment=options.augment,
        rotate=st.resize_mode == "stretch" or len(set(st.image_size)) == 1,
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
    epoch_end = _epoch_end(keras, options, pipeline, val_inputs, val_y, history)
    callbacks: list[Any] = [epoch_end]
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
    if epoch_end.best_weights is not None:
        model.set_weights(epoch_end.best_weights)
    if mixed:  # saved in float32, to predict on CPUs
        model = float32_copy(model, lambda: _build_model(st, normalisation, options))
    return model


def _build_model(
    st: Any, normalisation: Normalisation, options: TrainOptions, mixed: bool = False
) -> Any:
    """The untrained Keras net of ``options.model`` (or ``--preset``) for the store's images
    and classes."""
    n_classes = len(st.class_names)
    if options.preset == "large":
        augment = bool(options.augment)
        rotate = st.resize_mode == "pad" and augment
        return build_large_for(
            st.image_size, n_classes, normalisation, options.lr, augment, rotate, mixed=mixed
        )
    if options.model == "cnn":
        # Any-angle rotation only where images keep their aspect ratio.
        rotate = st.resize_mode == "pad" and bool(options.augment)
        return build_cnn(st.image_size, n_classes, normalisation, lr=options.lr, rotate=rotate)
    return build_seed_cnn(st.image_size, n_classes, normalisation, lr=options.lr)


def _epoch_end(
    keras: Any,
    options: TrainOptions,
    pipeline: BatchPipeline,
    val_inputs: Any,
    val_y: np.ndarray,
    history: History,
) -> Any:
    """The callback that times each epoch, scores val, records the epoch in ``history``,
    keeps the best epoch's weights (``best_weights``) and stops early."""

    class EpochEnd(keras.callbacks.Callback):
        def __init__(self) -> None:
            super().__init__()
            self.best_weights: list | None = None

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
            metrics = val_metrics(np.asarray(proba, np.float64), val_y)
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
                self.best_weights = self.model.get_weights()
            if history.stopping(epoch + 1):
                self.model.stop_training = True

    return EpochEnd()


def _cosine_schedule(keras: Any, options: TrainOptions, steps: int, history: History) -> Any:
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
