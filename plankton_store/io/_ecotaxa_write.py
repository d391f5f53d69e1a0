"""Predictions as an EcoTaxa classification update: a zip holding one TSV.

EcoTaxa imports a TSV whose first row names the columns and whose optional second row types
them (``[t]`` text, ``[f]`` float). An update of existing objects needs ``object_id`` and,
for each object, ``object_annotation_status`` with ``object_annotation_category``; other
``object_*`` columns are free columns, at most 20 text and 500 numeric per object, text at
most 250 characters. The file is written as UTF-8 with a BOM, which EcoTaxa reads as UTF-8
(without a BOM it reads latin-1).
"""

from __future__ import annotations

import zipfile
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from plankton_store.io._layout import (
    ECOTAXA_API_COLUMNS,
    ECOTAXA_HIERARCHY_COLUMN,
    ECOTAXA_PREDICTIONS_FILE,
    ecotaxa_api_path,
)

#: The status EcoTaxa gives a machine's classification, before anyone validates it.
PREDICTED_STATUS = "predicted"
#: EcoTaxa's limits on the free ``object_*`` columns of one object.
MAX_TEXT_COLUMNS = 20
MAX_NUMERIC_COLUMNS = 500
MAX_TEXT_LENGTH = 250
#: Columns EcoTaxa maps to fixed fields; every other ``object_*`` column is a free column.
FIXED_COLUMNS = frozenset(
    {
        "object_id",
        "object_annotation_status",
        "object_annotation_category",
        "object_annotation_hierarchy",
        "object_lat",
        "object_lon",
        "object_date",
        "object_time",
        "object_depth_min",
        "object_depth_max",
    }
)
TEXT_TYPE = "[t]"
FLOAT_TYPE = "[f]"
#: Decimals of the scores written.
SCORE_DECIMALS = 4


def ecotaxa_predictions(
    object_ids: Sequence[object],
    proba: np.ndarray,
    class_names: Sequence[str],
    images: Sequence[str] | None = None,
    hierarchy: Mapping[str, str] | None = None,
    top_k: int = 3,
) -> pd.DataFrame:
    """One EcoTaxa row per classified object, status ``predicted``.

    Parameters
    ----------
    object_ids
        The objects' ids, written unchanged as text in ``object_id``.
    proba
        ``(len(object_ids), len(class_names))`` class probabilities.
    class_names
        The model's classes, in the columns' order of ``proba``.
    images
        Image file names relative to the TSV's folder (``img_file_name``); omitted if None.
    hierarchy
        Class name -> lineage joined with ``>`` (``object_annotation_hierarchy``); omitted
        if None, and left empty for a class it does not list.
    top_k
        How many best classes go to ``object_top<i>_category`` / ``object_top<i>_score``.

    Returns
    -------
    pandas.DataFrame
        Text columns of dtype object, score columns float.
    """
    proba = np.asarray(proba, dtype=np.float64).reshape(len(object_ids), len(class_names))
    names = np.asarray(class_names, dtype=object)
    order = np.argsort(-proba, axis=1, kind="stable")[:, : min(top_k, len(class_names))]
    best = order[:, 0] if len(class_names) else np.zeros(len(object_ids), int)
    rows = np.arange(len(object_ids))
    frame = pd.DataFrame({"object_id": np.asarray([str(i) for i in object_ids], dtype=object)})
    if images is not None:
        frame["img_file_name"] = np.asarray([str(i) for i in images], dtype=object)
    frame["object_annotation_status"] = PREDICTED_STATUS
    frame["object_annotation_category"] = names[best]
    if hierarchy is not None:
        frame["object_annotation_hierarchy"] = [hierarchy.get(n, "") for n in names[best]]
    frame["object_score"] = np.round(proba[rows, best], SCORE_DECIMALS)
    for k in range(order.shape[1]):
        frame[f"object_top{k + 1}_category"] = names[order[:, k]]
        frame[f"object_top{k + 1}_score"] = np.round(proba[rows, order[:, k]], SCORE_DECIMALS)
    return frame


def ecotaxa_types(frame: pd.DataFrame) -> list[str]:
    """The type row of ``frame``: ``[f]`` for numeric columns, ``[t]`` for the others."""
    return [FLOAT_TYPE if pd.api.types.is_numeric_dtype(frame[c]) else TEXT_TYPE for c in frame]


