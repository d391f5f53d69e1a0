"""The FlowCam / EcoTaxa reader: meta.csv rows matched to their images.

:func:`read_flowcam_export` reads an export folder (layout in
:mod:`plankton_store.io._layout`): the rows of meta.csv (:mod:`plankton_store.io._meta`),
the images they name (:mod:`plankton_store.io._listing`) and the feature tables
(:mod:`plankton_store.io._features`), the last two possibly read by other processes
meanwhile.
"""

from __future__ import annotations

import ctypes
import hashlib
import os
from collections.abc import Sequence
from concurrent.futures import Executor, Future, ThreadPoolExecutor
from typing import Any

import numpy as np
import pandas as pd

from plankton_store.io._export import (
    Export,
    ExportError,
    _Deflated,
    _hash_part,
    _hash_prefix,
    _rejects_frame,
)
from plankton_store.io._features import _feature_columns, _read_features
from plankton_store.io._fetch import ImageFetcher
from plankton_store.io._fs import _Folder
from plankton_store.io._layout import FLOWCAM_LAYOUT, IMAGES_DIR, META_FILE, ZIP_NAME
from plankton_store.io._listing import (
    _folder_listing,
    _list_zip_to_send,
    _PackedListing,
    _zip_listing,
)
from plankton_store.io._meta import _parse_int64, _read_meta
from plankton_store.io._zipdir import _ZipListing

__all__ = ["EXECUTOR_MIN_META_BYTES", "read_flowcam_export", "release_free_memory"]

#: The smallest meta.csv (about 14,000 rows) whose export :func:`read_flowcam_export` has
#: other processes help read: below it their round trips cost more than they save (the 1%
#: scaling export, 2,447 rows: 54-66 ms read alone, 75-124 ms with a 2-worker cluster's
#: help; about even for the 10% one, 24,501 rows and 3.7 MB of meta.csv).
EXECUTOR_MIN_META_BYTES = 2 << 20
#: Bytes of a feature table hashed at a time (its parser, elsewhere, never ships them).
HASH_PIECE_BYTES = 8 << 20


def read_flowcam_export(
    path: str | os.PathLike[str],
    label_column: str = "level2",
    storage_options: dict[str, Any] | None = None,
    executor: Executor | None = None,
    extra_columns: Sequence[str] | None = None,
    keep_features: Any = None,
) -> Export:
    """Read a FlowCam / EcoTaxa export folder.

    Parameters
    ----------
    path : str or os.PathLike
        Folder (local path or fsspec URL) with ``meta.csv``, images in ``imgs.zip``
        (preferred when both exist) or an ``imgs/`` folder, and optional
        ``features_<name>.csv.gz`` tables.
    label_column : str, default "level2"
        meta.csv column holding the labels. Blank cells give ``pd.NA`` labels; they are
        not rejected here.
    storage_options : dict, optional
        fsspec options of a URL ``path``; None uses the fsspec configuration.
    executor : concurrent.futures.Executor, optional
        Other processes that read the zip directory and the feature tables meanwhile,
        when meta.csv has at least :data:`EXECUTOR_MIN_META_BYTES` (without one, or for a
        smaller export, the feature tables are read in a thread).
    extra_columns : sequence of str, optional
        The meta.csv columns the table keeps besides ``objid``, ``label`` and ``image``;
        None (the default) keeps every one. A build passes ``()``: the other columns
        cost about 1 KB per row and are not stored.
    keep_features : distributed.Client, optional
        The client of ``executor``'s cluster: a worker parses the feature tables and
        keeps them (:attr:`Export.kept_features` is their future, and
        :attr:`Export.features` holds their columns only), when other processes help
        read (see ``executor``). A build passes it: the tables cost the client ~80 bytes
        per row (195 MB at 2.4 million rows).

    Returns
    -------
    Export

    Raises
    ------
    ExportError
        No meta.csv, no ``objid`` or label column, no images, an unreadable zip, a
        meta.csv that is not UTF-8, or a feature table that cannot be read.
    """
    folder = _Folder(path, storage_options)
    if not folder.is_file(META_FILE):
        raise ExportError(
            f"{folder.join(META_FILE)}: not found; a FlowCam export needs a meta.csv with objid "
            "and label columns (or give a folder of class sub-folders of images)"
        )
    # The feature tables are parsed meanwhile, in a thread (pandas' CSV tokenizer and zlib
    # release the GIL) or with the zip directory in other processes: for the reference
    # workload each takes about as long as meta.csv, and the cluster's workers are idle
    # until the plan is made. A small export is read here: the round trips would cost more.
    if executor is not None and folder.size(META_FILE) < EXECUTOR_MIN_META_BYTES:
        executor = None
    has_zip = folder.is_file(ZIP_NAME)  # asked once: a request, on an object store
    with ThreadPoolExecutor(1) as pool:
        kept = None
        if keep_features is not None and executor is not None:
            kept = keep_features.submit(_read_features, folder, pure=False)
            feature_tables = keep_features.submit(_feature_columns, kept, pure=False)
        else:
            feature_tables = (executor or pool).submit(_read_features, folder)
        zip_listing = None
        if executor is not None and has_zip:
            zip_listing = executor.submit(_list_zip_to_send, folder)
        export = _read_flowcam_export(
            folder,
            label_column,
            storage_options,
            has_zip,
            feature_tables,
            zip_listing,
            extra_columns,
        )
    export.kept_features = kept
    return export


