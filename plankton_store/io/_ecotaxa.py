"""Reading an EcoTaxa TSV export: :func:`read_ecotaxa_export`.

An EcoTaxa export is a folder or a ``.zip`` (local or behind an fsspec URL) holding one or
more tables named ``ecotaxa*.tsv`` or ``ecotaxa*.txt`` at any depth, parsed by
:func:`~plankton_store.io.read_ecotaxa_table`. ``object_id`` is a text id;
``img_file_name`` is the image, relative to the table's own folder.

The store holds integer objids only: when every accepted row's ``object_id`` is a distinct
non-negative integer (an EcoTaxa database dump), it is the objid; otherwise the rows get
objids 1..N in reading order (tables in sorted path order). Either way the text
``object_id`` is kept unchanged in the table's ``object_id`` column. Numeric free
``object_*`` columns become the feature table ``ecotaxa``.
"""

from __future__ import annotations

import hashlib
import os
import posixpath
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from plankton_store.io._ecotaxa_table import FLOAT_TYPE, parse_numbers, read_ecotaxa_table
from plankton_store.io._ecotaxa_write import FIXED_COLUMNS
from plankton_store.io._export import Export, ExportError, _hash_part, _rejects_frame
from plankton_store.io._fetch import ImageFetcher, _is_unsafe
from plankton_store.io._fs import _Folder, is_url
from plankton_store.io._layout import (
    ECOTAXA_FEATURES,
    ECOTAXA_LABEL_COLUMN,
    ECOTAXA_LAYOUT,
    ECOTAXA_STATUS_COLUMN,
    ECOTAXA_TABLE,
    ECOTAXA_TRUSTED_STATUSES,
)
from plankton_store.io._zip import _open_zip
from plankton_store.io._zipdir import _read_zip_listing

__all__ = ["find_ecotaxa_tables", "is_ecotaxa_zip", "read_ecotaxa_export"]

# A text object_id the store may keep as its objid: a plain non-negative integer (int64).
_INTEGER_ID = re.compile(r"^[0-9]{1,18}$")


def find_ecotaxa_tables(names: Sequence[str]) -> list[str]:
    """The names among ``names`` (posix paths) that are EcoTaxa tables, sorted."""
    return sorted(n for n in names if ECOTAXA_TABLE.match(n.rpartition("/")[2]))


def is_ecotaxa_zip(
    path: str | os.PathLike[str], storage_options: dict[str, Any] | None = None
) -> bool:
    """Whether ``path`` names a ``.zip`` file (local or URL), read as an EcoTaxa export."""
    text = os.fspath(path).rstrip("/")
    if not text.lower().endswith(".zip"):
        return False
    parent, name = _parent_and_name(text)
    return _Folder(parent, storage_options).is_file(name)


def _parent_and_name(text: str) -> tuple[str, str]:
    """A file's folder and name, for a URL or a local path."""
    if is_url(text):
        parent, _, name = text.rpartition("/")
        return parent, name
    return os.path.dirname(os.path.abspath(text)), os.path.basename(text)


@dataclass
class _Files:
    """An export's files, whether a folder or a zip: names, bytes and the image fetcher."""

    root: str  # Export.root: the folder, or the zip itself
    names: list[str]  # every file, posix, relative to the folder / the zip's top
    read: Callable[[str], bytes]
    fetcher: ImageFetcher
    listing: bytes  # names and sizes (CRCs in a zip), for the fingerprint


def _open_files(path: str | os.PathLike[str], storage_options: dict[str, Any] | None) -> _Files:
    text = os.fspath(path).rstrip("/")
    if is_ecotaxa_zip(text, storage_options):
        parent, name = _parent_and_name(text)
        folder = _Folder(parent, storage_options)
        try:
            with folder.open(name) as f:
                listing = _read_zip_listing(f)
        except (OSError, EOFError, ValueError) as exc:  # BadZipFile is a ValueError's sibling
            raise ExportError(f"{text}: not a readable zip file ({exc})") from None
        zf = _open_zip(folder.join(name), storage_options, listing.members, complete=True)
        fetcher = ImageFetcher(folder.root, name, storage_options)
        return _Files(folder.join(name), listing.names, zf.read, fetcher, listing.fingerprint)
    folder = _Folder(path, storage_options)
    files = folder.walk_files() if folder.is_dir() else []
    return _Files(
        folder.root,
        [n for n, _ in files],
        folder.read_bytes,
        ImageFetcher(folder.root, None, storage_options),
        "\n".join(f"{n}\t{s}" for n, s in files).encode(),
    )


