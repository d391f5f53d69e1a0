"""similar: the stored images nearest to one object by embedding, as a mosaic and a CSV."""

from __future__ import annotations

import click

from plankton_store.ml import similar
from plankton_store.store import StoreFormatError


@click.command("similar")
@click.argument("store")
@click.option("--objid", type=int, required=True, help="Object id of the query image.")
@click.option("--k", type=click.IntRange(min=1), default=20, show_default=True,
              help="Neighbours to show.")  # fmt: skip
@click.option(
    "--embedding", default=None, help="Embedding name [default: the store's first, e.g. cnn]."
)
@click.option(
    "--out", "out_dir", required=True, type=click.Path(file_okay=False),
    help="Folder for similar.csv and similar.png.",
)  # fmt: skip
def similar_command(store: str, objid: int, k: int, embedding: str | None, out_dir: str) -> None:
    """Show the K stored images nearest (cosine similarity of the embedding written by
    `plankton-jobs embed`) to the image of OBJID: similar.png (the query, then its
    neighbours) and similar.csv (rank, sample, objid, label, split, version, similarity)."""
    try:
        found = similar(store, objid, out_dir, k=k, embedding=embedding)
    except StoreFormatError as exc:
        raise click.UsageError(str(exc)) from None
    except KeyError as exc:
        raise click.ClickException(str(exc.args[0])) from None
    click.echo(found.table.to_string(index=False))
    click.echo(f"Mosaic: {found.png}\nTable: {found.csv}")
