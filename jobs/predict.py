"""predict: classify a new export or image folder with a trained model, on Dask.

Images are decoded and resized exactly as build-store does, at the model's size, one Dask task
per block of a few thousand images (:func:`plankton_store.ml.predict_source`).
"""

from __future__ import annotations

import click

from jobs._options import cluster_options, job_client, model_dir_option, tta_option
from plankton_store.io import ExportError
from plankton_store.ml import (
    CSV_FORMAT,
    DEFAULT_BLOCK_SIZE,
    PREDICTION_FORMATS,
    ModelMismatchError,
    predict_source,
    read_model_info,
)


@click.command("predict")
@click.argument("source", type=click.Path(exists=True))
@model_dir_option
@click.option(
    "--out",
    required=True,
    type=click.Path(dir_okay=False),
    help="Predictions CSV to write (a .zip with --format ecotaxa).",
)
@click.option(
    "--format",
    "out_format",
    type=click.Choice(PREDICTION_FORMATS),
    default=CSV_FORMAT,
    show_default=True,
    help="csv, or ecotaxa: a zip holding an EcoTaxa TSV (status predicted, top-3 scores) "
    "to import into EcoTaxa as a classification update.",
)
@tta_option
@click.option(
    "--label-column",
    default=None,
    help="meta.csv column with labels, copied to the output if present [default: the model's].",
)
@click.option(
    "--block-size",
    type=click.IntRange(min=1),
    default=DEFAULT_BLOCK_SIZE,
    show_default=True,
    help="Images per Dask task.",
)
@click.option(
    "--thresholds/--no-thresholds",
    "use_thresholds",
    default=True,
    show_default=True,
    help="Apply MODEL_DIR/thresholds.json when present: objects under their class's "
    "threshold are predicted `unclassified`, their best guess in `best_guess`.",
)
@click.option(
    "--keep-column",
    "keep_columns",
    multiple=True,
    help="Source metadata column (e.g. sample_id) to copy into OUT; repeatable.",
)
@click.option(
    "--gallery/--no-gallery",
    default=True,
    show_default=True,
    help="Also write gallery.html beside OUT: a mosaic of images per predicted class.",
)
@click.option(
    "--probabilities/--no-probabilities",
    default=False,
    show_default=True,
    help="Also write every object's probabilities to OUT-stem.proba.npz, for "
    "`plankton-jobs abundance --method em|pacc`.",
)
@cluster_options
def predict_command(
    source: str,
    model_dir: str,
    out: str,
    out_format: str,
    tta: bool,
    label_column: str | None,
    block_size: int,
    use_thresholds: bool,
    keep_columns: tuple[str, ...],
    gallery: bool,
    probabilities: bool,
    workers: int | None,
    scheduler: str | None,
    cluster_config: str | None,
) -> None:
    """Classify the images of SOURCE (export, EcoTaxa folder or .zip, or image folder; labels
    not needed).

    Writes objid, image, predicted class, its probability and the top 3 classes
    ("a:0.71|b:0.20|c:0.05") per image, in input order, plus the label when SOURCE has
    labels (and an EcoTaxa export's text object_id). With --format ecotaxa, OUT is a zip
    holding ecotaxa_predictions.tsv, ready to import into EcoTaxa, and OUT-stem.api.csv
    beside it holds the same predictions for EcoTaxa's API (docs/ecotaxa.md). Unreadable
    images are listed in OUT-stem.rejects.csv.
    """
    try:
        read_model_info(model_dir)
    except FileNotFoundError as exc:
        raise click.UsageError(str(exc)) from None
    with job_client(workers, scheduler, cluster_config) as client:
        try:
            result = predict_source(
                source,
                model_dir,
                out,
                client,
                tta,
                block_size,
                label_column=label_column,
                use_thresholds=use_thresholds,
                keep_columns=tuple(keep_columns),
                out_format=out_format,
                gallery=gallery,
                probabilities=probabilities,
            )
        except (ExportError, ModelMismatchError, ValueError) as exc:
            raise click.ClickException(str(exc)) from None
    click.echo(
        f"Wrote {result.n_predicted} predictions to {result.out} in {result.seconds:.1f} s"
        + (
            f"; {result.n_rejected} images not classified, see {result.rejects}"
            if result.rejects
            else ""
        )
    )
    if result.api_csv:
        click.echo(f"For EcoTaxa's API (taxon names to map to EcoTaxa ids): {result.api_csv}")
    if result.gallery:
        click.echo(f"Gallery: {result.gallery}")
    if len(result.predictions):
        counts = result.predictions["predicted"].value_counts()
        click.echo("Predicted classes:\n" + counts.to_string())