def check_ecotaxa_limits(frame: pd.DataFrame) -> None:
    """Raise ValueError where ``frame`` breaks an EcoTaxa import rule.

    ``object_id`` present and never empty or repeated, a category for every status, at most
    :data:`MAX_TEXT_COLUMNS` text and :data:`MAX_NUMERIC_COLUMNS` numeric free columns, text
    at most :data:`MAX_TEXT_LENGTH` characters.
    """
    if "object_id" not in frame:
        raise ValueError("an EcoTaxa TSV needs an object_id column")
    ids = frame["object_id"].astype(str)
    if (ids == "").any() or ids.duplicated().any():
        raise ValueError("object_id must be set and unique on every row")
    status = frame.get("object_annotation_status")
    category = frame.get("object_annotation_category")
    if (status is None) != (category is None) or (
        status is not None and ((status == "") != (category == "")).any()
    ):
        raise ValueError("a status needs a category and a category needs a status")
    free = [c for c in frame if c.startswith("object_") and c not in FIXED_COLUMNS]
    types = dict(zip(frame.columns, ecotaxa_types(frame), strict=True))
    n_text = sum(types[c] == TEXT_TYPE for c in free)
    if n_text > MAX_TEXT_COLUMNS or len(free) - n_text > MAX_NUMERIC_COLUMNS:
        raise ValueError(
            f"{n_text} text and {len(free) - n_text} numeric free columns: EcoTaxa takes at "
            f"most {MAX_TEXT_COLUMNS} and {MAX_NUMERIC_COLUMNS}"
        )
    for column in frame:
        if (
            types[column] == TEXT_TYPE
            and frame[column].astype(str).str.len().gt(MAX_TEXT_LENGTH).any()
        ):
            raise ValueError(f"{column} holds text longer than {MAX_TEXT_LENGTH} characters")


def ecotaxa_tsv(frame: pd.DataFrame) -> bytes:
    """``frame`` as EcoTaxa TSV bytes: UTF-8 with BOM, column names, type row, rows.

    Raises
    ------
    ValueError
        ``frame`` breaks an EcoTaxa import rule (:func:`check_ecotaxa_limits`), or a text
        holds a tab or a line break.
    """
    check_ecotaxa_limits(frame)
    text = frame.astype(str)
    if text.apply(lambda c: c.str.contains(r"[\t\r\n]", regex=True)).any().any():
        raise ValueError("EcoTaxa TSV fields cannot hold tabs or line breaks")
    lines = ["\t".join(frame.columns), "\t".join(ecotaxa_types(frame))]
    lines += ["\t".join(row) for row in text.itertuples(index=False, name=None)]
    return ("\ufeff" + "\n".join(lines) + "\n").encode("utf-8")


def write_ecotaxa_zip(frame: pd.DataFrame, out: str | Path) -> Path:
    """Write ``frame`` as :data:`ECOTAXA_PREDICTIONS_FILE` in the zip ``out``.

    The zip imports into EcoTaxa as an update of the objects named by ``object_id``.
    """
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    data = ecotaxa_tsv(frame)
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr(ECOTAXA_PREDICTIONS_FILE, data)
    return out


def ecotaxa_api_table(frame: pd.DataFrame, objids: Sequence[int] | None = None) -> pd.DataFrame:
    """The rows of :func:`ecotaxa_predictions` ``frame`` for EcoTaxa's API.

    EcoTaxa's ``POST /object_set/classify_auto`` (``ClassifyAutoReq``) takes ``target_ids``
    (its internal object ids), ``classifications`` (taxon ids) and ``scores``: one row per
    object with ``objid`` (the internal id, empty when unknown), ``object_id``,
    ``category`` and ``hierarchy`` (the taxon, by name: the taxon id is EcoTaxa's to tell)
    and ``score``.

    Parameters
    ----------
    frame
        From :func:`ecotaxa_predictions`.
    objids
        EcoTaxa's internal object id of each row (``objid`` of a database dump); None
        leaves the column empty.
    """
    n = len(frame)
    hierarchy = frame.get(ECOTAXA_HIERARCHY_COLUMN, pd.Series([""] * n, index=frame.index))
    ids = pd.array([None] * n if objids is None else list(objids), dtype="Int64")
    values = [
        ids,
        frame["object_id"].to_numpy(),
        frame["object_annotation_category"].to_numpy(),
        hierarchy.to_numpy(),
        frame["object_score"].to_numpy(),
    ]
    return pd.DataFrame(dict(zip(ECOTAXA_API_COLUMNS, values, strict=True)))


def write_ecotaxa_api_csv(table: pd.DataFrame, out: str | Path) -> Path:
    """Write :func:`ecotaxa_api_table` ``table`` beside the zip ``out`` (UTF-8 CSV)."""
    path = ecotaxa_api_path(out)
    path.parent.mkdir(parents=True, exist_ok=True)
    table.to_csv(path, index=False, encoding="utf-8")
    return path
