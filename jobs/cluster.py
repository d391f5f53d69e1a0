"""Dask client set-up shared by every job: a local cluster or an existing scheduler.

Settings come, in order of precedence, from command-line options, the cluster config file
(``cluster.yaml``, dask-config style, key ``plankton-jobs.cluster``) and Dask's own config.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import click
import dask.config
import yaml

CONFIG_ENV = "PLANKTON_JOBS_CLUSTER_CONFIG"
CONFIG_KEY = "plankton-jobs.cluster"
DEFAULTS: dict[str, Any] = {
    "scheduler-address": None,
    "n-workers": 2,
    "threads-per-worker": 1,
    "memory-limit": "auto",
    "dashboard-address": ":8787",
}


def load_cluster_config(path: str | os.PathLike | None = None) -> dict[str, Any]:
    """Cluster settings: DEFAULTS, overlaid with Dask's config, overlaid with the config file.

    The file is ``path``, else ``$PLANKTON_JOBS_CLUSTER_CONFIG``, else ``./cluster.yaml`` when
    it exists.
    """
    settings = {**DEFAULTS, **dask.config.get(CONFIG_KEY, default={})}
    candidate = path or os.environ.get(CONFIG_ENV)
    if candidate is None and Path("cluster.yaml").is_file():
        candidate = "cluster.yaml"
    if candidate is not None:
        file = Path(candidate)
        if not file.is_file():
            raise click.UsageError(f"cluster config {file} does not exist")
        try:
            data = yaml.safe_load(file.read_text()) or {}
        except yaml.YAMLError as exc:
            raise click.UsageError(f"cluster config {file} is not valid YAML: {exc}") from None
        section = data.get("plankton-jobs", {}).get("cluster", {}) if isinstance(data, dict) else {}
        unknown = set(section) - set(DEFAULTS)
        if unknown:
            raise click.UsageError(
                f"cluster config {file}: unknown keys {sorted(unknown)}; known: {sorted(DEFAULTS)}"
            )
        settings.update(section)
    return settings


@contextlib.contextmanager
def dask_client(
    workers: int | None = None,
    scheduler: str | None = None,
    config: str | os.PathLike | None = None,
    echo: Callable[[str], None] = click.echo,
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
    """
    from distributed import Client, LocalCluster

    settings = load_cluster_config(config)
    address = scheduler or settings["scheduler-address"]
    if address:
        client = Client(address)
        echo(f"Dask: connected to {address} ({len(client.scheduler_info()['workers'])} workers)")
        cluster = None
    else:
        n_workers = workers or int(settings["n-workers"])
        cluster = LocalCluster(
            n_workers=n_workers,
            threads_per_worker=int(settings["threads-per-worker"]),
            processes=True,
            memory_limit=settings["memory-limit"],
            dashboard_address=settings["dashboard-address"],
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


def cluster_options(func: Callable) -> Callable:
    """The shared --workers / --scheduler / --cluster-config options of every Dask job."""
    func = click.option(
        "--cluster-config",
        type=click.Path(dir_okay=False),
        default=None,
        help=f"Cluster config file [default: ${CONFIG_ENV}, else ./cluster.yaml if present].",
    )(func)
    func = click.option(
        "--scheduler",
        metavar="ADDRESS",
        default=None,
        help="Use an existing Dask scheduler, e.g. tcp://10.0.0.5:8786, instead of a local one.",
    )(func)
    func = click.option(
        "--workers",
        type=click.IntRange(min=1),
        default=None,
        help="Local cluster worker processes, one thread each [default: cluster config, 2].",
    )(func)
    return func
