"""ingest: add a new export to an existing store as a new version, all or nothing."""

from __future__ import annotations

from pathlib import Path

import click

from jobs._options import (
    cluster_options,
    job_client,
    status_option,
    taxonomy_from_options,
    taxonomy_options,
)
from plankton_store.io import ExportError, is_ecotaxa_zip, is_url
from plankton_store.store import (
    IncompleteStoreError,
    IngestStateError,
    StoreFormatError,
    format_ingest,
    ingest_store,
)


@click.command("ingest")
@click.argument("store")
@click.argument("source")
@click.option(
    "--resume",
    is_flag=True,
    help="Finish an ingest of SOURCE that was interrupted: only its blocks never written are run.",
)
@taxonomy_options
@status_option("the statuses the store was built with")
@cluster_options
def ingest_command(
    store: str,
    source: str,
    resume: bool,
    taxonomy_map: str | None,
    lineage_level: int | None,
    statuses: tuple[str, ...] | None,
    workers: int | None,
    scheduler: str | None,
    cluster_config: str | None,
) -> None:
    """Add the export SOURCE to the store STORE as a new version.

    New rows become new samples, split by the store's own options and seed; rows whose objid
    the store already holds are skipped and listed; classes new to the store are appended to
    its class list (old label codes never change). No existing sample is rewritten: the new
    samples fill whole shards after the old ones. Readers see the store as it was until the
    ingest commits; an interrupted ingest is finished with --resume. Rows not stored are
    listed with their reason in STORE.<version>.rejects.csv. The labels are regrouped as the
    store's were (--taxonomy-map / --lineage-level of its build, recorded in it); asking for
    another regrouping is refused.
    """
    taxonomy = taxonomy_from_options(taxonomy_map, lineage_level)
    if not is_url(source) and not Path(source).is_dir() and not is_ecotaxa_zip(source):
        raise click.BadParameter(f"{source}: no such folder or .zip", param_hint="'SOURCE'")
    with job_client(workers, scheduler, cluster_config) as client:
        try:
            summary = ingest_store(
                store,
                source,
                client,
                resume=resume,
                echo=click.echo,
                statuses=statuses,
                taxonomy=taxonomy,
            )
        except (StoreFormatError, IncompleteStoreError) as exc:
            raise click.UsageError(str(exc)) from None
        except (ExportError, IngestStateError) as exc:
            raise click.ClickException(str(exc)) from None
    click.echo(format_ingest(summary))
