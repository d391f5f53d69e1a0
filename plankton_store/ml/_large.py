"""The ``large`` preset of the cnn: a residual net for a GPU node or a long CPU run, and
``--init`` (starting from an earlier model's weights).

The preset trains a model of kind ``cnn`` (same inputs, MODEL_DIR, head, predict and
evaluate paths as the default cnn); only the net and its defaults differ. Keras is imported
only when a net is built (:func:`plankton_store.ml._keras.import_keras`).
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import numpy as np

from plankton_store.ml._keras import import_keras
from plankton_store.ml._models import load_model
from plankton_store.ml._nets import size_branch
from plankton_store.ml._trainset import Normalisation

#: The presets of ``train --preset``.
PRESETS: tuple[str, ...] = ("large",)

#: The large preset's defaults for options left at ``None``: the cnn's balance and
#: augmentation, a larger batch for the accelerator, AdamW's learning rate, and the head
#: kept only where it scores at least as well on val (``auto``).
LARGE_DEFAULTS: dict[str, Any] = {
    "balance": "sqrt",
    "batch_size": 128,
    "lr": 2e-3,
    "augment": True,
    "head": "auto",
}

#: The large net's stages: (filters, residual blocks); the first stage runs at half the
#: input size (a stride-2 stem), each later one halves it again.
LARGE_STAGES: tuple[tuple[int, int], ...] = ((48, 2), (96, 2), (192, 2), (384, 2))


def apply_preset(options: Any) -> Any:
    """``options`` (a :class:`~plankton_store.ml.TrainOptions`) with the preset's defaults
    filled into the fields left at ``None``; unchanged without a preset.

    Raises
    ------
    ValueError
        For an unknown preset, or the large preset with another model than ``cnn``.
    """
    if options.preset is None:
        return options
    if options.preset not in PRESETS:
        raise ValueError(f"unknown --preset {options.preset!r}; choose from {PRESETS}")
    if options.model != "cnn":
        raise ValueError("--preset large is a cnn: leave --model at cnn")
    filled = {k: v for k, v in LARGE_DEFAULTS.items() if getattr(options, k) is None}
    return replace(options, **filled)


def smoothed_sparse_crossentropy(smoothing: float) -> Any:
    """Cross-entropy against labels smoothed by ``smoothing`` (integer labels, softmax
    outputs): ``(1 - s) * CE(y) + s * mean_k(-log p_k)``."""
    keras = import_keras()
    ops = keras.ops

    def loss(y_true: Any, y_pred: Any) -> Any:
        y_pred = ops.cast(y_pred, "float32")
        log_p = ops.log(ops.clip(y_pred, 1e-7, 1.0))
        labels = ops.cast(ops.reshape(y_true, (-1,)), "int32")
        picked = ops.take_along_axis(log_p, ops.expand_dims(labels, -1), axis=-1)[:, 0]
        return -(1.0 - smoothing) * picked - smoothing * ops.mean(log_p, axis=-1)

    return loss


def _residual_block(keras: Any, x: Any, filters: int, stride: int, drop_path: float) -> Any:
    """Conv 3x3 - BN - ReLU - Conv 3x3 - BN, dropped as a whole per sample with probability
    ``drop_path`` while training (stochastic depth), plus the shortcut; then ReLU."""
    from plankton_store.ml._keras_layers import FusedBatchNormalization

    layers = keras.layers
    shortcut = x
    if stride != 1 or x.shape[-1] != filters:
        shortcut = layers.Conv2D(filters, 1, strides=stride, use_bias=False)(x)
        shortcut = FusedBatchNormalization(momentum=0.9)(shortcut)
    y = layers.Conv2D(filters, 3, strides=stride, padding="same", use_bias=False)(x)
    y = FusedBatchNormalization(momentum=0.9)(y)
    y = layers.ReLU()(y)
    y = layers.Conv2D(filters, 3, padding="same", use_bias=False)(y)
    y = FusedBatchNormalization(momentum=0.9, gamma_initializer="zeros")(y)
    if drop_path > 0:
        y = layers.Dropout(drop_path, noise_shape=(None, 1, 1, 1))(y)
    return layers.ReLU()(layers.Add()([shortcut, y]))


def build_large_cnn(
    image_size: tuple[int, int],
    n_classes: int,
    normalisation: Normalisation,
    lr: float = 2e-3,
    stages: tuple[tuple[int, int], ...] = LARGE_STAGES,
    drop_path: float = 0.1,
    dropout: float = 0.3,
    smoothing: float = 0.1,
    rotate: bool = True,
    zoom: float = 0.15,
    weight_decay: float = 5e-4,
) -> Any:
    """The large preset's residual net, compiled (kind ``cnn``: inputs ``image`` and
    ``size``, output layer ``probabilities``).

    Inverted pixels as the cnn (background 0); while training, a random rotation by any
    angle (``rotate``, for padded stores) and a random zoom of +-``zoom`` (scale jitter).
    A stride-2 3x3 stem, then residual stages (``stages``: filters and blocks, each later
    stage at half the resolution) with stochastic depth rising linearly to ``drop_path``,
    global average and max pooling, the standardised log original size, Dense 256, dropout
    and the softmax. AdamW (``weight_decay``), cross-entropy with label smoothing
    ``smoothing``. Under a ``mixed_float16`` global policy (set by the caller on a GPU) the
    output layer stays float32.
    """
    keras = import_keras()
    from plankton_store.ml._keras_layers import (
        FusedBatchNormalization,
        JittableRandomRotation,
        JittableRandomZoom,
    )

    layers = keras.layers
    image = keras.Input((*image_size, 1), dtype="uint8", name="image")
    size = keras.Input((2,), dtype="float32", name="size")
    x = layers.Rescaling(-1.0 / 255, offset=1.0, name="invert")(image)
    if rotate:
        x = JittableRandomRotation(0.5, fill_mode="constant", fill_value=0.0)(x)
    if zoom > 0:
        x = JittableRandomZoom((-zoom, zoom), fill_mode="constant", fill_value=0.0)(x)
    x = layers.Conv2D(stages[0][0], 3, strides=2, padding="same", use_bias=False)(x)
    x = layers.ReLU()(FusedBatchNormalization(momentum=0.9)(x))
    total = sum(blocks for _, blocks in stages)
    done = 0
    for i, (filters, blocks) in enumerate(stages):
        for b in range(blocks):
            stride = 2 if i > 0 and b == 0 else 1
            x = _residual_block(keras, x, filters, stride, drop_path * done / max(total - 1, 1))
            done += 1
    x = layers.Concatenate()([layers.GlobalAveragePooling2D()(x), layers.GlobalMaxPooling2D()(x)])
    s = size_branch(keras, normalisation, size)
    x = layers.Concatenate()([x, s])
    x = layers.Dense(256, activation="relu")(x)
    x = layers.Dropout(dropout)(x)
    out = layers.Dense(n_classes, activation="softmax", name="probabilities", dtype="float32")(x)
    model = keras.Model({"image": image, "size": size}, out, name="cnn_large")
    model.compile(
        optimizer=keras.optimizers.AdamW(lr, weight_decay=weight_decay),
        loss=smoothed_sparse_crossentropy(smoothing),
        metrics=["accuracy"],
    )
    return model


def use_mixed_precision() -> bool:
    """Whether the large net trains in mixed precision: on Keras' JAX backend with a GPU."""
    keras = import_keras()
    if keras.backend.backend() != "jax":
        return False
    import jax

    return any(d.platform == "gpu" for d in jax.devices())


