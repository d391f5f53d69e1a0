"""Reading an EcoTaxa TSV export: :func:`read_ecotaxa_export`.

An EcoTaxa export is a folder holding one or more tables named ``ecotaxa*.tsv`` or
``ecotaxa*.txt`` at any depth. Each table is tab-separated, latin-1 unless it starts with a
UTF-8 byte-order mark; row 1 names the columns (trimmed and lower-cased here, as EcoTaxa
does), and an optional row 2 types them (``[t]`` text, ``[f]`` float). ``object_id`` is a
text id; ``img_file_name`` is the image, relative to the table's own folder.

The store holds integer objids only, so the rows get objids 1..N in reading order (tables
in sorted path order) and the text ``object_id`` is kept unchanged in the table's
``object_id`` column.
"""

from __future__ import annotations

import hashlib
import io
import os
import re
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from plankton_store.io._export import Export, ExportError, _hash_part, _rejects_frame
from plankton_store.io._fetch import ImageFetcher
from plankton_store.io._layout import (
    ECOTAXA_LABEL_COLUMN,
    ECOTAXA_LAYOUT,
    ECOTAXA_STATUS_COLUMN,
    ECOTAXA_TABLE,
    ECOTAXA_TRUSTED_STATUSES,
)

__all__ = ["find_ecotaxa_tables", "read_ecotaxa_export", "read_ecotaxa_table"]

_BOM = b"\xef\xbb\xbf"
_TYPE = re.compile(r"^\[[tf]\]$")


def find_ecotaxa_tables(root: str | os.PathLike[str]) -> list[Path]:
    """The ``ecotaxa*.tsv|txt`` files under ``root``, at any depth, in sorted path order."""
    root = Path(root)
    return sorted(p for p in root.rglob("*") if p.is_file() and ECOTAXA_TABLE.match(p.name))


def read_ecotaxa_table(data: bytes) -> tuple[pd.DataFrame, list[str] | None]:
    """Parse one EcoTaxa table's bytes.

    Returns
    -------
    frame : pandas.DataFrame
        All values as text (empty string when empty); columns trimmed and lower-cased.
    types : list of str or None
        The type row, when the table has one (then it is not in ``frame``).
    """
    text = data[len(_BOM) :].decode("utf-8") if data.startswith(_BOM) else data.decode("latin-1")
    frame = pd.read_csv(io.StringIO(text), sep="\t", dtype=str, keep_default_na=False, quoting=3)
    frame.columns = [str(c).strip().lower() for c in frame.columns]
    types = None
    if len(frame) and all(_TYPE.match(v.strip().lower()) for v in frame.iloc[0]):
        types = [v.strip().lower() for v in frame.iloc[0]]
        frame = frame.iloc[1:].reset_index(drop=True)
    return frame, types


def _table_rows(path: Path, root: Path) -> tuple[pd.DataFrame, list[str]]:
    """One table's rows with ``image`` (relative to ``root``) and its problems per row."""
    frame, _ = read_ecotaxa_table(path.read_bytes())
    where = path.relative_to(root).as_posix()
    if "object_id" not in frame:
        return frame.assign(image=""), [f"{where}: no object_id column"] * len(frame)
    folder = path.parent.relative_to(root)
    names = frame.get("img_file_name", pd.Series([""] * len(frame), dtype=str))
    images = [(folder / n).as_posix() if n else "" for n in names]
    reasons = []
    for object_id, name, image in zip(frame["object_id"], names, images, strict=True):
        if not object_id.strip():
            reasons.append(f"{where}: empty object_id")
        elif not name:
            reasons.append(f"{where}: no img_file_name")
        elif not (root / image).is_file():
            reasons.append(f"{where}: image {image} not found")
        else:
            reasons.append("")
    rank = frame.get("img_rank")
    if rank is not None:
        extra = ~rank.str.strip().isin(["", "0"])
        reasons = [
            r or (f"{where}: not the main image (img_rank > 0)" if e else "")
            for r, e in zip(reasons, extra, strict=True)
        ]
    return frame.assign(image=images), reasons


def read_ecotaxa_export(
    path: str | os.PathLike[str],
    label_column: str = ECOTAXA_LABEL_COLUMN,
    statuses: Sequence[str] = ECOTAXA_TRUSTED_STATUSES,
) -> Export:
    """Read a local EcoTaxa export folder: every ``ecotaxa*.tsv|txt`` table, merged.

    Parameters
    ----------
    path
        The export folder.
    label_column
        Column holding the labels; ``object_annotation_category`` when the tables have no
        such column.
    statuses
        Rows whose ``object_annotation_status`` is one of these keep their label; the
        others are still in the table (to classify) with no label.

    Returns
    -------
    Export
        ``layout="ecotaxa"``; ``table`` has ``objid`` (1..N), ``label``, ``image`` (relative
        to ``path``), ``object_id`` (text, unchanged) and every other column as text. Rows
        without ``object_id`` or image, with a missing image, a second image rank or a
        repeated (``object_id``, ``img_file_name``) are rejects with their reason.

    Raises
    ------
    ExportError
        ``path`` is not a folder or holds no EcoTaxa table.
    """
    root = Path(path)
    tables = find_ecotaxa_tables(root) if root.is_dir() else []
    if not tables:
        raise ExportError(
            f"{root}: no EcoTaxa table; looked for ecotaxa*.tsv and ecotaxa*.txt at any depth"
        )
    digest = hashlib.sha256()
    parts, reasons = [], []
    for table_path in tables:
        _hash_part(digest, table_path.relative_to(root).as_posix(), table_path.read_bytes())
        frame, why = _table_rows(table_path, root)
        parts.append(frame)
        reasons += why
    rows = pd.concat(parts, ignore_index=True).fillna("")
    if label_column not in rows:
        label_column = ECOTAXA_LABEL_COLUMN
    reason = pd.Series(reasons, dtype=str)
    if "object_id" in rows:
        repeated = rows.duplicated(["object_id", "image"]) & (reason == "")
        reason[repeated] = "repeated object_id and img_file_name"
    objid = np.arange(1, len(rows) + 1, dtype=np.int64)
    ok = (reason == "").to_numpy()
    status = rows.get(ECOTAXA_STATUS_COLUMN, pd.Series([""] * len(rows), dtype=str))
    labels = rows.get(label_column, pd.Series([""] * len(rows), dtype=str)).str.strip()
    trusted = status.str.strip().isin(list(statuses)) & (labels != "")
    table = rows[ok].drop(columns=["image"]).reset_index(drop=True)
    table.insert(0, "objid", objid[ok])
    table.insert(1, "label", pd.array(labels.where(trusted, None)[ok].tolist(), dtype="string"))
    table.insert(2, "image", rows["image"][ok].astype(str).to_numpy())
    rejects = _rejects_frame(
        [
            pd.DataFrame(
                {
                    "objid": objid[~ok],
                    "image": rows["image"][~ok].tolist(),
                    "reason": reason[~ok].tolist(),
                }
            )
        ]
    )
    return Export(
        layout=ECOTAXA_LAYOUT,
        root=str(root.resolve()),
        label_column=label_column,
        table=table,
        rejects=rejects,
        features={},
        fetcher=ImageFetcher(str(root.resolve()), None, None),
        rows_read=len(rows),
        fingerprint=digest.hexdigest()[:16],
    )
