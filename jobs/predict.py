"""predict: classify a new export or image folder with a trained model, on Dask.

Images go through :func:`plankton_store.imageops.prepare_images` (the decode + resize of
build-store) at the model's image size and resize mode, one Dask task per block of a few
thousand images; each worker loads the model once. Labels are not needed; when the source
has them they are copied into the output, and ``evaluate SOURCE`` can score them.
"""

from __future__ import annotations

import csv
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click
import numpy as np
import pandas as pd

from jobs.cluster import cluster_options, dask_client
from jobs.options import model_dir_option, tta_option
from plankton_store import format as fmt
from plankton_store.inference import (
    ExportBlock,
    ExportBlockResult,
    ModelInfo,
    ModelMismatchError,
    predict_export_block,
    read_model_info,
    tta_mismatch_note,
)
from plankton_store.metrics import format_top_k
from plankton_store.sources import META_FILE, Export, ExportError, read_export

#: Images per Dask task.
DEFAULT_BLOCK_SIZE = 2048
PREDICTION_COLUMNS = ("objid", "image", "label", "predicted", "probability", "top3")


@dataclass
class Classified:
    """Predictions for the rows of an export table.

    Attributes
    ----------
    ok : numpy.ndarray
        ``(len(table),)`` bool: the row's image was decoded and classified.
    proba : numpy.ndarray
        ``(ok.sum(), n_classes)`` float32 for the ok rows, in table order.
    failures : pandas.DataFrame
        ``objid``, ``image``, ``reason`` of the rows whose image could not be used.
    seconds : float
        Wall time of the classification.
    """

    ok: np.ndarray
    proba: np.ndarray
    failures: pd.DataFrame
    seconds: float


def read_source(source: str | Path, label_column: str) -> tuple[Export, bool]:
    """Read an export for prediction: labels are optional.

    Returns
    -------
    export : Export
    has_labels : bool
        Whether any row has a label (a FlowCam export without ``label_column`` has none).
    """
    meta = Path(source) / META_FILE
    if meta.is_file():
        with open(meta, newline="", encoding="utf-8", errors="replace") as f:
            header = next(csv.reader(f), [])
        if label_column not in [h.strip() for h in header]:
            # The reader insists on a label column; read the objid as a stand-in and drop it.
            export = read_export(source, label_column="objid")
            export.table["label"] = pd.array([pd.NA] * len(export.table), dtype="string")
            return export, False
    export = read_export(source, label_column=label_column)
    return export, bool(export.table["label"].notna().any())


def aligned_export_features(export: Export, info: ModelInfo) -> dict[str, np.ndarray]:
    """The export's feature tables as float32 rows aligned to its table.

    Only the tables and columns the model was trained on when model.json names them (a
    missing column reads as NaN), else every table of the export.

    Raises
    ------
    ModelMismatchError
        The model needs a feature table that the export does not have.
    """
    objids = export.table["objid"].to_numpy(np.int64)
    wanted = info.feature_columns or {t: list(f.columns) for t, f in export.features.items()}
    out = {}
    for table, columns in wanted.items():
        frame = export.features.get(table)
        if frame is None and table == fmt.COMPUTED_FEATURES:
            continue  # computed from the images by each task, as build-store does
        if frame is None:
            raise ModelMismatchError(
                f"model {info.model_dir} uses the feature table {table!r}, which "
                f"{export.root} does not have (features_{table}.csv.gz); classify an "
                "export with that table, or a model that needs none (mlp, or a cnn "
                "trained with --head softmax)"
            )
        frame = frame[~frame.index.duplicated(keep="first")]
        out[table] = frame.reindex(index=objids, columns=columns).to_numpy(np.float32)
    return out


