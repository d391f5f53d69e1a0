"""A FlowCam-layout ``meta.csv`` as EcoTaxa columns (to make EcoTaxa exports from one).

The benchmarks turn real exports into EcoTaxa folders with it and the tests make small
EcoTaxa exports from the demo's; both need the same column mapping, defined here once.
"""

from __future__ import annotations

import pandas as pd

from plankton_store.io._layout import (
    ECOTAXA_HIERARCHY_COLUMN,
    ECOTAXA_LABEL_COLUMN,
    ECOTAXA_STATUS_COLUMN,
    LINEAGE_SEPARATOR,
    META_LINEAGE_COLUMN,
    META_LINEAGE_SEPARATOR,
)

#: meta.csv column -> EcoTaxa fixed column, copied as they are (numbers, ``[f]``).
META_TO_ECOTAXA: dict[str, str] = {
    "latitude": "object_lat",
    "longitude": "object_lon",
    "depth_min": "object_depth_min",
    "depth_max": "object_depth_max",
}
#: The EcoTaxa fixed columns that hold numbers.
ECOTAXA_NUMERIC_FIXED = frozenset(META_TO_ECOTAXA.values()) | {"img_rank"}


def meta_to_ecotaxa(
    meta: pd.DataFrame, label: str, image_prefix: str = "", status: str = "validated"
) -> pd.DataFrame:
    """EcoTaxa columns, all text, for the rows of a FlowCam ``meta.csv`` read as text.

    Parameters
    ----------
    meta
        ``meta.csv`` read with ``dtype=str, keep_default_na=False``: ``objid``, ``label``,
        optionally ``status``, ``lineage``, ``latitude``, ``longitude``, ``depth_min``,
        ``depth_max``, ``objdate`` (``YYYY-MM-DD``) and ``objtime`` (``HH:MM:SS``).
    label
        The column whose values become ``object_annotation_category``.
    image_prefix
        Folder of the images inside each sample folder (``"images/"``), or none.
    status
        ``object_annotation_status`` of labelled rows without a ``status`` column.

    Returns
    -------
    pandas.DataFrame
        ``object_id`` (the objid), ``img_file_name``, ``img_rank`` (0), the status and the
        category (both empty where the label is blank, as EcoTaxa keeps unclassified
        objects), the hierarchy (lineage joined with ``>``) and the fixed columns present.
    """
    rows = pd.DataFrame(
        {
            "object_id": meta["objid"],
            "img_file_name": image_prefix + meta["objid"] + ".jpg",
            "img_rank": "0",
            ECOTAXA_STATUS_COLUMN: meta["status"] if "status" in meta else status,
            ECOTAXA_LABEL_COLUMN: meta[label],
        }
    )
    unlabelled = rows[ECOTAXA_LABEL_COLUMN].str.strip() == ""
    rows.loc[unlabelled, ECOTAXA_STATUS_COLUMN] = ""
    if META_LINEAGE_COLUMN in meta:
        lineage = meta[META_LINEAGE_COLUMN]
        rows[ECOTAXA_HIERARCHY_COLUMN] = lineage.str.replace(
            META_LINEAGE_SEPARATOR, LINEAGE_SEPARATOR, regex=False
        )
    for column, name in META_TO_ECOTAXA.items():
        if column in meta:
            rows[name] = meta[column]
    if "objdate" in meta:
        rows["object_date"] = meta["objdate"].str.replace("-", "", regex=False)
    if "objtime" in meta:
        rows["object_time"] = meta["objtime"].str.replace(":", "", regex=False)
    return rows
