"""ensemble: pool models trained on one store into one MODEL_DIR, weights fitted on val."""

from __future__ import annotations

import click

from jobs._options import tta_option
from plankton_store.ml import ModelMismatchError, ensemble
from plankton_store.store import StoreFormatError


@click.command("ensemble")
@click.argument("store", type=click.Path(exists=True, file_okay=False))
@click.option(
    "--member",
    "members",
    multiple=True,
    required=True,
    type=click.Path(exists=True, file_okay=False),
    help="MODEL_DIR of a model trained on STORE (repeat: at least two).",
)
@click.option(
    "--out", "out_dir", required=True, type=click.Path(file_okay=False), help="MODEL_DIR to write."
)
@tta_option
@click.option("--overwrite", is_flag=True, help="Replace a model in --out.")
def ensemble_command(
    store: str, members: tuple[str, ...], out_dir: str, tta: bool, overwrite: bool
) -> None:
    """Pool models trained on STORE (e.g. a cnn and a features model) into one MODEL_DIR.

    Probabilities are combined by a weighted geometric mean; the weights are fitted on the
    val split's macro-F1 (greedy forward selection, so a member that does not help gets
    weight 0), never on test. Evaluate and predict take the ensemble like any model; use
    --tta here when you will evaluate with --tta.
    """
    try:
        ensemble(store, members, out_dir, tta=tta, overwrite=overwrite)
    except ModelMismatchError as exc:
        raise click.ClickException(str(exc)) from None
    except (ValueError, FileExistsError, StoreFormatError) as exc:
        raise click.UsageError(str(exc)) from None
