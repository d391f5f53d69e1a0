"""An evaluation's figures and the report folder written from them.

:func:`write_report` writes :data:`REPORT_FILES`: the per-class table, the summary with its
bootstrap intervals, a Markdown report (classes worst first, the largest confusions), the
confusion matrix and per-class F1 as PNG, every scored row's prediction, and ``report.html``
(the same figures with the images behind them: see :mod:`plankton_store.report._html`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from plankton_store.report._html import evaluation_html
from plankton_store.report._metrics import normalised_confusion
from plankton_store.report._thumbs import Pictures

#: Files of a report folder.
REPORT_FILES = (
    "per_class.csv",
    "summary.json",
    "report.md",
    "confusion.png",
    "per_class_f1.png",
    "predictions.csv",
    "report.html",
)
#: Overall figures, in the order reports and comparisons show them.
METRICS = ("accuracy", "macro_f1", "weighted_f1", "balanced_accuracy", "top3_accuracy")
(
    PER_CLASS_CSV,
    SUMMARY_JSON,
    REPORT_MD,
    CONFUSION_PNG,
    PER_CLASS_F1_PNG,
    PREDICTIONS_CSV,
    REPORT_HTML,
) = REPORT_FILES


@dataclass
class Evaluation:
    """Predictions and figures of one evaluation (also written to the report folder)."""

    y_true: np.ndarray
    y_pred: np.ndarray
    proba: np.ndarray
    class_names: list[str]
    per_class: pd.DataFrame
    summary: dict[str, Any]
    ids: pd.DataFrame  # objid (+ sample index or image) of each scored row
    notes: list[str] = field(default_factory=list)
    #: Original and stored images of scored rows, for the HTML report's thumbnails.
    pictures: Pictures = field(default_factory=Pictures)


def write_report(evaluation: Evaluation, out_dir: str | Path) -> Path:
    """Write :data:`REPORT_FILES` into ``out_dir``."""
    from plankton_store.report import _plots as plots  # matplotlib: only when writing

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    ev = evaluation
    ev.per_class.to_csv(out / PER_CLASS_CSV, index=False, float_format="%.6g")
    (out / SUMMARY_JSON).write_text(json.dumps(ev.summary, indent=2) + "\n")
    counts, rates = normalised_confusion(ev.y_true, ev.y_pred, len(ev.class_names))
    title = f"{ev.summary['model']['name']}{' + TTA' if ev.summary['tta'] else ''}"
    plots.confusion_png(
        rates,
        ev.class_names,
        ev.per_class["support"].tolist(),
        out / CONFUSION_PNG,
        f"Confusion matrix, row-normalised (%): {title}",
    )
    plots.per_class_f1_png(
        ev.per_class, out / PER_CLASS_F1_PNG, f"Per-class scores, worst first: {title}"
    )
    names = np.asarray(ev.class_names, dtype=object)
    top = np.max(ev.proba, axis=1) if len(ev.proba) else np.zeros(0)
    predictions = ev.ids.assign(
        label=names[ev.y_true], predicted=names[ev.y_pred], probability=np.round(top, 4)
    )
    predictions.to_csv(out / PREDICTIONS_CSV, index=False)
    (out / REPORT_MD).write_text(report_markdown(ev, counts))
    (out / REPORT_HTML).write_text(report_html(ev, counts, rates, top, out), encoding="utf-8")
    return out


def report_html(
    ev: Evaluation, counts: np.ndarray, rates: np.ndarray, top: np.ndarray, out: Path
) -> str:
    """The HTML report of ``ev`` (writes its thumbnails into ``out/thumbs``)."""
    s = ev.summary
    data = s["data"]
    where = f"split {data['split']} of store" if data["kind"] == "store" else "export"
    return evaluation_html(
        title=f"Evaluation of {s['model']['name']}{' with TTA' if s['tta'] else ''}",
        facts=[
            f"Model: {s['model']['dir']} (kind {s['model']['kind']}, "
            f"fingerprint {s['model_fingerprint']})",
            f"Data: {where} {data['source']} (fingerprint {data['fingerprint']}), "
            f"{s['n_samples']} samples, {s['n_classes_present']} of {s['n_classes']} classes",
            f"Created {s['created']} in {s['seconds']:.1f} s",
        ],
        summary_rows=[
            (m.replace("_", " "), format_value(s[m]), interval_text(s, m)) for m in METRICS
        ],
        confidence=f"{(s.get('intervals') or {}).get('confidence', 0.95):.0%}",
        notes=list(s["notes"]),
        per_class=ev.per_class,
        counts=counts,
        rates=rates,
        labels=(np.asarray(ev.y_true), np.asarray(ev.y_pred), top),
        class_names=list(ev.class_names),
        out_dir=out,
        pictures=ev.pictures,
    )


def format_value(value: Any) -> str:
    return (
        "n/a" if value is None or (isinstance(value, float) and np.isnan(value)) else f"{value:.3f}"
    )


def interval_text(summary: dict[str, Any], metric: str) -> str:
    """``"0.566-0.640"``: the bootstrap interval of ``metric``, "" where there is none."""
    interval = (summary.get("intervals") or {}).get(metric)
    return f"{interval[0]:.3f}-{interval[1]:.3f}" if interval else ""


def report_markdown(ev: Evaluation, counts: np.ndarray, top_confusions: int = 15) -> str:
    """The readable report: overall figures, classes worst first, the largest confusions."""
    s = ev.summary
    data = s["data"]
    where = f"split `{data['split']}` of store" if data["kind"] == "store" else "export"
    tta = " with TTA (8 flips/rotations)" if s["tta"] else ""
    confidence = f"{(s.get('intervals') or {}).get('confidence', 0.95):.0%}"
    lines = [
        f"# Evaluation of {s['model']['name']}{tta}",
        "",
        f"- Model: `{s['model']['dir']}` (kind {s['model']['kind']}, "
        f"fingerprint {s['model_fingerprint']}, "
        f"trained on store {s['model']['store_fingerprint']})",
        f"- Data: {where} `{data['source']}` (fingerprint {data['fingerprint']}), "
        f"{s['n_samples']} samples, {s['n_classes_present']} of {s['n_classes']} classes present",
        f"- Created {s['created']} in {s['seconds']:.1f} s",
        "",
        f"| metric | value | {confidence} interval |",
        "|---|---|---|",
        *(
            f"| {m.replace('_', ' ')} | {format_value(s[m])} | {interval_text(s, m)} |"
            for m in METRICS
        ),
        "",
    ]
    if s.get("intervals"):
        lines[-1:-1] = [
            "",
            f"Intervals: percentile bootstrap over the {s['n_samples']} samples "
            f"({s['intervals']['resamples']} resamples, drawn within each class): how far the "
            "figure could move on another draw of as many images of each class. Models closer "
            "than that are not told apart here.",
        ]
    if s["notes"]:
        lines += ["**Notes**", "", *(f"- {n}" for n in s["notes"]), ""]
    worst = ev.per_class.sort_values(["f1", "support"], ascending=[True, False])
    lines += [
        "## Per class, worst F1 first",
        "",
        "| class | support | precision | recall | F1 |",
        "|---|---:|---:|---:|---:|",
        *(
            f"| {r['class']} | {r.support} | {r.precision:.3f} | {r.recall:.3f} | {r.f1:.3f} |"
            for _, r in worst.iterrows()
        ),
        "",
    ]
    off = counts.copy()
    np.fill_diagonal(off, 0)
    pairs = [(i, j) for i, j in zip(*np.nonzero(off), strict=True)]
    pairs.sort(key=lambda p: -off[p])
    if pairs:
        totals = counts.sum(axis=1)
        lines += [
            "## Largest confusions",
            "",
            "| true class | predicted as | images | share of the true class |",
            "|---|---|---:|---:|",
            *(
                f"| {ev.class_names[i]} | {ev.class_names[j]} | {off[i, j]} | "
                f"{off[i, j] / totals[i]:.1%} |"
                for i, j in pairs[:top_confusions]
            ),
            "",
        ]
    lines += [
        "## Figures",
        "",
        f"![Per-class F1]({PER_CLASS_F1_PNG})",
        "",
        f"![Confusion matrix]({CONFUSION_PNG})",
        "",
    ]
    return "\n".join(lines)


def read_report(report_dir: str | Path) -> tuple[dict[str, Any], pd.DataFrame]:
    """``summary.json`` and ``per_class.csv`` of a report folder."""
    report_dir = Path(report_dir)
    missing = [f for f in (SUMMARY_JSON, PER_CLASS_CSV) if not (report_dir / f).is_file()]
    if missing:
        raise FileNotFoundError(
            f"{report_dir}: no {' or '.join(missing)}; give folders written by "
            "`plankton-jobs evaluate --out`"
        )
    summary = json.loads((report_dir / SUMMARY_JSON).read_text())
    per_class = pd.read_csv(report_dir / PER_CLASS_CSV, keep_default_na=False)
    return summary, per_class


def metrics_line(summary: dict[str, Any]) -> str:
    """One line of the overall figures with their intervals, as ``evaluate`` prints it."""
    return (
        "  ".join(
            f"{m.replace('_', ' ')} {format_value(summary[m])}"
            + (f" [{interval_text(summary, m)}]" if interval_text(summary, m) else "")
            for m in METRICS
        )
        + f"  (n={summary['n_samples']}"
        + ("; [95% bootstrap interval])" if summary.get("intervals") else ")")
    )
