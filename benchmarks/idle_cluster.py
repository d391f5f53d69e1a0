"""Benchmark the CPU an idle local cluster burns on Dask's housekeeping, with Dask's default
intervals and with the jobs' quieter ones (``jobs.cluster.QUIET_HOUSEKEEPING``).

    python benchmarks/idle_cluster.py            # 2 workers, 20 s per measurement, 2 rounds

Every CPU second spent on housekeeping while a job runs is taken from its workers on a
2-core machine. Prints the CPU seconds of the whole process tree (the job process with its
scheduler and nannies, and the workers) over each idle spell, and the ratio of the two.
"""

from __future__ import annotations

import argparse
import time

import psutil

from plankton_store.cluster import local_cluster


def tree_cpu_seconds() -> float:
    """User + system CPU seconds of this process and all its children."""
    me = psutil.Process()
    total = 0.0
    for process in [me, *me.children(recursive=True)]:
        try:
            times = process.cpu_times()
        except psutil.Error:
            continue
        total += times.user + times.system
    return total


def idle_cpu(workers: int, seconds: float, quiet: bool) -> float:
    """CPU seconds the process tree uses while a started cluster sits idle."""
    from distributed import Client, LocalCluster

    if quiet:
        cluster = local_cluster(workers, dashboard_address=":0")
    else:  # what local_cluster started before: Dask's intervals, profiler off
        cluster = LocalCluster(
            n_workers=workers,
            threads_per_worker=1,
            dashboard_address=":0",
            config={"distributed.worker.profile.enabled": False},
        )
    with cluster, Client(cluster) as client:
        client.run(lambda: None)
        before = tree_cpu_seconds()
        time.sleep(seconds)
        return tree_cpu_seconds() - before


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    used: dict[bool, list[float]] = {False: [], True: []}
    for _ in range(args.rounds):
        for quiet in (False, True):
            used[quiet].append(idle_cpu(args.workers, args.seconds, quiet))
    for quiet, label in ((False, "Dask's default intervals"), (True, "QUIET_HOUSEKEEPING")):
        runs = ", ".join(f"{s:.2f}" for s in used[quiet])
        print(f"{label:>25}: {runs} CPU s per {args.seconds:g} s idle ({args.workers} workers)")
    default, quiet = min(used[False]), min(used[True])
    print(
        f"quiet / default: {quiet / default:.2f}; saves {default - quiet:.2f} CPU s per "
        f"{args.seconds:g} s = {(default - quiet) / args.seconds / psutil.cpu_count():.1%} "
        f"of the machine's {psutil.cpu_count()} cores"
    )


if __name__ == "__main__":
    main()