def _table_rows(
    data: bytes, where: str, names: set[str]
) -> tuple[pd.DataFrame, list[str], dict[str, bool]]:
    """One table's rows with ``image`` (the fetcher's reference), its problems per row, and
    whether each free column is numeric in it (``[f]``, or without a type row all numbers)."""
    table = read_ecotaxa_table(data)
    frame, reasons = table.frame, list(table.reasons)
    numeric = _numeric_columns(frame, table.types, reasons)
    if _is_unsafe(where):
        why = f"{where}: the table lies outside the export"
        return frame.assign(image=""), [why] * len(frame), numeric
    if "object_id" not in frame:
        out = [f"{where}: {r or 'no object_id column'}" for r in reasons]
        return frame.assign(image=""), out, numeric
    folder = posixpath.dirname(where)
    file_names = frame.get("img_file_name", pd.Series([""] * len(frame), dtype=str)).str.strip()
    images, out = [], []
    for why, object_id, name in zip(reasons, frame["object_id"], file_names, strict=True):
        safe = name and not _is_unsafe(name)
        image = posixpath.normpath(posixpath.join(folder, name)) if safe else ""
        if why:
            out.append(f"{where}: {why}")
        elif not object_id.strip():
            out.append(f"{where}: empty object_id")
        elif not name:
            out.append(f"{where}: no img_file_name")
        elif not image:
            out.append(f"{where}: img_file_name {name!r} leaves the table's folder")
        elif image not in names:
            out.append(f"{where}: image {image} not found")
        else:
            out.append("")
        images.append(image)
    rank = frame.get("img_rank")
    if rank is not None:
        extra = ~rank.str.strip().isin(["", "0"])
        out = [
            r or (f"{where}: not the main image (img_rank > 0)" if e else "")
            for r, e in zip(out, extra, strict=True)
        ]
    return frame.assign(image=images), out, numeric


def _numeric_columns(
    frame: pd.DataFrame, types: list[str] | None, reasons: list[str]
) -> dict[str, bool]:
    """Free ``object_*`` column -> numeric in this table: typed ``[f]``, or (no type row)
    every non-empty value of the readable rows a number."""
    free = [c for c in frame.columns if _is_free(c)]
    if types is not None:
        kinds = dict(zip(frame.columns, types, strict=True))
        return {c: kinds[c] == FLOAT_TYPE for c in free}
    readable = np.array([not r for r in reasons], dtype=bool)
    return {c: bool(parse_numbers(frame[c][readable])[1].all()) for c in free}


def _is_free(column: str) -> bool:
    return (
        column.startswith("object_")
        and column not in FIXED_COLUMNS
        and not column.startswith("object_annotation_")
    )


def _objids(object_ids: pd.Series, ok: np.ndarray) -> tuple[np.ndarray, pd.Series]:
    """The rows' objids: the ``object_id`` itself when every accepted one is a distinct
    non-negative integer, else 1..N in reading order; and the rejects' objids (Int64)."""
    ids = object_ids.str.strip()
    is_int = ids.str.match(_INTEGER_ID).to_numpy(dtype=bool)
    if ok.any() and is_int[ok].all() and not ids[ok].duplicated().any():
        as_int = pd.Series(pd.NA, index=ids.index, dtype="Int64")
        as_int[is_int] = ids[is_int].astype(np.int64)
        if not as_int[ok].duplicated().any():  # "7" and "07" are one number
            return as_int[ok].to_numpy(np.int64), as_int[~ok]
    objid = np.arange(1, len(ids) + 1, dtype=np.int64)
    return objid[ok], pd.Series(objid[~ok], dtype="Int64")


def _text(rows: pd.DataFrame, column: str) -> pd.Series:
    """A column of the merged rows, stripped text ("" where a table lacks it)."""
    return rows.get(column, pd.Series([""] * len(rows), dtype=str)).astype(str).str.strip()


def _status_reasons(rows: pd.DataFrame, reason: pd.Series) -> None:
    """EcoTaxa's rule on the accepted rows: a status needs a category and the reverse."""
    status = _text(rows, ECOTAXA_STATUS_COLUMN) != ""
    category = _text(rows, ECOTAXA_LABEL_COLUMN) != ""
    open_ = reason == ""
    reason[open_ & status & ~category] = (
        f"{ECOTAXA_STATUS_COLUMN} without {ECOTAXA_LABEL_COLUMN} (EcoTaxa needs both)"
    )
    reason[open_ & category & ~status] = (
        f"{ECOTAXA_LABEL_COLUMN} without {ECOTAXA_STATUS_COLUMN} (EcoTaxa needs both)"
    )


