"""Classify an export or an image folder with a trained model, on Dask.

Images go through :func:`plankton_store.io.prepare_images` (the decode + resize of
build-store) at the model's image size and resize mode, one Dask task per block of a few
thousand images; each worker loads the model once. Labels are not needed; when the source
has them they are copied into the output, and ``evaluate SOURCE`` can score them.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from plankton_store.cluster import run_blocks
from plankton_store.io import (
    ECOTAXA_LAYOUT,
    FLOWCAM_LAYOUT,
    Export,
    Taxonomy,
    TaxonomyError,
    ecotaxa_api_path,
    ecotaxa_api_table,
    ecotaxa_predictions,
    feature_file,
    read_source,
    regroup,
    write_ecotaxa_api_csv,
    write_ecotaxa_zip,
)
from plankton_store.ml._inference import ExportBlock, ExportBlockResult, predict_export_block
from plankton_store.ml._modeldir import (
    ModelInfo,
    ModelMismatchError,
    read_model_info,
    tta_mismatch_note,
)
from plankton_store.ml._thresholds import keep_source_columns, load_thresholds, mark_unclassified
from plankton_store.report import (
    GALLERY_HTML,
    Pictures,
    file_images,
    format_top_k,
    gallery_html,
)
from plankton_store.store import format as fmt

#: Images per Dask task.
DEFAULT_BLOCK_SIZE = 2048
PREDICTION_COLUMNS = ("objid", "image", "label", "predicted", "probability", "top3")
#: ``predict --format``: this project's CSV (the default), or an EcoTaxa update zip.
CSV_FORMAT = "csv"
PREDICTION_FORMATS = (CSV_FORMAT, ECOTAXA_LAYOUT)


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
                f"{export.root} does not have ({feature_file(table)}); classify an "
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
        From :func:`plankton_store.io.read_source` or :func:`~plankton_store.io.read_export`.
    info
        The model (see :func:`plankton_store.ml.read_model_info`).
    client
        A ``distributed.Client``.
    rows
        Positions in ``export.table`` to classify (default: all); the result follows them.
    """
    started = time.perf_counter()
    table = export.table if rows is None else export.table.iloc[rows].reset_index(drop=True)
    features = aligned_export_features(export, info)
    if rows is not None:
        features = {t: v[rows] for t, v in features.items()}
    refs = table["image"].tolist()
    computed_columns = (
        ()
        if fmt.COMPUTED_FEATURES in features
        else tuple(info.feature_columns.get(fmt.COMPUTED_FEATURES, ()))
    )
    blocks = [
        ExportBlock(
            start=start,
            refs=refs[start : start + block_size],
            features={t: v[start : start + block_size] for t, v in features.items()},
            size=info.image_size,
            resize_mode=info.resize_mode,
            computed_columns=computed_columns,
        )
        for start in range(0, len(refs), block_size)
    ]
    # Each block's zip entries travel with it; a block is a pure function of its inputs,
    # so it is safe to retry.
    calls = [(b, export.fetcher.batch(b.refs), info.model_dir, tta) for b in blocks]
    results: list[ExportBlockResult] = run_blocks(
        client,
        predict_export_block,
        calls,
        name="predict-block",
        desc="predict",
        sizes=[len(b) for b in blocks],
        progress=progress,
    )
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
    gallery: Path | None = None
    #: ``--format ecotaxa``: the CSV for EcoTaxa's API written beside the zip.
    api_csv: Path | None = None


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


#: Suffix of the file of every object's probabilities (``predict --probabilities``).
PROBABILITIES_SUFFIX = ".proba.npz"


def probabilities_path_for(out: str | Path) -> Path:
    """``predictions.csv`` -> ``predictions.proba.npz``."""
    out = Path(out)
    return out.with_name(out.stem + PROBABILITIES_SUFFIX)


def save_probabilities(
    out: str | Path, objid: np.ndarray, proba: np.ndarray, class_names: list[str]
) -> Path:
    """Write ``<out stem>.proba.npz``: ``objid``, ``proba`` (float32, one row per row of
    ``out``, columns in ``class_names`` order) and ``class_names``."""
    path = probabilities_path_for(out)
    np.savez_compressed(
        path,
        objid=np.asarray(objid, dtype=np.int64),
        proba=np.asarray(proba, dtype=np.float32),
        class_names=np.asarray(class_names, dtype=str),
    )
    return path


