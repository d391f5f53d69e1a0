"""An export's optional feature tables, ``features_<name>.csv[.gz]``.

Each table becomes a float32 frame indexed by objid (int64); its file's bytes go into the
export's fingerprint.
"""

from __future__ import annotations

import gzip
import zlib

import numpy as np
import pandas as pd

from plankton_store.io._export import ExportError
from plankton_store.io._fs import _Folder
from plankton_store.io._layout import FEATURE_FILE
from plankton_store.io._meta import _parse_int64

#: Rows of a feature table parsed at a time: a 2.4-million-row table parsed whole (float64
#: columns, objids as strings, then a float32 copy) took a worker past 2 GiB.
FEATURE_PIECE_ROWS = 1 << 18

_UNREADABLE = (
    pd.errors.ParserError,
    pd.errors.EmptyDataError,
    gzip.BadGzipFile,
    zlib.error,
    EOFError,
    UnicodeDecodeError,
)


def _read_features(
    folder: _Folder,
) -> tuple[dict[str, pd.DataFrame], list[tuple[str, int]]]:
    """Every ``features_<name>.csv[.gz]`` in the folder as a float32 frame indexed by objid,
    and each file's name and size (the caller hashes the file for the export's
    fingerprint)."""
    features: dict[str, pd.DataFrame] = {}
    files: list[tuple[str, int]] = []
    for file_name, is_dir in folder.children():
        m = FEATURE_FILE.match(file_name)
        if not m or is_dir:
            continue
        path = folder.join(file_name)
        name = m["name"]
        if name in features:
            raise ExportError(
                f"{path}: a second feature table named {name!r}; keep only one of "
                f"features_{name}.csv and features_{name}.csv.gz"
            )
        files.append((file_name, folder.size(file_name)))
        with folder.open(file_name) as f:
            try:
                pieces = pd.read_csv(
                    f,
                    compression="gzip" if file_name.endswith(".gz") else None,
                    dtype={"objid": "str"},
                    keep_default_na=True,
                    chunksize=FEATURE_PIECE_ROWS,
                )
                parts = []
                with pieces:
                    for df in pieces:
                        parts.append(_float_rows(path, df, sum(len(p) for p in parts)))
            except _UNREADABLE as e:
                raise ExportError(
                    f"{path}: unreadable feature table ({e}); fix or remove it"
                ) from None
        df = pd.concat(parts) if len(parts) != 1 else parts[0]
        if df.index.has_duplicates:
            dup = int(df.index[df.index.duplicated()][0])
            raise ExportError(f"{path}: objid {dup} appears twice; fix or remove this table")
        features[name] = df
    return features, files


def _float_rows(path: str, df: pd.DataFrame, before: int) -> pd.DataFrame:
    """One piece of a feature table (``before`` rows came before it) as float32 rows
    indexed by objid."""
    if "objid" not in df.columns:
        raise ExportError(f"{path}: no 'objid' column; fix or remove this feature table")
    raw = df.pop("objid").fillna("").astype("str")
    # meta.csv's parser: one C loop for a table of plain integers, as there usually is.
    is_int, objid = _parse_int64(raw)
    bad = objid.isna().to_numpy()  # not an integer, or out of range
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        problem = "is out of the int64 range" if is_int.iloc[i] else "is not an integer"
        raise ExportError(
            f"{path}: objid {raw.iloc[i]!r} on line {before + i + 2} {problem}; "
            "fix or remove this feature table"
        )
    for col in df.columns:
        if not pd.api.types.is_numeric_dtype(df[col].dtype):
            df[col] = pd.to_numeric(df[col], errors="coerce")  # text cells -> NaN
    df = df.astype(np.float32)
    df.index = pd.Index(objid.to_numpy(np.int64), name="objid")
    return df


def _feature_columns(
    read: tuple[dict[str, pd.DataFrame], list[tuple[str, int]]],
) -> tuple[dict[str, pd.DataFrame], list[tuple[str, int]]]:
    """What :func:`_read_features` gave, each table without its rows (its columns, dtypes
    and index name): what a client keeps of tables left on the cluster."""
    features, files = read
    return {name: frame.iloc[:0].copy() for name, frame in features.items()}, files
