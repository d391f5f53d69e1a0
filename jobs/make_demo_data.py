"""Job ``make-demo-data``: write a synthetic FlowCam/EcoTaxa export (plankton_store.synthetic)."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import click

from jobs.options import seed_option
from plankton_store.synthetic import (
    EMPTY_LABEL,
    expected_level2_counts,
    make_demo_export,
    preview_sheet,
)


@dataclass(frozen=True)
class DemoDataResult:
    """What :func:`make_demo_data` wrote."""

    out: Path
    rows: int
    classes: int
    seconds: float
    preview: Path | None = None

    @property
    def images_per_second(self) -> float:
        return self.rows / self.seconds if self.seconds > 0 else float("inf")


def make_demo_data(
    out: str | Path,
    scale: float = 0.01,
    seed: int = 0,
    workers: int | None = None,
    preview: str | Path | None = None,
    overwrite: bool = False,
    progress: bool = True,
) -> DemoDataResult:
    """Write a synthetic export into ``out`` and optionally a preview sheet.

    Parameters
    ----------
    out : str or Path
        Export folder; must be missing or empty unless ``overwrite``.
    scale : float
        Fraction of the real export's 243,610 images, > 0.
    seed : int
        Seed; the same seed gives the same bytes.
    workers : int, optional
        Worker processes (default: the CPUs available).
    preview : str or Path, optional
        PNG file for a grid of examples per class.
    overwrite : bool
        Allow writing into a non-empty folder.
    progress : bool
        Show a progress bar.

    Returns
    -------
    DemoDataResult
    """
    if not scale > 0:
        raise ValueError(f"scale must be > 0, got {scale}")
    out = Path(out)
    if out.exists() and any(out.iterdir()) and not overwrite:
        raise FileExistsError(f"{out} is not empty (use overwrite to write into it)")
    t0 = time.perf_counter()
    make_demo_export(out, scale=scale, seed=seed, workers=workers, progress=progress)
    seconds = time.perf_counter() - t0
    counts = expected_level2_counts(scale)
    png = preview_sheet(out, preview) if preview is not None else None
    classes = sum(1 for k in counts if k != EMPTY_LABEL)
    return DemoDataResult(out, sum(counts.values()), classes, seconds, png)


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
def make_demo_data_command(
    out: Path,
    scale: float,
    seed: int,
    workers: int | None,
    preview: Path | None,
    overwrite: bool,
) -> None:
    """Write a synthetic FlowCam/EcoTaxa export into folder OUT.

    OUT gets meta.csv, taxo.csv, features_native.csv.gz and imgs.zip with the real export's
    columns, class counts (times SCALE) and image sizes. Same seed, same bytes.
    """
    if not scale > 0:
        raise click.BadParameter("must be > 0", param_hint="--scale")
    try:
        result = make_demo_data(out, scale, seed, workers, preview, overwrite)
    except FileExistsError as e:
        raise click.UsageError(str(e)) from e
    click.echo(
        f"wrote {result.out}: {result.rows} rows, {result.classes} classes, "
        f"{result.seconds:.1f} s ({result.images_per_second:.0f} images/s)"
    )
    if result.preview is not None:
        click.echo(f"preview: {result.preview}")
