"""Batch-scheduler clusters (SLURM, PBS) that a job starts and stops itself.

Loaded only when the cluster kind is ``slurm`` or ``pbs``, so dask-jobqueue is imported only
then. The worker jobs are cancelled when the job ends, fails, is interrupted (Ctrl-C) or is
terminated (SIGTERM).
"""

from __future__ import annotations

import contextlib
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from typing import Any

from plankton_store.cluster._config import ClusterConfigError

#: Seconds between two progress lines while waiting for workers.
PROGRESS_EVERY = 5.0


def _import_jobqueue() -> Any:
    """dask_jobqueue, keeping this process's SIGINT handler (its import installs one that
    calls ``sys.exit``, which would skip the job's own clean-up)."""
    handler = signal.getsignal(signal.SIGINT)
    try:
        import dask_jobqueue
    except ImportError:
        raise ClusterConfigError(
            "kind: slurm and pbs need dask-jobqueue (pip install 'plankton-jobs[slurm]')"
        ) from None
    finally:
        signal.signal(signal.SIGINT, handler)
    return dask_jobqueue


def check_partition(kind: str, queue: str | None) -> None:
    """Fail naming the ``queue`` setting when SLURM has no such partition (sbatch would
    accept nothing, and scaling would not raise)."""
    if kind != "slurm" or not queue or shutil.which("sinfo") is None:
        return
    out = subprocess.run(["sinfo", "-h", "-o", "%P", "-p", queue], capture_output=True, text=True)
    if out.returncode != 0 or not out.stdout.strip():
        raise ClusterConfigError(f"queue: SLURM has no partition {queue!r} (see `sinfo -s`)")


def batch_cluster(kind: str, settings: dict[str, Any]) -> Any:
    """A dask-jobqueue ``SLURMCluster`` or ``PBSCluster`` from the cluster settings."""
    jobqueue = _import_jobqueue()
    check_partition(kind, settings["queue"])
    cls = {"slurm": jobqueue.SLURMCluster, "pbs": jobqueue.PBSCluster}[kind]
    interface = settings["interface"]
    host = "127.0.0.1" if interface == "lo" else None
    scheduler_options: dict[str, Any] = {"dashboard_address": settings["dashboard-address"]}
    if host:
        scheduler_options["host"] = host
    return cls(
        cores=int(settings["cores"]),
        processes=1,
        memory=str(settings["memory"]),
        walltime=str(settings["walltime"]),
        queue=settings["queue"],
        account=settings["account"],
        job_extra_directives=list(settings["job-extra-directives"] or []),
        job_script_prologue=list(settings["job-script-prologue"] or []),
        python=settings["python"] or sys.executable,
        interface=interface,
        log_directory=settings["log-directory"],
        scheduler_options=scheduler_options,
        worker_extra_args=["--dashboard-address", f"{host or ''}:0"],
    )


def wait_for_workers(
    client: Any, n: int, timeout: float, echo: Callable[[str], None] = print
) -> None:
    """Wait until ``n`` workers have joined, with a progress line; fail naming
    ``worker-timeout`` after ``timeout`` seconds."""
    start = time.monotonic()
    while True:
        have = len(client.scheduler_info()["workers"])
        elapsed = time.monotonic() - start
        echo(f"Dask: waiting for workers: {have}/{n} joined after {elapsed:.0f} s")
        if have >= n:
            return
        left = timeout - elapsed
        if left <= 0:
            raise ClusterConfigError(
                f"worker-timeout: only {have} of {n} workers joined within {timeout:g} s "
                "(are the jobs pending? check queue, account, cores, memory and walltime)"
            )
        with contextlib.suppress(TimeoutError):
            client.wait_for_workers(n, timeout=min(PROGRESS_EVERY, left))


def _exit_on_sigterm(signum: int, frame: Any) -> None:
    raise SystemExit(128 + signum)


@contextlib.contextmanager
def batch_client(
    kind: str, settings: dict[str, Any], workers: int | None, echo: Callable[[str], None] = print
) -> Iterator[Any]:
    """A client on worker jobs of a batch scheduler, cancelled on exit.

    Parameters
    ----------
    kind
        ``slurm`` or ``pbs``.
    settings
        The cluster settings (:func:`plankton_store.cluster.load_cluster_config`).
    workers
        Fixed number of worker jobs; else ``n-workers``, or adaptive between
        ``minimum-workers`` and ``maximum-workers`` when the latter is set.
    echo
        Where the progress lines go.
    """
    from distributed import Client

    previous = signal.signal(signal.SIGTERM, _exit_on_sigterm)
    cluster = batch_cluster(kind, settings)
    try:
        client = Client(cluster)
        maximum = settings["maximum-workers"]
        if maximum and workers is None:
            minimum = int(settings["minimum-workers"] or 1)
            cluster.adapt(minimum=minimum, maximum=int(maximum))
            need = minimum
            echo(f"Dask: {kind} cluster, adaptive {minimum}-{maximum} worker jobs")
        else:
            need = int(workers or settings["n-workers"])
            cluster.scale(need)
            echo(f"Dask: {kind} cluster, {need} worker job{'s' if need != 1 else ''} submitted")
        try:
            wait_for_workers(client, need, float(settings["worker-timeout"]), echo)
            yield client
        finally:
            client.close()
    finally:
        cluster.close()
        signal.signal(signal.SIGTERM, previous)
