"""What every reader returns: :class:`Export`, and :class:`ExportError` for a broken export.

Every input row ends up in exactly one of ``Export.table`` and ``Export.rejects``:
``len(table) + len(rejects) == rows_read``. The readers are :func:`read_flowcam_export`
(:mod:`plankton_store.io._flowcam`), :func:`read_image_folder`
(:mod:`plankton_store.io._folder`) and :func:`read_export` (:mod:`plankton_store.io._read`);
the layouts they read are described in :mod:`plankton_store.io._layout`.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass
from typing import Any, NamedTuple

import pandas as pd

from plankton_store.io._fetch import ImageFetcher

__all__ = ["Export", "ExportError"]


class ExportError(ValueError):
    """A structural problem with an export (no meta.csv, no label column, no images...).

    The message names the file and says what to do.
    """


@dataclass
class Export:
    """What a reader found in one export.

    Attributes
    ----------
    layout : str
        ``"flowcam"`` or ``"image-folder"``.
    root : str
        Absolute path or fsspec URL of the export folder.
    label_column : str
        The meta.csv column the labels came from; ``"folder"`` for the image-folder layout.
    table : pandas.DataFrame
        One row per accepted input row, in input order, with a RangeIndex. Columns:
        ``objid`` (int64), ``label`` (string, ``pd.NA`` when empty or missing), ``image``
        (str, the reference for :meth:`ImageFetcher.fetch`), then every other meta.csv
        column unchanged, as strings (only those named by ``extra_columns`` when the
        reader was given it, as a build does).
    rejects : pandas.DataFrame
        Columns ``objid`` (Int64, NA when unknown), ``image`` (string or NA) and
        ``reason`` (str).
    features : dict of str to pandas.DataFrame
        ``"native"``, ``"skimage"``... (from ``features_<name>.csv.gz``) to a float32
        DataFrame indexed by objid (int64), original column names.
    fetcher : ImageFetcher
        Fetches the bytes of ``table["image"]`` references.
    rows_read : int
        Input rows seen: meta.csv data rows (malformed and duplicate ones included) plus
        files or zip members that had no row.
    fingerprint : str
        Short hex digest of the inputs; identical input gives an identical fingerprint.
    kept_features : distributed.Future or None
        Read with ``keep_features`` (a Dask client): the future of the feature tables,
        ``(features, files)``, left in a worker's memory; ``features`` then
        holds each table's columns without rows. None otherwise.
    """

    layout: str
    root: str
    label_column: str
    table: pd.DataFrame
    rejects: pd.DataFrame
    features: dict[str, pd.DataFrame]
    fetcher: ImageFetcher
    rows_read: int
    fingerprint: str
    kept_features: Any = None


class _Deflated(NamedTuple):
    """Bytes to hash, sent deflated from another process (a zip listing's fingerprint text:
    ~40 bytes per member, 95 MB for 2.4 million, ~5 times smaller deflated)."""

    data: bytes  # zlib stream
    size: int  # of the bytes it holds

    @classmethod
    def of(cls, text: bytes) -> _Deflated:
        return cls(zlib.compress(text, 1), len(text))


#: Deflated bytes fed to the decompressor at a time by :func:`_hash_part`.
INFLATE_PIECE_BYTES = 1 << 20


def _hash_part(digest: Any, name: str, data: bytes | _Deflated) -> None:
    """Hash a named part; a :class:`_Deflated` one is hashed as the bytes it holds, inflated
    a piece at a time (never whole)."""
    if not isinstance(data, _Deflated):
        _hash_prefix(digest, name, len(data))
        digest.update(data)
        return
    _hash_prefix(digest, name, data.size)
    inflate, view = zlib.decompressobj(), memoryview(data.data)
    for start in range(0, len(view), INFLATE_PIECE_BYTES):
        digest.update(inflate.decompress(view[start : start + INFLATE_PIECE_BYTES]))
    digest.update(inflate.flush())


def _hash_prefix(digest: Any, name: str, size: int) -> None:
    """What :func:`_hash_part` hashes before a part's bytes (for a part hashed in pieces)."""
    # Length-prefixed so that moving bytes between parts changes the digest.
    digest.update(f"{name}\0{size}\0".encode())


def _rejects_frame(parts: list[pd.DataFrame]) -> pd.DataFrame:
    """Concatenate reject parts with the documented dtypes and a RangeIndex."""
    df = pd.concat(
        [p for p in parts if len(p)] or [pd.DataFrame(columns=["objid", "image", "reason"])],
        ignore_index=True,
    )
    return pd.DataFrame(
        {
            "objid": pd.array(df["objid"].tolist(), dtype="Int64"),
            "image": pd.array(df["image"].tolist(), dtype="string"),
            "reason": pd.Series(df["reason"].tolist(), dtype="str"),
        }
    )
