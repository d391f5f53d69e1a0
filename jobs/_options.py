"""What several jobs share on the command line: click options and the Dask client.

Not a job: jobs import this module, never each other.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import click

from plankton_store.cluster import (
    CONFIG_ENV,
    KINDS,
    ClusterConfigError,
    dask_client,
    load_cluster_config,
)
from plankton_store.io import (
    ECOTAXA_STATUSES,
    ECOTAXA_TRUSTED_STATUSES,
    Taxonomy,
    TaxonomyError,
    read_taxonomy_map,
)

#: The --model option of the jobs that use a trained model (evaluate, predict).
model_dir_option = click.option(
    "--model",
    "model_dir",
    required=True,
    type=click.Path(exists=True, file_okay=False),
    help="Folder of a trained model (the --out of `plankton-jobs train`).",
)

#: The --tta option of evaluate and predict.
tta_option = click.option(
    "--tta",
    is_flag=True,
    help="Average over the 8 flips / 90-degree rotations (rotated views of non-square "
    "images are resized back to the model size; see plankton_store.ml._tta).",
)

#: The --seed option of the jobs whose random choices must be repeatable.
seed_option = click.option(
    "--seed", type=int, default=0, show_default=True, help="Seed of every random choice."
)


def _parse_statuses(
    ctx: click.Context, param: click.Parameter, value: str | None
) -> tuple[str, ...] | None:
    """``"validated,dubious"`` -> ``("validated", "dubious")``; unknown statuses refused."""
    if value is None:
        return None
    statuses = tuple(dict.fromkeys(s.strip().lower() for s in value.split(",") if s.strip()))
    unknown = [s for s in statuses if s not in ECOTAXA_STATUSES]
    if unknown or not statuses:
        raise click.BadParameter(
            f"{value!r}: give a comma-separated few of {', '.join(ECOTAXA_STATUSES)}"
        )
    return statuses


def status_option(default_help: str) -> Callable[[Callable], Callable]:
    """The --status option of the jobs that read labelled EcoTaxa exports; None when not
    given (``default_help`` says what that means for the job)."""
    return click.option(
        "--status",
        "statuses",
        metavar="STATUS[,STATUS]",
        default=None,
        callback=_parse_statuses,
        help="EcoTaxa TSV exports: the object_annotation_status values whose labels are "
        f"ground truth, e.g. validated,dubious [default: {default_help}]. Other rows are "
        "rejected by build-store and ingest, left unlabelled by evaluate and explore.",
    )


#: The --status default of the jobs that read an export directly.
DEFAULT_STATUSES = ECOTAXA_TRUSTED_STATUSES


def cluster_options(func: Callable) -> Callable:
    """The shared --workers / --scheduler / --cluster / --cluster-config options of every
    Dask job."""
    func = click.option(
        "--cluster",
        "cluster_kind",
        type=click.Choice(KINDS),
        default=None,
        expose_value=False,
        callback=_remember_kind,
        help="local: worker processes here; slurm / pbs: worker jobs submitted through "
        "dask-jobqueue (cores, memory, queue, ... from the cluster config), cancelled at the "
        "end [default: cluster config kind, local].",
    )(func)
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
        help="Local cluster worker processes, one thread each, or slurm / pbs worker jobs "
        "[default: cluster config n-workers, 2].",
    )(func)
    return func


def _remember_kind(ctx: click.Context, param: click.Parameter, value: str | None) -> None:
    """Keep --cluster for :func:`job_client` (the jobs do not pass it on themselves)."""
    ctx.meta["plankton-jobs.cluster-kind"] = value


@contextlib.contextmanager
def job_client(
    workers: int | None, scheduler: str | None, cluster_config: str | None
) -> Iterator[Any]:
    """The job's Dask client (:func:`plankton_store.cluster.dask_client`); a bad cluster
    setting is a usage error, reported before anything starts."""
    try:
        load_cluster_config(cluster_config)
    except ClusterConfigError as exc:
        raise click.UsageError(str(exc)) from None
    context = click.get_current_context(silent=True)
    kind = context.meta.get("plankton-jobs.cluster-kind") if context else None
    try:
        with dask_client(workers, scheduler, cluster_config, echo=click.echo, kind=kind) as client:
            yield client
    except ClusterConfigError as exc:
        raise click.ClickException(str(exc)) from None


def taxonomy_options(func: Callable) -> Callable:
    """The shared --taxonomy-map / --lineage-level options (build-store, ingest, evaluate);
    :func:`taxonomy_from_options` turns them into a :class:`plankton_store.io.Taxonomy`."""
    func = click.option(
        "--lineage-level",
        type=click.IntRange(min=1),
        default=None,
        help="Relabel each labelled row with level N of its lineage (root = 1): EcoTaxa's "
        "object_annotation_hierarchy, or meta.csv's lineage column. Applied before "
        "--taxonomy-map (docs/taxonomy.md).",
    )(func)
    func = click.option(
        "--taxonomy-map",
        type=click.Path(exists=True, dir_okay=False),
        default=None,
        help="CSV with columns from,to: rename or merge classes; an empty `to` drops the "
        "class (its rows become rejects). Classes not listed stay as they are.",
    )(func)
    return func


def taxonomy_from_options(taxonomy_map: str | None, lineage_level: int | None) -> Taxonomy | None:
    """The :class:`plankton_store.io.Taxonomy` of the two options; None when neither is
    given. A bad map file is a usage error naming the file and line."""
    if taxonomy_map is None and lineage_level is None:
        return None
    try:
        mapping = read_taxonomy_map(taxonomy_map) if taxonomy_map else ()
    except TaxonomyError as exc:
        raise click.BadParameter(str(exc), param_hint="'--taxonomy-map'") from None
    name = Path(taxonomy_map).name if taxonomy_map else ""
    return Taxonomy(lineage_level=lineage_level, mapping=mapping, map_name=name)