def load_probabilities(
    predictions_path: str | Path, predictions: pd.DataFrame, class_names: list[str]
) -> np.ndarray:
    """The probabilities saved beside ``predictions_path``, one row per row of
    ``predictions`` (matched by ``objid``, so a filtered table still matches).

    Raises
    ------
    FileNotFoundError
        No ``.proba.npz`` beside the predictions: predict ran without ``--probabilities``.
    ModelMismatchError
        The file names other classes than the model's.
    ValueError
        A row of ``predictions`` has no probabilities in the file.
    """
    path = probabilities_path_for(predictions_path)
    if not path.exists():
        raise FileNotFoundError(
            f"{path} not found: rerun plankton-jobs predict --probabilities to save every "
            "object's probabilities, or use --method acc"
        )
    with np.load(path, allow_pickle=False) as saved:
        names, objid, proba = saved["class_names"].tolist(), saved["objid"], saved["proba"]
    if names != list(class_names):
        raise ModelMismatchError(
            f"{path} holds probabilities of other classes than the model's "
            f"({len(names)} classes, first {names[:3]}): it comes from another model"
        )
    if "objid" in predictions.columns and pd.Index(objid).is_unique:
        at = pd.Index(objid).get_indexer(predictions["objid"].to_numpy(np.int64))
        if (at < 0).any():
            raise ValueError(f"{int((at < 0).sum())} predictions have no row in {path}")
        return proba[at].astype(float)
    if len(proba) != len(predictions):
        raise ValueError(f"{path} has {len(proba)} rows, the predictions {len(predictions)}")
    return proba.astype(float)


def rejects_path_for(out: str | Path) -> Path:
    """``predictions.csv`` -> ``predictions.rejects.csv``."""
    out = Path(out)
    return out.with_name(out.stem + ".rejects.csv")


def write_predictions(
    frame: pd.DataFrame,
    classified: Classified,
    class_names: list[str],
    out: str | Path,
    out_format: str = CSV_FORMAT,
    object_ids: list[str] | None = None,
    hierarchy: Mapping[str, str] | None = None,
    internal_ids: bool = False,
) -> Path:
    """Write the predictions ``frame`` to ``out`` as a CSV or an EcoTaxa update zip.

    ``ecotaxa``: a zip holding ``ecotaxa_predictions.tsv`` (see
    :func:`plankton_store.io.ecotaxa_predictions`): ``object_id`` is the source's objid,
    ``img_file_name`` its image, status ``predicted``, the best class and its score, and the
    top-3 classes and scores as free columns. ``object_ids`` (one per row of ``frame``)
    replace the objids there: the text ``object_id`` of an EcoTaxa TSV export.
    ``hierarchy`` (class -> lineage) fills ``object_annotation_hierarchy`` when it names
    every class. Beside the zip, the same predictions for EcoTaxa's API
    (:func:`plankton_store.io.ecotaxa_api_table`), with the objids as EcoTaxa's internal
    ids when ``internal_ids`` (a database dump's meta.csv), else an empty ``objid``.
    """
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    if out_format == ECOTAXA_LAYOUT:
        complete = hierarchy and all(c in hierarchy for c in class_names)
        table = ecotaxa_predictions(
            frame["objid"].tolist() if object_ids is None else object_ids,
            classified.proba,
            class_names,
            images=frame["image"].tolist(),
            hierarchy=hierarchy if complete else None,
        )
        objids = frame["objid"].tolist() if internal_ids else None
        write_ecotaxa_api_csv(ecotaxa_api_table(table, objids), out)
        return write_ecotaxa_zip(table, out)
    frame.to_csv(out, index=False)
    return out


def _regroup_labels(export: Export, info: ModelInfo, echo: Callable[[str], None]) -> Export:
    """The source's labels regrouped as the model's training store's, every row kept (the
    labels of dropped classes become empty); as read, with a note, when the source cannot
    be regrouped (no lineage column for a lineage cut)."""
    grouping = Taxonomy.from_attrs(info.taxonomy)
    if grouping.is_identity:
        return export
    try:
        return regroup(export, grouping, drop=False)
    except TaxonomyError as exc:
        echo(f"Note: labels copied as read, not regrouped like the model's store: {exc}")
        return export


