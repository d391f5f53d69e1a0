"""abundance: counts per group and class, corrected for the classifier's confusions.

The estimate is :func:`plankton_store.report.abundance_table`; the val labels, predictions
and probabilities come from what ``plankton-jobs thresholds`` saved in MODEL_DIR, the
objects' probabilities from ``predict --probabilities``.
"""

from __future__ import annotations

import click
import pandas as pd

from jobs._options import model_dir_option, seed_option
from plankton_store.ml import (
    ModelMismatchError,
    load_abundance_margins,
    load_probabilities,
    load_val_scores,
    read_model_info,
)
from plankton_store.report import (
    ABUNDANCE_RESAMPLES,
    METHODS,
    PROBABILITY_METHODS,
    abundance_table,
    fit_val,
    write_abundance,
)


@click.command("abundance")
@click.argument("predictions", type=click.Path(exists=True, dir_okay=False))
@model_dir_option
@click.option("--by", required=True, help="Column to group by, usually sample_id.")
@click.option(
    "--out", "out_dir", required=True, type=click.Path(file_okay=False), help="Output folder."
)
@click.option(
    "--method",
    type=click.Choice(METHODS),
    default="em",
    show_default=True,
    help="em: EM prior re-estimation on val-calibrated probabilities (needs predict "
    "--probabilities); pacc: probabilistic adjusted count; acc: adjusted classify-and-count; "
    "cc: raw counts.",
)
@click.option(
    "--volume-column",
    default=None,
    help="Column with the volume imaged per group, in litres: adds concentration per litre.",
)
@click.option(
    "--resamples",
    type=click.IntRange(min=20),
    default=ABUNDANCE_RESAMPLES,
    show_default=True,
    help="Bootstrap replicates of the 95% intervals.",
)
@seed_option
def abundance_command(
    predictions: str,
    model_dir: str,
    by: str,
    out_dir: str,
    method: str,
    volume_column: str | None,
    resamples: int,
    seed: int,
) -> None:
    """Count PREDICTIONS.csv per --by group and class, and correct the counts.

    The correction uses the model's val split (saved by `plankton-jobs thresholds`); the 95%
    intervals bootstrap both the group's objects and the val set, widened by the margins
    that `thresholds` fitted on val (abundance_margins.json) for the estimator's bias.
    Writes abundance.csv and abundance.png into --out.
    """
    info = read_model_info(model_dir)
    frame = pd.read_csv(predictions)
    try:
        val_true, val_pred, val_proba = load_val_scores(model_dir, info.class_names)
        proba = None
        if method in PROBABILITY_METHODS:
            if val_proba is None:
                raise FileNotFoundError(
                    f"--method {method} needs the val probabilities: rerun plankton-jobs "
                    f"thresholds STORE --model {model_dir}, or use --method acc"
                )
            proba = load_probabilities(predictions, frame, info.class_names)
        margins = load_abundance_margins(model_dir)
    except FileNotFoundError as exc:
        raise click.UsageError(str(exc)) from None
    except (ModelMismatchError, ValueError) as exc:
        raise click.ClickException(str(exc)) from None
    if margins is None and method != "cc":
        click.echo(
            "No abundance_margins.json in MODEL_DIR: the intervals are the plain bootstrap ones, "
            "which miss the estimator's bias (rerun plankton-jobs thresholds to fit them)."
        )
    try:
        fit = fit_val(
            val_true,
            val_pred,
            len(info.class_names),
            val_proba if method in PROBABILITY_METHODS else None,
            resamples=resamples,
            seed=seed,
        )
        table = abundance_table(
            frame,
            by,
            info.class_names,
            fit,
            proba=proba,
            method=method,
            volume_column=volume_column,
            margins=margins,
            seed=seed,
        )
    except ValueError as exc:
        raise click.ClickException(str(exc)) from None
    csv_path, _ = write_abundance(table, out_dir)
    click.echo(
        f"{table['group'].nunique()} groups, {len(info.class_names)} classes, "
        f"method {method}: {csv_path}"
    )
