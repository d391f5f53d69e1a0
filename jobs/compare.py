"""compare: evaluation reports side by side, with paired bootstrap differences."""

from __future__ import annotations

from pathlib import Path

import click

from plankton_store.report._compare import COMPARISON_FILES, write_comparison


@click.command("compare")
@click.argument(
    "report_dirs", nargs=-1, required=True, type=click.Path(exists=True, file_okay=False)
)
@click.option(
    "--out",
    "out_dir",
    type=click.Path(file_okay=False),
    default=None,
    help=f"Folder for {', '.join(COMPARISON_FILES)} [default: print only].",
)
def compare_command(report_dirs: tuple[str, ...], out_dir: str | None) -> None:
    """Compare evaluation reports (REPORT_DIR... from `evaluate --out`) side by side."""
    try:
        text = write_comparison(list(report_dirs), out_dir)
    except FileNotFoundError as exc:
        raise click.UsageError(str(exc)) from None
    if out_dir:
        first, *others = COMPARISON_FILES
        click.echo(f"Wrote {Path(out_dir) / first}, {' and '.join(others)}")
    click.echo(text)
