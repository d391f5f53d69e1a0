"""Benchmark build-store end to end against the decode + resize limit measured in the same run.

    python benchmarks/build_store.py --scale 1.0            # full 243,610-image demo export
    python benchmarks/build_store.py --export ../shared/data/ndsb-dev   # any export

Prints images/s of the whole build (read export, plan, Dask tasks, write, finalize), the
single-core Pillow decode + resize rate on the same images (measured before and after the
build, the best of both kept), the limit for the cluster
(workers x single-core rate), the ratio of the two, the Pillow loop's rate in as many
processes at once as there are workers (what a shared host really gives the cores together)
and the build's ratio to it, build-store's own single-core decode + resize rate (and the
build's ratio to it), and the peak memory of each worker.
Targets (issue 3, on 2 cores): >= 13,000 images/s, >= 0.8 of the limit, <= 1 GiB per worker.
"""

from __future__ import annotations

import argparse
import io
import multiprocessing
import os
import resource
import shutil
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
from PIL import Image

from plankton_store.cluster import local_cluster
from plankton_store.io import RESAMPLE, draft_target, prepare_image, read_export
from plankton_store.store import BuildOptions, build_store

TARGET_IMAGES_PER_SECOND = 13_000
TARGET_FRACTION_OF_LIMIT = 0.8
TARGET_WORKER_MEMORY = 1 << 30


def demo_export(scale: float, seed: int, cache: Path) -> Path:
    """The demo export at ``scale``, generated once and kept in ``cache``."""
    from plankton_store.demo import make_demo_export

    out = cache / f"demo-scale{scale:g}-seed{seed}"
    if not (out / "meta.csv").exists():
        started = time.perf_counter()
        make_demo_export(out, scale=scale, seed=seed)
        print(f"generated {out} in {time.perf_counter() - started:.0f} s")
    return out


def pillow_decode_resize(data: bytes, size: tuple[int, int]) -> np.ndarray:
    """Pillow's own decode + grayscale + resize of one JPEG: JPEG draft mode, which decodes
    only the luma channel, shrunk in the DCT domain towards the target size as
    ``Image.thumbnail`` does."""
    with Image.open(io.BytesIO(data)) as im:
        im.draft("L", draft_target(size))
        return np.asarray(im.convert("L").resize((size[1], size[0]), RESAMPLE))


def sample_images(export_dir: Path, n: int = 4000) -> list[bytes]:
    """The bytes of ``n`` images of the export, drawn at random (seeded)."""
    export = read_export(export_dir)
    refs = export.table["image"].sample(min(n, len(export.table)), random_state=0).tolist()
    return [export.fetcher.fetch(ref) for ref in refs]


def single_core_rates(
    blobs: list[bytes], size: tuple[int, int], rounds: int = 3
) -> tuple[float, float]:
    """Images/s of two bare decode + grayscale + resize loops on one core (bytes in RAM).

    The first is Pillow's (:func:`pillow_decode_resize`, issue 3's limit); the second is
    build-store's own :func:`~plankton_store.io.prepare_image`, which takes the same
    pixels from libjpeg-turbo without Pillow's Python-level header parsing; the build's
    ratio to it measures build-store's own overhead (reading, Dask, writing). The two loops
    alternate for ``rounds`` rounds and each keeps its best: a limit, measured when the
    shared host lets one core run undisturbed.
    """

    def own(data: bytes) -> None:
        prepare_image(data, size)

    def pillow(data: bytes) -> None:
        pillow_decode_resize(data, size)

    best = {pillow: 0.0, own: 0.0}
    for _ in range(rounds):
        for loop in best:
            started = time.perf_counter()
            for data in blobs:
                loop(data)
            best[loop] = max(best[loop], len(blobs) / (time.perf_counter() - started))
    return best[pillow], best[own]


def _timed_pillow_loop(
    blobs: list[bytes], size: tuple[int, int], start_at: float
) -> tuple[int, float]:
    """(process id, images/s) of the Pillow loop over ``blobs``, begun at ``start_at``."""
    time.sleep(max(0.0, start_at - time.time()))
    started = time.perf_counter()
    for data in blobs:
        pillow_decode_resize(data, size)
    return os.getpid(), len(blobs) / (time.perf_counter() - started)


def concurrent_pillow_rate(
    blobs: list[bytes], size: tuple[int, int], processes: int, rounds: int = 3
) -> float:
    """Images/s of the Pillow loop run in ``processes`` processes at once, summed.

    What the cores give Pillow together, measured rather than taken as ``processes`` x the
    single-core rate: on a shared host the cores together can give less (seen here: 0.84
    and 0.97 of it in two runs). Best of ``rounds``; a round in which one process ran two
    loops is not counted.
    """
    context = multiprocessing.get_context("spawn")
    best = 0.0
    with ProcessPoolExecutor(processes, mp_context=context) as pool:
        counted = 0
        for _ in range(rounds * 3):
            start_at = time.time() + 0.5  # every process has its loop by then
            results = list(
                pool.map(
                    _timed_pillow_loop,
                    [blobs] * processes,
                    [size] * processes,
                    [start_at] * processes,
                )
            )
            if len({pid for pid, _ in results}) < processes:
                continue  # a process was still starting: its twin ran both loops
            best = max(best, sum(rate for _, rate in results))
            counted += 1
            if counted == rounds:
                break
    return best


