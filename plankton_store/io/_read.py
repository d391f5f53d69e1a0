"""Reading an export whatever its layout: :func:`read_export`, and :func:`read_source`.

:func:`read_export` tells a FlowCam / EcoTaxa export (a folder with meta.csv) from an image
folder and reads it with :func:`~plankton_store.io.read_flowcam_export` or
:func:`~plankton_store.io.read_image_folder`; :func:`read_source` reads an export whose
labels are optional, as prediction and evaluation do.
"""

from __future__ import annotations

import csv
import os
from collections.abc import Sequence
from concurrent.futures import Executor
from pathlib import Path
from typing import Any

import pandas as pd

from plankton_store.io._ecotaxa import (
    _open_files,
    _read_files,
    find_ecotaxa_tables,
    is_ecotaxa_zip,
    read_ecotaxa_export,
)
from plankton_store.io._export import Export, ExportError
from plankton_store.io._flowcam import read_flowcam_export
from plankton_store.io._folder import read_image_folder
from plankton_store.io._fs import _Folder, _join
from plankton_store.io._layout import (
    ECOTAXA_TRUSTED_STATUSES,
    FEATURE_FILE,
    IMAGES_DIR,
    META_FILE,
    ZIP_NAME,
)
from plankton_store.io._meta import _delimiter

__all__ = ["read_export", "read_source"]


def read_export(
    path: str | os.PathLike[str],
    label_column: str = "level2",
    storage_options: dict[str, Any] | None = None,
    executor: Executor | None = None,
    statuses: Sequence[str] = ECOTAXA_TRUSTED_STATUSES,
    extra_columns: Sequence[str] | None = None,
    keep_features: Any = None,
) -> Export:
    """Read an export, detecting its layout.

    A folder with ``meta.csv`` is a FlowCam / EcoTaxa export; a ``.zip`` file, or a folder
    holding ``ecotaxa*.tsv|txt`` tables at any depth, is an EcoTaxa TSV export
    (:func:`read_ecotaxa_export`, labels from ``label_column`` if the tables have it, else
    ``object_annotation_category``, on the rows whose status is in ``statuses``); any other
    folder is read as an image folder (class sub-folders of images, or images directly in
    it).

    Parameters
    ----------
    path : str or os.PathLike
        The export folder: a local path or an fsspec URL (``s3://bucket/export``).
    label_column : str, default "level2"
        meta.csv column holding the labels (FlowCam layout only).
    storage_options : dict, optional
        fsspec options of a URL ``path``; None uses the fsspec configuration.
    executor : concurrent.futures.Executor, optional
        Other processes (a Dask client's ``get_executor()``) that read a FlowCam export's
        zip directory and feature tables while this one reads meta.csv.
    statuses : sequence of str, default ("validated",)
        EcoTaxa TSV export only: the ``object_annotation_status`` values whose labels are
        ground truth.
    extra_columns : sequence of str, optional
        FlowCam layout: the meta.csv columns the table keeps besides ``objid``, ``label``
        and ``image``; None (the default) keeps every one. ``()`` keeps none, as a build
        does: at 10x the reference export the other columns cost the job process 2.4 GB.
    keep_features : distributed.Client, optional
        FlowCam layout read with the executor of this client: leave the feature tables on
        its cluster (:attr:`Export.kept_features`; ``features`` then has no rows), as a
        build does.

    Returns
    -------
    Export

    Raises
    ------
    ExportError
        Not a folder, a FlowCam export without meta.csv, or a structural problem found by
        :func:`read_flowcam_export` or :func:`read_image_folder`.
    """
    if is_ecotaxa_zip(path, storage_options):
        return read_ecotaxa_export(path, label_column, statuses, storage_options)
    folder = _Folder(path, storage_options)
    # Messages name the folder as the user gave it.
    root = os.fspath(path).rstrip("/") if folder.fs is not None else str(Path(path))
    if not folder.is_dir():
        raise ExportError(
            f"{root}: no such folder; give the folder of a FlowCam export or of images, "
            "or an EcoTaxa export (folder or .zip)"
        )
    if folder.is_file(META_FILE):
        return read_flowcam_export(
            path, label_column, storage_options, executor, extra_columns, keep_features
        )
    files = _open_files(path, storage_options)  # one walk of the folder serves the reader
    if find_ecotaxa_tables(files.names):
        return _read_files(files, label_column, statuses)
    # imgs.zip, feature tables or a lone imgs/ folder say "FlowCam export", whose
    # meta.csv is missing; reading it as an image folder would silently invent labels.
    children = folder.children()
    subdirs = [name for name, is_dir in children if is_dir and not name.startswith(".")]
    flowcam_hints = [name for name, _ in children if name == ZIP_NAME or FEATURE_FILE.match(name)]
    if flowcam_hints or subdirs == [IMAGES_DIR]:
        found = ", ".join(sorted(flowcam_hints) or [IMAGES_DIR + "/"])
        raise ExportError(
            f"{_join(root, META_FILE)}: not found, but {root} looks like a FlowCam export "
            f"({found}); add the meta.csv of the export (objid + label columns)"
        )
    return read_image_folder(path, storage_options=storage_options)


def read_source(
    source: str | os.PathLike[str],
    label_column: str,
    statuses: Sequence[str] = ECOTAXA_TRUSTED_STATUSES,
) -> tuple[Export, bool]:
    """Read an export to classify or score: unlike :func:`read_export`, labels are optional.

    ``statuses`` are those of an EcoTaxa TSV export's rows whose labels count (see
    :func:`read_export`); the other rows are read unlabelled.

    Returns
    -------
    export : Export
    has_labels : bool
        Whether any row has a label (a FlowCam export without ``label_column`` has none).
    """
    meta = Path(source) / META_FILE
    if not is_ecotaxa_zip(source) and meta.is_file():
        with open(meta, newline="", encoding="utf-8-sig", errors="replace") as f:
            first = f.readline()
        header = next(csv.reader([first], delimiter=_delimiter(first)), [])
        if label_column not in [h.strip() for h in header]:
            # The reader insists on a label column; read the objid as a stand-in and drop it.
            export = read_export(source, label_column="objid")
            export.table["label"] = pd.array([pd.NA] * len(export.table), dtype="string")
            return export, False
    export = read_export(source, label_column=label_column, statuses=statuses)
    return export, bool(export.table["label"].notna().any())
