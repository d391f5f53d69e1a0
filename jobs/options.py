"""Click options shared by several jobs (the cluster options live in :mod:`jobs.cluster`)."""

from __future__ import annotations

import click

#: The --model option of the jobs that use a trained model (evaluate, predict).
model_dir_option = click.option(
    "--model",
    "model_dir",
    required=True,
    type=click.Path(exists=True, file_okay=False),
    help="Folder of a trained model (the --out of `plankton-jobs train`).",
)

#: The --tta option of evaluate and predict.
tta_option = click.option(
    "--tta",
    is_flag=True,
    help="Average over the 8 flips / 90-degree rotations (rotated views of non-square "
    "images are resized back to the model size; see plankton_store.tta).",
)

#: The --seed option of the jobs whose random choices must be repeatable.
seed_option = click.option(
    "--seed", type=int, default=0, show_default=True, help="Seed of every random choice."
)
