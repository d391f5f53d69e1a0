"""The Keras networks: the seed notebook's CNN and our compact default CNN.

Keras (and TensorFlow or JAX) is imported only when a network is built, through
:func:`plankton_store.ml._keras.import_keras`.
"""

from __future__ import annotations

from typing import Any

from plankton_store.ml._keras import import_keras
from plankton_store.ml._trainset import Normalisation


def _standardise_layer(keras: Any, normalisation: Normalisation) -> Any:
    std = normalisation.image_std
    return keras.layers.Rescaling(
        1.0 / std, offset=-normalisation.image_mean / std, name="standardise"
    )


def size_branch(keras: Any, normalisation: Normalisation, size: Any) -> Any:
    """The original image size, standardised with train statistics, through a small dense
    layer: the second input of the cnn and the large net."""
    s = keras.layers.Normalization(
        mean=list(normalisation.size_mean),
        variance=[v * v for v in normalisation.size_std],
        name="standardise_size",
    )(size)
    return keras.layers.Dense(16, activation="relu")(s)


def build_seed_cnn(
    image_size: tuple[int, int], n_classes: int, normalisation: Normalisation, lr: float = 1e-3
) -> Any:
    """The seed notebook's CNN as published (3.2M parameters at 64x48), compiled.

    Conv2D 32 (5x5)-BN-32 (5x5)-BN-MaxPool-Dropout .25, Conv2D 64 (3x3)-BN-64 (3x3)-BN-MaxPool-
    Dropout .25, Dense 256-BN-Dropout .5, softmax; RMSprop. Differences: images the right way
    up, and inputs standardised with the train statistics (the shared pipeline) instead of
    divided by 255. Its conv batch norms train with TensorFlow's fused kernel, as tf.keras 2
    (the notebook's Keras) did (:class:`~plankton_store.ml.FusedBatchNormalization`).
    """
    keras = import_keras()
    from plankton_store.ml._keras_layers import FusedBatchNormalization

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
    keras = import_keras()
    from plankton_store.ml._keras_layers import FusedBatchNormalization

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
    keras = import_keras()
    from plankton_store.ml._keras_layers import JittableRandomRotation

    layers = keras.layers
    image = keras.Input((*image_size, 1), dtype="uint8", name="image")
    size = keras.Input((2,), dtype="float32", name="size")
    x = layers.Rescaling(-1.0 / 255, offset=1.0, name="invert")(image)
    if rotate:
        x = JittableRandomRotation(0.5, fill_mode="constant", fill_value=0.0)(x)
    if image_size[0] >= 48:
        x = layers.AveragePooling2D(2)(x)
    x = conv_trunk(x, widths)
    s = size_branch(keras, normalisation, size)
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
