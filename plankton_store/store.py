"""Create, write and open plankton stores (layout: :mod:`plankton_store.format`).

Writing is split so that no two writers ever touch one shard: the client creates the arrays
and the attributes; each block task writes every per-sample array over exactly the sample
range it owns (one shard of ``images``, one chunk of every other array) plus its own element
of ``block_checksum``. Zarr v3 has no locks, so this alignment is what makes parallel writes
safe, by construction.
"""

from __future__ import annotations

import datetime as _dt
import warnings
import zlib
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cached_property
from typing import Any

import fsspec
import numpy as np
import zarr
from zarr.codecs import ZstdCodec

from plankton_store import format as fmt


class IncompleteStoreError(RuntimeError):
    """The store was never finished (a build was interrupted or is still running)."""


class StoreFormatError(ValueError):
    """The path is not a plankton store, or one of an unsupported format version."""


@dataclass(frozen=True)
class StoreLayout:
    """Shapes and chunking of a new store."""

    n_samples: int
    image_size: tuple[int, int]
    block_size: int
    chunk_size: int
    feature_columns: Mapping[str, list[str]]

    @property
    def n_blocks(self) -> int:
        return -(-self.n_samples // self.block_size)


def create_store(
    path: str,
    layout: StoreLayout,
    attrs: dict[str, Any],
    overwrite: bool = False,
    storage_options: dict[str, Any] | None = None,
) -> zarr.Group:
    """Create an empty store: every array, and root attributes marked incomplete.

    Parameters
    ----------
    path
        Local path or fsspec URL of the store.
    layout
        Array shapes and chunking.
    attrs
        The project attributes (stored under :data:`plankton_store.format.ROOT_ATTRS_KEY`);
        ``complete`` is set to False here.
    overwrite
        Replace an existing store at ``path``.
    """
    from zarr.core.sync import sync

    # The arrays are created concurrently (one metadata file each; one after the other they
    # cost a small build a few hundredths of a second of round trips).
    return zarr.Group(sync(_create_store(path, layout, attrs, overwrite, storage_options)))


async def _create_store(
    path: str,
    layout: StoreLayout,
    attrs: dict[str, Any],
    overwrite: bool,
    storage_options: dict[str, Any] | None,
) -> Any:
    import asyncio

    from zarr.api.asynchronous import open_group

    root = await open_group(
        store=path,
        mode="w" if overwrite else "w-",
        zarr_format=3,
        storage_options=storage_options,
    )
    n, block = layout.n_samples, layout.block_size
    # Shapes must be >= 1 per chunk; an empty store still gets valid (length-0) arrays.
    chunk = max(1, min(layout.chunk_size, block))
    height, width = layout.image_size
    creations = [
        root.create_array(
            fmt.IMAGES,
            shape=(n, height, width),
            chunks=(chunk, height, width),
            shards=(block, height, width),
            dtype="uint8",
            # zstd level 1: half the write and read time of the default level 3 on noisy
            # plankton images, for files about 15% larger.
            compressors=ZstdCodec(level=1),
            fill_value=0,
            dimension_names=(fmt.SAMPLE_DIM, fmt.Y_DIM, fmt.X_DIM),
        )
    ]
    creations += [
        root.create_array(
            name,
            shape=(n,),
            chunks=(block,),
            dtype=dtype,
            fill_value=fmt.Split.REJECTED if name == fmt.SPLIT else 0,
            dimension_names=(fmt.SAMPLE_DIM,),
        )
        for name, dtype in fmt.SAMPLE_ARRAYS.items()
    ]
    creations += [
        root.create_array(
            fmt.features_array_name(table),
            shape=(n, len(columns)),
            chunks=(block, max(1, len(columns))),
            dtype="float32",
            fill_value=float("nan"),
            dimension_names=(fmt.SAMPLE_DIM, fmt.features_dim_name(table)),
            attributes={"columns": list(columns)},
        )
        for table, columns in layout.feature_columns.items()
    ]
    creations.append(
        root.create_array(
            fmt.BLOCK_CHECKSUM,
            shape=(layout.n_blocks,),
            chunks=(1,),  # one chunk per block: each task writes only its own
            dtype="uint64",
            fill_value=0,
            dimension_names=(fmt.BLOCK_DIM,),
        )
    )
    await asyncio.gather(*creations)
    await root.update_attributes(
        {
            fmt.ROOT_ATTRS_KEY: {
                "format": fmt.FORMAT_NAME,
                "format_version": fmt.FORMAT_VERSION,
                **attrs,
                "complete": False,
                "block_size": block,
                "created": _now(),
            }
        }
    )
    return root


def block_checksum(arrays: Mapping[str, np.ndarray]) -> int:
    """crc32 over a block's arrays in name order, flagged so that it is never 0."""
    crc = 0
    for name in sorted(arrays):
        crc = zlib.crc32(np.ascontiguousarray(arrays[name]).tobytes(), crc)
    return crc | fmt.BLOCK_WRITTEN_FLAG


def write_block(
    path: str,
    block_index: int,
    start: int,
    arrays: Mapping[str, np.ndarray],
    storage_options: dict[str, Any] | None = None,
    run_id: str = "",
) -> int:
    """Write one block's arrays at ``start`` and record its checksum; returns the checksum.

    ``arrays`` maps array names to the block's values (first axis = samples). Idempotent:
    a retried task writes the same bytes again. The arrays are opened and written
    concurrently: one after the other, their metadata reads and small writes cost a block
    about 25 ms of round trips, as much as decoding a hundred images. With a ``run_id``
    (one per build run), this process opens them once for all the blocks of that run.
    """
    # zarr's own event loop (the one its synchronous API uses), so that stores bound to it,
    # such as fsspec's async filesystems, work as they do everywhere else.
    from zarr.core.sync import sync

    return sync(_write_block(path, block_index, start, arrays, storage_options, run_id))


# Arrays (and the block size) this process opened for a build run: opening a store's arrays
# reads and parses each one's metadata, a fixed cost that would otherwise fall on every
# block. Keyed by run (one store, one set of storage options), so that a store rebuilt at
# the same path is opened afresh; only the latest few runs are kept.
_RUN_TARGETS: dict[tuple[str, str], tuple[int, dict[str, Any]]] = {}
_RUN_TARGETS_KEPT = 4


async def _block_targets(
    path: str, names: list[str], storage_options: dict[str, Any] | None, run_id: str
) -> tuple[int, list[Any]]:
    """The store's block size and the arrays ``names``, opened for writing whole chunks."""
    import asyncio

    from zarr.api.asynchronous import open_group

    key = (path, run_id)
    block_size, opened = _RUN_TARGETS.get(key, (0, {})) if run_id else (0, {})
    missing = [name for name in names if name not in opened]
    if missing:
        root = await open_group(store=path, mode="r+", storage_options=storage_options)
        block_size = root.attrs[fmt.ROOT_ATTRS_KEY]["block_size"]
        found = await asyncio.gather(*(root.getitem(name) for name in missing))
        # Every chunk is written with data: no need to compare each to the fill value.
        unchecked = [array.with_config({"write_empty_chunks": True}) for array in found]
        opened = {**opened, **dict(zip(missing, unchecked, strict=True))}
        if run_id:
            _RUN_TARGETS[key] = (block_size, opened)
            for old in list(_RUN_TARGETS)[:-_RUN_TARGETS_KEPT]:
                del _RUN_TARGETS[old]
    return block_size, [opened[name] for name in names]


async def _write_block(
    path: str,
    block_index: int,
    start: int,
    arrays: Mapping[str, np.ndarray],
    storage_options: dict[str, Any] | None,
    run_id: str = "",
) -> int:
    import asyncio

    names = [*arrays, fmt.BLOCK_CHECKSUM]
    block_size, targets = await _block_targets(path, names, storage_options, run_id)
    if start != block_index * block_size:
        raise ValueError(f"block {block_index} must start at {block_index * block_size}")
    *targets, checksums = targets
    await asyncio.gather(
        *(
            target.setitem(slice(start, start + len(values)), values)
            for target, values in zip(targets, arrays.values(), strict=True)
        )
    )
    checksum = block_checksum(arrays)
    # Last, and only once everything else is written: a non-zero checksum marks the block done.
    await checksums.setitem(block_index, np.uint64(checksum))
    return checksum


def block_array_names(group: zarr.Group) -> list[str]:
    """Names of the arrays a block task writes (every array along ``sample``)."""
    return sorted(k for k in group.array_keys() if k != fmt.BLOCK_CHECKSUM)


def verify_blocks(path: str, storage_options: dict[str, Any] | None = None) -> dict[int, str]:
    """Recompute every block's checksum from the stored arrays.

    Returns
    -------
    dict
        Block index -> what is wrong with it (not written, checksum mismatch, unreadable);
        empty when every block is intact.
    """
    group = zarr.open_group(path, mode="r", storage_options=storage_options)
    block_size = group.attrs[fmt.ROOT_ATTRS_KEY]["block_size"]
    recorded = group[fmt.BLOCK_CHECKSUM][:]
    names = block_array_names(group)
    n = group[fmt.IMAGES].shape[0]
    problems: dict[int, str] = {}
    for index, expected in enumerate(recorded):
        start, stop = index * block_size, min((index + 1) * block_size, n)
        if expected == 0:
            problems[index] = f"samples {start}-{stop - 1}: never written"
            continue
        try:
            actual = block_checksum({name: group[name][start:stop] for name in names})
        except Exception as exc:  # noqa: BLE001 - any codec failure means corruption
            problems[index] = (
                f"samples {start}-{stop - 1}: unreadable ({type(exc).__name__}: {exc})"
            )
            continue
        if actual != expected:
            problems[index] = (
                f"samples {start}-{stop - 1}: checksum {actual:#x} != recorded {expected:#x}"
            )
    return problems


def store_state(path: str, storage_options: dict[str, Any] | None = None) -> str | None:
    """``None`` (nothing there), ``"complete"``, ``"incomplete"`` or ``"foreign"`` (not ours)."""
    try:
        group = zarr.open_group(path, mode="r", storage_options=storage_options)
    except (FileNotFoundError, zarr.errors.GroupNotFoundError):
        fs, fs_path = fsspec.core.url_to_fs(path, **(storage_options or {}))
        return "foreign" if fs.exists(fs_path) else None
    attrs = group.attrs.get(fmt.ROOT_ATTRS_KEY)
    if not isinstance(attrs, dict) or attrs.get("format") != fmt.FORMAT_NAME:
        return "foreign"
    return "complete" if attrs.get("complete") else "incomplete"


def finalize_store(
    path: str, attrs_update: dict[str, Any], storage_options: dict[str, Any] | None = None
) -> None:
    """Mark a store complete, with its final attributes, and consolidate its metadata."""
    root = zarr.open_group(path, mode="r+", storage_options=storage_options)
    attrs = dict(root.attrs[fmt.ROOT_ATTRS_KEY])
    attrs.update(attrs_update)
    attrs["complete"] = True
    attrs["finished"] = _now()
    root.attrs[fmt.ROOT_ATTRS_KEY] = attrs
    with warnings.catch_warnings():
        # Consolidated metadata is what lets xarray open the store in one read; zarr warns
        # that it is not (yet) in the v3 spec, which is known and accepted here.
        warnings.filterwarnings("ignore", "Consolidated metadata", category=UserWarning)
        zarr.consolidate_metadata(root.store)


def _now() -> str:
    return _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds")


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
        return list(self.attrs["class_names"])

    @property
    def label_column(self) -> str:
        return self.attrs["label_column"]

    @property
    def fingerprint(self) -> str:
        """Identifies the store's content: input fingerprint + build options."""
        return self.attrs["store_fingerprint"]

    @property
    def complete(self) -> bool:
        return bool(self.attrs.get("complete"))

    @property
    def n_samples(self) -> int:
        return int(self.group[fmt.IMAGES].shape[0])

    @property
    def image_size(self) -> tuple[int, int]:
        return tuple(self.group[fmt.IMAGES].shape[1:])  # type: ignore[return-value]

    @property
    def images(self) -> zarr.Array:
        """The ``(sample, y, x)`` uint8 array, lazily (slice it to read)."""
        return self.group[fmt.IMAGES]

    def array(self, name: str) -> zarr.Array:
        """Any array of the store by its name in :mod:`plankton_store.format`."""
        return self.group[name]

    @cached_property
    def labels(self) -> np.ndarray:
        """All label codes (int16), loaded once."""
        return self.group[fmt.LABEL][:]

    @cached_property
    def splits(self) -> np.ndarray:
        """All split codes (int8), loaded once; -1 marks a sample whose image was rejected."""
        return self.group[fmt.SPLIT][:]

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
        return arr, list(arr.attrs["columns"])

    def counts(self) -> dict[str, dict[str, int]]:
        """Stored samples per class and split, from the attributes."""
        return self.attrs["counts"]

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
    if not isinstance(attrs, dict) or attrs.get("format") != fmt.FORMAT_NAME:
        raise StoreFormatError(f"{path} is a Zarr group but not a {fmt.FORMAT_NAME}")
    version = attrs.get("format_version")
    if version != fmt.FORMAT_VERSION:
        raise StoreFormatError(
            f"{path} has store format version {version}; this plankton-jobs reads version "
            f"{fmt.FORMAT_VERSION}: rebuild the store or install a matching plankton-jobs"
        )
    if not attrs.get("complete") and not allow_incomplete:
        raise IncompleteStoreError(
            f"{path} is incomplete: its build was interrupted or is still running. "
            "Run `plankton-jobs build-store --resume` to finish it, or open it with "
            "allow_incomplete=True to read it anyway."
        )
    return PlanktonStore(group, path, storage_options)
