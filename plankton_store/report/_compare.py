"""Side-by-side comparison of evaluation reports, with paired bootstrap differences."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from plankton_store.report._evaluation import (
    METRICS,
    PREDICTIONS_CSV,
    interval_text,
    read_report,
)
from plankton_store.report._metrics import BOOTSTRAP_RESAMPLES, paired_macro_f1_difference

#: Columns of :func:`compare_reports`: each report's macro-F1 interval, and its macro-F1
#: against the first report's on the same images.
INTERVAL_COLUMN = "macro_f1 95% interval"
PAIRED_COLUMN = "macro_f1 vs first [95% paired interval]"


def compare_reports(
    report_dirs: list[str | Path],
) -> tuple[pd.DataFrame, pd.DataFrame, list[str]]:
    """Side-by-side tables of several evaluation reports.

    Returns
    -------
    overall : pandas.DataFrame
        One row per report: model, data, TTA, :data:`METRICS` and macro-F1's bootstrap
        interval; when every report scored the same images, also :data:`PAIRED_COLUMN`:
        macro-F1 minus the first report's, with a paired bootstrap interval (one that holds
        0 means these images do not tell the two models apart).
    per_class : pandas.DataFrame
        One row per class: support (of the first report) and the F1 of each report.
    notes : list of str
        Warnings, e.g. reports scored on different data (not comparable).
    """
    reports = [read_report(d) for d in report_dirs]
    names: list[str] = []
    for d, (summary, _) in zip(report_dirs, reports, strict=True):
        name = summary["model"]["name"] + (" +TTA" if summary.get("tta") else "")
        if name in names:
            name = f"{name} ({Path(d).name})"
        names.append(name)
    overall = pd.DataFrame(
        [
            {
                "model": name,
                "report": str(d),
                "data": f"{s['data']['source']}"
                + (f" [{s['data']['split']}]" if s["data"].get("split") else ""),
                "n_samples": s["n_samples"],
                **{m: s.get(m) for m in METRICS},
                INTERVAL_COLUMN: interval_text(s, "macro_f1"),
            }
            for name, d, (s, _) in zip(names, report_dirs, reports, strict=True)
        ]
    )
    classes: list[str] = []
    for _, table in reports:
        classes += [c for c in table["class"].astype(str) if c not in classes]
    per_class = pd.DataFrame({"class": classes})
    first = reports[0][1].set_index(reports[0][1]["class"].astype(str))
    per_class["support"] = first["support"].reindex(classes).to_numpy()
    for name, (_, table) in zip(names, reports, strict=True):
        per_class[name] = (
            table.set_index(table["class"].astype(str))["f1"].reindex(classes).to_numpy()
        )
    notes = []
    datasets = {(s["data"]["fingerprint"], s["data"].get("split")) for s, _ in reports}
    if len(datasets) > 1:
        notes.append("the reports scored different data (store fingerprint or split differ)")
    elif len(reports) > 1:
        differences, note = _paired_differences(report_dirs, classes)
        overall[PAIRED_COLUMN] = differences
        notes += [note] if note else []
    f1 = per_class[names].to_numpy(dtype=float)
    per_class["best"] = [_best(names, row) for row in f1]
    per_class = per_class.sort_values(names[0], kind="stable").reset_index(drop=True)
    return overall, per_class, notes


def _paired_differences(
    report_dirs: list[str | Path], classes: list[str]
) -> tuple[list[str], str | None]:
    """Each report's macro-F1 minus the first's, from their ``predictions.csv`` row by row."""
    tables = []
    for d in report_dirs:
        path = Path(d) / PREDICTIONS_CSV
        if not path.is_file():
            return [""] * len(report_dirs), f"{d} has no {PREDICTIONS_CSV}: no paired differences"
        tables.append(
            pd.read_csv(path, keep_default_na=False, dtype={"label": str, "predicted": str})
        )
    first = tables[0]
    keys = [c for c in ("sample", "objid", "image") if c in first.columns]
    for d, table in zip(report_dirs[1:], tables[1:], strict=True):
        same_rows = len(table) == len(first) and all(
            c in table.columns and table[c].astype(str).equals(first[c].astype(str))
            for c in [*keys, "label"]
        )
        if not same_rows:
            return [""] * len(report_dirs), (
                f"{d} scored other rows than {report_dirs[0]}: no paired differences"
            )
    code = pd.Series(range(len(classes)), index=classes)
    coded = [first["label"].map(code), *(t["predicted"].map(code) for t in tables)]
    if any(c.isna().any() for c in coded):
        return [""] * len(report_dirs), "the reports' class lists differ: no paired differences"
    y_true, base, *others = (c.to_numpy(np.int64) for c in coded)
    cells = [""]
    for predicted in others:
        diff = paired_macro_f1_difference(y_true, base, predicted, len(classes))
        cells.append(
            ""
            if diff is None
            else f"{diff['difference']:+.3f} [{diff['interval'][0]:+.3f}, "
            f"{diff['interval'][1]:+.3f}]"
        )
    return cells, None


def _best(names: list[str], scores: np.ndarray) -> str:
    """The name of the single best score; "tie" when several share it, "" when none exists."""
    if np.all(np.isnan(scores)):
        return ""
    winners = np.flatnonzero(scores == np.nanmax(scores))
    return names[int(winners[0])] if len(winners) == 1 else "tie"


def _md_table(frame: pd.DataFrame) -> list[str]:
    def cell(v: Any) -> str:
        if isinstance(v, float):
            return "n/a" if np.isnan(v) else f"{v:.3f}"
        return "n/a" if v is None else str(v)

    head = "| " + " | ".join(str(c) for c in frame.columns) + " |"
    rule = (
        "|"
        + "|".join("---:" if frame[c].dtype.kind in "fi" else "---" for c in frame.columns)
        + "|"
    )
    return [
        head,
        rule,
        *("| " + " | ".join(cell(v) for v in row) + " |" for row in frame.itertuples(index=False)),
    ]


def comparison_markdown(overall: pd.DataFrame, per_class: pd.DataFrame, notes: list[str]) -> str:
    """Markdown of :func:`compare_reports` tables."""
    lines = ["# Model comparison", ""]
    lines += [f"**Note:** {n}" for n in notes] + ([""] if notes else [])
    lines += ["## Overall", "", *_md_table(overall.drop(columns="report")), ""]
    if PAIRED_COLUMN in overall:
        lines += [
            f"Intervals: percentile bootstrap over the scored images ({BOOTSTRAP_RESAMPLES:,} "
            "resamples, drawn within each class). The "
            "paired difference resamples images with both models' predictions; where its "
            "interval holds 0, these images do not tell the model from the first one.",
            "",
        ]
    lines += [
        "## F1 per class (sorted by the first model, worst first)",
        "",
        *_md_table(per_class),
        "",
    ]
    return "\n".join(lines)


#: Files :func:`write_comparison` writes.
COMPARISON_FILES = ("comparison.md", "overall.csv", "per_class_f1.csv")


def write_comparison(report_dirs: list[str | Path], out_dir: str | Path | None) -> str:
    """Compare evaluation reports; write :data:`COMPARISON_FILES` into ``out_dir`` when
    given, and return the Markdown.

    Raises
    ------
    FileNotFoundError
        A folder is not an evaluation report.
    """
    overall, per_class, notes = compare_reports(report_dirs)
    text = comparison_markdown(overall, per_class, notes)
    if out_dir is not None:
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        markdown, overall_csv, per_class_csv = COMPARISON_FILES
        overall.to_csv(out / overall_csv, index=False, float_format="%.6g")
        per_class.to_csv(out / per_class_csv, index=False, float_format="%.6g")
        (out / markdown).write_text(text)
    return text