def classify_export(
    export: Export,
    info: ModelInfo,
    client: Any,
    tta: bool = False,
    block_size: int = DEFAULT_BLOCK_SIZE,
    rows: np.ndarray | None = None,
    progress: bool = True,
) -> Classified:
    """Classify export rows on Dask: one task per block of ``block_size`` images.

    Parameters
    ----------
    export
        From :func:`read_source` or :func:`plankton_store.sources.read_export`.
    info
        The model (see :func:`plankton_store.inference.read_model_info`).
    client
        A ``distributed.Client``.
    rows
        Positions in ``export.table`` to classify (default: all); the result follows them.
    """
    from distributed import as_completed
    from tqdm import tqdm

    started = time.perf_counter()
    table = export.table if rows is None else export.table.iloc[rows].reset_index(drop=True)
    features = aligned_export_features(export, info)
    if rows is not None:
        features = {t: v[rows] for t, v in features.items()}
    refs = table["image"].tolist()
    run_id = uuid.uuid4().hex[:8]
    futures = []
    for start in range(0, len(refs), block_size):
        stop = min(start + block_size, len(refs))
        block = ExportBlock(
            start=start,
            refs=refs[start:stop],
            features={t: v[start:stop] for t, v in features.items()},
            size=info.image_size,
            resize_mode=info.resize_mode,
            computed_columns=()
            if fmt.COMPUTED_FEATURES in features
            else tuple(info.feature_columns.get(fmt.COMPUTED_FEATURES, ())),
        )
        futures.append(
            client.submit(
                predict_export_block,
                block,
                export.fetcher.batch(block.refs),  # its zip entries travel with it
                info.model_dir,
                tta,
                key=f"predict-block-{run_id}-{start}",
                retries=2,  # pure function of its inputs: safe to retry
            )
        )
    results: list[ExportBlockResult] = []
    with tqdm(total=len(refs), unit="img", desc="predict", disable=not progress) as bar:
        for future in as_completed(futures):
            result = future.result()
            results.append(result)
            bar.update(result.n)
    results.sort(key=lambda r: r.start)
    n_classes = len(info.class_names)
    ok = np.concatenate([r.ok for r in results]) if results else np.zeros(0, bool)
    proba = (
        np.concatenate([r.proba for r in results])
        if results
        else np.zeros((0, n_classes), np.float32)
    )
    if proba.shape[1] != n_classes:
        raise ModelMismatchError(
            f"model {info.model_dir} gives {proba.shape[1]} probabilities but model.json "
            f"lists {n_classes} classes"
        )
    failed = [(r.start + pos, reason) for r in results for pos, reason in r.failures.items()]
    positions = [p for p, _ in failed]
    failures = pd.DataFrame(
        {
            "objid": table["objid"].to_numpy()[positions],
            "image": table["image"].to_numpy()[positions],
            "reason": [reason for _, reason in failed],
        }
    )
    return Classified(ok, proba, failures, time.perf_counter() - started)


@dataclass
class PredictResult:
    """What :func:`predict_source` wrote."""

    out: Path
    rejects: Path | None
    n_predicted: int
    n_rejected: int
    seconds: float
    predictions: pd.DataFrame


def predictions_frame(
    table: pd.DataFrame,
    ok: np.ndarray,
    proba: np.ndarray,
    class_names: list[str],
    with_labels: bool,
) -> pd.DataFrame:
    """One row per classified image: objid, image, [label], predicted, probability, top3."""
    kept = table[ok].reset_index(drop=True)
    best = np.argmax(proba, axis=1) if len(proba) else np.zeros(0, int)
    frame = pd.DataFrame(
        {
            "objid": kept["objid"].to_numpy(np.int64),
            "image": kept["image"].astype(str).to_numpy(),
            "label": kept["label"].to_numpy(),
            "predicted": np.asarray(class_names, dtype=object)[best],
            "probability": np.round(proba[np.arange(len(best)), best], 4),
            "top3": format_top_k(proba, class_names, 3),
        },
        columns=list(PREDICTION_COLUMNS),
    )
    return frame if with_labels else frame.drop(columns="label")


def rejects_path_for(out: str | Path) -> Path:
    """``predictions.csv`` -> ``predictions.rejects.csv``."""
    out = Path(out)
    return out.with_name(out.stem + ".rejects.csv")