def _read_flowcam_export(
    folder: _Folder,
    label_column: str,
    storage_options: dict[str, Any] | None,
    has_zip: bool,
    feature_tables: Future[tuple[dict[str, pd.DataFrame], list[tuple[str, int]]]],
    zip_listing: Future[_PackedListing | tuple[_ZipListing, pd.DataFrame]] | None = None,
    extra_columns: Sequence[str] | None = None,
) -> Export:
    """Read meta.csv here while ``feature_tables`` (and ``zip_listing``) are read elsewhere,
    then match each row to its image and sort the rest into rejects."""
    root = folder.root
    meta_path = folder.join(META_FILE)
    keep = None if extra_columns is None else ["objid", label_column, *extra_columns]
    with folder.open(META_FILE) as f:
        read, digest = _read_meta(
            meta_path, f, folder.size(META_FILE), hashlib.sha256(), keep, label_column
        )
    meta, lines, bad = read.rows, read.lines, read.bad
    _check_columns(meta_path, read.header, label_column)
    # Rows before the images: another process may still be listing them.
    objid, ok_rows, row_reason = _check_rows(meta, lines, read.objid)
    if zip_listing is not None:
        release_free_memory()
    refs, listing, fetcher, where = _list_images(
        folder, storage_options, has_zip, zip_listing.result() if zip_listing else None
    )
    _hash_part(digest, "images", listing)
    del listing  # the fingerprint text (deflated: ~20 MB at 2.4 million members)

    features, feature_files = feature_tables.result()
    for file_name, size in feature_files:  # hashed here, a piece at a time
        _hash_prefix(digest, file_name, size)
        with folder.open(file_name) as f:
            while piece := f.read(HASH_PIECE_BYTES):
                digest.update(piece)

    matched, second, row_ref, kept_ref = _match_images(refs, objid, ok_rows)
    no_image = ok_rows.to_numpy() & (row_ref < 0)
    row_reason[no_image] = (
        "no image "
        + IMAGES_DIR
        + "/"
        + objid[no_image].astype("int64").astype(str)
        + ".jpg "
        + where
    )
    acc = row_ref >= 0
    others = [c for c in meta.columns if extra_columns is None or c in extra_columns]
    image = refs["ref"].array.take(row_ref[acc])
    del row_ref
    table = _accepted_table(meta, label_column, objid, image, acc, others)
    if extra_columns is not None:  # a compact read: few distinct values (lineages), as codes
        table[others] = table[others].astype("category")
    orphan = ~matched
    rejects = _rejects_frame(
        [
            _row_rejects(len(read.header), lines, bad, objid, row_reason, acc),
            _file_rejects(refs, orphan, second, kept_ref),
        ]
    )
    return Export(
        layout=FLOWCAM_LAYOUT,
        root=root,
        label_column=label_column,
        table=table,
        rejects=rejects,
        features=features,
        fetcher=fetcher,
        rows_read=len(meta) + len(bad) + int(orphan.sum()),
        fingerprint=digest.hexdigest()[:16],
    )


def release_free_memory() -> None:
    """Hand the heap's free pages back to the system (glibc's ``malloc_trim``; nothing
    elsewhere).

    A client that has built millions of temporary objects (reading meta.csv in pieces,
    matching images, planning) keeps their freed memory in many small holes that later
    large allocations cannot use. At 10x the reference (2.4 million rows) the client
    peaked at 1,602-1,706 MiB while the zip listing arrived, ~300 MiB of it free memory
    that this gives back first; after planning it gives back ~120-240 MiB more.
    """
    try:
        trim = ctypes.CDLL(None).malloc_trim
    except (AttributeError, OSError):  # not glibc
        return
    trim(0)


