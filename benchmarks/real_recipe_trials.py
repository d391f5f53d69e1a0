"""One recipe trial for the cnn on a real store: train on train, score on val, print JSON.

The search behind the default ``cnn`` recipe (``benchmarks/real_recipe.md`` records every
trial and its figures). Each flag switches one ingredient, so one trial differs from the
baseline in one choice; only the val split is scored (test stays untouched)::

    plankton-jobs build-store ../shared/data/ndsb-dev /tmp/l2.zarr --resize pad --size 64x64 \\
        --test-fraction 0.3 --val-fraction 0.1 --augment-below 0 --keep-all-classes \\
        --max-per-class 0
    python benchmarks/real_recipe_trials.py /tmp/l2.zarr --minutes 4              # baseline
    python benchmarks/real_recipe_trials.py /tmp/l2.zarr --minutes 4 --rotate any  # one change

The learning rate follows a linear warm-up and cosine decay over the wall-clock budget.
Prints val accuracy and macro-F1 every 5 epochs, then a ``RESULT {...}`` line.
"""

from __future__ import annotations

import argparse
import json
import os
import time

import numpy as np
from sklearn.metrics import accuracy_score, f1_score

from plankton_store.ml import conv_trunk
from plankton_store.store import open_store


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("store")
    p.add_argument("--minutes", type=float, default=4, help="wall-clock training budget")
    p.add_argument("--widths", default="32,64,128", help="filters of the conv blocks")
    p.add_argument("--convs", type=int, default=1, help="conv layers per block")
    p.add_argument("--pool-first", type=int, default=1, help="2x average pooling first")
    p.add_argument("--invert", type=int, default=1, help="1 - x/255 (else standardise)")
    p.add_argument("--size-input", type=int, default=1, help="log original size as input")
    p.add_argument("--rotate", default="rot90", choices=["none", "rot90", "any"],
                   help="rot90: random flips; any: flips and any-angle rotation")  # fmt: skip
    p.add_argument("--zoom", type=float, default=0.0, help="random zoom range")
    p.add_argument("--balance", default="sqrt", choices=["none", "sqrt", "full"],
                   help="class sampling weight: 1, 1/sqrt(count), 1/count")  # fmt: skip
    p.add_argument("--smooth", type=float, default=0.0, help="label smoothing")
    p.add_argument("--schedule", default="cosine", choices=["const", "cosine"])
    p.add_argument("--lr", type=float, default=2e-3)
    p.add_argument("--batch", type=int, default=128)
    p.add_argument("--dense", type=int, default=128)
    p.add_argument("--dropout", type=float, default=0.3)
    p.add_argument("--tta", type=int, default=0, help="average the 8 flips / rotations")
    p.add_argument("--save", default="", help="save the val probabilities (.npy)")
    p.add_argument("--seed", type=int, default=0)
    return p.parse_args()