def predict_source(
    source: str | Path,
    model_dir: str | Path,
    out: str | Path,
    client: Any,
    tta: bool = False,
    block_size: int = DEFAULT_BLOCK_SIZE,
    label_column: str | None = None,
    progress: bool = True,
    echo: Callable[[str], None] = click.echo,
) -> PredictResult:
    """Classify every image of an export or image folder and write ``out`` (CSV).

    Rows are in the source's input order. Images that cannot be read or decoded, and the
    reader's own rejects, go to ``<out stem>.rejects.csv`` with their reason.

    Parameters
    ----------
    source
        FlowCam/EcoTaxa export folder or image folder (labelled or not).
    model_dir
        The ``--out`` folder of ``plankton-jobs train``.
    out
        CSV to write.
    client
        A ``distributed.Client``.
    tta
        Average over the 8 flips / 90° rotations (:mod:`plankton_store.tta`).
    label_column
        meta.csv label column (default: the model's).
    """
    started = time.perf_counter()
    info = read_model_info(model_dir)
    export, has_labels = read_source(source, label_column or info.label_column)
    echo(
        f"Read {len(export.table)} images from {source} ({export.layout} layout); "
        f"model {info.name}, {len(info.class_names)} classes, "
        f"{info.image_size[0]}x{info.image_size[1]} {info.resize_mode}"
        + (", TTA x8" if tta else "")
    )
    if note := tta_mismatch_note(info, tta):
        echo(f"Note: {note}")
    classified = classify_export(export, info, client, tta, block_size, progress=progress)
    frame = predictions_frame(
        export.table, classified.ok, classified.proba, info.class_names, has_labels
    )
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    frame.to_csv(out, index=False)
    rejects = pd.concat([export.rejects, classified.failures], ignore_index=True)
    rej_path = None
    if len(rejects):
        rej_path = rejects_path_for(out)
        rejects[["objid", "image", "reason"]].to_csv(rej_path, index=False)
    return PredictResult(
        out, rej_path, len(frame), len(rejects), time.perf_counter() - started, frame
    )


@click.command("predict")
@click.argument("source", type=click.Path(exists=True, file_okay=False))
@model_dir_option
@click.option(
    "--out", required=True, type=click.Path(dir_okay=False), help="Predictions CSV to write."
)
@tta_option
@click.option(
    "--label-column",
    default=None,
    help="meta.csv column with labels, copied to the output if present [default: the model's].",
)
@click.option(
    "--block-size",
    type=click.IntRange(min=1),
    default=DEFAULT_BLOCK_SIZE,
    show_default=True,
    help="Images per Dask task.",
)
@cluster_options
def predict_command(
    source: str,
    model_dir: str,
    out: str,
    tta: bool,
    label_column: str | None,
    block_size: int,
    workers: int | None,
    scheduler: str | None,
    cluster_config: str | None,
) -> None:
    """Classify the images of SOURCE (export or image folder, labels not needed).

    Writes objid, image, predicted class, its probability and the top 3 classes
    ("a:0.71|b:0.20|c:0.05") per image, in input order, plus the label when SOURCE has
    labels. Unreadable images are listed in OUT-stem.rejects.csv.
    """
    try:
        read_model_info(model_dir)
    except FileNotFoundError as exc:
        raise click.UsageError(str(exc)) from None
    with dask_client(workers, scheduler, cluster_config) as client:
        try:
            result = predict_source(
                source, model_dir, out, client, tta, block_size, label_column=label_column
            )
        except (ExportError, ModelMismatchError) as exc:
            raise click.ClickException(str(exc)) from None
    click.echo(
        f"Wrote {result.n_predicted} predictions to {result.out} in {result.seconds:.1f} s"
        + (
            f"; {result.n_rejected} images not classified, see {result.rejects}"
            if result.rejects
            else ""
        )
    )
    if len(result.predictions):
        counts = result.predictions["predicted"].value_counts()
        click.echo("Predicted classes:\n" + counts.to_string())