def _check_columns(meta_path: str, header: list[str], label_column: str) -> None:
    """Raise :class:`ExportError` unless meta.csv has the columns the reader needs."""
    if "objid" not in header:
        raise ExportError(
            f"{meta_path}: no 'objid' column (columns: {', '.join(header)}); "
            "the first column of an EcoTaxa export must be objid"
        )
    if label_column not in header:
        others = ", ".join(c for c in header)
        raise ExportError(
            f"{meta_path}: no label column {label_column!r}; its columns are: {others}. "
            "Choose one with --label-column"
        )
    if "image" in header:
        raise ExportError(
            f"{meta_path}: has a column named 'image', a name the reader uses for the image "
            "reference; rename that column"
        )


def _check_rows(
    meta: pd.DataFrame, lines: np.ndarray, parsed: tuple[pd.Series, pd.Series] | None = None
) -> tuple[pd.Series, pd.Series, pd.Series]:
    """Each row's objid (Int64), whether the row is usable (an int64 objid seen first on
    it), and the reason of each unusable one (string, NA for the usable ones). ``parsed``:
    the objids already parsed (then ``meta["objid"]`` holds the text of those without a
    value)."""
    raw_objid = meta["objid"]
    is_int, objid = parsed if parsed is not None else _parse_int64(raw_objid)
    too_big = is_int & objid.isna()
    row_reason = pd.Series(pd.NA, index=meta.index, dtype="string")
    row_reason[~is_int] = "objid " + raw_objid[~is_int].map(repr) + " is not an integer"
    row_reason[too_big] = "objid " + raw_objid[too_big].map(repr) + " is out of the int64 range"
    valid = objid.notna()
    dup = valid & objid.duplicated(keep="first")
    if dup.any():
        first_line = pd.Series(lines[valid.to_numpy()], index=objid[valid].to_numpy())
        first_line = first_line[~first_line.index.duplicated(keep="first")]
        dup_ids = objid[dup].astype("int64")
        row_reason[dup] = (
            "duplicate objid "
            + dup_ids.astype(str)
            + " (first seen on line "
            + dup_ids.map(first_line).astype(str)
            + ")"
        )
    return objid, valid & ~dup, row_reason


def _list_images(
    folder: _Folder,
    storage_options: dict[str, Any] | None,
    has_zip: bool,
    listed: _PackedListing | tuple[_ZipListing, pd.DataFrame] | None,
) -> tuple[pd.DataFrame, bytes | _Deflated, ImageFetcher, str]:
    """A listing of every zip member or file, with a reference for each: the frame of
    ``_ref_frame``, the bytes to fingerprint, the fetcher and where the images are (for
    messages). ``listed`` is the zip's listing when another process read it."""
    root = folder.root
    if has_zip:
        refs, listing = _zip_listing(folder, listed)
        return refs, listing, ImageFetcher(root, ZIP_NAME, storage_options), f"in {ZIP_NAME}"
    if folder.is_dir(IMAGES_DIR):
        refs, listing = _folder_listing(folder, IMAGES_DIR)
        return refs, listing, ImageFetcher(root, None, storage_options), f"in {IMAGES_DIR}/"
    raise ExportError(
        f"{root}: no images: neither {ZIP_NAME} nor an {IMAGES_DIR}/ folder; put the "
        f"images of the export in {ZIP_NAME} as {IMAGES_DIR}/<objid>.jpg"
    )