def peak_memory() -> int:
    """Peak resident memory (bytes) of this process since it started its program.

    Linux's ``VmHWM``, not ``getrusage``'s ``ru_maxrss``: that one keeps the peak of the
    process it was forked from across ``exec``, so a Dask worker, spawned from a job process
    holding a 243,610-row export (~460 MiB), reported that instead of its own ~260 MiB.
    """
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # elsewhere: an upper bound


def worker_peak_memory(client) -> dict[str, int]:
    """Peak resident memory (bytes) of each worker process since it started."""
    return client.run(peak_memory)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", type=float, default=1.0, help="demo export scale")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--export", type=Path, help="use this export instead of the demo one")
    parser.add_argument(
        "--cache", type=Path, default=Path(tempfile.gettempdir()) / "plankton-bench"
    )
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument(
        "--block-size", type=int, default=None, help="samples per block [default: automatic]"
    )
    parser.add_argument("--resize", default="stretch", choices=["stretch", "pad"])
    parser.add_argument(
        "--worker-profiler",
        action="store_true",
        help="keep Dask's profiler on in the workers (off in the jobs' local clusters)",
    )
    args = parser.parse_args()

    from distributed import Client

    export_dir = args.export or demo_export(args.scale, args.seed, args.cache)
    options = BuildOptions(
        block_size=args.block_size, chunk_size=512, resize_mode=args.resize, max_per_class=None
    )
    # The limits are measured before and after the build and each keeps its best: a shared
    # host can slow down a whole measurement (seen: single-core Pillow at 4,096 images/s
    # after one build and 6,162 after the one before, 2 processes at once 10,620 and 11,332).
    blobs = sample_images(export_dir)
    rates_before = single_core_rates(blobs, options.size)
    together_before = concurrent_pillow_rate(blobs, options.size, args.workers)
    store = Path(tempfile.mkdtemp(prefix="bench-store-")) / "store.zarr"
    with (
        local_cluster(
            args.workers,
            memory_limit="2GiB",
            dashboard_address=":0",
            worker_profiler=args.worker_profiler,
        ) as cluster,
        Client(cluster) as client,
    ):
        client.run(lambda: None)  # workers up before the clock starts
        cpu_before = client.run(time.process_time)
        client_cpu = time.process_time()
        started = time.perf_counter()
        summary = build_store(str(export_dir), str(store), options, client, progress=True)
        seconds = time.perf_counter() - started
        client_cpu = time.process_time() - client_cpu
        worker_cpu = sum(client.run(time.process_time).values()) - sum(cpu_before.values())
        peaks = worker_peak_memory(client)
    shutil.rmtree(store.parent, ignore_errors=True)

    rates_after = single_core_rates(blobs, options.size)
    together_after = concurrent_pillow_rate(blobs, options.size, args.workers)
    pillow_rate, own_rate = (max(pair) for pair in zip(rates_before, rates_after, strict=True))
    limit = pillow_rate * args.workers
    together = max(together_before, together_after)
    images_per_second = summary.samples / seconds
    peak = max(peaks.values())
    print()
    print(f"export:                     {export_dir} ({summary.rows_read} rows)")
    print(f"samples stored:             {summary.samples} ({summary.augmented_copies} copies)")
    print(f"build seconds:              {seconds:.1f}")
    print(f"build images/s:             {images_per_second:,.0f}")
    print(
        f"single-core Pillow decode+resize:      {pillow_rate:,.0f} images/s "
        f"(before the build {rates_before[0]:,.0f}, after {rates_after[0]:,.0f})"
    )
    print(f"limit ({args.workers} workers x Pillow):          {limit:,.0f} images/s")
    print(
        f"ratio build / limit:        {images_per_second / limit:.2f} "
        f"(target >= {TARGET_FRACTION_OF_LIMIT})"
    )
    print(
        f"ratio build / 13,000:       {images_per_second / TARGET_IMAGES_PER_SECOND:.2f} "
        "(target >= 1)"
    )
    print(
        f"Pillow in {args.workers} processes at once:  {together:,.0f} images/s "
        f"({together / limit:.2f} of the limit: what the shared host gave the cores together; "
        f"before the build {together_before:,.0f}, after {together_after:,.0f})"
    )
    print(f"ratio build / that:         {images_per_second / together:.2f}")
    print(
        f"single-core build-store decode+resize: {own_rate:,.0f} images/s "
        f"({own_rate / pillow_rate:.2f}x Pillow); build / {args.workers} x that: "
        f"{images_per_second / (own_rate * args.workers):.2f} (build-store's own overhead)"
    )
    # CPU time moves less than wall time with the load other tenants put on a shared host.
    print(
        f"CPU seconds:                workers {worker_cpu:.1f} "
        f"({1e6 * worker_cpu / summary.samples:.0f} us per image), "
        f"job process (client + scheduler) {client_cpu:.1f}"
    )
    print(
        f"peak worker memory:         {peak / 2**20:,.0f} MiB "
        f"(ratio to 1 GiB: {peak / TARGET_WORKER_MEMORY:.2f})"
    )


if __name__ == "__main__":
    main()
