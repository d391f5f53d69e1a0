"""Open plankton stores for reading (layout: :mod:`plankton_store.store.format`)."""

from __future__ import annotations

import os
from functools import cached_property
from pathlib import Path
from typing import Any

import fsspec
import numpy as np
import zarr

from plankton_store.store import format as fmt
from plankton_store.store._versions import committed_samples, versions_log
from plankton_store.store.format import Attr


class IncompleteStoreError(RuntimeError):
    """The store was never finished (a build was interrupted or is still running)."""


class StoreFormatError(ValueError):
    """The path is not a plankton store, or one of an unsupported format version."""


def is_store(path: str | os.PathLike[str]) -> bool:
    """Whether a local ``path`` is a Zarr group (a store) rather than an export folder."""
    return (Path(path) / "zarr.json").is_file()


def store_state(path: str, storage_options: dict[str, Any] | None = None) -> str | None:
    """``None`` (nothing there), ``"complete"``, ``"incomplete"`` or ``"foreign"`` (not ours)."""
    try:
        group = zarr.open_group(path, mode="r", storage_options=storage_options)
    except (FileNotFoundError, zarr.errors.GroupNotFoundError):
        fs, fs_path = fsspec.core.url_to_fs(path, **(storage_options or {}))
        return "foreign" if fs.exists(fs_path) else None
    attrs = group.attrs.get(fmt.ROOT_ATTRS_KEY)
    if not isinstance(attrs, dict) or attrs.get(Attr.FORMAT) != fmt.FORMAT_NAME:
        return "foreign"
    return "complete" if attrs.get(Attr.COMPLETE) else "incomplete"


class PlanktonStore:
    """Lazy access to a plankton store: arrays stay on disk until sliced.

    Use :func:`open_store` to get one.
    """

    def __init__(
        self, group: zarr.Group, path: str, storage_options: dict[str, Any] | None = None
    ) -> None:
        self.group = group
        self.path = path
        self.storage_options = storage_options
        self.attrs: dict[str, Any] = dict(group.attrs[fmt.ROOT_ATTRS_KEY])

    def __repr__(self) -> str:
        h, w = self.image_size
        return (
            f"<PlanktonStore {self.path!r}: {self.n_samples} samples of {h}x{w}, "
            f"{len(self.class_names)} classes by {self.label_column}>"
        )

    @property
    def class_names(self) -> list[str]:
        return list(self.attrs[Attr.CLASS_NAMES])

    @property
    def label_column(self) -> str:
        return self.attrs[Attr.LABEL_COLUMN]

    @property
    def fingerprint(self) -> str:
        """Identifies the store's content: input fingerprint + build options."""
        return self.attrs[Attr.STORE_FINGERPRINT]

    @property
    def resize_mode(self) -> str:
        """How images were fitted into the stored size: ``"stretch"`` or ``"pad"``."""
        return str(self.attrs.get(Attr.RESIZE_MODE, "stretch"))

    @property
    def block_size(self) -> int:
        """Samples per block (one ``images`` shard), the unit of parallel work."""
        return int(self.attrs[Attr.BLOCK_SIZE])

    @property
    def complete(self) -> bool:
        return bool(self.attrs.get(Attr.COMPLETE))

    @property
    def n_samples(self) -> int:
        """Committed samples: the root attributes' count (arrays may be longer while an
        ingest runs, for readers that bypass the consolidated metadata)."""
        return committed_samples(self.attrs, self.group[fmt.IMAGES].shape[0])

    @property
    def versions(self) -> list[dict[str, Any]]:
        """The versions log, oldest first: one entry per build or ingest."""
        return versions_log(self.attrs, self.n_samples)

    @property
    def version(self) -> str:
        """Id of the store's current version (``v0`` = its build)."""
        return str(self.versions[-1]["id"])

    @property
    def pending_ingest(self) -> dict[str, Any] | None:
        """The ingest that started but never committed (see ``ingest --resume``), if any."""
        return self.attrs.get(Attr.PENDING)

    @property
    def provenance(self) -> np.ndarray:
        """Per sample, the id of the version (build or ingest) that wrote it."""
        codes = self.attrs.get(Attr.PROVENANCE_CODES) or {self.version: 0}
        names = np.empty(max(codes.values()) + 1, dtype=object)
        for name, code in codes.items():
            names[code] = name
        if fmt.PROVENANCE in self.group.array_keys():
            return names[self.group[fmt.PROVENANCE][: self.n_samples]]
        return names[np.zeros(self.n_samples, dtype=np.int64)]

    @property
    def embeddings(self) -> list[str]:
        """Names of the stored embeddings (``embed``), e.g. ``["cnn", "cnn_pca50"]``."""
        prefix = fmt.EMBEDDING_PREFIX
        return sorted(k[len(prefix) :] for k in self.group.array_keys() if k.startswith(prefix))

    def embedding(self, name: str) -> zarr.Array:
        """An embedding as a lazy ``(sample, dim)`` float32 array (NaN: not computed)."""
        if name not in self.embeddings:
            raise KeyError(
                f"{self.path} has no embedding {name!r} (it has {self.embeddings or 'none'}): "
                f"compute it with `plankton-jobs embed {self.path} --model MODEL_DIR`"
            )
        return self.group[fmt.embedding_array_name(name)]

    @property
    def image_size(self) -> tuple[int, int]:
        return tuple(self.group[fmt.IMAGES].shape[1:])  # type: ignore[return-value]

    @property
    def images(self) -> zarr.Array:
        """The ``(sample, y, x)`` uint8 array, lazily (slice it to read)."""
        return self.group[fmt.IMAGES]

    def array(self, name: str) -> zarr.Array:
        """Any array of the store by its name in :mod:`plankton_store.store.format`."""
        return self.group[name]

    @cached_property
    def labels(self) -> np.ndarray:
        """All label codes (int16), loaded once."""
        return self.group[fmt.LABEL][: self.n_samples]

    @cached_property
    def splits(self) -> np.ndarray:
        """All split codes (int8), loaded once; -1 marks a sample whose image was rejected."""
        return self.group[fmt.SPLIT][: self.n_samples]

    def split_indices(self, split: str | fmt.Split) -> np.ndarray:
        """Sample indices of one split (``"train"``, ``"val"``, ``"test"``), ascending."""
        code = fmt.Split[split.upper()] if isinstance(split, str) else split
        return np.flatnonzero(self.splits == code)

    @property
    def feature_tables(self) -> list[str]:
        """Names of the feature tables, e.g. ``["native"]``."""
        prefix = fmt.FEATURES_PREFIX
        return sorted(k[len(prefix) :] for k in self.group.array_keys() if k.startswith(prefix))

    def features(self, table: str) -> tuple[zarr.Array, list[str]]:
        """A feature table as a lazy ``(sample, feature)`` float32 array and its column names."""
        arr = self.group[fmt.features_array_name(table)]
        return arr, list(arr.attrs[fmt.COLUMNS_ATTR])

    def counts(self) -> dict[str, dict[str, int]]:
        """Stored samples per class and split, from the attributes."""
        return self.attrs[Attr.COUNTS]

    def to_xarray(self):  # noqa: ANN201 - xarray is an optional import
        """The store as an ``xarray.Dataset`` (lazy, dask-backed)."""
        import xarray as xr

        return xr.open_zarr(self.path, storage_options=self.storage_options)


