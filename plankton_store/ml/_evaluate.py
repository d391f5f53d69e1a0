"""Score a trained model on a store split or a labelled export.

Only the requested split of the store is read (default ``test``; augmented copies are never
scored). scikit-learn models predict on Dask, one task per store shard; Keras models predict
in this process in batches (TensorFlow already uses every core, and one copy of it is
enough). A labelled export is decoded by the same code as ``predict`` (and build-store).
The report folder is written by :func:`plankton_store.report.write_report`.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from plankton_store.cluster import run_blocks
from plankton_store.io import (
    ECOTAXA_TRUSTED_STATUSES,
    ExportError,
    Taxonomy,
    read_source,
    regroup,
)
from plankton_store.ml._inference import (
    cached_model,
    inputs_from_store,
    predict_inputs,
    predict_store_block,
)
from plankton_store.ml._modeldir import (
    ModelInfo,
    ModelMismatchError,
    model_fingerprint,
    read_model_info,
    tta_mismatch_note,
)
from plankton_store.ml._pinned import in_scope, version_scope
from plankton_store.ml._predict import classify_export
from plankton_store.ml._thresholds import DEFAULT_NON_LIVING, evaluation_extras
from plankton_store.report import (
    Evaluation,
    Pictures,
    bootstrap_intervals,
    file_images,
    per_class_table,
    store_pictures,
    summary_metrics,
    write_report,
)
from plankton_store.store import PlanktonStore, is_store, open_store
from plankton_store.store import format as fmt

SPLITS = ("train", "val", "test")
#: Samples per in-process batch (Keras) and per Dask task when a store has huge shards.
BATCH = 4096


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
    if client is not None and not info.is_keras:
        # Cut at shard boundaries, and within a huge shard every BATCH samples.
        block = store.block_size
        groups = np.split(indices, np.flatnonzero(np.diff(indices // block)) + 1)
        groups = [g[i : i + BATCH] for g in groups for i in range(0, len(g), BATCH)]
        calls = [(store.path, g, info.model_dir, tta) for g in groups]
        parts = run_blocks(
            client, predict_store_block, calls, name="evaluate", unit="block", progress=progress
        )
        return np.concatenate(parts)
    model = cached_model(info.model_dir)
    parts = []
    for start in tqdm(range(0, len(indices), BATCH), desc="evaluate", disable=not progress):
        inputs = inputs_from_store(store, indices[start : start + BATCH])
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
    echo: Callable[[str], None] = print,
    all_samples: bool = False,
    use_thresholds: bool = True,
    non_living: tuple[str, ...] = DEFAULT_NON_LIVING,
    taxonomy: Taxonomy | None = None,
    statuses: tuple[str, ...] = ECOTAXA_TRUSTED_STATUSES,
) -> Evaluation:
    """Score a model on a store split or a labelled export and write the report folder.

    Parameters
    ----------
    source
        A plankton store, or an export folder with labels (FlowCam/EcoTaxa or image folder).
    model_dir
        The ``--out`` folder of ``plankton-jobs train``.
    out_dir
        Report folder: :data:`plankton_store.report.REPORT_FILES`.
    split
        Store split to score (ignored for an export: all its labelled rows are scored).
    tta
        Average the probabilities over the 8 flips / 90° rotations.
    client
        A ``distributed.Client``; required for an export, optional for a store.
    skip_unknown_labels
        Export only: leave out rows whose label the model does not know, instead of refusing.
    all_samples
        Store only: score every sample of the split, also those added after the store
        version the model was trained on (by default only that version's are scored).
    use_thresholds
        Report precision, recall and the share auto-classified under MODEL_DIR's thresholds.
    non_living
        Class-name fragments left out of ``living_macro_f1``.
    taxonomy
        Export only: how to regroup the export's labels before scoring; None: as the
        model's training store did (``model.json``'s ``taxonomy``).
    statuses
        EcoTaxa TSV export only: the statuses whose labels are scored.

    Raises
    ------
    ModelMismatchError
        The model was trained on another class list than the data's.
    """
    started = time.perf_counter()
    info = read_model_info(model_dir)
    notes = [note] if (note := tta_mismatch_note(info, tta)) else []
    if is_store(source):
        y_true, proba, ids, data, data_notes = _score_store(
            source, info, split, client, tta, progress, echo, all_samples
        )
        # The HTML report shows the originals, with the stored images a click away.
        pictures = store_pictures(open_store(str(source)), ids["sample"].to_numpy())
    else:
        if client is None:
            raise ValueError("scoring an export needs a Dask client")
        y_true, proba, ids, data, data_notes, fetch = _score_export(
            source, info, client, tta, skip_unknown_labels, progress, echo, taxonomy, statuses
        )
        pictures = Pictures(originals=file_images(fetch, ids["image"].tolist()))
    notes += data_notes
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
        "created": fmt.now(),
    }
    summary.update(
        evaluation_extras(
            y_true, proba, info.class_names, model_dir, out_dir, use_thresholds, non_living
        )
    )
    evaluation = Evaluation(y_true, y_pred, proba, info.class_names, table, summary, ids, notes)
    evaluation.pictures = pictures
    write_report(evaluation, out_dir)
    for note in notes:
        echo(f"Note: {note}")
    return evaluation


def _score_store(
    source: str | Path,
    info: ModelInfo,
    split: str,
    client: Any,
    tta: bool,
    progress: bool,
    echo: Callable[[str], None],
    all_samples: bool = False,
) -> tuple[np.ndarray, np.ndarray, pd.DataFrame, dict[str, Any], list[str]]:
    """Labels, probabilities, sample ids, data description and notes of a store's split."""
    store = open_store(str(source))
    if split not in SPLITS:
        raise ValueError(f"split {split!r} is not one of {SPLITS}")
    scope = version_scope(store, info, all_samples)
    mapping = class_mapping(info, scope.class_names, f"store {source}")
    indices = in_scope(split_indices(store, split), scope)
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
    notes = [scope.note] if scope.note else []
    if store.fingerprint != info.store_fingerprint:
        notes.append(
            f"store fingerprint {store.fingerprint} differs from the model's training store "
            f"({info.store_fingerprint}): its {split} split may overlap the model's "
            "training images"
        )
    return y_true, proba, ids, data, notes


