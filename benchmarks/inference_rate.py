"""CPU inference rate of the default cnn and the ``--preset large`` net, side by side.

    python benchmarks/inference_rate.py [--size 64x64] [--classes 35] [--images 2048]
        [--threads 2] [--repeats 3] [--large-size 96x96]

Builds each network as ``plankton-jobs train`` does (untrained: the rate does not depend on
the weights) for a padded store of ``--size`` (the large net also at ``--large-size``, the
size the GPU recipe stores), and times ``predict`` (batches of 1024, as ``predict`` and
``evaluate`` run it) on ``--images`` random uint8 images after one warm-up pass. Prints
images per second of wall clock (the best of ``--repeats``) and per CPU second of this
process: on a shared host the wall-clock figure moves with the other processes' load, the
CPU-second one less. One view; ``--tta`` costs 8 views.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from plankton_store.ml import Normalisation, build_cnn, configure_keras
from plankton_store.ml._large import build_large_for


def rate(model, size: tuple[int, int], n_images: int, repeats: int) -> dict:
    """Best images/s (wall) and images per CPU second of ``repeats`` predictions."""
    rng = np.random.default_rng(0)
    inputs = {
        "image": rng.integers(0, 256, (n_images, *size, 1), dtype=np.uint8),
        "size": rng.normal(4.0, 0.5, (n_images, 2)).astype(np.float32),
    }
    model.predict(inputs, batch_size=1024, verbose=0)  # warm-up: tracing
    best_wall, best_cpu = 0.0, 0.0
    for _ in range(repeats):
        wall, cpu = time.perf_counter(), time.process_time()
        model.predict(inputs, batch_size=1024, verbose=0)
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
        best_wall = max(best_wall, n_images / wall)
        best_cpu = max(best_cpu, n_images / cpu)
    return {"images_per_s": best_wall, "images_per_cpu_s": best_cpu, "params": model.count_params()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", default="64x64")
    parser.add_argument("--large-size", default="96x96")
    parser.add_argument("--classes", type=int, default=35)
    parser.add_argument("--images", type=int, default=2048)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    configure_keras(args.threads, 0)
    norm = Normalisation(
        image_mean=200.0, image_std=40.0, size_mean=(4.0, 4.0), size_std=(0.5, 0.5)
    )
    size = tuple(int(v) for v in args.size.split("x"))
    large_size = tuple(int(v) for v in args.large_size.split("x"))
    nets = {
        f"cnn {args.size}": (build_cnn(size, args.classes, norm, rotate=True), size),
        f"large {args.size}": (
            build_large_for(size, args.classes, norm, 2e-3, True, True),
            size,
        ),
        f"large {args.large_size}": (
            build_large_for(large_size, args.classes, norm, 2e-3, True, True),
            large_size,
        ),
    }
    print(f"{'net':<14} {'params':>9} {'images/s':>9} {'images/CPU s':>13}")
    for name, (net, shape) in nets.items():
        r = rate(net, shape, args.images, args.repeats)
        print(
            f"{name:<14} {r['params']:>9,} {r['images_per_s']:>9.0f} {r['images_per_cpu_s']:>13.0f}"
        )


if __name__ == "__main__":
    main()