def open_store(
    path: str,
    allow_incomplete: bool = False,
    storage_options: dict[str, Any] | None = None,
) -> PlanktonStore:
    """Open a plankton store for reading.

    Parameters
    ----------
    path
        Local path or fsspec URL.
    allow_incomplete
        Open a store whose build never finished (its unwritten blocks read as zeros).

    Raises
    ------
    StoreFormatError
        If ``path`` is not a plankton store or has a newer format version.
    IncompleteStoreError
        If the build never finished and ``allow_incomplete`` is False.
    """
    try:
        group = zarr.open_group(path, mode="r", storage_options=storage_options)
    except (FileNotFoundError, zarr.errors.GroupNotFoundError):
        raise StoreFormatError(
            f"no store at {path}: build one with `plankton-jobs build-store SOURCE {path}`"
        ) from None
    attrs = group.attrs.get(fmt.ROOT_ATTRS_KEY)
    if not isinstance(attrs, dict) or attrs.get(Attr.FORMAT) != fmt.FORMAT_NAME:
        raise StoreFormatError(f"{path} is a Zarr group but not a {fmt.FORMAT_NAME}")
    version = attrs.get(Attr.FORMAT_VERSION)
    if version != fmt.FORMAT_VERSION:
        raise StoreFormatError(
            f"{path} has store format version {version}; this plankton-jobs reads version "
            f"{fmt.FORMAT_VERSION}: rebuild the store or install a matching plankton-jobs"
        )
    if not attrs.get(Attr.COMPLETE) and not allow_incomplete:
        raise IncompleteStoreError(
            f"{path} is incomplete: its build was interrupted or is still running. "
            "Run `plankton-jobs build-store --resume` to finish it, or open it with "
            "allow_incomplete=True to read it anyway."
        )
    return PlanktonStore(group, path, storage_options)
