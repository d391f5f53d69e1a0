"""make-demo-data: write a synthetic FlowCam / EcoTaxa export (:mod:`plankton_store.demo`)."""

from __future__ import annotations

from pathlib import Path

import click

from jobs._options import seed_option
from plankton_store.demo import DEMO_FORMATS, make_demo_data


@click.command("make-demo-data")
@click.argument("out", type=click.Path(file_okay=False, path_type=Path))
@click.option(
    "--scale",
    type=float,
    default=0.01,
    show_default=True,
    help="Fraction of the real export's 243,610 images (1.0 = full size).",
)
@seed_option
@click.option(
    "--workers",
    type=click.IntRange(min=1),
    default=None,
    help="Worker processes drawing images  [default: CPUs available].",
)
@click.option(
    "--preview",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Also write a PNG sheet with examples of every class.",
)
@click.option("--overwrite", is_flag=True, help="Write into OUT even if it is not empty.")
@click.option(
    "--format",
    "out_format",
    type=click.Choice(DEMO_FORMATS),
    default=DEMO_FORMATS[0],
    show_default=True,
    help="flowcam: meta.csv + imgs.zip; ecotaxa: an EcoTaxa export, one ecotaxa_<sample>.tsv "
    "per sample folder with its images (docs/ecotaxa.md).",
)
def make_demo_data_command(
    out: Path,
    scale: float,
    seed: int,
    workers: int | None,
    preview: Path | None,
    overwrite: bool,
    out_format: str,
) -> None:
    """Write a synthetic FlowCam/EcoTaxa export into folder OUT.

    OUT gets meta.csv, taxo.csv, features_native.csv.gz and imgs.zip with the real export's
    columns, class counts (times SCALE) and image sizes. Same seed, same bytes. With
    --format ecotaxa, OUT gets the same objects as an EcoTaxa export instead.
    """
    if not scale > 0:
        raise click.BadParameter("must be > 0", param_hint="--scale")
    if preview is not None and out_format != DEMO_FORMATS[0]:
        raise click.UsageError(f"--preview needs --format {DEMO_FORMATS[0]}")
    try:
        result = make_demo_data(
            out, scale, seed, workers, preview, overwrite, out_format=out_format
        )
    except FileExistsError as e:
        raise click.UsageError(str(e)) from e
    click.echo(
        f"wrote {result.out}: {result.rows} rows, {result.classes} classes, "
        f"{result.seconds:.1f} s ({result.images_per_second:.0f} images/s)"
    )
    if result.preview is not None:
        click.echo(f"preview: {result.preview}")
