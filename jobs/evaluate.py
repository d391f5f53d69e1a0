"""evaluate and compare: score a trained model on a store split (or a labelled export).

``evaluate`` reads only the requested split of the store (default ``test``; augmented copies
are never scored). scikit-learn models predict on Dask, one task per store shard; Keras
models predict in this process in batches (TensorFlow already uses every core, and one copy
of it is enough). A labelled export folder can be scored directly: it is then decoded by the
same code as ``predict`` (and build-store).
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import click
import numpy as np
import pandas as pd

from jobs.cluster import cluster_options, dask_client
from jobs.options import model_dir_option, tta_option
from plankton_store import format as fmt
from plankton_store import inference
from plankton_store.inference import (
    MODEL_JSON,
    ModelInfo,
    ModelMismatchError,
    ensemble_members,
    predict_inputs,
    predict_store_block,
    read_model_info,
    tta_mismatch_note,
)
from plankton_store.metrics import (
    BOOTSTRAP_RESAMPLES,
    bootstrap_intervals,
    normalised_confusion,
    per_class_table,
    summary_metrics,
)
from plankton_store.sources import ExportError
from plankton_store.store import PlanktonStore, StoreFormatError, open_store

SPLITS = ("train", "val", "test")
#: Files of a report folder.
REPORT_FILES = (
    "per_class.csv",
    "summary.json",
    "report.md",
    "confusion.png",
    "per_class_f1.png",
    "predictions.csv",
)
#: Overall figures, in the order reports and comparisons show them.
METRICS = ("accuracy", "macro_f1", "weighted_f1", "balanced_accuracy", "top3_accuracy")
#: Columns of :func:`compare_reports`: each report's macro-F1 interval, and its macro-F1
#: against the first report's on the same images.
INTERVAL_COLUMN = "macro_f1 95% interval"
PAIRED_COLUMN = "macro_f1 vs first [95% paired interval]"
#: Samples per in-process batch (Keras) and per Dask task when a store has huge shards.
BATCH = 4096


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


def is_store(path: str | Path) -> bool:
    """Whether ``path`` is a Zarr group (a store) rather than an export folder."""
    return (Path(path) / "zarr.json").is_file()


def model_fingerprint(model_dir: str | Path) -> str:
    """Short digest of model.json and the saved model file(s) (an ensemble's: and of its
    members')."""
    digest = hashlib.sha256()
    for path in sorted(Path(model_dir).iterdir()):
        if path.name == MODEL_JSON or path.name.startswith("model."):
            if path.is_file():
                digest.update(path.name.encode() + b"\0" + path.read_bytes())
    meta = json.loads((Path(model_dir) / MODEL_JSON).read_text())
    if "members" in meta:
        for member in ensemble_members(model_dir, meta):
            digest.update(model_fingerprint(member).encode())
    return digest.hexdigest()[:16]


def class_mapping(info: ModelInfo, data_classes: list[str], what: str) -> np.ndarray:
    """Model index of each data class; refuses data with another class list.

    Raises
    ------
    ModelMismatchError
        The sets of classes differ (a different ``--label-column`` or ``--drop-class``).
    """
    model_set, data_set = set(info.class_names), set(data_classes)
    if model_set != data_set:
        missing = sorted(model_set - data_set)
        unknown = sorted(data_set - model_set)
        raise ModelMismatchError(
            f"class lists differ: model {info.model_dir} was trained on "
            f"{len(info.class_names)} classes of {info.label_column!r}, {what} has "
            f"{len(data_classes)}.\n  classes of the model not in {what}: {missing or 'none'}"
            f"\n  classes of {what} unknown to the model: {unknown or 'none'}\n"
            "Evaluate on a store built with the same --label-column and --drop-class as the "
            "model's training store, or retrain the model on this store."
        )
    index = {name: i for i, name in enumerate(info.class_names)}
    return np.array([index[c] for c in data_classes], dtype=np.int64)


def split_indices(store: PlanktonStore, split: str) -> np.ndarray:
    """Indices of the original (not augmented) samples of a split."""
    indices = store.split_indices(split)
    if split == "train":
        augmentation = store.array(fmt.AUGMENTATION)[:]
        indices = indices[augmentation[indices] == 0]
    return indices


def predict_store(
    store: PlanktonStore,
    info: ModelInfo,
    indices: np.ndarray,
    client: Any = None,
    tta: bool = False,
    progress: bool = True,
) -> np.ndarray:
    """Probabilities of the samples ``indices`` of a store, in that order.

    With a client and a scikit-learn model: one Dask task per store shard touched (each
    worker loads the model once). Otherwise in this process, in batches of :data:`BATCH`.
    """
    from tqdm import tqdm

    n_classes = len(info.class_names)
    if not len(indices):
        return np.zeros((0, n_classes), np.float32)
    block = int(store.attrs.get("block_size") or BATCH)
    if client is not None and not info.is_keras:
        from distributed import wait

        # Cut at shard boundaries, and within a huge shard every BATCH samples.
        groups = np.split(indices, np.flatnonzero(np.diff(indices // block)) + 1)
        groups = [g[i : i + BATCH] for g in groups for i in range(0, len(g), BATCH)]
        futures = [
            client.submit(predict_store_block, store.path, g, info.model_dir, tta, retries=2)
            for g in groups
        ]
        with tqdm(total=len(futures), unit="block", desc="evaluate", disable=not progress) as bar:
            for f in futures:
                wait(f)
                bar.update(1)
        return np.concatenate(client.gather(futures))
    model = inference.cached_model(info.model_dir)
    parts = []
    for start in tqdm(range(0, len(indices), BATCH), desc="evaluate", disable=not progress):
        inputs = inference.inputs_from_store(store, indices[start : start + BATCH])
        parts.append(predict_inputs(model, inputs, tta, info.resize_mode))
    return np.concatenate(parts)


def evaluate(
    source: str | Path,
    model_dir: str | Path,
    out_dir: str | Path,
    split: str = "test",
    tta: bool = False,
    client: Any = None,
    skip_unknown_labels: bool = False,
    progress: bool = True,
    echo: Callable[[str], None] = click.echo,
) -> Evaluation:
    """Score a model on a store split or a labelled export and write the report folder.

    Parameters
    ----------
    source
        A plankton store, or an export folder with labels (FlowCam/EcoTaxa or image folder).
    model_dir
        The ``--out`` folder of ``plankton-jobs train``.
    out_dir
        Report folder: :data:`REPORT_FILES`.
    split
        Store split to score (ignored for an export: all its labelled rows are scored).
    tta
        Average the probabilities over the 8 flips / 90° rotations.
    client
        A ``distributed.Client``; required for an export, optional for a store.
    skip_unknown_labels
        Export only: leave out rows whose label the model does not know, instead of refusing.

    Raises
    ------
    ModelMismatchError
        The model was trained on another class list than the data's.
    """
    started = time.perf_counter()
    info = read_model_info(model_dir)
    notes = [note] if (note := tta_mismatch_note(info, tta)) else []
    if is_store(source):
        store = open_store(str(source))
        if split not in SPLITS:
            raise ValueError(f"split {split!r} is not one of {SPLITS}")
        mapping = class_mapping(info, store.class_names, f"store {source}")
        indices = split_indices(store, split)
        if not len(indices):
            raise ModelMismatchError(f"store {source} has no {split} samples to evaluate")
        echo(f"Evaluating {info.name} on {len(indices)} {split} samples of {source}")
        y_true = mapping[store.labels[indices]]
        proba = predict_store(store, info, indices, client, tta, progress)
        ids = pd.DataFrame({"sample": indices, "objid": store.array(fmt.OBJID)[:][indices]})
        data = {
            "source": str(source),
            "kind": "store",
            "split": split,
            "fingerprint": store.fingerprint,
            "label_column": store.label_column,
        }
        if store.fingerprint != info.store_fingerprint:
            notes.append(
                f"store fingerprint {store.fingerprint} differs from the model's training store "
                f"({info.store_fingerprint}): its {split} split may overlap the model's "
                "training images"
            )
    else:
        if client is None:
            raise ValueError("scoring an export needs a Dask client")
        y_true, proba, ids, data, export_notes = _score_export(
            source, info, client, tta, skip_unknown_labels, progress, echo
        )
        notes += export_notes
    y_pred = np.argmax(proba, axis=1)
    table = per_class_table(y_true, y_pred, info.class_names)
    summary = {
        **summary_metrics(y_true, y_pred, info.class_names, proba),
        "intervals": bootstrap_intervals(y_true, y_pred, len(info.class_names)),
        "model": {
            "dir": info.model_dir,
            "name": info.name,
            "kind": info.kind,
            "fingerprint": model_fingerprint(model_dir),
            "store_fingerprint": info.store_fingerprint,
            "label_column": info.label_column,
        },
        "data": data,
        "store_fingerprint": data["fingerprint"],
        "model_fingerprint": model_fingerprint(model_dir),
        "tta": bool(tta),
        "notes": notes,
        "seconds": round(time.perf_counter() - started, 3),
        "created": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
    }
    evaluation = Evaluation(y_true, y_pred, proba, info.class_names, table, summary, ids, notes)
    write_report(evaluation, out_dir)
    for note in notes:
        echo(f"Note: {note}")
    return evaluation


def _score_export(
    source: str | Path,
    info: ModelInfo,
    client: Any,
    tta: bool,
    skip_unknown_labels: bool,
    progress: bool,
    echo: Callable[[str], None],
) -> tuple[np.ndarray, np.ndarray, pd.DataFrame, dict[str, Any], list[str]]:
    from jobs.predict import classify_export, read_source

    export, has_labels = read_source(source, info.label_column)
    if not has_labels:
        raise ExportError(
            f"{source} has no {info.label_column!r} labels to score; use "
            "`plankton-jobs predict` to classify unlabelled images"
        )
    labels = export.table["label"]
    labelled = labels.notna().to_numpy()
    known = labels.isin(info.class_names).to_numpy() & labelled
    unknown = labels[labelled & ~known].value_counts()
    notes = []
    if len(unknown):
        listing = ", ".join(f"{k!r} ({v})" for k, v in unknown.items())
        if not skip_unknown_labels:
            raise ModelMismatchError(
                f"{source} has labels the model {info.model_dir} was not trained on: {listing}. "
                "Pass --skip-unknown-labels to score only the rows of known classes."
            )
        notes.append(
            f"{int(unknown.sum())} rows of classes unknown to the model skipped: {listing}"
        )
    if (~labelled).any():
        notes.append(f"{int((~labelled).sum())} unlabelled rows skipped")
    rows = np.flatnonzero(known)
    echo(f"Evaluating {info.name} on {len(rows)} labelled images of {source}")
    classified = classify_export(export, info, client, tta, rows=rows, progress=progress)
    if len(classified.failures):
        notes.append(f"{len(classified.failures)} images could not be decoded and were skipped")
    index = {name: i for i, name in enumerate(info.class_names)}
    kept = export.table.iloc[rows[classified.ok]]
    y_true = kept["label"].map(index).to_numpy(np.int64)
    ids = pd.DataFrame({"objid": kept["objid"].to_numpy(), "image": kept["image"].to_numpy()})
    data = {
        "source": str(source),
        "kind": "export",
        "split": None,
        "fingerprint": export.fingerprint,
        "label_column": export.label_column,
    }
    notes.append(
        "scored an export directly: make sure none of its images were in the training store"
    )
    return y_true, classified.proba, ids, data, notes


# --------------------------------------------------------------------------- report


def write_report(evaluation: Evaluation, out_dir: str | Path) -> Path:
    """Write :data:`REPORT_FILES` into ``out_dir``."""
    from plankton_store import plots

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    ev = evaluation
    ev.per_class.to_csv(out / "per_class.csv", index=False, float_format="%.6g")
    (out / "summary.json").write_text(json.dumps(ev.summary, indent=2) + "\n")
    counts, rates = normalised_confusion(ev.y_true, ev.y_pred, len(ev.class_names))
    title = f"{ev.summary['model']['name']}{' + TTA' if ev.summary['tta'] else ''}"
    plots.confusion_png(
        rates,
        ev.class_names,
        ev.per_class["support"].tolist(),
        out / "confusion.png",
        f"Confusion matrix, row-normalised (%): {title}",
    )
    plots.per_class_f1_png(
        ev.per_class, out / "per_class_f1.png", f"Per-class scores, worst first: {title}"
    )
    names = np.asarray(ev.class_names, dtype=object)
    top = np.max(ev.proba, axis=1) if len(ev.proba) else np.zeros(0)
    predictions = ev.ids.assign(
        label=names[ev.y_true], predicted=names[ev.y_pred], probability=np.round(top, 4)
    )
    predictions.to_csv(out / "predictions.csv", index=False)
    (out / "report.md").write_text(report_markdown(ev, counts))
    return out


def _fmt(value: Any) -> str:
    return (
        "n/a" if value is None or (isinstance(value, float) and np.isnan(value)) else f"{value:.3f}"
    )


def _interval(summary: dict[str, Any], metric: str) -> str:
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
        *(f"| {m.replace('_', ' ')} | {_fmt(s[m])} | {_interval(s, m)} |" for m in METRICS),
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
        "![Per-class F1](per_class_f1.png)",
        "",
        "![Confusion matrix](confusion.png)",
        "",
    ]
    return "\n".join(lines)


# --------------------------------------------------------------------------- compare


def read_report(report_dir: str | Path) -> tuple[dict[str, Any], pd.DataFrame]:
    """``summary.json`` and ``per_class.csv`` of a report folder."""
    report_dir = Path(report_dir)
    missing = [f for f in ("summary.json", "per_class.csv") if not (report_dir / f).is_file()]
    if missing:
        raise FileNotFoundError(
            f"{report_dir}: no {' or '.join(missing)}; give folders written by "
            "`plankton-jobs evaluate --out`"
        )
    summary = json.loads((report_dir / "summary.json").read_text())
    per_class = pd.read_csv(report_dir / "per_class.csv", keep_default_na=False)
    return summary, per_class


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
                INTERVAL_COLUMN: _interval(s, "macro_f1"),
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
    from plankton_store.metrics import paired_macro_f1_difference

    tables = []
    for d in report_dirs:
        path = Path(d) / "predictions.csv"
        if not path.is_file():
            return [""] * len(report_dirs), f"{d} has no predictions.csv: no paired differences"
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


# --------------------------------------------------------------------------- commands


@click.command("evaluate")
@click.argument("source", type=click.Path(exists=True, file_okay=False))
@model_dir_option
@click.option(
    "--split", type=click.Choice(SPLITS), default="test", show_default=True, help="Store split."
)
@click.option(
    "--out", "out_dir", required=True, type=click.Path(file_okay=False), help="Report folder."
)
@tta_option
@click.option(
    "--skip-unknown-labels",
    is_flag=True,
    help="Export SOURCE only: skip rows of classes the model does not know instead of failing.",
)
@cluster_options
def evaluate_command(
    source: str,
    model_dir: str,
    split: str,
    out_dir: str,
    tta: bool,
    skip_unknown_labels: bool,
    workers: int | None,
    scheduler: str | None,
    cluster_config: str | None,
) -> None:
    """Score the model in MODEL_DIR on a split of the store SOURCE (or a labelled export).

    Writes per_class.csv, summary.json, report.md (worst classes first), confusion.png,
    per_class_f1.png and predictions.csv into --out. A model trained on another class list
    is refused.
    """
    try:
        info = read_model_info(model_dir)
        if is_store(source):  # fail fast, before starting a cluster
            class_mapping(info, open_store(source).class_names, f"store {source}")
    except (FileNotFoundError, StoreFormatError) as exc:
        raise click.UsageError(str(exc)) from None
    except ModelMismatchError as exc:
        raise click.ClickException(str(exc)) from None
    # Keras models on a store predict in this process; everything else runs on Dask.
    need_dask = not (is_store(source) and info.is_keras)
    try:
        if need_dask:
            with dask_client(workers, scheduler, cluster_config) as client:
                ev = evaluate(source, model_dir, out_dir, split, tta, client, skip_unknown_labels)
        else:
            ev = evaluate(source, model_dir, out_dir, split, tta, None, skip_unknown_labels)
    except (ModelMismatchError, ExportError) as exc:
        raise click.ClickException(str(exc)) from None
    s = ev.summary
    click.echo(
        "  ".join(
            f"{m.replace('_', ' ')} {_fmt(s[m])}"
            + (f" [{_interval(s, m)}]" if _interval(s, m) else "")
            for m in METRICS
        )
        + f"  (n={s['n_samples']}"
        + ("; [95% bootstrap interval])" if s.get("intervals") else ")")
    )
    click.echo(f"Report: {Path(out_dir) / 'report.md'}")


@click.command("compare")
@click.argument(
    "report_dirs", nargs=-1, required=True, type=click.Path(exists=True, file_okay=False)
)
@click.option(
    "--out",
    "out_dir",
    type=click.Path(file_okay=False),
    default=None,
    help="Folder for comparison.md, overall.csv and per_class_f1.csv [default: print only].",
)
def compare_command(report_dirs: tuple[str, ...], out_dir: str | None) -> None:
    """Compare evaluation reports (REPORT_DIR... from `evaluate --out`) side by side."""
    try:
        overall, per_class, notes = compare_reports(list(report_dirs))
    except FileNotFoundError as exc:
        raise click.UsageError(str(exc)) from None
    text = comparison_markdown(overall, per_class, notes)
    if out_dir:
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        overall.to_csv(out / "overall.csv", index=False, float_format="%.6g")
        per_class.to_csv(out / "per_class_f1.csv", index=False, float_format="%.6g")
        (out / "comparison.md").write_text(text)
        click.echo(f"Wrote {out / 'comparison.md'}, overall.csv and per_class_f1.csv")
    click.echo(text)