def main() -> None:  # noqa: PLR0915 - one linear experiment
    a = parse_args()
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import keras
    import tensorflow as tf

    tf.config.threading.set_intra_op_parallelism_threads(2)
    tf.config.threading.set_inter_op_parallelism_threads(2)
    keras.utils.set_random_seed(a.seed)

    st = open_store(a.store)
    images = np.asarray(st.images[:])
    labels = st.labels.astype(np.int64)
    oh = np.asarray(st.array("orig_height")[:], np.float32)
    ow = np.asarray(st.array("orig_width")[:], np.float32)
    size = np.stack([np.log(oh), np.log(ow)], 1).astype(np.float32)
    tr, va = st.split_indices("train"), st.split_indices("val")
    n_classes = len(st.class_names)
    counts = np.bincount(labels[tr], minlength=n_classes)
    h, w = images.shape[1:]
    x_tr, s_tr, y_tr = images[tr][..., None], size[tr], labels[tr]
    mean_px, std_px = float(x_tr.mean()), float(x_tr.std())
    s_mean, s_std = s_tr.mean(0), s_tr.std(0)

    power = {"none": 0.0, "sqrt": 0.5, "full": 1.0}[a.balance]
    weight = 1.0 / counts[y_tr] ** power
    weight /= weight.sum()
    steps = len(tr) // a.batch
    rng = np.random.default_rng(a.seed)

    def batches():
        while True:
            idx = rng.choice(len(tr), size=steps * a.batch, p=weight)
            for b in range(steps):
                sl = idx[b * a.batch : (b + 1) * a.batch]
                yield {"image": x_tr[sl], "size": s_tr[sl]}, y_tr[sl]

    spec = (
        {
            "image": tf.TensorSpec((None, h, w, 1), tf.uint8),
            "size": tf.TensorSpec((None, 2), tf.float32),
        },
        tf.TensorSpec((None,), tf.int64),
    )
    ds = tf.data.Dataset.from_generator(batches, output_signature=spec).prefetch(4)

    layers = keras.layers
    image = keras.Input((h, w, 1), dtype="uint8", name="image")
    size_in = keras.Input((2,), name="size")
    x = layers.Rescaling(1.0, name="cast")(image)
    if a.invert:
        x = layers.Rescaling(-1.0 / 255, offset=1.0)(x)  # background 0
        fill = 0.0
    else:
        x = layers.Rescaling(1.0 / std_px, offset=-mean_px / std_px)(x)
        fill = -mean_px / std_px
    if a.rotate in ("rot90", "any"):
        x = layers.RandomFlip("horizontal_and_vertical")(x)
    if a.rotate == "any":
        x = layers.RandomRotation(0.5, fill_mode="constant", fill_value=fill)(x)
    if a.zoom:
        x = layers.RandomZoom(a.zoom, fill_mode="constant", fill_value=fill)(x)
    if a.pool_first:
        x = layers.AveragePooling2D(2)(x)
    widths = tuple(int(v) for v in a.widths.split(","))
    x = conv_trunk(x, widths, convs_per_block=a.convs)
    if a.size_input:
        s = layers.Normalization(mean=list(s_mean), variance=list(s_std**2))(size_in)
        x = layers.Concatenate()([x, layers.Dense(16, activation="relu")(s)])
    x = layers.Dense(a.dense, activation="relu")(x)
    x = layers.Dropout(a.dropout)(x)
    out = layers.Dense(n_classes, activation="softmax")(x)
    model = keras.Model({"image": image, "size": size_in}, out)

    budget = a.minutes * 60
    t0 = time.perf_counter()
    evals: list[tuple] = []
    val_x = {"image": images[va][..., None], "size": size[va]}
    val_y = labels[va]

    class Schedule(keras.callbacks.Callback):
        def on_train_batch_begin(self, batch, logs=None):  # noqa: ANN001
            frac = min((time.perf_counter() - t0) / budget, 1.0)
            lr = a.lr
            if a.schedule == "cosine":
                lr *= min(1.0, frac / 0.03) * 0.5 * (1 + np.cos(np.pi * frac))
            self.model.optimizer.learning_rate.assign(lr)
            if frac >= 1.0:
                self.model.stop_training = True

        def on_epoch_end(self, epoch, logs=None):  # noqa: ANN001
            if epoch % 5 == 4:
                pred = self.model.predict(val_x, batch_size=1024, verbose=0).argmax(1)
                evals.append((epoch + 1, round(time.perf_counter() - t0),
                              round(accuracy_score(val_y, pred), 4),
                              round(f1_score(val_y, pred, average="macro"), 4)))  # fmt: skip
                print(evals[-1], flush=True)

    if a.smooth:
        loss = keras.losses.CategoricalCrossentropy(label_smoothing=a.smooth)
        ds = ds.map(lambda xi, yi: (xi, tf.one_hot(yi, n_classes)))
    else:
        loss = keras.losses.SparseCategoricalCrossentropy()
    model.compile(keras.optimizers.Adam(a.lr), loss=loss)
    model.fit(ds, epochs=100_000, steps_per_epoch=steps, callbacks=[Schedule()], verbose=0)
    seconds = time.perf_counter() - t0
    proba = model.predict(val_x, batch_size=1024, verbose=0)
    if a.tta:
        img = val_x["image"]
        views = [img[:, ::-1], img[:, :, ::-1], img[:, ::-1, ::-1]]
        if h == w:
            t = img.transpose(0, 2, 1, 3)
            views += [t, t[:, ::-1], t[:, :, ::-1], t[:, ::-1, ::-1]]
        for view in views:
            view_x = {"image": np.ascontiguousarray(view), "size": val_x["size"]}
            proba = proba + model.predict(view_x, batch_size=1024, verbose=0)
    if a.save:
        np.save(a.save, proba)
    pred = proba.argmax(1)
    result = dict(
        vars(a),
        params=model.count_params(),
        seconds=round(seconds),
        epochs=evals[-1][0] if evals else 0,
        acc=round(accuracy_score(val_y, pred), 4),
        f1=round(f1_score(val_y, pred, average="macro"), 4),
    )
    print("RESULT", json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
