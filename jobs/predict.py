"""predict: classify a new export or image folder with a trained model, on Dask.

Images are decoded and resized exactly as build-store does, at the model's size, one Dask task
per block of a few thousand images (:func:`plankton_store.ml.predict_source`).
"""

from __future__ import annotations

import click

from jobs._options import cluster_options, job_client, model_dir_option, tta_option
from plankton_store.io import ExportError
from plankton_store.ml import (
    DEFAULT_BLOCK_SIZE,
    ModelMismatchError,
    predict_source,
    read_model_info,
)


@click.command("predict")
@click.argument("source", type=click.Path(exists=True, file_okay=False))
@model_dir_option
@click.option(
    "--out", required=True, type=click.Path(dir_okay=False), help="Predictions CSV to write."
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
    "--gallery/--no-gallery",
    default=True,
    show_default=True,
    help="Also write gallery.html beside OUT: a mosaic of images per predicted class.",
)
@cluster_options
def predict_command(
    source: str,
    model_dir: str,
    out: str,
    tta: bool,
    label_column: str | None,
    block_size: int,
    gallery: bool,
    workers: int | None,
    scheduler: str | None,
    cluster_config: str | None,
) -> None:
    """Classify the images of SOURCE (export or image folder, labels not needed).

    Writes objid, image, predicted class, its probability and the top 3 classes
    ("a:0.71|b:0.20|c:0.05") per image, in input order, plus the label when SOURCE has
    labels. Unreadable images are listed in OUT-stem.rejects.csv.
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
                gallery=gallery,
            )
        except (ExportError, ModelMismatchError) as exc:
            raise click.ClickException(str(exc)) from None
    click.echo(
        f"Wrote {result.n_predicted} predictions to {result.out} in {result.seconds:.1f} s"
        + (
            f"; {result.n_rejected} images not classified, see {result.rejects}"
            if result.rejects
            else ""
        )
    )
    if result.gallery:
        click.echo(f"Gallery: {result.gallery}")
    if len(result.predictions):
        counts = result.predictions["predicted"].value_counts()
        click.echo("Predicted classes:\n" + counts.to_string())
