"""Our Keras layers: FusedBatchNormalization (the Keras layer's maths, TensorFlow's fused kernel)
and JittableRandomRotation; each saved and loaded."""

from __future__ import annotations

import numpy as np
import pytest

keras = pytest.importorskip("keras")

from plankton_store.ml import configure_keras  # noqa: E402
from plankton_store.ml._keras_layers import (  # noqa: E402
    FusedBatchNormalization,
    JittableRandomRotation,
)

# The first TensorFlow start in the test process fixes its thread pools for the whole suite:
# one thread per op, the setting the train tests ask for, before this module starts it.
configure_keras(threads=1, seed=0)


def _pair(momentum: float = 0.9, **kwargs):
    fused = FusedBatchNormalization(momentum=momentum, **kwargs)
    plain = keras.layers.BatchNormalization(momentum=momentum, **kwargs)
    shape = (None, 5, 4, 3)
    fused.build(shape)
    plain.build(shape)
    rng = np.random.default_rng(1)
    weights = [rng.normal(size=w.shape).astype("float32") for w in plain.get_weights()]
    weights[-1] = np.abs(weights[-1]) + 0.5  # moving variance > 0
    fused.set_weights(weights)
    plain.set_weights(weights)
    return fused, plain


@pytest.mark.parametrize("scale_and_center", [True, False])
def test_training_step_matches_keras_batch_normalization(scale_and_center):
    fused, plain = _pair(scale=scale_and_center, center=scale_and_center)
    x = np.random.default_rng(0).normal(2.0, 3.0, (8, 5, 4, 3)).astype("float32")
    for _ in range(3):  # outputs and the running statistics, step after step
        out_fused = keras.ops.convert_to_numpy(fused(x, training=True))
        out_plain = keras.ops.convert_to_numpy(plain(x, training=True))
        np.testing.assert_allclose(out_fused, out_plain, rtol=1e-4, atol=1e-4)
    for a, b in zip(fused.get_weights(), plain.get_weights(), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    # The running statistics moved (the test would pass trivially otherwise).
    moved = keras.ops.convert_to_numpy(fused.moving_mean)
    assert not np.allclose(moved, keras.ops.convert_to_numpy(_pair()[0].moving_mean))
    np.testing.assert_allclose(
        keras.ops.convert_to_numpy(fused(x, training=False)),
        keras.ops.convert_to_numpy(plain(x, training=False)),
        rtol=1e-4,
        atol=1e-4,
    )


def test_training_uses_the_fused_kernel():
    import tensorflow as tf

    fused, _ = _pair()
    x = tf.constant(np.ones((2, 5, 4, 3), dtype="float32"))
    graph = tf.function(lambda t: fused(t, training=True)).get_concrete_function(x).graph
    ops = {op.type for op in graph.get_operations()}
    assert any(op.startswith("FusedBatchNorm") for op in ops), ops


def test_a_model_with_it_saves_and_loads_in_safe_mode(tmp_path):
    image = keras.Input((6, 5, 1))
    out = keras.layers.GlobalAveragePooling2D()(FusedBatchNormalization()(image))
    model = keras.Model(image, out)
    x = np.random.default_rng(0).normal(size=(4, 6, 5, 1)).astype("float32")
    model(x, training=True)  # move the running statistics away from their initial values
    model.save(tmp_path / "m.keras")
    loaded = keras.saving.load_model(tmp_path / "m.keras", compile=False, safe_mode=True)
    assert isinstance(loaded.layers[1], FusedBatchNormalization)
    np.testing.assert_allclose(loaded.predict(x, verbose=0), model.predict(x, verbose=0))


def test_jittable_rotation_rotates_while_training_and_saves(tmp_path):
    """Keras' rotation when training, the identity otherwise; XLA only where the backend's
    rotation compiles (under TensorFlow Keras' own mark stays; JAX: see test_train)."""
    image = keras.Input((12, 12, 1))
    model = keras.Model(image, JittableRandomRotation(0.5, fill_mode="constant")(image))
    x = np.random.default_rng(0).random((3, 12, 12, 1)).astype("float32")
    turned = [keras.ops.convert_to_numpy(model(x, training=True)) for _ in range(2)]
    assert not np.allclose(turned[0], x) and not np.allclose(turned[0], turned[1])
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(model(x, training=False)), x)
    layer = model.layers[1]
    assert layer.supports_jit == (keras.backend.backend() == "jax")
    model.save(tmp_path / "m.keras")
    loaded = keras.saving.load_model(tmp_path / "m.keras", compile=False, safe_mode=True)
    assert isinstance(loaded.layers[1], JittableRandomRotation)
    assert loaded.layers[1].get_config() == layer.get_config()
