"""abundance: counts per group and class, corrected for the classifier's confusions.

The estimate is :func:`plankton_store.report.abundance_table`; the val confusion rates come
from the thresholds.json that ``plankton-jobs thresholds`` saved in MODEL_DIR.
"""

from __future__ import annotations

import click
import pandas as pd

from jobs._options import model_dir_option, seed_option
from plankton_store.ml import load_val_confusion, read_model_info
from plankton_store.report import abundance_table, write_abundance


@click.command("abundance")
@click.argument("predictions", type=click.Path(exists=True, dir_okay=False))
@model_dir_option
@click.option("--by", required=True, help="Column to group by, usually sample_id.")
@click.option(
    "--out", "out_dir", required=True, type=click.Path(file_okay=False), help="Output folder."
)
@click.option(
    "--volume-column",
    default=None,
    help="Column with the volume imaged per group, in litres: adds concentration per litre.",
)
@seed_option
def abundance_command(
    predictions: str, model_dir: str, by: str, out_dir: str, volume_column: str | None, seed: int
) -> None:
    """Count PREDICTIONS.csv per --by group and class, and correct the counts.

    The correction inverts the model's confusion rates measured on val (non-negative least
    squares); the 95% intervals bootstrap both the group's objects and the val pairs. Writes
    abundance.csv and abundance.png into --out.
    """
    info = read_model_info(model_dir)
    try:
        val_true, val_pred = load_val_confusion(model_dir)
    except FileNotFoundError as exc:
        raise click.UsageError(str(exc)) from None
    frame = pd.read_csv(predictions)
    try:
        table = abundance_table(
            frame, by, info.class_names, val_true, val_pred, volume_column=volume_column, seed=seed
        )
    except ValueError as exc:
        raise click.ClickException(str(exc)) from None
    csv_path, _ = write_abundance(table, out_dir)
    click.echo(f"{table['group'].nunique()} groups, {len(info.class_names)} classes: {csv_path}")
