"""train: fit an mlp, cnn, seed-cnn or features model on the train split of a store.

Only the train split is sampled, resampled and augmented; val picks the best epoch; test is
never read (:func:`plankton_store.ml.train`). A grid of settings runs as one Dask task per
combination (:func:`plankton_store.ml.run_grid`).
"""

from __future__ import annotations

from pathlib import Path

import click

from jobs._options import cluster_options, job_client, seed_option
from plankton_store.ml import (
    BALANCE_POLICIES,
    DEFAULT_MEMORY_LIMIT,
    GRID_KEYS,
    GRID_SUMMARY,
    HEAD_CHOICES,
    MODEL_KINDS,
    PRESETS,
    TrainOptions,
    parse_grid,
    run_grid,
    train,
)
from plankton_store.store import IncompleteStoreError, StoreFormatError


@click.command("train")
@click.argument("store")
@click.option(
    "--model",
    "model",
    type=click.Choice(MODEL_KINDS),
    default="cnn",
    show_default=True,
    help="mlp: pixels MLP (scikit-learn); cnn: our compact CNN; seed-cnn: the notebook's "
    "CNN; features: gradient boosting on the feature tables + original size.",
)
@click.option(
    "--out",
    "out",
    required=True,
    type=click.Path(),
    help="MODEL_DIR to write (grid: one sub-folder per run).",
)
@click.option(
    "--balance",
    type=click.Choice(BALANCE_POLICIES),
    default=None,
    help="Balancing of the train split, redrawn every epoch: sqrt draws each class in "
    "proportion to the square root of its count [default: cnn sqrt, features class-weight, "
    "else undersample].",
)
@click.option(
    "--epochs", type=click.IntRange(min=1), default=None, help="Most epochs [default: 40]."
)
@click.option(
    "--batch-size",
    type=click.IntRange(min=1),
    default=None,
    help="Samples per batch [default: mlp 200, cnn 128, seed-cnn 100].",
)
@click.option(
    "--lr",
    type=click.FloatRange(min=0, min_open=True),
    default=None,
    help="Learning rate [default: mlp 5e-4, cnn 2e-3, seed-cnn 1e-3, features 0.1].",
)
@click.option(
    "--hidden",
    default="100",
    show_default=True,
    help="MLP hidden layer sizes, e.g. 100 or 200x100.",
)
@click.option(
    "--patience",
    type=click.IntRange(min=1),
    default=8,
    show_default=True,
    help="Stop after this many epochs without a better val macro-F1.",
)
@click.option(
    "--time-budget",
    type=click.FloatRange(min=0, min_open=True),
    default=None,
    metavar="SECONDS",
    help="Stop training after this many seconds (the best epoch so far is kept).",
)
@click.option(
    "--augment/--no-augment",
    default=None,
    help="Random flips and 90-degree rotations of train batches, and any-angle rotations "
    "for the cnn on padded stores [default: on for cnn].",
)
@seed_option
@click.option(
    "--threads",
    type=click.IntRange(min=1),
    default=None,
    help="CPU threads for BLAS / TensorFlow [default: the CPUs available; grid runs: 1].",
)
@click.option(
    "--memory-limit",
    type=click.FloatRange(min=0),
    default=DEFAULT_MEMORY_LIMIT / 1024**3,
    show_default=True,
    metavar="GIB",
    help="Hold train images in RAM up to this size; larger train splits are streamed.",
)
@click.option(
    "--head",
    type=click.Choice(HEAD_CHOICES),
    default=None,
    help="cnn only: after training, refit its classifier as a logistic regression on the "
    "net's embedding, the store's feature tables and the original size (8 views of the "
    "train split). logistic [cnn default] keeps it; auto keeps it if it scores at least as "
    "well on val macro-F1 (8 views); softmax keeps the net's own layer.",
)
@click.option(
    "--preset",
    type=click.Choice(PRESETS),
    default=None,
    help="cnn only: large is a residual net for a GPU node or a long CPU run (any-angle "
    "rotation, scale jitter, stochastic depth, label smoothing, AdamW; mixed precision on "
    "a GPU under KERAS_BACKEND=jax; head auto). See docs/model-recipe.md.",
)
@click.option(
    "--init",
    "init",
    type=click.Path(exists=True, file_okay=False),
    default=None,
    metavar="MODEL_DIR",
    help="Start from this earlier Keras model's weights (same net; its classifier is "
    "replaced when the class list differs), e.g. a net trained on a larger set.",
)
@click.option(
    "--grid",
    "grid",
    multiple=True,
    metavar="KEY=V1,V2",
    help=f"Run every combination as a Dask task (repeatable); keys: {', '.join(GRID_KEYS)}.",
)
@click.option("--overwrite", is_flag=True, help="Replace an existing MODEL_DIR.")
@cluster_options
def train_command(
    store: str,
    model: str,
    out: str,
    balance: str | None,
    epochs: int | None,
    batch_size: int | None,
    lr: float | None,
    hidden: str,
    patience: int,
    time_budget: float | None,
    augment: bool | None,
    seed: int,
    threads: int | None,
    memory_limit: float,
    head: str | None,
    preset: str | None,
    init: str | None,
    grid: tuple[str, ...],
    overwrite: bool,
    workers: int | None,
    scheduler: str | None,
    cluster_config: str | None,
) -> None:
    """Train a model on the train split of STORE and write it to MODEL_DIR (--out).

    Only the train split is sampled, balanced and augmented; the val split picks the best
    epoch (early stopping on val macro-F1); the test split is never read. MODEL_DIR gets the
    model, model.json (classes, normalisation, options, store fingerprint), history.csv and
    history.png. With --grid, every combination trains as one task on the Dask cluster into
    MODEL_DIR/<run-name>/ and a summary table is printed.

    The Keras models (cnn, seed-cnn) train on TensorFlow; with KERAS_BACKEND=jax they train
    on JAX instead (e.g. on a GPU machine without TensorFlow).
    """
    try:
        options = TrainOptions(
            model=model,
            balance=balance,
            epochs=epochs,
            batch_size=batch_size,
            lr=lr,
            augment=augment,
            hidden=tuple(int(h) for h in hidden.split("x")),
            patience=patience,
            time_budget=time_budget,
            seed=seed,
            threads=threads,
            memory_limit=int(memory_limit * 1024**3),
            head=head,
            preset=preset,
            init=init,
        )
        options.resolved()
        combos = parse_grid(grid) if grid else []
    except ValueError as exc:
        raise click.UsageError(str(exc)) from None
    try:
        if not combos:
            train(store, out, options, overwrite=overwrite)
            return
        with job_client(workers, scheduler, cluster_config) as client:
            table = run_grid(store, out, options, combos, client, overwrite=overwrite)
        click.echo(table.drop(columns="model_dir").to_string(index=False))
        click.echo(f"Best: {table.iloc[0]['model_dir']} (summary in {Path(out) / GRID_SUMMARY})")
    except (FileExistsError, StoreFormatError, IncompleteStoreError, ValueError) as exc:
        raise click.ClickException(str(exc)) from None
