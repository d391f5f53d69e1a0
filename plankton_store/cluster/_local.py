"""Local Dask clusters and the client every job runs on."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterator
from typing import Any

import dask.config

from plankton_store.cluster._config import check_kind, load_cluster_config

#: Dask housekeeping made less frequent in the jobs' local clusters. By default every server
#: (the scheduler and each worker's nanny in the job process, and each worker) checks its
#: event loop every 20 ms and samples CPU, memory and network every 500 ms, and nannies and
#: workers check memory every 100 ms: an idle 2-worker cluster burned 1.64-1.68 CPU seconds
#: per 20 s (4% of a 2-core machine), with these settings 0.37-0.38
#: (benchmarks/idle_cluster.py). A key the user set in Dask's config keeps the user's value.
QUIET_HOUSEKEEPING = {
    # The event loop's health check (a warning when blocked for 3 s); Dask's tests use 500 ms.
    "distributed.admin.tick.interval": "500ms",
    # When a worker pauses, spills or is restarted for memory.
    "distributed.worker.memory.monitor-interval": "500ms",
    # The dashboard's CPU / memory / network plots.
    "distributed.admin.system-monitor.interval": "2s",
}


#: Environment variables of the worker processes. Dask sets MALLOC_TRIM_THRESHOLD_=65536
#: before it spawns them, so that glibc hands freed memory back at once; setting it also
#: turns off glibc's adaptive mmap threshold, so every buffer over 128 KiB (a block's pixels,
#: each compressed chunk, the shard) is mapped afresh and page-faulted in, zeroed, each time:
#: a bare build-store block loop took 2.6 page faults and 12-15 us of system time per image
#: with it, 0.2 and 5-8 us without (a worker's peak memory is bounded by its block either
#: way). ``None`` unsets a variable; the environment's own value, if any, still wins.
WORKER_ENVIRONMENT = {"distributed.nanny.pre-spawn-environ.MALLOC_TRIM_THRESHOLD_": None}


def _unless_user_set(settings: dict[str, Any]) -> dict[str, Any]:
    """The ``settings`` keys that Dask's config leaves at Dask's defaults."""
    defaults = dask.config.merge(*dask.config.defaults)
    return {
        key: value
        for key, value in settings.items()
        if dask.config.get(key, None) == dask.config.get(key, None, config=defaults)
    }


def local_cluster(
    n_workers: int,
    threads_per_worker: int = 1,
    memory_limit: str | int | None = "auto",
    dashboard_address: str | None = ":8787",
    worker_profiler: bool = False,
) -> Any:
    """A ``distributed.LocalCluster`` of worker processes, as every job starts it.

    ``worker_profiler`` False turns off Dask's statistical profiler in the workers (the
    dashboard's Profile page): it samples each worker's stacks every 10 ms with the GIL
    held, which cost build-store about 8% of its workers' CPU time (benchmarks/history.md).
    Housekeeping runs less often than Dask's default (:data:`QUIET_HOUSEKEEPING`), and
    the workers keep glibc's adaptive memory allocation (:data:`WORKER_ENVIRONMENT`).
    """
    from distributed import LocalCluster

    housekeeping = _unless_user_set(QUIET_HOUSEKEEPING)
    # The scheduler and the nannies are created in this process, from its config.
    with dask.config.set({**housekeeping, **_unless_user_set(WORKER_ENVIRONMENT)}):
        return LocalCluster(
            n_workers=n_workers,
            threads_per_worker=threads_per_worker,
            processes=True,
            memory_limit=memory_limit,
            dashboard_address=dashboard_address,
            # Set in each worker process after the Dask config it inherits (dotted keys: the
            # nanny merges this dict shallowly into that config).
            config={**housekeeping, "distributed.worker.profile.enabled": bool(worker_profiler)},
        )


@contextlib.contextmanager
def dask_client(
    workers: int | None = None,
    scheduler: str | None = None,
    config: str | os.PathLike | None = None,
    echo: Callable[[str], None] = print,
    kind: str | None = None,
) -> Iterator[Any]:
    """A ``distributed.Client`` for a job, closed (with its local cluster) on exit.

    Parameters
    ----------
    workers
        Local worker processes (one thread each); overrides the config.
    scheduler
        Address of an existing scheduler (``tcp://host:port``); overrides the config and
        means no local cluster is started.
    config
        Cluster config file (see ``cluster.yaml``).
    echo
        Where the job's Dask lines go.
    kind
        ``local``, ``slurm`` or ``pbs`` (worker jobs through dask-jobqueue); overrides the
        config's ``kind``. An existing scheduler's address wins over it.
    """
    from distributed import Client

    settings = load_cluster_config(config)
    kind = check_kind(kind or settings["kind"])
    address = scheduler or settings["scheduler-address"]
    if kind != "local" and not address:
        from plankton_store.cluster._jobqueue import batch_client

        with batch_client(kind, settings, workers, echo) as client:
            yield client
        return
    if address:
        client = Client(address)
        echo(f"Dask: connected to {address} ({len(client.scheduler_info()['workers'])} workers)")
        cluster = None
    else:
        n_workers = workers or int(settings["n-workers"])
        cluster = local_cluster(
            n_workers,
            threads_per_worker=int(settings["threads-per-worker"]),
            memory_limit=settings["memory-limit"],
            dashboard_address=settings["dashboard-address"],
            worker_profiler=settings["worker-profiler"],
        )
        client = Client(cluster)
        echo(f"Dask: local cluster of {n_workers} worker processes")
    if client.dashboard_link:
        echo(f"Dask dashboard: {client.dashboard_link}")
    try:
        yield client
    finally:
        client.close()
        if cluster is not None:
            cluster.close()
