"""The one way into Keras: backend defaults first, our layers registered, threads pinned.

Every Keras code path gets Keras from :func:`import_keras` (or :func:`configure_keras`
before training), so the environment defaults are always set before the backend loads and
a saved model's custom layers are always known. Import this only inside the Keras code
paths: TensorFlow takes seconds to load, and the other models never need it.
"""

from __future__ import annotations

import os
import warnings
from types import ModuleType

#: Environment defaults of the Keras backends; a user's value stands.
BACKEND_ENVIRONMENT = {
    # Several worker processes may share one GPU (predict, evaluate, grids): under JAX each
    # then takes GPU memory as it needs it, instead of the 75% of the card JAX preallocates
    # by default, which leaves the second process none. Read before the first JAX op.
    "XLA_PYTHON_CLIENT_PREALLOCATE": "false",
    # TensorFlow's C++ start-up notes (CPU instruction sets, oneDNN) are not for our users;
    # warnings and errors still show. Read when TensorFlow loads, i.e. at ``import keras``.
    "TF_CPP_MIN_LOG_LEVEL": "2",
}


def import_keras() -> ModuleType:
    """Keras, imported after setting :data:`BACKEND_ENVIRONMENT`, with our custom layers
    (:mod:`plankton_store.ml._keras_layers`) registered for saving and loading."""
    for name, value in BACKEND_ENVIRONMENT.items():
        os.environ.setdefault(name, value)
    import keras

    from plankton_store.ml import _keras_layers  # noqa: F401 - registers the layers

    return keras


def configure_keras(threads: int, seed: int) -> ModuleType:
    """Keras (:func:`import_keras`) with every seed set and, under TensorFlow (the default
    backend), its thread pools pinned.

    Thread pools can only be sized before TensorFlow starts its runtime. A later call with
    another size keeps the first one and warns: the thread count changes the order of
    floating-point sums, so the same seed then trains a different model than in a fresh
    process. Other Keras backends (``KERAS_BACKEND=jax``, e.g. on a GPU machine without
    TensorFlow) import no TensorFlow and keep their own thread settings.
    """
    keras = import_keras()
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
