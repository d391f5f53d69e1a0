"""Keras layers of our own, registered for saving and loading.

Keras comes from :func:`plankton_store.ml._keras.import_keras`, which also imports this
module, so a ``model.keras`` that uses these layers loads wherever Keras was imported that
way (or with ``custom_objects`` naming them).
"""

from __future__ import annotations

from typing import Any

from plankton_store.ml._keras import import_keras

keras = import_keras()


__all__ = ["FusedBatchNormalization", "JittableRandomRotation"]


@keras.saving.register_keras_serializable(package="plankton_store")
class FusedBatchNormalization(keras.layers.BatchNormalization):
    """``keras.layers.BatchNormalization`` that trains with TensorFlow's fused kernel.

    Keras 3 normalises a training batch with separate ops (moments, subtract, scale: several
    passes over the activations, and as many again in the gradient); tf.keras 2 used
    TensorFlow's single fused kernel for image (4-D, channels-last) inputs. On the 2-core CPU
    machines that makes our CNNs (and the seed notebook's, which was written for tf.keras 2)
    train ~1.4x faster per sample. Same maths, weights and config as the Keras layer; the
    fused kernel is used only for TensorFlow training on 4-D channels-last float32 inputs;
    everything else (inference, other backends, masks, renorm, synchronised statistics,
    mixed precision) takes the Keras path.
    """

    def call(self, inputs: Any, training: bool | None = None, mask: Any = None) -> Any:
        if (
            not (training and self.trainable)
            or mask is not None
            or self.synchronized
            or self.renorm
            or keras.backend.backend() != "tensorflow"
            or len(inputs.shape) != 4
            or self.axis not in (-1, 3)
            or keras.backend.standardize_dtype(inputs.dtype) != "float32"
        ):
            return super().call(inputs, training=training, mask=mask)
        import tensorflow as tf

        channels = inputs.shape[-1]
        scale = self.gamma if self.scale else tf.ones((channels,), dtype=inputs.dtype)
        offset = self.beta if self.center else tf.zeros((channels,), dtype=inputs.dtype)
        outputs, mean, variance = tf.compat.v1.nn.fused_batch_norm(
            inputs, scale, offset, epsilon=self.epsilon, is_training=True, data_format="NHWC"
        )[:3]
        # The kernel returns the unbiased batch variance; Keras keeps the biased one.
        count = tf.cast(tf.size(inputs) // channels, variance.dtype)
        variance = variance * (count - 1.0) / count
        momentum = tf.cast(self.momentum, self.moving_mean.dtype)
        self.moving_mean.assign(self.moving_mean * momentum + mean * (1.0 - momentum))
        self.moving_variance.assign(self.moving_variance * momentum + variance * (1.0 - momentum))
        return outputs


@keras.saving.register_keras_serializable(package="plankton_store")
class JittableRandomRotation(keras.layers.RandomRotation):
    """``keras.layers.RandomRotation`` that lets its model compile with XLA under JAX.

    Keras marks the layer ``supports_jit = False`` because TensorFlow's rotation kernel
    (``ImageProjectiveTransformV3``) has no XLA version, and one such layer turns XLA off for
    the whole model. Under JAX the rotation is plain jax ops, which compile: with Keras' layer,
    every training step of a padded store's cnn ran op by op on a lent H100 (~490 samples/s;
    ~24,000 for the compiled cnn without rotation). Other backends keep Keras' setting; same
    maths and config.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if keras.backend.backend() == "jax":
            self.supports_jit = True


@keras.saving.register_keras_serializable(package="plankton_store")
class JittableRandomZoom(keras.layers.RandomZoom):
    """``keras.layers.RandomZoom`` that lets its model compile with XLA under JAX (the large
    preset's scale jitter), for the reason of :class:`JittableRandomRotation`: Keras marks it
    ``supports_jit = False`` for TensorFlow's transform kernel, which JAX does not use."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if keras.backend.backend() == "jax":
            self.supports_jit = True
