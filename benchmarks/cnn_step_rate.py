"""Training-step cost of the ``cnn`` and ``seed-cnn`` networks alone, on any Keras backend.

    python benchmarks/cnn_step_rate.py [--size 64x48] [--steps 40] [--models cnn,seed-cnn]
    KERAS_BACKEND=jax python benchmarks/cnn_step_rate.py     # e.g. on a GPU machine
    python benchmarks/cnn_step_rate.py --size 64x64 --rotate --models cnn   # a padded store's cnn

Builds each network as ``plankton-jobs train`` does (``plankton_store.ml._models``) and times
``train_on_batch`` on random uint8 images (no store, no input pipeline, no validation), after
a few warm-up steps. Prints samples per second of wall clock and, since a shared 2-core host
lends a process anywhere from 0.7 to 1.8 cores, samples per CPU second of this process (the
steadier figure on CPUs; on a GPU, wall clock is what counts); then the ``cnn`` / ``seed-cnn``
ratio of each and its ratio to issue 4's target (10x per sample). ``train_throughput.py``
measures the same with the real batch pipeline on a store.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

TARGET_RATIO = 10.0


def step_rate(
    kind: str, size: tuple[int, int], n_classes: int, batch: int, steps: int, rotate: bool = False
) -> dict:
    """Samples/s (wall) and samples per CPU second of ``steps`` training steps of ``kind``
    (``rotate``: the cnn with its any-angle rotation layer, as on padded stores)."""
    import keras

    from plankton_store.ml import Normalisation, build_cnn, build_seed_cnn

    normalisation = Normalisation(
        image_mean=200.0, image_std=40.0, size_mean=(4.0, 4.0), size_std=(0.5, 0.5)
    )
    rng = np.random.default_rng(0)
    inputs = {"image": rng.integers(0, 256, (batch, *size, 1), dtype=np.uint8)}
    if kind == "cnn":
        model = build_cnn(size, n_classes, normalisation, rotate=rotate)
        inputs["size"] = rng.normal(4.0, 0.5, (batch, 2)).astype(np.float32)
    else:
        model = build_seed_cnn(size, n_classes, normalisation)
    labels = rng.integers(0, n_classes, batch)
    compiled = time.perf_counter()
    for _ in range(5):  # compile / trace, allocate
        model.train_on_batch(inputs, labels)
    compiled = time.perf_counter() - compiled
    cpu, wall = time.process_time(), time.perf_counter()
    for _ in range(steps):
        model.train_on_batch(inputs, labels)
    # Wait for queued device work before reading the clock.
    float(np.asarray(keras.ops.convert_to_numpy(model.trainable_weights[0])).ravel()[0])
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    samples = steps * batch
    return {
        "model": kind,
        "params": model.count_params(),
        "samples/s": samples / wall,
        "samples/cpu-s": samples / cpu,
        "cores busy": cpu / wall,
        "warm-up s": compiled,
        "xla": bool(model.jit_compile),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", default="64x48", help="image height x width")
    parser.add_argument("--classes", type=int, default=37)
    parser.add_argument("--batch", type=int, default=128, help="the same batch for both nets")
    parser.add_argument("--steps", type=int, default=40, help="timed steps per model")
    parser.add_argument("--models", default="cnn,seed-cnn")
    parser.add_argument(
        "--rotate", action="store_true", help="the cnn with its any-angle rotation layer"
    )
    args = parser.parse_args()
    height, width = (int(v) for v in args.size.lower().split("x"))

    import keras

    print(f"Keras {keras.__version__}, backend {keras.backend.backend()}")
    results = {}
    for kind in args.models.split(","):
        r = step_rate(kind, (height, width), args.classes, args.batch, args.steps, args.rotate)
        results[kind] = r
        print(
            f"{kind:>9}: {r['params']:>9,} parameters  {r['samples/s']:>9,.0f} samples/s  "
            f"{r['samples/cpu-s']:>9,.0f} samples/CPU-s  ({r['cores busy']:.2f} cores busy; "
            f"5 warm-up steps {r['warm-up s']:.1f} s, XLA {'on' if r['xla'] else 'off'})",
            flush=True,
        )
    if {"cnn", "seed-cnn"} <= results.keys():
        for key in ("samples/s", "samples/cpu-s"):
            ratio = results["cnn"][key] / results["seed-cnn"][key]
            print(
                f"cnn / seed-cnn in {key}: {ratio:.1f}x "
                f"(target >= {TARGET_RATIO:g}x; ratio to target {ratio / TARGET_RATIO:.2f})"
            )


if __name__ == "__main__":
    main()
