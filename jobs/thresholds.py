"""thresholds: fit per-class probability thresholds on the val split and save them.

The fitting is :func:`plankton_store.ml.fit_store_thresholds`.
"""

from __future__ import annotations

import click
import numpy as np

from jobs._options import cluster_options, job_client, model_dir_option
from plankton_store.ml import (
    ModelMismatchError,
    check_evaluation,
    fit_store_thresholds,
    read_model_info,
    save_abundance_margins,
)
from plankton_store.store import StoreFormatError


@click.command("thresholds")
@click.argument("source", type=click.Path(exists=True, file_okay=False))
@model_dir_option
@click.option(
    "--target-precision",
    type=click.FloatRange(0, 1, min_open=True, max_open=True),
    default=0.9,
    show_default=True,
    help="Precision each class must reach, by the lower end of its 95% Wilson interval.",
)
@click.option(
    "--split",
    type=click.Choice(["val", "train"]),
    default="val",
    show_default=True,
    help="Store split to fit on (never test).",
)
@click.option(
    "--abundance-margins/--no-abundance-margins",
    default=True,
    show_default=True,
    help="Also fit the margins `abundance` adds to its 95% intervals, on shifted samples "
    "simulated from val (about 2 CPU minutes on 2,000 val objects).",
)
@cluster_options
def thresholds_command(
    source: str,
    model_dir: str,
    target_precision: float,
    split: str,
    abundance_margins: bool,
    workers: int | None,
    scheduler: str | None,
    cluster_config: str | None,
) -> None:
    """Fit one probability threshold per class on a split of the store SOURCE.

    Saves thresholds.json in MODEL_DIR (with the val labels and predictions), and the val
    probabilities in val_scores.npz: `plankton-jobs abundance` uses them, and the margins of
    its intervals in abundance_margins.json (fitted on val only). A class whose
    precision cannot reach the target is never auto-classified: `predict` calls all its
    objects `unclassified`.
    """
    try:
        need_dask = check_evaluation(source, model_dir)
    except (FileNotFoundError, StoreFormatError) as exc:
        raise click.UsageError(str(exc)) from None
    except ModelMismatchError as exc:
        raise click.ClickException(str(exc)) from None
    kwargs = {"target_precision": target_precision, "split": split}
    try:
        if need_dask:
            with job_client(workers, scheduler, cluster_config) as client:
                thresholds, path = fit_store_thresholds(source, model_dir, client=client, **kwargs)
        else:
            thresholds, path = fit_store_thresholds(source, model_dir, **kwargs)
    except (ModelMismatchError, ValueError) as exc:
        raise click.ClickException(str(exc)) from None
    never = int(np.isinf(thresholds).sum())
    click.echo(f"{len(thresholds) - never} of {len(thresholds)} classes auto-classified")
    click.echo(f"Thresholds: {path}")
    if abundance_margins and split == "val":
        try:
            margins = save_abundance_margins(model_dir, read_model_info(model_dir).class_names)
        except ValueError as exc:
            click.echo(f"No abundance interval margins: {exc}")
        else:
            click.echo(f"Abundance interval margins: {margins}")
