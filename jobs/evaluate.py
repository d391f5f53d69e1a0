"""evaluate: score a trained model on a store split (or a labelled export) into a report.

The scoring is :func:`plankton_store.ml.evaluate`; the report folder's files are listed in
:data:`plankton_store.report.REPORT_FILES`.
"""

from __future__ import annotations

from pathlib import Path

import click

from jobs._options import (
    DEFAULT_STATUSES,
    cluster_options,
    job_client,
    model_dir_option,
    status_option,
    taxonomy_from_options,
    taxonomy_options,
    tta_option,
)
from plankton_store.io import ExportError
from plankton_store.ml import (
    DEFAULT_NON_LIVING,
    SPLITS,
    ModelMismatchError,
    check_evaluation,
    evaluate,
)
from plankton_store.report import REPORT_HTML, REPORT_MD, metrics_line
from plankton_store.store import StoreFormatError


@click.command("evaluate")
@click.argument("source", type=click.Path(exists=True))
@model_dir_option
@click.option(
    "--split", type=click.Choice(SPLITS), default="test", show_default=True, help="Store split."
)
@click.option(
    "--out", "out_dir", required=True, type=click.Path(file_okay=False), help="Report folder."
)
@tta_option
@click.option(
    "--skip-unknown-labels",
    is_flag=True,
    help="Export SOURCE only: skip rows of classes the model does not know instead of failing.",
)
@click.option(
    "--all-samples",
    is_flag=True,
    help="Store SOURCE only: also score the samples ingested after the store version the "
    "model was trained on (by default only that version's samples are scored).",
)
@click.option(
    "--thresholds/--no-thresholds",
    "use_thresholds",
    default=True,
    show_default=True,
    help="With MODEL_DIR/thresholds.json: per-class precision and recall with and without "
    "thresholds (per_class_thresholds.csv) and the share auto-classified.",
)
@click.option(
    "--non-living",
    default=",".join(DEFAULT_NON_LIVING),
    show_default=True,
    help="Comma-separated class-name fragments left out of living_macro_f1.",
)
@taxonomy_options
@status_option("validated")
@cluster_options
def evaluate_command(
    source: str,
    model_dir: str,
    split: str,
    out_dir: str,
    tta: bool,
    skip_unknown_labels: bool,
    all_samples: bool,
    use_thresholds: bool,
    non_living: str,
    taxonomy_map: str | None,
    lineage_level: int | None,
    statuses: tuple[str, ...] | None,
    workers: int | None,
    scheduler: str | None,
    cluster_config: str | None,
) -> None:
    """Score the model in MODEL_DIR on a split of the store SOURCE (or a labelled export).

    Writes per_class.csv, summary.json, report.md (worst classes first), confusion.png,
    per_class_f1.png, predictions.csv and report.html (offline page with the images behind
    the figures, thumbs/ beside it) into --out. A model trained on another class list is
    refused. An export's labels are regrouped as the model's training store's were (its
    --taxonomy-map / --lineage-level), unless those options are given here. An EcoTaxa
    export (folder or .zip) is scored on the rows whose status is in --status.
    """
    try:
        need_dask = check_evaluation(source, model_dir)
    except (FileNotFoundError, StoreFormatError) as exc:
        raise click.UsageError(str(exc)) from None
    except ModelMismatchError as exc:
        raise click.ClickException(str(exc)) from None
    extra = {
        "use_thresholds": use_thresholds,
        "non_living": tuple(non_living.split(",")),
        "all_samples": all_samples,
        "taxonomy": taxonomy_from_options(taxonomy_map, lineage_level),
        "statuses": statuses or DEFAULT_STATUSES,
    }
    try:
        if need_dask:
            with job_client(workers, scheduler, cluster_config) as client:
                ev = evaluate(
                    source, model_dir, out_dir, split, tta, client, skip_unknown_labels, **extra
                )
        else:
            ev = evaluate(
                source, model_dir, out_dir, split, tta, None, skip_unknown_labels, **extra
            )
    except (ModelMismatchError, ExportError) as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(metrics_line(ev.summary))
    click.echo(f"Living-class macro-F1: {ev.summary['living_macro_f1']:.3f}")
    if "thresholds" in ev.summary:
        auto = ev.summary["thresholds"]
        click.echo(
            f"Auto-classified: {auto['share_auto_classified']:.1%} at precision "
            f"{auto['precision_auto_classified']:.3f}"
        )
    click.echo(f"Report: {Path(out_dir) / REPORT_MD}")
    click.echo(f"Page: {Path(out_dir) / REPORT_HTML}")
