"""Reports: metrics with bootstrap intervals, evaluation and exploration reports, plots.

The plotting functions import matplotlib, so they load on first use: reading or scoring
never pays for it.
"""

from __future__ import annotations

import importlib
from typing import Any

from plankton_store.report._abundance import (
    ABUNDANCE_COLUMNS,
    ABUNDANCE_RESAMPLES,
    abundance_table,
    write_abundance,
)
from plankton_store.report._compare import (
    COMPARISON_FILES,
    INTERVAL_COLUMN,
    PAIRED_COLUMN,
    compare_reports,
    comparison_markdown,
    write_comparison,
)
from plankton_store.report._evaluation import (
    METRICS,
    REPORT_FILES,
    REPORT_HTML,
    REPORT_MD,
    Evaluation,
    metrics_line,
    read_report,
    report_markdown,
    write_report,
)
from plankton_store.report._explore import (
    EXPLORE_FILES,
    NO_LABEL,
    Exploration,
    exploration_markdown,
    explore,
    explore_export,
    explore_store,
    header_sizes,
    write_exploration,
)
from plankton_store.report._explore_html import EXPLORE_HTML, exploration_html
from plankton_store.report._html import GALLERY_HTML, gallery_html
from plankton_store.report._margins import (
    MARGIN_METHODS,
    SHARE_EDGES,
    IntervalMargins,
    fit_margins,
    widen_interval,
)
from plankton_store.report._metrics import (
    BOOTSTRAP_RESAMPLES,
    PER_CLASS_COLUMNS,
    bootstrap_intervals,
    format_top_k,
    macro_f1,
    macro_f1_rows,
    normalised_confusion,
    paired_macro_f1_difference,
    per_class_table,
    summary_metrics,
    top_k_accuracy,
    top_k_indices,
)
from plankton_store.report._originals import store_pictures
from plankton_store.report._quantify import (
    METHODS,
    PROBABILITY_METHODS,
    AbundanceEstimate,
    Calibration,
    ValFit,
    adjusted_counts,
    confusion_rates,
    em_priors,
    estimate_abundance,
    fit_calibration,
    fit_val,
    soft_confusion_rates,
)
from plankton_store.report._thumbs import (
    GALLERY_THUMBS_DIR,
    MOSAIC_LIMIT,
    THUMB_SIZE,
    THUMBS_DIR,
    Pictures,
    file_images,
    store_images,
)

_PLOTS = (
    "class_counts_png",
    "confusion_png",
    "example_grid_png",
    "history_png",
    "per_class_f1_png",
    "size_by_class_png",
    "size_histograms_png",
)

__all__ = [
    "ABUNDANCE_COLUMNS",
    "ABUNDANCE_RESAMPLES",
    "AbundanceEstimate",
    "abundance_table",
    "adjusted_counts",
    "confusion_rates",
    "estimate_abundance",
    "IntervalMargins",
    "MARGIN_METHODS",
    "SHARE_EDGES",
    "fit_margins",
    "widen_interval",
    "write_abundance",
    "METHODS",
    "PROBABILITY_METHODS",
    "Calibration",
    "ValFit",
    "em_priors",
    "fit_calibration",
    "fit_val",
    "soft_confusion_rates",
    "BOOTSTRAP_RESAMPLES",
    "COMPARISON_FILES",
    "EXPLORE_FILES",
    "EXPLORE_HTML",
    "GALLERY_HTML",
    "GALLERY_THUMBS_DIR",
    "INTERVAL_COLUMN",
    "METRICS",
    "MOSAIC_LIMIT",
    "NO_LABEL",
    "PAIRED_COLUMN",
    "PER_CLASS_COLUMNS",
    "REPORT_FILES",
    "REPORT_HTML",
    "REPORT_MD",
    "THUMB_SIZE",
    "THUMBS_DIR",
    "Evaluation",
    "Exploration",
    "Pictures",
    "bootstrap_intervals",
    "compare_reports",
    "comparison_markdown",
    "explore",
    "explore_export",
    "explore_store",
    "file_images",
    "gallery_html",
    "exploration_html",
    "exploration_markdown",
    "format_top_k",
    "header_sizes",
    "macro_f1",
    "macro_f1_rows",
    "metrics_line",
    "normalised_confusion",
    "paired_macro_f1_difference",
    "per_class_table",
    "read_report",
    "report_markdown",
    "store_images",
    "store_pictures",
    "summary_metrics",
    "top_k_accuracy",
    "top_k_indices",
    "write_comparison",
    "write_exploration",
    "write_report",
    *_PLOTS,
]


def __getattr__(name: str) -> Any:
    if name in _PLOTS:
        return getattr(importlib.import_module("plankton_store.report._plots"), name)
    raise AttributeError(f"module 'plankton_store.report' has no attribute {name!r}")