def predict_source(
    source: str | Path,
    model_dir: str | Path,
    out: str | Path,
    client: Any,
    tta: bool = False,
    block_size: int = DEFAULT_BLOCK_SIZE,
    label_column: str | None = None,
    progress: bool = True,
    echo: Callable[[str], None] = print,
    use_thresholds: bool = True,
    keep_columns: tuple[str, ...] = (),
    out_format: str = CSV_FORMAT,
    gallery: bool = True,
    probabilities: bool = False,
) -> PredictResult:
    """Classify every image of an export or image folder and write ``out``.

    Rows are in the source's input order. Images that cannot be read or decoded, and the
    reader's own rejects, go to ``<out stem>.rejects.csv`` with their reason.

    Parameters
    ----------
    source
        FlowCam/EcoTaxa export folder or image folder (labelled or not).
    model_dir
        The ``--out`` folder of ``plankton-jobs train``.
    out
        CSV to write, or with ``out_format="ecotaxa"`` the zip (see :func:`write_predictions`).
    client
        A ``distributed.Client``.
    tta
        Average over the 8 flips / 90° rotations (:mod:`plankton_store.ml._tta`).
    label_column
        meta.csv label column (default: the model's). The labels copied are regrouped as
        the model's training store's were (``model.json``'s ``taxonomy``).
    use_thresholds
        Apply MODEL_DIR's thresholds.json when present: a prediction under its class's
        threshold becomes ``unclassified``, its best guess kept in ``best_guess``.
    keep_columns
        Source metadata columns (e.g. ``sample_id``) copied into the predictions; an
        EcoTaxa TSV export's text ``object_id`` is always copied.
    out_format
        One of :data:`PREDICTION_FORMATS`.
    gallery
        Also write ``gallery.html`` beside ``out``: a mosaic per predicted class, with
        thumbnails of the original images in ``gallery-thumbs/``
        (:func:`plankton_store.report.gallery_html`).
    probabilities
        Also write every object's probabilities beside ``out``
        (:func:`save_probabilities`): ``abundance --method em`` needs them.
    """
    if out_format not in PREDICTION_FORMATS:
        raise ValueError(f"unknown format {out_format!r}: one of {PREDICTION_FORMATS}")
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
    if has_labels:
        export = _regroup_labels(export, info, echo)
    classified = classify_export(export, info, client, tta, block_size, progress=progress)
    frame = predictions_frame(
        export.table, classified.ok, classified.proba, info.class_names, has_labels
    )
    thresholds = load_thresholds(model_dir, info.class_names) if use_thresholds else None
    frame = mark_unclassified(frame, classified.proba, thresholds)
    if export.layout == ECOTAXA_LAYOUT and "object_id" not in keep_columns:
        keep_columns = ("object_id", *keep_columns)  # the text id EcoTaxa knows the object by
    frame = keep_source_columns(frame, export.table[classified.ok], keep_columns)
    ids = export.table.get("object_id")
    if ids is not None:
        ids = ids[classified.ok].astype(str).tolist()
    out = write_predictions(
        frame,
        classified,
        info.class_names,
        out,
        out_format,
        ids,
        hierarchy=info.class_lineages,
        internal_ids=export.layout == FLOWCAM_LAYOUT,
    )
    api_csv = ecotaxa_api_path(out) if out_format == ECOTAXA_LAYOUT else None
    if probabilities:
        save_probabilities(out, frame["objid"].to_numpy(), classified.proba, info.class_names)
    rejects = pd.concat([export.rejects, classified.failures], ignore_index=True)
    rej_path = None
    if len(rejects):
        rej_path = rejects_path_for(out)
        rejects[["objid", "image", "reason"]].to_csv(rej_path, index=False)
    page = None
    if gallery and len(frame):
        page = out.parent / GALLERY_HTML
        pictures = Pictures(originals=file_images(export.fetcher.fetch, frame["image"].tolist()))
        title = f"Predictions of {info.name} on {source}"
        page.write_text(gallery_html(title, frame, out.parent, pictures), encoding="utf-8")
    return PredictResult(
        out, rej_path, len(frame), len(rejects), time.perf_counter() - started, frame, page, api_csv
    )
