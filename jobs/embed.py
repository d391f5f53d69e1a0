"""embed: write a cnn's embedding of every sample into the store, on Dask."""

from __future__ import annotations

import click

from jobs._options import cluster_options, job_client, model_dir_option
from plankton_store.ml import embed_store
from plankton_store.store import IncompleteStoreError, StoreFormatError


@click.command("embed")
@click.argument("store")
@model_dir_option
@click.option(
    "--name",
    default=None,
    help="Name of the embedding: the array is embedding_NAME [default: the model kind, cnn].",
)
@click.option(
    "--pca",
    type=click.IntRange(min=1),
    default=None,
    help="Also store a PCA reduction to this many dimensions (EcoTaxa keeps 50), fitted on "
    "the train split, as embedding_NAME_pcaD.",
)
@click.option(
    "--batch-size", type=click.IntRange(min=1), default=512, show_default=True,
    help="Images per forward pass on a worker.",
)  # fmt: skip
@cluster_options
def embed_command(
    store: str,
    model_dir: str,
    name: str | None,
    pca: int | None,
    batch_size: int,
    workers: int | None,
    scheduler: str | None,
    cluster_config: str | None,
) -> None:
    """Write the embedding of the cnn in MODEL_DIR (what its output layer sees) for every
    sample of STORE, as embedding_NAME (sample, dim) float32, one Dask task per block.

    Run again after an ingest: only the samples added since are computed (a different model
    under the same name recomputes all).
    """
    with job_client(workers, scheduler, cluster_config) as client:
        try:
            summary = embed_store(
                store, model_dir, client, name=name, pca=pca, batch_size=batch_size,
                echo=click.echo,
            )  # fmt: skip
        except (StoreFormatError, IncompleteStoreError) as exc:
            raise click.UsageError(str(exc)) from None
        except ValueError as exc:
            raise click.ClickException(str(exc)) from None
    click.echo(
        f"embedding_{summary.name}: {summary.samples} samples ({summary.dim} dims) in "
        f"{summary.blocks} blocks, {summary.seconds:.1f} s ({summary.images_per_second:,.0f} "
        "images/s)" + (f"; PCA in {summary.pca}" if summary.pca else "")
    )