def _score_export(
    source: str | Path,
    info: ModelInfo,
    client: Any,
    tta: bool,
    skip_unknown_labels: bool,
    progress: bool,
    echo: Callable[[str], None],
    taxonomy: Taxonomy | None = None,
    statuses: tuple[str, ...] = ECOTAXA_TRUSTED_STATUSES,
) -> tuple[np.ndarray, np.ndarray, pd.DataFrame, dict[str, Any], list[str], Callable[[str], bytes]]:
    """Labels, probabilities, image ids, data description, notes and the image fetch function
    of a labelled export, its labels regrouped as the model's store's (or by ``taxonomy``)."""
    export, has_labels = read_source(source, info.label_column, statuses)
    grouping = taxonomy if taxonomy is not None else Taxonomy.from_attrs(info.taxonomy)
    notes = []
    if not grouping.is_identity:
        export = regroup(export, grouping)
        has_labels = has_labels and bool(export.table["label"].notna().any())
        notes.append(f"export labels regrouped: {grouping.describe()}")
    if not has_labels:
        raise ExportError(
            f"{source} has no {info.label_column!r} labels to score; use "
            "`plankton-jobs predict` to classify unlabelled images"
        )
    labels = export.table["label"]
    labelled = labels.notna().to_numpy()
    known = labels.isin(info.class_names).to_numpy() & labelled
    unknown = labels[labelled & ~known].value_counts()
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
    return y_true, classified.proba, ids, data, notes, export.fetcher.fetch


def check_evaluation(source: str | Path, model_dir: str | Path) -> bool:
    """Check, before any cluster starts, that the model can score ``source``; returns
    whether the scoring needs Dask (a Keras model scores a store in this process).

    Raises
    ------
    FileNotFoundError
        ``model_dir`` is not a MODEL_DIR.
    StoreFormatError
        ``source`` looks like a store but is not one.
    ModelMismatchError
        The model was trained on another class list than the store's.
    """
    info = read_model_info(model_dir)
    if not is_store(source):
        return True
    scope = version_scope(open_store(str(source)), info)
    class_mapping(info, scope.class_names, f"store {source}")
    return not info.is_keras