def _features(
    rows: pd.DataFrame, numeric: dict[str, bool], ok: np.ndarray, objid: np.ndarray
) -> dict[str, pd.DataFrame]:
    """The numeric free ``object_*`` columns of the accepted rows as the ``ecotaxa`` table."""
    columns = {}
    for column, is_numeric in numeric.items():
        values = _text(rows, column)[ok]
        if is_numeric and (values != "").any():
            columns[column] = parse_numbers(values)[0].to_numpy(np.float32)
    if not columns:
        return {}
    frame = pd.DataFrame(columns, index=pd.Index(objid, name="objid"), dtype=np.float32)
    return {ECOTAXA_FEATURES: frame}


def read_ecotaxa_export(
    path: str | os.PathLike[str],
    label_column: str = ECOTAXA_LABEL_COLUMN,
    statuses: Sequence[str] = ECOTAXA_TRUSTED_STATUSES,
    storage_options: dict[str, Any] | None = None,
) -> Export:
    """Read an EcoTaxa export: every ``ecotaxa*.tsv|txt`` table of a folder or a zip, merged.

    Parameters
    ----------
    path
        The export folder or ``.zip`` file: a local path or an fsspec URL.
    label_column
        Column holding the labels; ``object_annotation_category`` when the tables have no
        such column.
    statuses
        Rows whose ``object_annotation_status`` is one of these keep their label; the
        others are still in the table (to classify) with no label.
    storage_options
        fsspec options of a URL ``path``.

    Returns
    -------
    Export
        ``layout="ecotaxa"``; ``table`` has ``objid``, ``label``, ``image`` (relative to the
        folder, or a zip member), ``object_id`` (text, unchanged) and every other column as
        text; ``features`` has the numeric free ``object_*`` columns as the table
        ``"ecotaxa"``. Rows the tables cannot give (see :func:`read_ecotaxa_table`), rows
        without ``object_id`` or image, with an image path leaving the table's folder, a
        missing image, a second image rank, a status without category (or the reverse) or
        a repeated (``object_id``, ``img_file_name``) are rejects with their reason.

    Raises
    ------
    ExportError
        ``path`` is neither a folder nor a zip, or holds no EcoTaxa table.
    """
    return _read_files(_open_files(path, storage_options), label_column, statuses)


def _read_files(files: _Files, label_column: str, statuses: Sequence[str]) -> Export:
    """:func:`read_ecotaxa_export` of the export whose files were listed."""
    tables = find_ecotaxa_tables(files.names)
    if not tables:
        raise ExportError(
            f"{files.root}: no EcoTaxa table; looked for ecotaxa*.tsv and ecotaxa*.txt at any depth"
        )
    digest = hashlib.sha256()
    _hash_part(digest, "", files.listing)
    names = set(files.names)
    parts, reasons, numeric = [], [], {}
    for where in tables:
        data = files.read(where)
        _hash_part(digest, where, data)
        frame, why, kinds = _table_rows(data, where, names)
        parts.append(frame)
        reasons += why
        for column, is_numeric in kinds.items():
            numeric[column] = numeric.get(column, True) and is_numeric
    rows = pd.concat(parts, ignore_index=True).fillna("").astype(str)
    reason = pd.Series(reasons, dtype=str)
    _status_reasons(rows, reason)
    if "object_id" in rows:
        open_ = reason == ""
        repeated = rows[open_].duplicated(["object_id", "image"])
        reason[repeated[repeated].index] = "repeated object_id and img_file_name"
    ok = (reason == "").to_numpy()
    objid, reject_objid = _objids(_text(rows, "object_id"), ok)
    if label_column not in rows:
        label_column = ECOTAXA_LABEL_COLUMN
    wanted = [s.strip().lower() for s in statuses]
    labels = _text(rows, label_column)
    trusted = _text(rows, ECOTAXA_STATUS_COLUMN).str.lower().isin(wanted) & (labels != "")
    table = rows[ok].drop(columns=["image"]).reset_index(drop=True)
    table.insert(0, "objid", objid)
    table.insert(1, "label", pd.array(labels.where(trusted, None)[ok].tolist(), dtype="string"))
    table.insert(2, "image", rows["image"][ok].to_numpy())
    rejects = pd.DataFrame(
        {
            "objid": reject_objid.to_numpy(),
            "image": rows["image"][~ok].replace("", None).tolist(),
            "reason": reason[~ok].tolist(),
        }
    )
    return Export(
        layout=ECOTAXA_LAYOUT,
        root=files.root,
        label_column=label_column,
        table=table,
        rejects=_rejects_frame([rejects]),
        features=_features(rows, numeric, ok, objid),
        fetcher=files.fetcher,
        rows_read=len(rows),
        fingerprint=digest.hexdigest()[:16],
    )
