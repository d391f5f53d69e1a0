"""What the batch-scheduler layer costs: build-store on SLURM worker jobs vs a local cluster.

    python benchmarks/slurm_build.py --scale 1.0        # full 243,610-image demo export

Starts a single-node SLURM on loopback (tests/slurm_cluster.py; needs .ci/install-slurm and
root), then builds the same demo export twice in this one run: on a local cluster of
``--workers`` worker processes, and on as many 1-core SLURM worker jobs through
``--cluster slurm``. Prints, for each, the start-up seconds (from asking for the cluster to
all workers joined) and images/s once running (the build alone).
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import yaml

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

from benchmarks.build_store import demo_export  # noqa: E402
from plankton_store.cluster import dask_client  # noqa: E402
from plankton_store.store import BuildOptions, build_store  # noqa: E402
from tests.slurm_cluster import SlurmCluster, unavailable  # noqa: E402


def one_build(kind: str, export: Path, workers: int, config: Path, out: Path) -> dict:
    """Start-up seconds and images/s of one build on a fresh cluster of ``kind``."""
    store = out / f"{kind}.zarr"
    started = time.perf_counter()
    with dask_client(workers, config=config, echo=lambda _: None, kind=kind) as client:
        client.wait_for_workers(workers)
        ready = time.perf_counter()
        summary = build_store(str(export), str(store), BuildOptions(), client, progress=False,
                              echo=lambda _: None)  # fmt: skip
        built = time.perf_counter()
    shutil.rmtree(store, ignore_errors=True)
    return {
        "kind": kind,
        "startup_s": ready - started,
        "build_s": built - ready,
        "images": summary.rows_read,
        "images_per_s": summary.rows_read / (built - ready),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", type=float, default=1.0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument(
        "--cache", type=Path, default=Path(tempfile.gettempdir()) / "plankton-bench"
    )
    args = parser.parse_args()
    reason = unavailable()
    if reason:
        sys.exit(reason)
    export = demo_export(args.scale, args.seed, args.cache)
    with tempfile.TemporaryDirectory(prefix="slurm-bench-") as tmp:
        tmp = Path(tmp)
        slurm = SlurmCluster(tmp / "slurm", cpus=args.workers).start()
        try:
            os.environ["SLURM_CONF"] = str(slurm.conf)
            settings = {
                "cores": 1, "memory": "4GiB", "walltime": "01:00:00", "queue": "debug",
                "interface": "lo", "python": sys.executable, "dashboard-address": "127.0.0.1:0",
                "job-script-prologue": [f"export PYTHONPATH={REPO_ROOT}"],
                "log-directory": str(tmp / "logs"), "worker-timeout": 300,
            }  # fmt: skip
            config = tmp / "cluster.yaml"
            config.write_text(yaml.safe_dump({"plankton-jobs": {"cluster": settings}}))
            results = [one_build(k, export, args.workers, config, tmp) for k in ("local", "slurm")]
            left = slurm.jobs()
        finally:
            slurm.stop()
    print(f"demo export scale {args.scale:g}, {args.workers} workers, jobs left queued: {left}")
    for r in results:
        print(
            f"{r['kind']:>5}: start-up {r['startup_s']:5.1f} s, {r['images']:,} images in "
            f"{r['build_s']:.1f} s = {r['images_per_s']:,.0f} images/s once running"
        )
    local, slurm_ = results
    print(f"slurm / local images/s: {slurm_['images_per_s'] / local['images_per_s']:.2f}")


if __name__ == "__main__":
    main()