def build_large_for(
    image_size: tuple[int, int],
    n_classes: int,
    normalisation: Normalisation,
    lr: float,
    augment: bool,
    rotate: bool,
    mixed: bool = False,
) -> Any:
    """:func:`build_large_cnn` with the stages of :data:`LARGE_STAGES` (read at each call),
    its random zoom only if ``augment``, under the ``mixed_float16`` policy if ``mixed`` (the
    global policy is restored afterwards, so the float32 copy saved for CPUs is built as
    usual)."""
    keras = import_keras()
    before = keras.config.dtype_policy()
    if mixed:
        keras.config.set_dtype_policy("mixed_float16")
    try:
        return build_large_cnn(
            image_size,
            n_classes,
            normalisation,
            lr=lr,
            stages=LARGE_STAGES,
            rotate=rotate,
            zoom=0.15 if augment else 0.0,
        )
    finally:
        keras.config.set_dtype_policy(before)


def float32_copy(model: Any, build: Any) -> Any:
    """``model`` rebuilt in float32 by ``build()`` with its weights: what is saved, so that
    a net trained in mixed precision on a GPU predicts in float32 on CPUs."""
    copy = build()
    copy.set_weights(model.get_weights())
    return copy


def init_from(model: Any, model_dir: Any, class_names: list[str], echo: Any = None) -> int:
    """Copy an earlier MODEL_DIR's Keras weights into ``model`` (same net), layer by layer.

    Every layer whose weights have the same shapes is copied, except the output layer when
    the class lists differ (it keeps its fresh initialisation) and the size standardisation
    (the new store's statistics). Returns the number of layers copied.

    Raises
    ------
    ValueError
        If ``model_dir`` is not a Keras model, or its net has another layout.
    """
    source = load_model(model_dir)
    if not hasattr(source.estimator, "layers"):
        raise ValueError(f"--init {model_dir}: not a Keras model ({source.kind})")
    same_classes = list(source.class_names) == list(class_names)
    skip = {"standardise_size"} | (set() if same_classes else {"probabilities"})
    ours = [layer for layer in model.layers if layer.weights]
    theirs = [layer for layer in source.estimator.layers if layer.weights]
    if len(ours) != len(theirs):
        raise ValueError(f"--init {model_dir}: another net ({len(theirs)} layers with weights)")
    copied = 0
    for mine, other in zip(ours, theirs, strict=True):
        if mine.name in skip:
            continue
        weights = other.get_weights()
        if [np.shape(w) for w in weights] != [tuple(v.shape) for v in mine.weights]:
            raise ValueError(f"--init {model_dir}: layer {mine.name} has other shapes")
        mine.set_weights(weights)
        copied += 1
    if echo:
        note = "" if same_classes else " (other classes: new output layer)"
        echo(f"init from {model_dir}: {copied} layers copied{note}")
    return copied
