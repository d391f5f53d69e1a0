"""explore: the exploration notebook as a report, for an export, an image folder or a store.

Class counts, missing labels, image size distributions overall and per class, and examples
of every class, written as report.md with PNGs and CSVs, and as index.html with a mosaic of
original images per class (:mod:`plankton_store.report`).
"""

from __future__ import annotations

import click

from jobs._options import DEFAULT_STATUSES, cluster_options, job_client, status_option
from plankton_store.io import ExportError
from plankton_store.report import EXPLORE_HTML, explore
from plankton_store.store import StoreFormatError, is_store


@click.command("explore")
@click.argument("source", type=click.Path(exists=True))
@click.option(
    "--out", "out_dir", required=True, type=click.Path(file_okay=False), help="Report folder."
)
@click.option(
    "--label-column", default="level2", show_default=True, help="meta.csv label column (exports)."
)
@click.option(
    "--per-class",
    type=click.IntRange(1, 32),
    default=8,
    show_default=True,
    help="Examples per class.",
)
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the example choice.")
@status_option("validated")
@cluster_options
def explore_command(
    source: str,
    out_dir: str,
    label_column: str,
    per_class: int,
    seed: int,
    statuses: tuple[str, ...] | None,
    workers: int | None,
    scheduler: str | None,
    cluster_config: str | None,
) -> None:
    """Explore SOURCE (export, image folder or store): counts, sizes, examples per class.

    Writes report.md with PNGs and CSVs, and index.html (counts, sizes and a mosaic of at
    most 24 original images per class, offline), into --out. An EcoTaxa export may be a
    folder or a .zip; its rows whose status is not in --status count as unlabelled.
    """
    try:
        if is_store(source):  # a store's sizes are arrays of its own: no cluster needed
            report = explore(source, out_dir, label_column, None, per_class, seed)
        else:
            with job_client(workers, scheduler, cluster_config) as client:
                report = explore(
                    source,
                    out_dir,
                    label_column,
                    client,
                    per_class,
                    seed,
                    statuses=statuses or DEFAULT_STATUSES,
                )
    except (ExportError, StoreFormatError) as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"Report: {report}")
    click.echo(f"Page: {report.parent / EXPLORE_HTML}")