def _match_images(
    refs: pd.DataFrame, objid: pd.Series, ok_rows: pd.Series
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Match each usable image to a row by its numeric stem.

    Returns which references matched a row, which are a second image for a matched objid
    (``42.jpg`` and ``42.png``: the first in listing order wins), each row's matched
    reference (its position in ``refs``, -1 for none) and, for each second image, the
    position of the one kept.
    """
    # Sorted int64 arrays and binary search, no hash table: isin, duplicated and a mapped
    # Series of names cost the client ~250 MB at 2.4 million rows.
    ref_objid = refs["objid"].array
    candidate = ~ref_objid.isna()
    ids = ref_objid.to_numpy(dtype=np.int64, na_value=0)
    row_ids = objid.array.to_numpy(dtype=np.int64, na_value=0)
    ok = ok_rows.to_numpy()
    has_row = candidate & _found_in(np.sort(row_ids[ok]), ids)  # usable rows: unique
    with_row = np.flatnonzero(has_row)
    order = np.argsort(ids[with_row], kind="stable")  # listing order within an objid
    sorted_ids = ids[with_row][order]
    first = np.ones(len(sorted_ids), dtype=bool)
    first[1:] = sorted_ids[1:] != sorted_ids[:-1]
    kept_ids, kept_at = sorted_ids[first], with_row[order[first]]
    del order, sorted_ids, first, with_row
    matched = np.zeros(len(ids), dtype=bool)
    matched[kept_at] = True
    second = has_row & ~matched
    kept_ref = kept_at[np.searchsorted(kept_ids, ids[second])]
    at = _found_at(kept_ids, row_ids)
    row_ref = np.full(len(row_ids), -1, dtype=np.int64)
    found = ok & (at >= 0)
    row_ref[found] = kept_at[at[found]]
    return matched, second, row_ref, kept_ref


def _found_at(sorted_ids: np.ndarray, ids: np.ndarray) -> np.ndarray:
    """Each of ``ids``' position in ``sorted_ids`` (unique, sorted), -1 when absent."""
    if not len(sorted_ids):
        return np.full(len(ids), -1, dtype=np.int64)
    at = np.minimum(np.searchsorted(sorted_ids, ids), len(sorted_ids) - 1)
    return np.where(sorted_ids[at] == ids, at, -1)


def _found_in(sorted_ids: np.ndarray, ids: np.ndarray) -> np.ndarray:
    """Whether each of ``ids`` is in ``sorted_ids`` (sorted)."""
    return _found_at(sorted_ids, ids) >= 0


def _accepted_table(
    meta: pd.DataFrame,
    label_column: str,
    objid: pd.Series,
    image: Any,
    acc: np.ndarray,
    kept: list[str],
) -> pd.DataFrame:
    """:attr:`Export.table`: the accepted rows' objid, label, ``image`` (their references,
    an array), then the ``kept`` columns of meta.csv."""
    label = _stripped(meta[label_column][acc])
    others = [c for c in kept if c not in ("objid", "label")]
    table = meta.loc[acc, others].reset_index(drop=True)
    table.insert(0, "image", pd.Series(image, dtype="str"))
    table.insert(0, "label", label)
    table.insert(0, "objid", objid[acc].to_numpy(dtype=np.int64))
    return table


def _stripped(label: pd.Series) -> pd.Series:
    """Labels without surrounding blanks, NA for empty ones, as a string Series; each
    distinct label is stripped once and its rows share the result."""
    codes, uniques = pd.factorize(label.to_numpy(dtype=object))
    stripped = pd.Series(uniques, dtype="str").str.strip()
    stripped = stripped.where(stripped != "").astype("string")
    return pd.Series(stripped.array.take(codes), dtype="string")


def _row_rejects(
    n_columns: int,
    lines: np.ndarray,
    bad: list[tuple[int, int]],
    objid: pd.Series,
    row_reason: pd.Series,
    acc: np.ndarray,
) -> pd.DataFrame:
    """Rejected rows in line order, the malformed ones among them."""
    n_bad = len(bad)
    row_rej = pd.DataFrame(
        {
            "line": np.concatenate([lines[~acc], np.asarray([b[0] for b in bad], np.int64)]),
            "objid": pd.array([*objid[~acc].tolist(), *([pd.NA] * n_bad)], dtype="Int64"),
            "image": pd.array([pd.NA] * (int((~acc).sum()) + n_bad), dtype="string"),
            "reason": [
                *row_reason[~acc].tolist(),
                *(
                    f"malformed CSV line {ln}: expected {n_columns} fields, saw {n}"
                    for ln, n in bad
                ),
            ],
        }
    ).sort_values("line", kind="stable")
    return row_rej.drop(columns="line")


def _file_rejects(
    refs: pd.DataFrame, orphan: np.ndarray, second: np.ndarray, kept_ref: np.ndarray
) -> pd.DataFrame:
    """The files or zip members no row uses (``orphan``), in listing order, with why
    (``kept_ref``: the position of the image kept instead of each ``second`` one)."""
    unsafe, not_image, ref_objid = refs["unsafe"], refs["not_image"], refs["objid"]
    ref_reason = pd.Series(pd.NA, index=refs.index, dtype="string")
    ref_reason[unsafe] = "unsafe path in zip: " + refs["ref"][unsafe]
    ref_reason[not_image] = "not an image file extension"
    if second.any():
        kept_for = ref_objid[second].astype("int64")
        ref_reason[second] = (
            "second image for objid "
            + kept_for.astype(str)
            + ": "
            + refs["ref"][second]
            + " (kept "
            + pd.Series(refs["ref"].to_numpy()[kept_ref], index=kept_for.index, dtype=object)
            + ")"
        )
    no_row = orphan & ~unsafe & ~not_image & ~second
    ref_reason[no_row] = "image " + refs["ref"][no_row] + " has no row in " + META_FILE
    return pd.DataFrame(
        {
            "objid": ref_objid.where(~unsafe)[orphan].to_numpy(),
            "image": refs["ref"][orphan].to_numpy(),
            "reason": ref_reason[orphan].to_numpy(),
        }
    )
