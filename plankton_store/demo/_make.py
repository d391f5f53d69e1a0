"""Write the demo export: the synthetic FlowCam / EcoTaxa export and its preview sheet."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

from plankton_store.demo._ecotaxa import make_ecotaxa_demo_export
from plankton_store.demo._taxonomy import EMPTY_LABEL, expected_level2_counts
from plankton_store.demo._writer import make_demo_export, preview_sheet
from plankton_store.io._layout import ECOTAXA_LAYOUT, FLOWCAM_LAYOUT

#: The layouts ``make-demo-data --format`` writes; the first is the default.
DEMO_FORMATS: tuple[str, ...] = (FLOWCAM_LAYOUT, ECOTAXA_LAYOUT)


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
    out_format: str = FLOWCAM_LAYOUT,
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
    out_format : str
        ``"flowcam"`` (meta.csv, imgs.zip, ...) or ``"ecotaxa"``: one EcoTaxa TSV per sample
        folder (:func:`plankton_store.demo.make_ecotaxa_demo_export`), no preview.

    Returns
    -------
    DemoDataResult
        ``rows``: the objects (an EcoTaxa export has a few more rows: second images).
    """
    if not scale > 0:
        raise ValueError(f"scale must be > 0, got {scale}")
    if out_format not in DEMO_FORMATS:
        raise ValueError(f"unknown format {out_format!r}: one of {DEMO_FORMATS}")
    if preview is not None and out_format != FLOWCAM_LAYOUT:
        raise ValueError(f"a preview sheet is drawn from a {FLOWCAM_LAYOUT} export only")
    out = Path(out)
    if out.exists() and any(out.iterdir()) and not overwrite:
        raise FileExistsError(f"{out} is not empty (use overwrite to write into it)")
    t0 = time.perf_counter()
    write = make_demo_export if out_format == FLOWCAM_LAYOUT else make_ecotaxa_demo_export
    write(out, scale=scale, seed=seed, workers=workers, progress=progress)
    seconds = time.perf_counter() - t0
    counts = expected_level2_counts(scale)
    png = preview_sheet(out, preview) if preview is not None else None
    classes = sum(1 for k in counts if k != EMPTY_LABEL)
    return DemoDataResult(out, sum(counts.values()), classes, seconds, png)
